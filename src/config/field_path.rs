//! Field paths (`vms.vm02.port`), and a deserializer wrapper that records
//! which one was being read when deserialization failed.
//!
//! serde-saphyr reports *where* in the text an error is (line and column)
//! but not *which field* it belongs to, so [`Tracked`] wraps its
//! deserializer the way `serde_path_to_error` does: every map value and
//! sequence element is deserialized through a wrapper that knows its path,
//! and the first (innermost) wrapper an error passes through writes that
//! path into a [`Failure`]. Errors themselves pass through unchanged, so
//! serde-saphyr still attaches its locations.
//!
//! For an unknown field the path includes the unknown key itself
//! (`vms.vm02.prot`): the key is captured as it is read, before the derived
//! code rejects it.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// One step of a [`FieldPath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Segment {
    /// A mapping key: a field name, or a VM name under `vms`.
    Key(String),
    /// A position in a sequence, from 0.
    Index(usize),
}

/// Where a value sits in the config, from the document root:
/// `vms.vm01.groups[1]`. The root itself displays as the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// Builds a path of mapping keys, e.g. `FieldPath::keys(["vms", "vm01"])`.
    pub(crate) fn keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        FieldPath(
            keys.into_iter()
                .map(|key| Segment::Key(key.to_owned()))
                .collect(),
        )
    }

    /// This path with `segment` appended.
    pub(crate) fn child(&self, segment: Segment) -> Self {
        let mut segments = self.0.clone();
        segments.push(segment);
        FieldPath(segments)
    }

    /// This path with the mapping key `key` appended.
    pub(crate) fn key(&self, key: &str) -> Self {
        self.child(Segment::Key(key.to_owned()))
    }

    /// This path with the sequence position `index` appended.
    pub(crate) fn index(&self, index: usize) -> Self {
        self.child(Segment::Index(index))
    }

    /// The path one step up, or `None` at the root.
    pub(crate) fn parent(&self) -> Option<Self> {
        let (_, rest) = self.0.split_last()?;
        Some(FieldPath(rest.to_vec()))
    }

    /// The last segment, or `None` at the root.
    pub(crate) fn last(&self) -> Option<&Segment> {
        self.0.last()
    }

    /// Whether this is the document root.
    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// The path of the value whose deserialization failed first.
#[derive(Debug, Default)]
pub(crate) struct Failure(RefCell<Option<FieldPath>>);

impl Failure {
    /// Records `path` unless a deeper path was recorded already: errors
    /// travel outwards, so the first wrapper to see one is the innermost.
    fn record(&self, path: &FieldPath) {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(path.clone());
        }
    }

    /// The recorded path, if an error went through a [`Tracked`] wrapper.
    pub(crate) fn into_path(self) -> Option<FieldPath> {
        self.0.into_inner()
    }
}

/// A deserializer that records its path in a [`Failure`] when it fails.
pub(crate) struct Tracked<'t, D> {
    de: D,
    path: FieldPath,
    failure: &'t Failure,
}

impl<'t, D> Tracked<'t, D> {
    /// Wraps the deserializer of the whole document.
    pub(crate) fn root(de: D, failure: &'t Failure) -> Self {
        Tracked {
            de,
            path: FieldPath::default(),
            failure,
        }
    }

    /// Runs `f` on the inner deserializer with a tracking visitor, and
    /// records the path if it fails.
    fn call<'de, V, F>(self, visitor: V, f: F) -> Result<V::Value, D::Error>
    where
        D: Deserializer<'de>,
        V: Visitor<'de>,
        F: FnOnce(D, TrackedVisitor<'t, V>) -> Result<V::Value, D::Error>,
    {
        let Tracked { de, path, failure } = self;
        let visitor = TrackedVisitor {
            inner: visitor,
            path: path.clone(),
            failure,
        };
        f(de, visitor).inspect_err(|_| failure.record(&path))
    }
}

/// Forwards every `deserialize_*` method through `self.call`, so each
/// wrapper only says how it wraps the visitor.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Self::Error> {
            self.call(visitor, |de, visitor| de.$method($($arg,)* visitor))
        }
    )*};
}

