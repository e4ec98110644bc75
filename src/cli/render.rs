//! Human output: each host's lines prefixed by its name, whole lines only,
//! and a closing summary. (`--json` output is `serde_json` of the library's
//! report types.)

use std::io::Write as _;
use std::sync::Mutex;

use remex::{Detail, ErrorKind, ExecResult, HostReport, Observer, RunReport, Stream, Summary};

/// How a [`Printer`] shows each host's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Every line as `NAME: line` when the host finishes.
    Lines,
    /// Every line as `NAME: line` as it arrives (`--stream`).
    Stream,
    /// Only failed hosts' lines (`--quiet`).
    Quiet,
    /// One line per host: `NAME: [ok] out\nput` (`--output oneline`).
    Oneline,
}

/// Prints host output as `NAME: line`, stdout lines to stdout and stderr
/// lines to stderr, under one lock so lines of different hosts never mix.
pub(crate) struct Printer {
    /// Width that host names are padded to, so output lines up.
    width: usize,
    /// How each host's output is shown.
    style: Style,
    /// Serialises writers across host tasks.
    lock: Mutex<()>,
}

impl Printer {
    /// A printer for hosts named up to `width` characters.
    pub(crate) fn new(width: usize, style: Style) -> Self {
        Printer {
            width,
            style,
            lock: Mutex::new(()),
        }
    }

    /// `NAME: [ok] first line\nsecond line [stderr] …` on stdout: a host's
    /// whole result on one line, for grep, sort and diff.
    fn write_oneline(&self, outcome: &HostReport<dyn Detail>, result: Option<&ExecResult>) {
        let status = match &outcome.error {
            None => "ok".to_owned(),
            Some(failure) => format!("{}: {}", failure.kind, failure.message),
        };
        let mut line = format!("{:<width$}: [{status}]", outcome.host, width = self.width);
        if let Some(result) = result {
            for (label, captured) in [("", &result.stdout), (" [stderr]", &result.stderr)] {
                let text = String::from_utf8_lossy(&captured.bytes);
                let text = text.trim_end_matches('\n');
                if !text.is_empty() {
                    line.push_str(label);
                    line.push(' ');
                    line.push_str(&text.replace('\\', "\\\\").replace('\n', "\\n"));
                }
            }
        }
        let _ = writeln!(std::io::stdout().lock(), "{line}");
    }

    fn write_line(&self, host: &str, stream: Stream, line: &[u8]) {
        let mut text = Vec::with_capacity(line.len() + self.width + 3);
        let _ = write!(text, "{host:<width$}: ", width = self.width);
        text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        text.push(b'\n');
        // Output errors (a closed pipe) are not worth failing a host over.
        let _ = match stream {
            Stream::Stdout => std::io::stdout().lock().write_all(&text),
            Stream::Stderr => std::io::stderr().lock().write_all(&text),
        };
    }

    fn write_failure(&self, outcome: &HostReport<dyn Detail>) {
        if let Some(failure) = &outcome.error {
            let name = &outcome.host;
            let _ = writeln!(
                std::io::stderr().lock(),
                "{name:<width$}: [{kind}] {message}",
                width = self.width,
                kind = failure.kind,
                message = failure.message
            );
        }
    }
}

impl Observer for Printer {
    fn line(&self, host: &str, stream: Stream, line: &[u8]) {
        if self.style == Style::Stream {
            let _guard = self.lock.lock();
            self.write_line(host, stream, line);
        }
    }

    /// Only `--stream` prints lines as they come; the other styles print
    /// the report's output at the end.
    fn wants_lines(&self, _host: &str, _stream: Stream) -> bool {
        self.style == Style::Stream
    }

    fn done(&self, outcome: &HostReport<dyn Detail>) {
        let _guard = self.lock.lock();
        let result = outcome.detail.as_any().downcast_ref::<ExecResult>();
        match self.style {
            Style::Oneline => return self.write_oneline(outcome, result),
            Style::Quiet if outcome.ok() => return,
            _ => {}
        }
        if let (false, Some(result)) = (self.style == Style::Stream, result) {
            for (stream, captured) in [
                (Stream::Stdout, &result.stdout),
                (Stream::Stderr, &result.stderr),
            ] {
                for line in split_lines(&captured.bytes) {
                    self.write_line(&outcome.host, stream, line);
                }
                if captured.truncated {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "{:<width$}: [{}] output truncated at --max-output",
                        outcome.host,
                        match stream {
                            Stream::Stdout => "stdout",
                            Stream::Stderr => "stderr",
                        },
                        width = self.width
                    );
                }
            }
        }
        self.write_failure(outcome);
    }
}

