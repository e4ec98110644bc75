//! UTC timestamps for records: RFC 3339 with milliseconds
//! (`2026-11-24T01:02:03.456Z`), written and read with `jiff`.
//!
//! Times are milliseconds since the Unix epoch (`i64`, negative before
//! 1970). jiff does the calendar; this module pins the one layout records
//! use (the hash chain re-serializes `ts`, so it must not drift) and keeps
//! reading to RFC 3339, where jiff's own parser also takes other ISO 8601
//! forms. No I/O except [`now_ms`], which reads the clock.

use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::SignedDuration;
use jiff::Timestamp;
use jiff::civil::{DateTime, Time};
use jiff::fmt::temporal::Pieces;
use jiff::tz::Offset;
use regex::Regex;

/// The Unix epoch as a UTC civil time. Arithmetic is done on civil times in
/// UTC rather than on `jiff::Timestamp`, whose range stops a day short of
/// 9999-12-31 (it leaves room for offsets).
const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// The RFC 3339 layouts [`parse_rfc3339`] takes: a date, optionally followed
/// by `T`, `t` or a space, the time with seconds, an optional fraction, and
/// `Z`, `z` or an offset of at most `±23:59`. Checked before jiff parses, as
/// jiff also takes `20261124T0102Z`, `01:02` without seconds, `+0200`,
/// `,5` and `[UTC]` annotations.
const RFC3339: &str = r"^([0-9]{4}-[0-9]{2}-[0-9]{2})(?:[Tt ]([0-9]{2}:[0-9]{2}):([0-9]{2})(?:\.([0-9]+))?([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))?$";

/// [`RFC3339`] compiled (`None` only if the pattern were wrong, which the
/// tests rule out; every parse would then fail rather than panic).
static SHAPE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(RFC3339).ok());

/// The current time, in milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    system_to_ms(SystemTime::now())
}

