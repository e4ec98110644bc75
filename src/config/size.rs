//! Sizes in the config: `100M`, `512K`, `1G`, `64MiB`, or a whole number
//! of bytes.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// The units a size may use, with their length in bytes. All are powers of
/// 1024: `M` and `MiB` both mean 1,048,576 bytes.
const UNITS: [(&str, u64); 7] = [
    ("K", 1 << 10),
    ("KiB", 1 << 10),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("B", 1),
];

/// How to write a size, for error messages.
const HINT: &str = "write a whole number with a unit (K, M, G, or KiB, MiB, GiB; all powers of 1024), e.g. \"100M\", or a plain number of bytes";

/// Parses "100M", "512K", "1G", "64MiB", "4096B", or plain bytes ("4096",
/// or a YAML integer).
///
/// A size is a whole number followed by an optional unit: `K`/`KiB`,
/// `M`/`MiB`, `G`/`GiB` (powers of 1024) or `B`. Surrounding spaces and a
/// space between the number and the unit are allowed. Negative, fractional
/// and overflowing values are rejected, and so is the empty string.
///
/// # Errors
///
/// A message naming the input and how to write it, e.g.
/// `invalid size "10X": unknown unit "X"; write a whole number with a unit ...`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse(s.trim()).map_err(|why| format!("invalid size {s:?}: {why}; {HINT}"))
}

/// Parses a trimmed size, returning only the reason on failure.
fn parse(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("it is empty".to_owned());
    }
    if text.starts_with('-') {
        return Err("sizes cannot be negative".to_owned());
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err("it does not start with a number".to_owned());
    }
    let unit = unit.trim_start();
    if unit.starts_with('.') || unit.starts_with(',') {
        return Err("fractions are not supported".to_owned());
    }
    let value: u64 = digits.parse().map_err(|_| "it is too large".to_owned())?;
    let scale = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|&(_, scale)| scale)
            .ok_or_else(|| format!("unknown unit {unit:?}"))?
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| "it is too large".to_owned())
}

/// Deserializes a size in bytes from a string ([`parse_size`]) or a YAML
/// integer (bytes). For `#[serde(deserialize_with = ...)]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    de.deserialize_any(SizeVisitor)
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size such as \"100M\" or \"1G\", or a number of bytes")
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<u64, E> {
        Ok(bytes)
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<u64, E> {
        u64::try_from(bytes)
            .map_err(|_| E::custom(format!("invalid size {bytes}: sizes cannot be negative")))
    }

    fn visit_f64<E: de::Error>(self, bytes: f64) -> Result<u64, E> {
        // `5792.0` is the number 5792 (JSON does not tell them apart).
        super::whole::of_f64(bytes).ok_or_else(|| {
            E::custom(format!(
                "invalid size {bytes}: fractions and negative sizes are not supported; {HINT}"
            ))
        })
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<u64, E> {
        parse_size(text).map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_units_and_plain_bytes() {
        let cases = [
            ("100M", 100 << 20),
            ("100MiB", 100 << 20),
            ("100 M", 100 << 20),
            ("512K", 512 << 10),
            ("1G", 1 << 30),
            ("2GiB", 2 << 30),
            ("4096B", 4096),
            ("4096", 4096),
            (" 7 ", 7),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn rejects_garbage_with_the_reason() {
        let cases = [
            ("", "it is empty"),
            ("-1M", "cannot be negative"),
            ("10X", "unknown unit \"X\""),
            ("10m", "unknown unit \"m\""),
            ("1.5G", "fractions are not supported"),
            ("M", "does not start with a number"),
            ("99999999999999999999", "too large"),
            ("99999999999999G", "too large"),
        ];
        for (text, why) in cases {
            let err = parse_size(text).expect_err(text);
            assert!(
                err.starts_with(&format!("invalid size {text:?}: ")),
                "{err}"
            );
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("e.g. \"100M\""), "{err}");
        }
    }
}
