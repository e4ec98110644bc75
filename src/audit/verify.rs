//! [`verify`]: walks the whole chain and reports the first record that
//! breaks it.
//!
//! Checks, for every line of every file in order (rotated files oldest
//! first, then the log): that it ends with a well-formed `hash` and the
//! hash (or HMAC) of its content matches — else `edited`; its version;
//! that its `seq` is the next one (the very first is 1) and its `prev` is
//! the hash of the record before — else `deleted or inserted`, or
//! `swapped` when the next two lines are the same records in the other
//! order. Then the head file: present (unless the log is empty), with a
//! valid MAC when keyed, and naming the last record — else `head
//! missing`, `head invalid`, `truncated` (the head names a later record
//! than the log holds) or `edited` (it names a different record).
//!
//! A partial last line (a write interrupted by a crash, which the writer
//! removes on its next append) and records after the head's (not yet
//! committed under `fsync: start`, or written by a process that died
//! before updating the head) are reported as [`Note`]s, not breaks.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use super::AuditConfig;
use super::chain::{self, LineProblem, Sealer, ZERO_HASH};
use super::error::AuditError;
use super::files::{Line, LineReader, LogFiles, Snapshot};
use super::head::HeadState;
use super::record::SCHEMA_VERSION;

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The files walked, in order.
    pub files: Vec<PathBuf>,
    /// Records found intact, before the break if there is one.
    pub records: u64,
    /// `seq` of the last intact record (0: none).
    pub last_seq: u64,
    /// Whether hashes were checked as HMACs (`audit.hmac_key_path`).
    pub keyed: bool,
    /// `seq` the head file names, when it was read.
    pub head_seq: Option<u64>,
    /// The first break, if any: the chain is intact up to `seq - 1`.
    pub broken: Option<Break>,
    /// Findings that are not tampering.
    pub notes: Vec<Note>,
}

impl VerifyReport {
    /// Whether the chain is intact.
    pub fn ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// The first place the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The file: a log file, or the head file.
    pub file: PathBuf,
    /// The line in `file`, from 1; `None` when about the head file as a
    /// whole. For `truncated`, the line after the last one.
    pub line: Option<usize>,
    /// The `seq` the chain expected here: records up to `seq - 1` are
    /// intact.
    pub seq: u64,
    /// The `seq` the line claims, when it has one.
    pub found_seq: Option<u64>,
    /// What kind of break.
    pub kind: BreakKind,
    /// Details, for people.
    pub detail: String,
}

/// What kind of break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BreakKind {
    /// The line's content does not match its hash (or it is not a record,
    /// or it does not match what the head file names).
    Edited,
    /// The `seq`/`prev` links do not continue: a record is missing, or one
    /// was added.
    DeletedOrInserted,
    /// Two adjacent records are in the wrong order.
    Swapped,
    /// The head file names a later record than the log ends with: records
    /// were removed from the end.
    Truncated,
    /// The log has records but no head file.
    HeadMissing,
    /// The head file is unreadable, or its MAC does not match.
    HeadInvalid,
    /// A record of a schema version this remex does not know.
    Unsupported,
}

impl BreakKind {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakKind::Edited => "edited",
            BreakKind::DeletedOrInserted => "deleted or inserted",
            BreakKind::Swapped => "swapped",
            BreakKind::Truncated => "truncated",
            BreakKind::HeadMissing => "head missing",
            BreakKind::HeadInvalid => "head invalid",
            BreakKind::Unsupported => "unsupported version",
        }
    }
}

/// A finding that is not tampering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Note {
    /// The last line of the log is incomplete: a write was interrupted (it
    /// was never acknowledged, and the writer removes it on its next
    /// append).
    TornTail {
        /// The log file.
        file: PathBuf,
        /// The incomplete line.
        line: usize,
        /// Its length in bytes.
        bytes: usize,
    },
    /// Records after the one the head names: written under `fsync: start`
    /// and not committed yet, or by a process that died before updating the
    /// head. They are chained correctly; removing them would not be
    /// detected.
    Uncommitted {
        /// How many.
        records: u64,
    },
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(
            f,
            ": record {}: {}: {}",
            self.seq,
            self.kind.as_str(),
            self.detail
        )
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::TornTail { file, line, bytes } => write!(
                f,
                "{}:{line}: an incomplete last line ({bytes} bytes) from an interrupted write; \
                 the next append removes it",
                file.display()
            ),
            Note::Uncommitted { records } => write!(
                f,
                "{records} record(s) after the one the head file names: not committed yet \
                 (fsync: start) or left by a crash; removing them would go unnoticed"
            ),
        }
    }
}