/// The lines of `bytes`, without their `\n`; a final line without one counts.
fn split_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let empty = bytes.is_empty();
    trimmed.split(|&b| b == b'\n').filter(move |_| !empty)
}

/// The closing summary of a run, for stderr, the same for every operation:
/// `4 hosts: 2 ok, 1 exited non-zero, 1 unreachable in 0.31s; slowest vm03
/// (0.30s)`, then `failed: vm02,vm04` when some failed.
pub(crate) fn summary<T, D>(report: &RunReport<T, D>) -> String {
    summary_with(report, None)
}

/// [`summary`] with the operation's own figures after the counts (`1.0 MiB
/// sent`).
pub(crate) fn summary_with<T, D>(report: &RunReport<T, D>, extra: Option<&str>) -> String {
    let s = &report.summary;
    let hosts = if s.total == 1 { "host" } else { "hosts" };
    let mut line = format!("{} {hosts}: {}", s.total, classes(s));
    if let Some(extra) = extra {
        line.push_str(&format!("; {extra}"));
    }
    line.push_str(&format!(" in {:.2}s", s.duration_ms as f64 / 1000.0));
    if report.results.len() > 1
        && let Some(slowest) = report.results.iter().max_by_key(|r| r.duration)
    {
        line.push_str(&format!(
            "; slowest {} ({:.2}s)",
            slowest.host,
            slowest.duration.as_secs_f64()
        ));
    }
    line.push_str(&failed_line(
        report
            .results
            .iter()
            .filter(|r| !r.ok())
            .map(|r| r.host.as_str()),
    ));
    line
}

/// `2 ok, 1 exited non-zero, 1 unreachable, 1 host key refused`: the hosts
/// by what became of them. The network failures (dns, connect,
/// connect_timeout) are one class, `unreachable`; a host refused for its
/// host key or its login was reached, and says so.
fn classes(summary: &Summary) -> String {
    let mut parts = vec![format!("{} ok", summary.ok)];
    if summary.unreachable > 0 {
        parts.push(format!("{} unreachable", summary.unreachable));
    }
    for (&kind, &n) in summary
        .by_kind
        .iter()
        .filter(|(kind, _)| !kind.is_unreachable())
    {
        parts.push(match kind {
            ErrorKind::Exit => format!("{n} exited non-zero"),
            ErrorKind::Timeout => format!("{n} timed out"),
            ErrorKind::Signal => format!("{n} killed by a signal"),
            ErrorKind::HostKey => format!("{n} host key refused"),
            ErrorKind::Auth => format!("{n} auth failed"),
            ErrorKind::Cancelled => format!("{n} cancelled"),
            kind => format!("{n} {kind} failed"),
        });
    }
    parts.join(", ")
}

/// The width host names are padded to: the longest name's.
pub(crate) fn name_width<'a>(names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).max().unwrap_or(0)
}

/// `\nfailed: a,b` naming the failed hosts, or nothing when none failed.
pub(crate) fn failed_line<'a>(failed: impl Iterator<Item = &'a str>) -> String {
    let failed: Vec<&str> = failed.collect();
    if failed.is_empty() {
        String::new()
    } else {
        format!("\nfailed: {}", failed.join(","))
    }
}

/// A plain table: columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let render = |cells: Vec<&str>| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        line.trim_end().to_owned()
    };
    let mut out = render(header.to_vec());
    for row in rows {
        out.push('\n');
        out.push_str(&render(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_output() {
        let v: Vec<&[u8]> = split_lines(b"a\nb\n").collect();
        assert_eq!(v, [b"a".as_slice(), b"b"]);
        let v: Vec<&[u8]> = split_lines(b"a\n\nb").collect();
        assert_eq!(v, [b"a".as_slice(), b"", b"b"]);
        assert_eq!(split_lines(b"").count(), 0);
        assert_eq!(split_lines(b"\n").count(), 1);
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["NAME", "ADDRESS"],
            &[
                vec!["vm01".into(), "127.0.0.2".into()],
                vec!["db".into(), "x".into()],
            ],
        );
        assert_eq!(t, "NAME  ADDRESS\nvm01  127.0.0.2\ndb    x");
    }
}
