//! UTC timestamps for the state file (RFC 3339, `2026-01-02T03:04:05Z`)
//! and archive names (compact, `20260102T030405Z`), formatted by `jiff`.

use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::Offset;

/// `time` as a UTC civil time (saturating outside jiff's range, the years
/// -9999 to 9999).
fn utc(time: SystemTime) -> DateTime {
    let at = Timestamp::try_from(time).unwrap_or(if time < UNIX_EPOCH {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    Offset::UTC.to_datetime(at)
}

/// `2026-01-02T03:04:05Z`.
pub(crate) fn rfc3339(time: SystemTime) -> String {
    utc(time).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The current time in UTC, RFC 3339 (`2026-01-02T03:04:05Z`), for the
/// `now` arguments of the rotation functions.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// `20260102T030405Z`: sortable and safe in a file name.
pub(crate) fn compact(time: SystemTime) -> String {
    utc(time).strftime("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        // `date -u -d @951782400` → 2000-02-29 (a leap day in a century year).
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at(1_767_323_045)), "2026-01-02T03:04:05Z");
        assert_eq!(compact(at(1_767_323_045)), "20260102T030405Z");
        assert_eq!(rfc3339(at(4_102_444_799)), "2099-12-31T23:59:59Z");
        // Fractions are cut, not rounded; times before 1970 are themselves.
        let just_before_two = UNIX_EPOCH + Duration::from_millis(1_999);
        assert_eq!(rfc3339(just_before_two), "1970-01-01T00:00:01Z");
        let before_epoch = UNIX_EPOCH - Duration::from_millis(500);
        assert_eq!(compact(before_epoch), "19691231T235959Z");
    }

    #[test]
    fn agrees_with_date_command() {
        let now = SystemTime::now();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_else(|e| panic!("clock: {e}"));
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap_or_else(|e| panic!("date: {e}"));
        let expected = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert_eq!(rfc3339(at(secs)), expected);
    }
}