/// Verifies the log of `config`: every file, every line, and the head. The
/// files are taken as they are at the start, under the shared lock (so no
/// append is half done); appends during the walk are not seen.
///
/// # Errors
///
/// When verification cannot run at all: the HMAC key cannot be read, or a
/// file cannot be opened or read. Anything wrong with the content is in the
/// report.
pub fn verify(config: &AuditConfig) -> Result<VerifyReport, AuditError> {
    let files = LogFiles::new(&config.path)?;
    let sealer = Sealer::load(config.hmac_key_path.as_deref())?;
    let snapshot = files.snapshot()?;
    walk(&files, &sealer, snapshot)
}

/// The chain walked so far.
struct Walk {
    /// The next `seq` expected.
    expected: u64,
    /// `hash` of the last intact record (zeros: none).
    prev: String,
    /// Where the last intact record is.
    last_at: Option<(PathBuf, usize)>,
    /// `seq` the head names, and the hash and place of that record once
    /// seen.
    head_seq: Option<u64>,
    head_record: Option<(String, PathBuf, usize)>,
}

fn walk(files: &LogFiles, sealer: &Sealer, snapshot: Snapshot) -> Result<VerifyReport, AuditError> {
    let Snapshot {
        files: snaps,
        head: head_state,
    } = snapshot;
    let mut report = VerifyReport {
        files: snaps.iter().map(|snap| snap.path.clone()).collect(),
        records: 0,
        last_seq: 0,
        keyed: sealer.is_keyed(),
        head_seq: match &head_state {
            HeadState::Present(head) => Some(head.seq),
            _ => None,
        },
        broken: None,
        notes: Vec::new(),
    };
    let mut walk = Walk {
        expected: 1,
        prev: ZERO_HASH.to_owned(),
        last_at: None,
        head_seq: report.head_seq,
        head_record: None,
    };
    let count = snaps.len();
    for (index, snap) in snaps.into_iter().enumerate() {
        let path = snap.path.clone();
        let is_last_file = index + 1 == count;
        let mut reader = LineReader::whole(snap)?;
        // The line being checked and the two after it, to tell a swap.
        let mut window: VecDeque<Line> = VecDeque::new();
        loop {
            while window.len() < 3 {
                match reader.next_line()? {
                    Some(line) => window.push_back(line),
                    None => break,
                }
            }
            let Some(line) = window.pop_front() else {
                break;
            };
            if !line.complete {
                if is_last_file {
                    report.notes.push(Note::TornTail {
                        file: path.clone(),
                        line: line.number,
                        bytes: line.bytes.len(),
                    });
                    break;
                }
                report.broken = Some(Break {
                    file: path,
                    line: Some(line.number),
                    seq: walk.expected,
                    found_seq: chain::claimed_seq(&line.bytes),
                    kind: BreakKind::Edited,
                    detail: "a rotated file ends with an incomplete line".to_owned(),
                });
                return Ok(report);
            }
            if let Err(broken) = check_line(&mut walk, sealer, &path, &line, &window) {
                report.broken = Some(broken);
                return Ok(report);
            }
            report.records += 1;
            report.last_seq = walk.expected - 1;
        }
    }
    report.broken = check_head(files, sealer, &walk, head_state, report.last_seq);
    if report.broken.is_none()
        && let Some(head_seq) = report.head_seq
        && head_seq < report.last_seq
    {
        report.notes.push(Note::Uncommitted {
            records: report.last_seq - head_seq,
        });
    }
    Ok(report)
}

