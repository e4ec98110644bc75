//! `remex completions SHELL` and `remex man`: shell completions and man
//! pages, generated from the same clap definitions as `--help`, so they
//! never disagree with it.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;

use super::args::Cli;

/// Prints the completion script for `shell`.
pub(crate) fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = Cli::command();
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut command, "remex", &mut text);
    print(&text).context("writing the completion script")
}

/// Writes `text` to stdout; a reader that stopped early (`| head`) is not
/// an error.
fn print(text: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result,
    }
}

/// Prints remex's man page (`remex.1`), or with `dir` writes it and one page
/// per command (`remex-exec.1`, `remex-keys-deploy.1`, …) there.
pub(crate) fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let command = Cli::command();
    match dir {
        None => {
            let mut text = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut text)
                .context("rendering the man page")?;
            print(&text).context("writing the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages to {}", dir.display()))
        }
    }
}
