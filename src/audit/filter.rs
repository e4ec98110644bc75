//! [`Filter`]: which records `remex audit show` prints. No I/O.

use std::time::SystemTime;

use super::error::AuditError;
use super::record::Record;
use super::time;
use crate::pattern::wildcard_match;

/// A record selection; every field that is set must match (AND). The
/// default matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `--host H`: the record's host, with `*`/`?` wildcards (`web*`).
    pub host: Option<String>,
    /// `--op OP`: the operation (`exec`, `keys.deploy`), or a family
    /// (`keys` matches every `keys.*`).
    pub op: Option<String>,
    /// `--since T`: records at or after this time.
    pub since: Option<SystemTime>,
    /// `--until T`: records before this time.
    pub until: Option<SystemTime>,
    /// `--failed`: only `end` records of failures ([`Record::failed`]).
    pub failed_only: bool,
    /// `--run ID`: one run's records.
    pub run: Option<String>,
}

impl Filter {
    /// Whether `record` is selected. A record whose `ts` does not parse is
    /// not selected when `since` or `until` is set.
    pub fn matches(&self, record: &Record) -> bool {
        if let Some(host) = &self.host
            && !record
                .host
                .as_deref()
                .is_some_and(|name| wildcard_match(host, name))
        {
            return false;
        }
        if let Some(op) = &self.op {
            let name = record.op.as_str();
            let family = name
                .strip_prefix(op.as_str())
                .is_some_and(|rest| rest.starts_with('.'));
            if name != op && !family {
                return false;
            }
        }
        if self.failed_only && !record.failed() {
            return false;
        }
        if self.run.as_ref().is_some_and(|run| *run != record.run) {
            return false;
        }
        if self.since.is_some() || self.until.is_some() {
            let Ok(at) = time::parse_rfc3339(&record.ts) else {
                return false;
            };
            if self
                .since
                .is_some_and(|since| at < time::system_to_ms(since))
            {
                return false;
            }
            if self
                .until
                .is_some_and(|until| at >= time::system_to_ms(until))
            {
                return false;
            }
        }
        true
    }
}

/// Parses a `--since`/`--until` value: an RFC 3339 timestamp
/// (`2026-11-24T01:02:03Z`), a date (`2026-11-24`, midnight UTC), or a
/// duration (`1h`, `30m`, `1h30m`; see [`crate::config::parse_duration`])
/// meaning that long before `now`.
///
/// # Errors
///
/// [`AuditError::Time`] when it is none of these.
pub fn parse_time(text: &str, now: SystemTime) -> Result<SystemTime, AuditError> {
    let trimmed = text.trim();
    let looks_like_a_date = trimmed.len() >= 10 && trimmed.as_bytes().get(4) == Some(&b'-');
    if looks_like_a_date {
        return time::parse_rfc3339(trimmed)
            .map(time::ms_to_system)
            .map_err(|reason| AuditError::Time {
                text: text.to_owned(),
                reason,
            });
    }
    let ago = crate::config::parse_duration(trimmed).map_err(|reason| AuditError::Time {
        text: text.to_owned(),
        reason,
    })?;
    // Further back than the epoch: every record is after it.
    Ok(now.checked_sub(ago).unwrap_or(std::time::UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Event, Op};

    fn at(ts: &str) -> Record {
        let mut record = Record::new(Event::End, Op::KeysDeploy, "run-a").host("web01");
        record.ts = ts.to_owned();
        record
    }

    #[test]
    fn each_field_narrows_the_selection() {
        let record = at("2026-11-24T01:02:03.456Z").exit_code(0_u32);
        assert!(Filter::default().matches(&record));
        let only = |f: Filter| f.matches(&record);
        assert!(only(Filter {
            host: Some("web*".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            host: Some("db*".into()),
            ..Filter::default()
        }));
        assert!(only(Filter {
            op: Some("keys.deploy".into()),
            ..Filter::default()
        }));
        assert!(only(Filter {
            op: Some("keys".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            op: Some("key".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            op: Some("exec".into()),
            ..Filter::default()
        }));
        assert!(only(Filter {
            run: Some("run-a".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            run: Some("run-b".into()),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            failed_only: true,
            ..Filter::default()
        }));
        assert!(
            Filter {
                failed_only: true,
                ..Filter::default()
            }
            .matches(&record.clone().exit_code(2_u32))
        );

        let t = |s: &str| Some(time::ms_to_system(time::parse_rfc3339(s).unwrap()));
        assert!(only(Filter {
            since: t("2026-11-24T01:02:03.456Z"),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            since: t("2026-11-24T01:02:03.457Z"),
            ..Filter::default()
        }));
        assert!(only(Filter {
            until: t("2026-11-24T01:02:03.457Z"),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            until: t("2026-11-24T01:02:03.456Z"),
            ..Filter::default()
        }));
        let no_ts = at("garbage");
        assert!(
            !Filter {
                since: t("2000-01-01"),
                ..Filter::default()
            }
            .matches(&no_ts)
        );
        let hostless = Record::new(Event::Key, Op::KeysGenerate, "r");
        assert!(
            !Filter {
                host: Some("*".into()),
                ..Filter::default()
            }
            .matches(&hostless)
        );
    }

    #[test]
    fn times_are_timestamps_dates_or_durations_ago() {
        let now = time::ms_to_system(1_795_482_123_456);
        let ms = |text: &str| time::system_to_ms(parse_time(text, now).unwrap());
        assert_eq!(ms("2026-11-24T01:02:03.456Z"), 1_795_482_123_456);
        assert_eq!(ms("2026-11-24"), 1_795_478_400_000);
        assert_eq!(ms("1h"), 1_795_482_123_456 - 3_600_000);
        assert_eq!(ms(" 90s "), 1_795_482_123_456 - 90_000);
        assert_eq!(parse_time("0", now).unwrap(), now);
        for bad in ["yesterday", "2026-13-01", "1x"] {
            let err = parse_time(bad, now).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid time {bad:?}")), "{err}");
        }
    }
}