/// `time` in milliseconds since the epoch (saturating far outside ±292
/// million years).
pub fn system_to_ms(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// Milliseconds since the epoch as a `SystemTime`.
pub fn ms_to_system(ms: i64) -> SystemTime {
    let magnitude = Duration::from_millis(ms.unsigned_abs());
    if ms >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Formats milliseconds since the epoch as RFC 3339 in UTC with exactly
/// three fractional digits: `2026-11-24T01:02:03.456Z` (saturating outside
/// the years -9999 to 9999).
pub fn format_ms(ms: i64) -> String {
    let utc = EPOCH
        .checked_add(SignedDuration::from_millis(ms))
        .unwrap_or(if ms < 0 { DateTime::MIN } else { DateTime::MAX });
    format!("{utc:.3}Z")
}

/// Parses an RFC 3339 timestamp (`2026-11-24T01:02:03Z`,
/// `2026-11-24T01:02:03.456+02:00`, `T` or a space between date and time)
/// or a bare date (`2026-11-24`, meaning midnight UTC) into milliseconds
/// since the epoch. Fractions beyond milliseconds are cut off; a leap
/// second (`:60`) counts as `:59.999`.
///
/// # Errors
///
/// Why the text is not such a timestamp, e.g. `parameter 'month' is not in
/// the required range of 1..=12` (jiff's words).
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let Some(parts) = SHAPE.as_ref().and_then(|shape| shape.captures(text)) else {
        return Err(not_rfc3339(text));
    };
    let part = |i| parts.get(i).map_or("", |m| m.as_str());
    // Rebuilt for jiff with the fraction cut to milliseconds (jiff takes at
    // most nine digits) and a leap second moved back into the minute (jiff
    // would make it `:59` and keep the fraction).
    let normal = if part(2).is_empty() {
        part(1).to_owned()
    } else {
        let (second, fraction) = match part(3) {
            "60" => ("59", "999"),
            second => (second, part(4).get(..3).unwrap_or(part(4))),
        };
        let dot = if fraction.is_empty() { "" } else { "." };
        format!("{}T{}:{second}{dot}{fraction}{}", part(1), part(2), part(5))
    };
    let pieces = Pieces::parse(&normal).map_err(|err| err.to_string())?;
    let local = DateTime::from_parts(pieces.date(), pieces.time().unwrap_or(Time::midnight()));
    let offset = pieces.to_numeric_offset().unwrap_or(Offset::UTC);
    let ms = local.duration_since(EPOCH).as_millis() - i128::from(offset.seconds()) * 1000;
    // Four-digit years lie within ±3·10¹⁴ ms of the epoch: this always fits.
    i64::try_from(ms).map_err(|_| "out of range".to_owned())
}

/// Why `text`, which is not in one of the [`RFC3339`] layouts, was refused:
/// jiff's reason when jiff cannot read it either, else the layout expected.
fn not_rfc3339(text: &str) -> String {
    match text.parse::<Timestamp>() {
        Err(err) => err.to_string(),
        Ok(_) => "not RFC 3339: expected `YYYY-MM-DDTHH:MM:SS[.fff]` and `Z` or an offset such \
                  as `+02:00`, or a date `YYYY-MM-DD`"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_ms(1_000_000_000_123), "2001-09-09T01:46:40.123Z");
        // 2026-11-24T01:02:03.456Z, from `date -u -d ... +%s`.
        assert_eq!(format_ms(1_795_482_123_456), "2026-11-24T01:02:03.456Z");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_ms(i64::MIN), "-009999-01-01T00:00:00.000Z");
    }

    #[test]
    fn every_day_round_trips() {
        // Four centuries around the epoch, including 1900 and 2100 (not
        // leap years) and 2000 (a leap year), each day at a different time.
        let mut previous = String::new();
        for days in -30_000_i64..120_000 {
            let ms = days * 86_400_000 + (days * 7_919_993).rem_euclid(86_400_000);
            let text = format_ms(ms);
            assert_eq!(parse_rfc3339(&text), Ok(ms), "{text}");
            assert!(text > previous, "{text} after {previous}");
            previous = text;
        }
    }

    #[test]
    fn parses_what_it_formats_and_other_rfc3339_forms() {
        for ms in [0, 1_795_482_123_456, -1, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339(&format_ms(ms)), Ok(ms));
        }
        let cases = [
            ("2026-11-24T01:02:03Z", 1_795_482_123_000),
            ("2026-11-24t01:02:03.4z", 1_795_482_123_400),
            ("2026-11-24 01:02:03.456789Z", 1_795_482_123_456),
            ("2026-11-24T03:02:03.456+02:00", 1_795_482_123_456),
            ("2026-11-23T23:32:03.456-01:30", 1_795_482_123_456),
            ("2026-11-24", 1_795_478_400_000),
            ("2016-12-31T23:59:60Z", 1_483_228_799_999),
            ("2016-12-31T23:59:60.5Z", 1_483_228_799_999),
            ("2026-11-24T01:02:03.4567891234Z", 1_795_482_123_456),
            ("2026-11-24T01:02:03-00:00", 1_795_482_123_000),
            ("1969-12-31T23:59:59.9999Z", -1),
            ("0000-01-01", -62_167_219_200_000),
            ("9999-12-31T23:59:59.999Z", 253_402_300_799_999),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_timestamps_with_the_reason() {
        let cases = [
            ("", "four digit year"),
            ("26-11-24", "year"),
            ("2026-13-01", "'month' is not in the required range"),
            ("2026-02-29", "'day' for `2026-02` is invalid"),
            (
                "2026-11-24T24:00:00Z",
                "'hour' is not in the required range",
            ),
            (
                "2026-11-24T01:60:00Z",
                "'minute' is not in the required range",
            ),
            ("2026-11-24T01:02:03", "offset"),
            ("2026-11-24T01:02:03.Z", "digits after decimal"),
            ("2026-11-24T01:02:03Zjunk", "unparsed input \"junk\""),
            ("2026-11-24X01", "unparsed input \"X01\""),
            // ISO 8601 forms that jiff reads but RFC 3339 leaves out.
            ("2026-11-24T01:02Z", "not RFC 3339"),
            ("20261124T010203Z", "not RFC 3339"),
            ("2026-11-24T01:02:03+0200", "not RFC 3339"),
            ("2026-11-24T01:02:03+24:00", "not RFC 3339"),
            ("2026-11-24T01:02:03,5Z", "not RFC 3339"),
            ("2026-11-24T01:02:03Z[UTC]", "not RFC 3339"),
            ("+002026-11-24T01:02:03Z", "not RFC 3339"),
            ("2026-11-24T01:02:03Z\n", "unparsed input"),
        ];
        for (text, why) in cases {
            let err = parse_rfc3339(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn system_time_conversions() {
        let t = ms_to_system(1_795_482_123_456);
        assert_eq!(system_to_ms(t), 1_795_482_123_456);
        assert_eq!(system_to_ms(ms_to_system(-5_000)), -5_000);
        assert!(now_ms() > 1_700_000_000_000);
    }
}
