//! UTC timestamps for records: RFC 3339 with milliseconds
//! (`2026-11-24T01:02:03.456Z`), written and read without a date library.
//!
//! Times are milliseconds since the Unix epoch (`i64`, negative before
//! 1970). The calendar arithmetic is Howard Hinnant's `days_from_civil` and
//! `civil_from_days` (proleptic Gregorian calendar). No I/O except
//! [`now_ms`], which reads the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

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
/// three fractional digits: `2026-11-24T01:02:03.456Z`.
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let (secs, millis) = (in_day / 1000, in_day % 1000);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Parses an RFC 3339 timestamp (`2026-11-24T01:02:03Z`,
/// `2026-11-24T01:02:03.456+02:00`, `T` or a space between date and time)
/// or a bare date (`2026-11-24`, meaning midnight UTC) into milliseconds
/// since the epoch. Fractions beyond milliseconds are cut off; a leap
/// second (`:60`) counts as `:59.999`.
///
/// # Errors
///
/// Why the text is not such a timestamp, e.g. `month 13 is out of range`.
pub fn parse_rfc3339(text: &str) -> Result<i64, String> {
    let bytes = text.as_bytes();
    let mut at = Cursor { bytes, pos: 0 };
    let year = at.digits(4, "a four-digit year")?;
    at.expect(b'-')?;
    let month = at.digits(2, "a two-digit month")?;
    at.expect(b'-')?;
    let day = at.digits(2, "a two-digit day")?;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day} is out of range for {year:04}-{month:02}"
        ));
    }
    let days = days_from_civil(year, month, day);
    if at.done() {
        return Ok(days * DAY_MS);
    }
    match at.next() {
        Some(b'T' | b't' | b' ') => {}
        _ => return Err("expected `T` between the date and the time".to_owned()),
    }
    let hour = at.digits(2, "a two-digit hour")?;
    at.expect(b':')?;
    let minute = at.digits(2, "two-digit minutes")?;
    at.expect(b':')?;
    let second = at.digits(2, "two-digit seconds")?;
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!(
            "time {hour:02}:{minute:02}:{second:02} is out of range"
        ));
    }
    let mut millis = 0;
    if at.peek() == Some(b'.') {
        at.pos += 1;
        let start = at.pos;
        while at.peek().is_some_and(|b| b.is_ascii_digit()) {
            at.pos += 1;
        }
        let fraction = text.get(start..at.pos).unwrap_or("");
        if fraction.is_empty() {
            return Err("expected digits after `.`".to_owned());
        }
        let first3: String = fraction.chars().chain("00".chars()).take(3).collect();
        millis = first3
            .parse::<i64>()
            .map_err(|_| "bad fraction".to_owned())?;
    }
    let offset_minutes = match at.next() {
        Some(b'Z' | b'z') => 0,
        Some(sign @ (b'+' | b'-')) => {
            let hours = at.digits(2, "a two-digit offset hour")?;
            at.expect(b':')?;
            let minutes = at.digits(2, "two-digit offset minutes")?;
            if hours > 23 || minutes > 59 {
                return Err(format!("offset {hours:02}:{minutes:02} is out of range"));
            }
            let total = hours * 60 + minutes;
            if sign == b'-' { -total } else { total }
        }
        _ => return Err("expected `Z` or an offset such as `+02:00` after the time".to_owned()),
    };
    if !at.done() {
        return Err("unexpected text after the timestamp".to_owned());
    }
    let (second, millis) = if second == 60 {
        (59, 999)
    } else {
        (second, millis)
    };
    let secs_in_day = hour * 3600 + minute * 60 + second;
    Ok(days * DAY_MS + secs_in_day * 1000 + millis - offset_minutes * 60_000)
}

/// A position in the text being parsed.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn expect(&mut self, want: u8) -> Result<(), String> {
        match self.next() {
            Some(got) if got == want => Ok(()),
            _ => Err(format!(
                "expected `{}` at position {}",
                want as char, self.pos
            )),
        }
    }

    /// Exactly `count` ASCII digits, as a number.
    fn digits(&mut self, count: usize, what: &str) -> Result<i64, String> {
        let mut value = 0;
        for _ in 0..count {
            match self.next() {
                Some(b) if b.is_ascii_digit() => value = value * 10 + i64::from(b - b'0'),
                _ => return Err(format!("expected {what}")),
            }
        }
        Ok(value)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day counted from 1970-01-01: (year, month, day).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    }

    #[test]
    fn every_day_round_trips() {
        // Four centuries around the epoch, including 1900 and 2100 (not
        // leap years) and 2000 (a leap year).
        let mut previous = None;
        for days in -30_000..120_000 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            if let Some((py, pm, pd)) = previous {
                assert!((y, m, d) > (py, pm, pd));
            }
            previous = Some((y, m, d));
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
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_timestamps_with_the_reason() {
        let cases = [
            ("", "four-digit year"),
            ("26-11-24", "four-digit year"),
            ("2026-13-01", "month 13"),
            ("2026-02-29", "day 29 is out of range for 2026-02"),
            ("2026-11-24T24:00:00Z", "out of range"),
            ("2026-11-24T01:02Z", "expected `:`"),
            ("2026-11-24T01:02:03", "expected `Z` or an offset"),
            ("2026-11-24T01:02:03.Z", "digits after `.`"),
            ("2026-11-24T01:02:03Zjunk", "unexpected text"),
            ("2026-11-24X01", "expected `T`"),
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
