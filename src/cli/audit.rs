//! `remex audit verify|tail|show`: reading the audit log.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result};
use serde::Serialize;

use remex::audit::{self, AuditConfig, AuditError, Event, Filter, Record, Stored};
use remex::quote;

use super::args::AuditCommand;
use super::invocation::Invocation;
use super::{Global, Status, print_listing};

/// How often `tail --follow` looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

pub(super) async fn run(global: &Global<'_>, command: AuditCommand) -> Result<Status> {
    let config = global.config()?.audit;
    match command {
        AuditCommand::Verify => verify(&config, global.json),
        AuditCommand::Tail { lines, follow } => {
            tail(&config, global.json, global.invocation, lines, follow).await
        }
        AuditCommand::Show {
            host,
            op,
            since,
            until,
            failed,
            run,
        } => {
            let now = SystemTime::now();
            let time = |flag: &str, value: Option<String>| {
                value
                    .map(|text| audit::parse_time(&text, now))
                    .transpose()
                    .with_context(|| format!("--{flag}"))
            };
            let filter = Filter {
                host,
                op,
                since: time("since", since)?,
                until: time("until", until)?,
                failed_only: failed,
                run,
            };
            show(&config, global.json, global.invocation, &filter)
        }
    }
}

fn verify(config: &AuditConfig, json: bool) -> Result<Status> {
    let report = audit::verify(config)?;
    if json {
        #[derive(Serialize)]
        struct Verified<'a> {
            ok: bool,
            #[serde(flatten)]
            report: &'a audit::VerifyReport,
        }
        print_listing(
            "audit.verify",
            Verified {
                ok: report.ok(),
                report: &report,
            },
        )?;
    } else {
        let chain = if report.keyed {
            "HMAC-SHA256"
        } else {
            "SHA-256"
        };
        match &report.broken {
            None => println!(
                "audit log intact: {} records (seq 1 to {}) in {} file(s), {chain} chain; {}",
                report.records,
                report.last_seq,
                report.files.len(),
                config.path.display()
            ),
            Some(broken) => {
                println!("audit log BROKEN: {broken}");
                println!(
                    "records 1 to {} are intact; {}",
                    broken.seq.saturating_sub(1),
                    config.path.display()
                );
            }
        }
        for note in &report.notes {
            println!("note: {note}");
        }
    }
    Ok(if report.ok() {
        Status::Success
    } else {
        Status::HostFailed
    })
}

async fn tail(
    config: &AuditConfig,
    json: bool,
    invocation: &Invocation,
    lines: usize,
    follow: bool,
) -> Result<Status> {
    // At least one record is read, so that `-n 0 --follow` knows where the
    // log ends and follows from there.
    let stored = audit::tail(config, lines.max(1))?;
    let mut last_seq = 0;
    let mut records = records_of(stored, invocation, &mut last_seq);
    records.drain(..records.len().saturating_sub(lines));
    if follow {
        // Followed output is a stream: one record per line, as it comes.
        for record in &records {
            print_record(record, json)?;
        }
        let mut follower = audit::Follower::new(config, last_seq)?;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            for record in records_of(follower.poll()?, invocation, &mut last_seq) {
                print_record(&record, json)?;
            }
            tokio::select! {
                _ = &mut interrupted => return Ok(Status::Success),
                () = tokio::time::sleep(FOLLOW_POLL) => {}
            }
        }
    }
    print_records(&records, json, "audit.tail")
}

fn show(
    config: &AuditConfig,
    json: bool,
    invocation: &Invocation,
    filter: &Filter,
) -> Result<Status> {
    let mut last_seq = 0;
    let records: Vec<Record> = records_of(audit::read_records(config)?, invocation, &mut last_seq)
        .into_iter()
        .filter(|record| filter.matches(record))
        .collect();
    print_records(&records, json, "audit.show")
}

/// The records of `items`, warning on stderr about lines that are not
/// records (and stopping at nothing); `last_seq` follows the last one.
fn records_of(
    items: impl IntoIterator<Item = Result<Stored, AuditError>>,
    invocation: &Invocation,
    last_seq: &mut u64,
) -> Vec<Record> {
    let mut records = Vec::new();
    for item in items {
        match item {
            Ok(stored) => {
                *last_seq = stored.record.seq;
                records.push(stored.record);
            }
            Err(err) => eprintln!(
                "remex: warning: {:#} (run `{}`)",
                anyhow::Error::from(err),
                invocation.command("audit verify")
            ),
        }
    }
    records
}

fn print_records(records: &[Record], json: bool, operation: &'static str) -> Result<Status> {
    if json {
        #[derive(Serialize)]
        struct Records<'a> {
            records: &'a [Record],
        }
        print_listing(operation, Records { records })?;
    } else {
        let mut out = std::io::stdout().lock();
        for record in records {
            writeln!(out, "{}", line(record)).context("writing to stdout")?;
        }
    }
    Ok(Status::Success)
}

fn print_record(record: &Record, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, record).context("writing JSON to stdout")?;
        writeln!(out).context("writing to stdout")?;
    } else {
        writeln!(out, "{}", line(record)).context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")
}

/// One record as a line for people: time, seq, event, operation, host,
/// then what happened.
fn line(record: &Record) -> String {
    let who = match &record.workflow {
        Some(workflow) => format!("{}({workflow})", record.actor),
        None => record.actor.clone(),
    };
    let host = record.host.as_deref().unwrap_or("-");
    let mut text = format!(
        "{} #{} {} {} {} {who}",
        record.ts,
        record.seq,
        record.event.as_str(),
        record.op.as_str(),
        host
    );
    let mut push = |part: String| {
        text.push_str("  ");
        text.push_str(&part);
    };
    if record.event == Event::Start {
        if let Some(sudo) = &record.sudo {
            push(format!("sudo:{sudo}"));
        }
        if let Some(argv) = &record.argv {
            push(quote::join(argv));
        }
        if let Some(command) = &record.command {
            push(format!("--raw {}", quote::quote(command)));
        }
    }
    if let Some(paths) = &record.paths {
        push(paths.join(" -> "));
    }
    if let Some(bytes) = record.bytes {
        push(format!("{bytes} bytes"));
    }
    if let Some(fingerprint) = &record.fingerprint {
        push(fingerprint.clone());
    }
    if let Some(code) = record.exit_code {
        push(format!("exit {code}"));
    }
    if let Some(signal) = &record.signal {
        push(format!("signal {signal}"));
    }
    if let Some(kind) = &record.error_kind {
        push(format!(
            "[{kind}] {}",
            record.error.as_deref().unwrap_or_default()
        ));
    }
    if let Some(ms) = record.duration_ms {
        push(format!("{ms}ms"));
    }
    push(format!("run {}", record.run));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use remex::audit::Op;

    #[test]
    fn a_record_reads_as_one_line() {
        let mut record = Record::new(Event::Start, Op::Exec, "r1")
            .host("vm01")
            .sudo("root")
            .argv(["echo", "a b"]);
        record.ts = "2026-11-24T10:00:00.000Z".into();
        record.seq = 7;
        record.actor = "ops".into();
        record.workflow = Some("n8n".into());
        assert_eq!(
            line(&record),
            "2026-11-24T10:00:00.000Z #7 start exec vm01 ops(n8n)  sudo:root  echo 'a b'  run r1"
        );
        let mut end = Record::new(Event::End, Op::Exec, "r1")
            .host("vm01")
            .exit_code(0_u32)
            .duration_ms(41_u64);
        end.actor = "ops".into();
        assert!(
            line(&end).ends_with("ops  exit 0  41ms  run r1"),
            "{}",
            line(&end)
        );
    }
}
