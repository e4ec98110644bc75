//! `remex action list` and `remex action run`: the config's named actions.
//! A run is prepared by the library (`Action::prepare`: params checked,
//! hosts within the action's targets) into the one `RunRequest`, then
//! runs, prints and exits exactly as `remex exec --request` does.

use std::num::NonZeroU32;

use anyhow::Result;
use remex::Config;
use remex::action::{ActionError, ActionList};
use remex::exec::RequestPolicy;

use super::args::{ActionCommand, ActionRunArgs};
use super::error_report::Usage;
use super::{Global, Status, exec, print_listing, render};

/// `remex action …`.
pub(super) async fn run(global: &Global<'_>, command: ActionCommand) -> Result<Status> {
    match command {
        ActionCommand::List => list(global),
        ActionCommand::Run(args) => run_action(global, args).await,
    }
}

/// `remex action list`: a table, or with `--json` the [`ActionList`].
fn list(global: &Global<'_>) -> Result<Status> {
    let config = global.config()?;
    let list = ActionList::of(&config);
    if global.json {
        print_listing("action.list", &list)?;
        return Ok(Status::Success);
    }
    if list.actions.is_empty() {
        eprintln!(
            "no actions in {}: define them under `actions:` (see configs/config.example.yml)",
            config.source.display()
        );
        return Ok(Status::Success);
    }
    let rows: Vec<Vec<String>> = list
        .actions
        .iter()
        .map(|action| {
            let params: Vec<String> = action
                .params
                .iter()
                .map(|p| {
                    let mut text = format!("{}: {}", p.name, p.kind);
                    if let Some(default) = &p.default {
                        text.push_str(&format!("={default}"));
                    } else if !p.required {
                        text.push('?');
                    }
                    if p.secret {
                        text.push_str(" (secret)");
                    }
                    text
                })
                .collect();
            vec![
                action.name.clone(),
                action.targets.clone(),
                params.join(", "),
                action.description.clone(),
            ]
        })
        .collect();
    println!(
        "{}",
        render::table(&["NAME", "TARGETS", "PARAMS", "DESCRIPTION"], &rows)
    );
    Ok(Status::Success)
}

/// `remex action run NAME [TARGETS] --param K=V…`.
async fn run_action(global: &Global<'_>, args: ActionRunArgs) -> Result<Status> {
    let config = global.config()?;
    let refused = |e: ActionError| -> anyhow::Error {
        let field = e.field();
        let message = match &e {
            ActionError::Param { message, .. } => message.clone(),
            other => other.to_string(),
        };
        Usage(format!(
            "action `{}`: field `{field}`: {message}",
            args.name
        ))
        .into()
    };
    let action = remex::action::find(&config, &args.name).map_err(refused)?;
    let params = action.params_from_text(&args.params).map_err(refused)?;
    let mut prepared = action
        .prepare(&config, &params, args.targets.as_deref())
        .map_err(refused)?;
    if let Some(parallel) = args.parallel.and_then(NonZeroU32::new) {
        prepared = prepared.with_parallel(parallel);
    }
    let request = prepared.request;
    let targets = request.targets.clone();
    let parallel = request.parallel.map(NonZeroU32::get);
    let name = args.name.clone();
    let exec = move |_: &Config| {
        request
            .to_exec(&RequestPolicy::command_line(None))
            .map_err(|e| Usage(format!("action `{name}`: {}", e.with_field())).into())
    };
    exec::run_with_config(global, config, &targets, exec, &args.show, parallel).await
}
