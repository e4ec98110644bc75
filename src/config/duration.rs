//! Durations in the config: `30s`, `5m`, `1h`, `7d`, `500ms`, `1m30s`, or
//! a whole number of seconds.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// The units a duration may use, largest first, with their length in
/// milliseconds.
const UNITS: [(&str, u64); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// How to write a duration, for error messages.
const HINT: &str = "write a whole number with a unit (ms, s, m, h, d), e.g. \"500ms\", \"30s\", \"5m\", \"1h\", \"7d\", \"1m30s\", or a plain number of seconds";

/// Parses "30s", "5m", "1h", "7d", "500ms", "1m30s", or plain seconds ("30",
/// or a YAML integer).
///
/// A duration is one or more `<whole number><unit>` parts with units
/// `d`, `h`, `m`, `s` and `ms`, largest first, each unit at most once; or digits
/// alone, meaning seconds. Surrounding spaces are ignored. Negative,
/// fractional and overflowing values are rejected, and so is the empty
/// string.
///
/// # Errors
///
/// A message naming the input and how to write it, e.g.
/// `invalid duration "10x": unknown unit "x"; write a whole number with a unit ...`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    parse_parts(text).map_err(|why| format!("invalid duration {s:?}: {why}; {HINT}"))
}

/// `duration` as [`parse_duration`] reads it back: the largest units
/// first (`1h2m3s`, `500ms`, `0s`).
pub fn format_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, length) in UNITS {
        let length = u128::from(length);
        if millis >= length {
            out.push_str(&format!("{}{unit}", millis / length));
            millis %= length;
        }
    }
    out
}

/// Parses a trimmed duration, returning only the reason on failure.
fn parse_parts(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err("it is empty".to_owned());
    }
    if text.starts_with('-') {
        return Err("durations cannot be negative".to_owned());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = text.parse().map_err(|_| "it is too large".to_owned())?;
        return Ok(Duration::from_secs(secs));
    }
    let mut rest = text;
    let mut millis: u64 = 0;
    // Index into UNITS of the last unit used, to keep units in order.
    let mut last_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (digits, after) = rest.split_at(digits_end);
        if digits.is_empty() {
            let found = after.chars().next().unwrap_or(' ');
            return Err(if found == '.' || found == ',' {
                "fractions are not supported".to_owned()
            } else {
                format!("expected a number, found {found:?}")
            });
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if unit.starts_with('.') || unit.starts_with(',') {
            return Err("fractions are not supported".to_owned());
        }
        if unit.is_empty() {
            return Err(format!("the number {digits} has no unit"));
        }
        let Some((index, &(_, unit_millis))) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (name, _))| *name == unit)
        else {
            return Err(format!("unknown unit {unit:?}"));
        };
        if last_unit.is_some_and(|last| index <= last) {
            return Err("units must go from largest to smallest, each at most once".to_owned());
        }
        last_unit = Some(index);
        let value: u64 = digits.parse().map_err(|_| "it is too large".to_owned())?;
        millis = value
            .checked_mul(unit_millis)
            .and_then(|part| millis.checked_add(part))
            .ok_or_else(|| "it is too large".to_owned())?;
        rest = next;
    }
    Ok(Duration::from_millis(millis))
}

/// Deserializes a [`Duration`] from a string ([`parse_duration`]) or a YAML
/// integer (seconds). For `#[serde(deserialize_with = ...)]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    de.deserialize_any(DurationVisitor)
}

/// Deserializes an optional duration: a duration as [`deserialize`] reads
/// it, or `none` (or 0) for "off". For `#[serde(deserialize_with = ...)]`.
pub(crate) fn deserialize_optional<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<Duration>, D::Error> {
    de.deserialize_any(OptionalVisitor)
}

struct OptionalVisitor;

impl Visitor<'_> for OptionalVisitor {
    type Value = Option<Duration>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"15s\", or `none`")
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Self::Value, E> {
        Ok(Some(Duration::from_secs(secs)).filter(|d| !d.is_zero()))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Self::Value, E> {
        DurationVisitor
            .visit_i64(secs)
            .map(|d| Some(d).filter(|d| !d.is_zero()))
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Self::Value, E> {
        DurationVisitor.visit_f64(secs).map(Some)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        parse_duration(text)
            .map(|d| Some(d).filter(|d| !d.is_zero()))
            .map_err(|why| E::custom(format!("{why}, or `none`")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"5m\" or \"1m30s\", or a number of seconds")
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(secs))
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Duration, E> {
        match u64::try_from(secs) {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(_) => Err(E::custom(format!(
                "invalid duration {secs}: durations cannot be negative"
            ))),
        }
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "invalid duration {secs}: fractions are not supported; {HINT}"
        )))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations_format_as_they_parse() {
        for (millis, text) in [
            (0, "0s"),
            (500, "500ms"),
            (30_000, "30s"),
            (90_000, "1m30s"),
            (3_723_004, "1h2m3s4ms"),
            (7 * 86_400_000, "7d"),
        ] {
            let duration = Duration::from_millis(millis);
            assert_eq!(format_duration(duration), text);
            assert_eq!(parse_duration(text), Ok(duration));
        }
    }

    #[test]
    fn accepts_units_and_plain_seconds() {
        let cases = [
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("500ms", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("30", Duration::from_secs(30)),
            (" 10s ", Duration::from_secs(10)),
            ("0", Duration::ZERO),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_garbage_with_the_reason() {
        let cases = [
            ("", "it is empty"),
            ("-5s", "cannot be negative"),
            ("-5", "cannot be negative"),
            ("10x", "unknown unit \"x\""),
            ("1.5s", "fractions are not supported"),
            ("s", "expected a number, found 's'"),
            ("10s5", "the number 5 has no unit"),
            ("30s1m", "largest to smallest"),
            ("1m1m", "largest to smallest"),
            ("1m 30s", "unknown unit \"m \""),
            ("99999999999999999999", "too large"),
            ("9999999999999999h", "too large"),
        ];
        for (text, why) in cases {
            let err = parse_duration(text).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid duration {text:?}: ")),
                "{err}"
            );
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("e.g. \"500ms\""), "{err}");
        }
    }
}