/// Checks one complete line against the chain so far; `after` holds the
/// next lines of the same file.
fn check_line(
    walk: &mut Walk,
    sealer: &Sealer,
    path: &std::path::Path,
    line: &Line,
    after: &VecDeque<Line>,
) -> Result<(), Break> {
    let expected = walk.expected;
    let broken = |kind, found_seq, detail: String| Break {
        file: path.to_path_buf(),
        line: Some(line.number),
        seq: expected,
        found_seq,
        kind,
        detail,
    };
    let (link, hash) = match chain::read_link(&line.bytes, sealer) {
        Ok(found) => found,
        Err(problem) => {
            let mut detail = problem.to_string();
            if problem == LineProblem::HashMismatch {
                detail.push_str(if sealer.is_keyed() {
                    ": the line was changed, or rewritten without the HMAC key"
                } else {
                    ": the line was changed (if the log was written with an HMAC key, set audit.hmac_key_path)"
                });
            }
            let found = chain::claimed_seq(&line.bytes);
            return Err(broken(BreakKind::Edited, found, detail));
        }
    };
    if link.v != SCHEMA_VERSION {
        return Err(broken(
            BreakKind::Unsupported,
            Some(link.seq),
            format!("schema version {} is not known to this remex", link.v),
        ));
    }
    let seq = link.seq;
    if seq != expected {
        let next = after.front().and_then(|l| chain::claimed_seq(&l.bytes));
        let after_next = after.get(1).and_then(|l| chain::claimed_seq(&l.bytes));
        let swapped = seq == expected + 1
            && next == Some(expected)
            && after_next.is_none_or(|s| s == expected + 2);
        let (kind, detail) = if swapped {
            (
                BreakKind::Swapped,
                format!(
                    "records {expected} and {seq} are in the wrong order (this line and the next)"
                ),
            )
        } else if seq > expected && expected == 1 && walk.last_at.is_none() {
            (
                BreakKind::DeletedOrInserted,
                format!(
                    "the log starts at seq {seq}, not 1: records 1 to {} (or whole rotated files) were deleted",
                    seq - 1
                ),
            )
        } else if seq > expected {
            let mut detail = if seq == expected + 1 {
                format!("record {expected} is missing before this line")
            } else {
                format!(
                    "records {expected} to {} are missing before this line",
                    seq - 1
                )
            };
            if line.number == 1 {
                detail
                    .push_str(" (at the start of this file: a rotated file may have been deleted)");
            }
            (BreakKind::DeletedOrInserted, detail)
        } else {
            (
                BreakKind::DeletedOrInserted,
                format!(
                    "seq {seq} comes again after seq {}: this line was inserted (or copied)",
                    expected - 1
                ),
            )
        };
        return Err(broken(kind, Some(seq), detail));
    }
    if link.prev != walk.prev {
        return Err(broken(
            BreakKind::DeletedOrInserted,
            Some(seq),
            "its `prev` is not the hash of the record before it: that record was replaced, \
             or this one was inserted"
                .to_owned(),
        ));
    }
    walk.prev = hash.to_owned();
    walk.expected += 1;
    walk.last_at = Some((path.to_path_buf(), line.number));
    if walk.head_seq == Some(seq) {
        walk.head_record = Some((hash.to_owned(), path.to_path_buf(), line.number));
    }
    Ok(())
}

/// Compares the head file with the end of the chain.
fn check_head(
    files: &LogFiles,
    sealer: &Sealer,
    walk: &Walk,
    head_state: HeadState,
    last_seq: u64,
) -> Option<Break> {
    let head_path = files.head();
    let about_head = |kind, detail: String| Break {
        file: head_path.clone(),
        line: None,
        seq: last_seq + 1,
        found_seq: None,
        kind,
        detail,
    };
    let head = match head_state {
        HeadState::Missing if last_seq == 0 => return None,
        HeadState::Missing => {
            return Some(about_head(
                BreakKind::HeadMissing,
                format!(
                    "the log has {last_seq} records but no head file: it was deleted, \
                     so records removed from the end cannot be detected"
                ),
            ));
        }
        HeadState::Invalid(why) => return Some(about_head(BreakKind::HeadInvalid, why)),
        HeadState::Present(head) => head,
    };
    if let Some(problem) = head.problem(sealer) {
        return Some(about_head(BreakKind::HeadInvalid, problem));
    }
    if head.seq > last_seq {
        let (file, line) = match &walk.last_at {
            Some((file, line)) => (file.clone(), line + 1),
            None => (files.current().to_path_buf(), 1),
        };
        let missing = if head.seq == last_seq + 1 {
            format!("record {}", head.seq)
        } else {
            format!("records {} to {}", last_seq + 1, head.seq)
        };
        return Some(Break {
            file,
            line: Some(line),
            seq: last_seq + 1,
            found_seq: None,
            kind: BreakKind::Truncated,
            detail: format!(
                "the head file names record {} but the log ends at {last_seq}: {missing} were removed from the end",
                head.seq
            ),
        });
    }
    let named = if head.seq == 0 {
        Some((ZERO_HASH.to_owned(), None))
    } else {
        walk.head_record
            .as_ref()
            .map(|(hash, file, line)| (hash.clone(), Some((file.clone(), *line))))
    };
    match named {
        Some((hash, _)) if hash == head.hash => None,
        Some((_, at)) => {
            let (file, line) = match at {
                Some((file, line)) => (file, Some(line)),
                None => (head_path.clone(), None),
            };
            Some(Break {
                file,
                line,
                seq: head.seq,
                found_seq: Some(head.seq),
                kind: BreakKind::Edited,
                detail: "this record is not the one the head file names: it was replaced \
                         (its hash was recomputed)"
                    .to_owned(),
            })
        }
        // Cannot happen: every seq up to last_seq was seen.
        None => Some(about_head(
            BreakKind::HeadInvalid,
            format!("the head names record {}, which was not found", head.seq),
        )),
    }
}

#[cfg(test)]
mod tests;
