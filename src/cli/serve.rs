//! `remex serve` and `remex tokens`.

use anyhow::{Context as _, Result, bail};
use remex::service::{self, ServeOptions, Sqlite, Store as _};

use super::args::{ServeArgs, TokensCommand};
use super::{Global, Status, print_listing, render};

/// Runs `remex serve` until SIGTERM or Ctrl-C.
pub(super) async fn serve(global: &Global<'_>, args: ServeArgs) -> Result<Status> {
    if args.print_openapi {
        println!("{}", service::openapi_json());
        return Ok(Status::Success);
    }
    let config = global.config()?;
    let executor = global.executor(config)?;
    let hosts = executor.config().vms.len();
    let store = executor.config().service.store.clone();
    let (tell, listening) = std::sync::mpsc::channel();
    let options = ServeOptions {
        listen: args.listen,
        on_listening: Some(tell),
    };
    let announce = std::thread::spawn(move || {
        if let Ok(addr) = listening.recv() {
            eprintln!(
                "remex serve: listening on {addr} ({hosts} hosts; store {}); SIGTERM or Ctrl-C stops it",
                store.display()
            );
        }
    });
    let shutdown = async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    eprintln!("remex serve: cannot watch for SIGTERM: {e}");
                    return std::future::pending().await;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("remex serve: shutting down (jobs under way are stopped, their records written)");
    };
    service::serve(executor, options, shutdown).await?;
    let _ = announce.join();
    eprintln!("remex serve: stopped");
    Ok(Status::Success)
}

/// Runs `remex tokens …`.
pub(super) fn tokens(global: &Global<'_>, command: TokensCommand) -> Result<Status> {
    let config = global.config()?;
    let path = &config.service.store;
    let store = Sqlite::open(path)?;
    let now = remex::audit::system_to_ms(std::time::SystemTime::now());
    match command {
        TokensCommand::Create {
            name,
            scope,
            targets,
            expires,
        } => {
            // The targets must mean something in this inventory.
            let executor = global.executor(config.clone())?;
            executor
                .select(&targets)
                .with_context(|| format!("--targets {targets}"))?;
            let expires_ms =
                expires.map(|d| now + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2));
            let made = service::tokens::create(&store, &name, &scope, &targets, expires_ms, now)
                .map_err(anyhow::Error::msg)?;
            if global.json {
                #[derive(serde::Serialize)]
                struct Made<'a> {
                    token: &'a str,
                    callback_secret: &'a str,
                    #[serde(flatten)]
                    record: &'a service::TokenRecord,
                }
                print_listing(
                    "tokens.create",
                    Made {
                        token: &made.token,
                        callback_secret: &made.callback_secret,
                        record: &made.record,
                    },
                )?;
            } else {
                println!("{}", made.token);
                eprintln!(
                    "token `{name}` made (scopes {}; targets `{targets}`{}). It is shown this once: keep it.\n\
                     callback secret (signs its callbacks): {}",
                    scope.join(","),
                    expires.map_or_else(String::new, |_| format!(
                        "; expires {}",
                        remex::audit::format_ms(expires_ms.unwrap_or_default())
                    )),
                    made.callback_secret
                );
            }
        }
        TokensCommand::List => {
            let tokens = store.tokens()?;
            if global.json {
                #[derive(serde::Serialize)]
                struct Tokens<'a> {
                    tokens: &'a [service::TokenRecord],
                }
                print_listing("tokens.list", Tokens { tokens: &tokens })?;
            } else {
                let when =
                    |ms: Option<i64>| ms.map_or_else(|| "-".to_owned(), remex::audit::format_ms);
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        let state = if t.revoked_ms.is_some() {
                            "revoked"
                        } else if t.expires_ms.is_some_and(|e| e <= now) {
                            "expired"
                        } else {
                            "active"
                        };
                        vec![
                            t.name.clone(),
                            t.scopes.join(","),
                            t.targets.clone(),
                            when(t.expires_ms),
                            state.to_owned(),
                        ]
                    })
                    .collect();
                println!(
                    "{}",
                    render::table(&["NAME", "SCOPES", "TARGETS", "EXPIRES", "STATE"], &rows)
                );
                if tokens.is_empty() {
                    eprintln!("no tokens yet; make one with `remex tokens create NAME --scope …`");
                }
            }
        }
        TokensCommand::Revoke { name } => {
            if let Err(e) = store.revoke_token(&name, now) {
                bail!("{e}");
            }
            eprintln!("token `{name}` revoked: it stops working at once");
        }
    }
    Ok(Status::Success)
}
