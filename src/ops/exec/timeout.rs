//! [`Timeout`]: how long a command may run — the config's default, never,
//! or a duration — as `--timeout`, `--request` and `POST /v1/runs` write
//! it (`30s`, `5m`, `none`).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::config::{format_duration, parse_duration};

/// How long a command may run before remex stops it and its child
/// processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Timeout {
    /// The config's `remote_execution.command_timeout`.
    #[default]
    Default,
    /// No timeout: the command runs until it ends (or the run is cancelled).
    Never,
    /// Stop it after this long (never zero).
    After(Duration),
}

impl Timeout {
    /// Reads a timeout as people write it: a duration (`30s`, `5m`, `1h`,
    /// `1m30s`, plain seconds), or `none` for no timeout. Zero is refused
    /// rather than taken to mean "none": a computed 0 in a script should
    /// not silently run forever, nor stop every command at once.
    ///
    /// # Errors
    ///
    /// A message naming the input and how to write it.
    pub fn parse(text: &str) -> Result<Timeout, String> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(Timeout::Never);
        }
        let timeout = parse_duration(text)?;
        if timeout.is_zero() {
            return Err(format!(
                "a timeout of {text:?} would stop the command at once; give a duration such as 30s, or `none` for no timeout"
            ));
        }
        Ok(Timeout::After(timeout))
    }

    /// The timeout in effect, given the config's `default`: `None` for
    /// never.
    pub fn resolve(self, default: Duration) -> Option<Duration> {
        match self {
            Timeout::Default => Some(default),
            Timeout::Never => None,
            Timeout::After(duration) => Some(duration),
        }
    }

    /// Whether it is [`Timeout::Default`] (left out of a serialized request).
    pub fn is_default(&self) -> bool {
        *self == Timeout::Default
    }
}

impl From<Duration> for Timeout {
    fn from(duration: Duration) -> Self {
        Timeout::After(duration)
    }
}

impl fmt::Display for Timeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeout::Default => f.write_str("default"),
            Timeout::Never => f.write_str("none"),
            Timeout::After(duration) => f.write_str(&format_duration(*duration)),
        }
    }
}

impl Serialize for Timeout {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Timeout::Default => serializer.serialize_none(),
            other => serializer.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for Timeout {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_any(TimeoutVisitor)
    }
}

/// Reads `"30s"`, `"none"`, a whole number of seconds, or `null` (the
/// default).
struct TimeoutVisitor;

impl Visitor<'_> for TimeoutVisitor {
    type Value = Timeout;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\" or \"5m\", or \"none\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timeout, E> {
        Timeout::parse(text).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, secs: u64) -> Result<Timeout, E> {
        Timeout::parse(&secs.to_string()).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, secs: i64) -> Result<Timeout, E> {
        Timeout::parse(&secs.to_string()).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, secs: f64) -> Result<Timeout, E> {
        // `30.0` is the number 30 (JSON does not tell them apart).
        match crate::config::whole::of_f64(secs) {
            Some(secs) => self.visit_u64(secs),
            None => Err(E::custom(format!(
                "invalid timeout {secs}: write whole seconds, or a duration such as \"1500ms\""
            ))),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Timeout, E> {
        Ok(Timeout::Default)
    }

    fn visit_none<E: de::Error>(self) -> Result<Timeout, E> {
        Ok(Timeout::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_a_duration_or_none_and_never_zero() {
        assert_eq!(
            Timeout::parse("90s"),
            Ok(Timeout::After(Duration::from_secs(90)))
        );
        assert_eq!(Timeout::parse(" None "), Ok(Timeout::Never));
        for zero in ["0", "0s", "0ms"] {
            let error = Timeout::parse(zero).err().unwrap_or_default();
            assert!(error.contains("`none`"), "{zero}: {error}");
        }
        assert!(
            Timeout::parse("-5s")
                .err()
                .unwrap_or_default()
                .contains("negative")
        );
    }

    #[test]
    fn it_resolves_against_the_configs_default() {
        let default = Duration::from_secs(300);
        assert_eq!(Timeout::Default.resolve(default), Some(default));
        assert_eq!(Timeout::Never.resolve(default), None);
        assert_eq!(
            Timeout::After(Duration::from_secs(2)).resolve(default),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn it_reads_and_writes_json() {
        let read = |json: &str| serde_json::from_str::<Timeout>(json).map_err(|e| e.to_string());
        assert_eq!(
            read(r#""1m30s""#),
            Ok(Timeout::After(Duration::from_secs(90)))
        );
        assert_eq!(read("30"), Ok(Timeout::After(Duration::from_secs(30))));
        assert_eq!(read(r#""none""#), Ok(Timeout::Never));
        assert_eq!(read("null"), Ok(Timeout::Default));
        assert!(read("0").is_err());
        assert!(read("-1").is_err());
        assert!(read("true").is_err());
        let write = |t: Timeout| serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(write(Timeout::After(Duration::from_secs(90))), r#""1m30s""#);
        assert_eq!(write(Timeout::Never), r#""none""#);
        assert_eq!(write(Timeout::Default), "null");
    }
}
