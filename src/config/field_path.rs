//! Field paths (`vms.vm02.port`): where a value sits in the config.
//!
//! serde-saphyr reports *where* in the text an error is (line and column)
//! but not *which field* it belongs to, so `Config::from_yaml` wraps its
//! deserializer in a `serde_path_to_error::Deserializer`, which records the
//! path of the innermost value that failed and passes the error through
//! unchanged (so serde-saphyr still attaches its location). The recorded
//! path becomes a [`FieldPath`] here, which also names the fields of the
//! rule errors in `validate.rs` and the nodes of `source_map.rs`.
//!
//! For an unknown field the path includes the unknown key itself
//! (`vms.vm02.prot`): `serde_path_to_error` captures the key as it is read,
//! before the derived code rejects it. An error that serde-saphyr raises
//! before it hands over a sequence element or a mapping value (an unclosed
//! `[`, an unknown alias) names the sequence or mapping that holds it.

use std::fmt;

use serde_path_to_error::{Path, Segment as PathSegment};

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

/// The path `serde_path_to_error` recorded, in our terms.
///
/// It ends in [`PathSegment::Unknown`] when a mapping failed while reading
/// a key it had no text for yet: a syntax error, or a duplicate key (which
/// serde-saphyr catches before the key is read). That error belongs to the
/// mapping, so the segment is dropped; `parse_error` names a duplicate key
/// itself. (Every mapping in the config has string keys, so a key that is
/// not a scalar, `? [a, b]: 1`, fails as it is read and ends a path too.)
impl From<&Path> for FieldPath {
    fn from(path: &Path) -> Self {
        let mut segments: Vec<&PathSegment> = path.iter().collect();
        if matches!(segments.last(), Some(PathSegment::Unknown)) {
            segments.pop();
        }
        FieldPath(
            segments
                .into_iter()
                .filter_map(|segment| match segment {
                    PathSegment::Map { key } => Some(Segment::Key(key.clone())),
                    PathSegment::Seq { index } => Some(Segment::Index(*index)),
                    // Enum variants are not named: an error inside one has
                    // the path of the enum value, precise enough for a config.
                    PathSegment::Enum { .. } => None,
                    PathSegment::Unknown => Some(Segment::Key("?".to_owned())),
                })
                .collect(),
        )
    }
}
