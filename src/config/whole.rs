//! Whole numbers as JSON counts them: `3072` and `3072.0` are one number
//! (JSON does not tell them apart, and JSON Schema's `integer`, which the
//! service's OpenAPI document uses, admits both). A number with a
//! fraction, a negative one or one out of range is still refused.

use std::fmt;
use std::marker::PhantomData;
use std::num::NonZeroU32;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// `value` when it is a whole number from 0 to `u64::MAX`.
pub(crate) fn of_f64(value: f64) -> Option<u64> {
    // 2^64: the first f64 past `u64::MAX`.
    const PAST_U64: f64 = 18_446_744_073_709_551_616.0;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (value.fract() == 0.0 && (0.0..PAST_U64).contains(&value)).then_some(value as u64)
}

/// A whole number that fits a `T`.
trait Whole: Sized {
    /// What the error says was expected.
    const EXPECTED: &'static str;
    fn of(n: u64) -> Option<Self>;
}

impl Whole for u32 {
    const EXPECTED: &'static str = "a whole number from 0 to 4294967295";
    fn of(n: u64) -> Option<u32> {
        u32::try_from(n).ok()
    }
}

impl Whole for NonZeroU32 {
    const EXPECTED: &'static str = "a whole number from 1 to 4294967295";
    fn of(n: u64) -> Option<NonZeroU32> {
        NonZeroU32::new(u32::try_from(n).ok()?)
    }
}

/// Reads an optional whole number (`null` is none).
struct Optional<T>(PhantomData<T>);

impl<'de, T: Whole> Visitor<'de> for Optional<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<T>, E> {
        T::of(n)
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(n), &self))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<T>, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(n), &self)),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Option<T>, E> {
        match of_f64(n) {
            Some(n) => self.visit_u64(n),
            None => Err(E::invalid_value(de::Unexpected::Float(n), &self)),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<Option<T>, D::Error> {
        de.deserialize_any(self)
    }
}

/// `#[serde(deserialize_with)]` for an `Option<u32>` (the service's key
/// sizes).
#[cfg_attr(not(feature = "service"), allow(dead_code))]
pub(crate) fn optional_u32<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u32>, D::Error> {
    de.deserialize_option(Optional(PhantomData))
}

/// `#[serde(deserialize_with)]` for an `Option<NonZeroU32>`.
pub(crate) fn optional_nonzero_u32<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Option<NonZeroU32>, D::Error> {
    de.deserialize_option(Optional(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Both {
        #[serde(default, deserialize_with = "optional_u32")]
        bits: Option<u32>,
        #[serde(default, deserialize_with = "optional_nonzero_u32")]
        parallel: Option<NonZeroU32>,
    }

    fn read(json: &str) -> Result<(Option<u32>, Option<u32>), String> {
        serde_json::from_str::<Both>(json)
            .map(|b| (b.bits, b.parallel.map(NonZeroU32::get)))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_number_is_one_with_or_without_its_fraction() {
        for (json, expected) in [
            (r#"{}"#, (None, None)),
            (r#"{"bits": null, "parallel": null}"#, (None, None)),
            (r#"{"bits": 3072, "parallel": 4}"#, (Some(3072), Some(4))),
            (
                r#"{"bits": 3072.0, "parallel": 4.0}"#,
                (Some(3072), Some(4)),
            ),
            (
                r#"{"bits": 0, "parallel": 4294967295}"#,
                (Some(0), Some(u32::MAX)),
            ),
            (r#"{"bits": 3.072e3}"#, (Some(3072), None)),
        ] {
            assert_eq!(read(json), Ok(expected), "{json}");
        }
        for json in [
            r#"{"bits": 1.5}"#,
            r#"{"bits": -1}"#,
            r#"{"bits": -1.0}"#,
            r#"{"bits": 4294967296}"#,
            r#"{"bits": 1e300}"#,
            r#"{"bits": "3072"}"#,
            r#"{"parallel": 0}"#,
            r#"{"parallel": 0.0}"#,
            r#"{"parallel": 4294967296.0}"#,
        ] {
            assert!(read(json).is_err(), "{json}");
        }
    }

    #[test]
    fn of_f64_takes_whole_numbers_in_range() {
        assert_eq!(of_f64(0.0), Some(0));
        assert_eq!(of_f64(5792.0), Some(5792));
        assert_eq!(of_f64(-0.0), Some(0));
        for bad in [
            0.5,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            18_446_744_073_709_551_616.0,
        ] {
            assert_eq!(of_f64(bad), None, "{bad}");
        }
    }
}
