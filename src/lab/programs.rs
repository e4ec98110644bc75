//! Short helper programs (`ssh-keygen`, `dropbearconvert`): many run at
//! once, and what they said, for an error message.

use std::io;
use std::process::{Child, Command, Output, Stdio};

/// Spawns every command, then waits for them all, so that many short
/// programs run in parallel.
pub(super) fn run_all(commands: impl Iterator<Item = Command>) -> Vec<io::Result<Output>> {
    let children: Vec<io::Result<Child>> = commands
        .map(|mut command| {
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
        })
        .collect();
    children
        .into_iter()
        .map(|child| child?.wait_with_output())
        .collect()
}

/// A program's stderr and stdout, for an error message.
pub(super) fn output_text(output: &Output) -> String {
    let mut text = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !stdout.trim().is_empty() {
        text.push('\n');
        text.push_str(stdout.trim());
    }
    if text.is_empty() {
        text = format!("(no output; {})", output.status);
    }
    text
}