/// The `deserialize_*` methods of [`Deserializer`], for [`forward_deserialize`].
macro_rules! all_deserialize_methods {
    ($forward:ident) => {
        $forward! {
            deserialize_any();
            deserialize_bool();
            deserialize_i8();
            deserialize_i16();
            deserialize_i32();
            deserialize_i64();
            deserialize_i128();
            deserialize_u8();
            deserialize_u16();
            deserialize_u32();
            deserialize_u64();
            deserialize_u128();
            deserialize_f32();
            deserialize_f64();
            deserialize_char();
            deserialize_str();
            deserialize_string();
            deserialize_bytes();
            deserialize_byte_buf();
            deserialize_option();
            deserialize_unit();
            deserialize_unit_struct(name: &'static str);
            deserialize_newtype_struct(name: &'static str);
            deserialize_seq();
            deserialize_tuple(len: usize);
            deserialize_tuple_struct(name: &'static str, len: usize);
            deserialize_map();
            deserialize_struct(name: &'static str, fields: &'static [&'static str]);
            deserialize_enum(name: &'static str, variants: &'static [&'static str]);
            deserialize_identifier();
            deserialize_ignored_any();
        }
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Tracked<'_, D> {
    type Error = D::Error;

    all_deserialize_methods!(forward_deserialize);

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// Forwards `visit_*` methods that carry a plain value to `self.inner`.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

/// A visitor that hands maps, sequences and options on with tracking.
struct TrackedVisitor<'t, V> {
    inner: V,
    path: FieldPath,
    failure: &'t Failure,
}

impl<'de, V: Visitor<'de>> Visitor<'de> for TrackedVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, de: D2) -> Result<Self::Value, D2::Error> {
        self.inner.visit_some(Tracked {
            de,
            path: self.path,
            failure: self.failure,
        })
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, de: D2) -> Result<Self::Value, D2::Error> {
        self.inner.visit_newtype_struct(Tracked {
            de,
            path: self.path,
            failure: self.failure,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(TrackedSeq {
            seq,
            path: self.path,
            failure: self.failure,
            next: 0,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(TrackedMap {
            map,
            path: self.path,
            failure: self.failure,
            key: None,
        })
    }

    /// Enum variants are not tracked: an error inside one is recorded with
    /// the path of the enum value, which is precise enough for a config.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}

/// A seed whose value is deserialized through a [`Tracked`] wrapper.
struct TrackedSeed<'t, S> {
    seed: S,
    path: FieldPath,
    failure: &'t Failure,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for TrackedSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        self.seed.deserialize(Tracked {
            de,
            path: self.path,
            failure: self.failure,
        })
    }
}

/// A sequence whose elements are tracked as `path[index]`.
struct TrackedSeq<'t, A> {
    seq: A,
    path: FieldPath,
    failure: &'t Failure,
    /// The index of the next element.
    next: usize,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for TrackedSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let path = self.path.index(self.next);
        self.next += 1;
        let seed = TrackedSeed {
            seed,
            path: path.clone(),
            failure: self.failure,
        };
        self.seq
            .next_element_seed(seed)
            .inspect_err(|_| self.failure.record(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

/// A mapping whose values are tracked as `path.key`.
struct TrackedMap<'t, A> {
    map: A,
    path: FieldPath,
    failure: &'t Failure,
    /// The key just read, as text; its value comes next.
    key: Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TrackedMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let mut captured = None;
        let result = self.map.next_key_seed(CaptureKey {
            seed,
            key: &mut captured,
        });
        match result {
            Ok(key) => {
                self.key = captured;
                Ok(key)
            }
            Err(err) => {
                // An unknown field fails while its key is read: name it.
                let path = match captured {
                    Some(key) => self.path.key(&key),
                    None => self.path.clone(),
                };
                self.failure.record(&path);
                Err(err)
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        // A key that is not a scalar (`? [a, b]: 1`) has no name to show.
        let key = self.key.take().unwrap_or_else(|| "?".to_owned());
        let path = self.path.key(&key);
        let seed = TrackedSeed {
            seed,
            path: path.clone(),
            failure: self.failure,
        };
        self.map
            .next_value_seed(seed)
            .inspect_err(|_| self.failure.record(&path))
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A key seed that keeps a copy of the key's text in `key`.
struct CaptureKey<'k, S> {
    seed: S,
    key: &'k mut Option<String>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for CaptureKey<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        self.seed.deserialize(CaptureDe { de, key: self.key })
    }
}

/// The deserializer of a key, capturing its text.
struct CaptureDe<'k, D> {
    de: D,
    key: &'k mut Option<String>,
}

impl<'k, D> CaptureDe<'k, D> {
    fn call<'de, V, F>(self, visitor: V, f: F) -> Result<V::Value, D::Error>
    where
        D: Deserializer<'de>,
        V: Visitor<'de>,
        F: FnOnce(D, CaptureVisitor<'k, V>) -> Result<V::Value, D::Error>,
    {
        let visitor = CaptureVisitor {
            inner: visitor,
            key: self.key,
        };
        f(self.de, visitor)
    }
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for CaptureDe<'_, D> {
    type Error = D::Error;

    all_deserialize_methods!(forward_deserialize);

    fn is_human_readable(&self) -> bool {
        self.de.is_human_readable()
    }
}

/// A key visitor that stores scalar keys as text before passing them on.
struct CaptureVisitor<'k, V> {
    inner: V,
    key: &'k mut Option<String>,
}

/// Forwards `visit_*` methods after storing the value's text as the key.
macro_rules! capture_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            *self.key = Some(v.to_string());
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for CaptureVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    capture_visit! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
    }

    forward_visit! {
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, de: D2) -> Result<Self::Value, D2::Error> {
        self.inner.visit_some(de)
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, de: D2) -> Result<Self::Value, D2::Error> {
        self.inner.visit_newtype_struct(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(map)
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(data)
    }
}
