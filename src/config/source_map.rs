//! Where each field of a config file sits in its text.
//!
//! Checks that run after deserialization (a VM named `all`, `max_parallel:
//! 0`) see plain Rust values, not the text; a [`SourceMap`] lets their
//! errors point at a line and column anyway. It is built from the YAML
//! parser's events, only when an error needs it.
//!
//! **Invariant:** best effort. Paths through merge keys (`<<`) or aliases
//! may be missing, and the map stops at the first syntax error; a missing
//! entry only costs an error its line and column.

use serde_saphyr::granit_parser::{Event, Parser};

use super::field_path::FieldPath;

/// A position in the text: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// Line, from 1.
    pub(crate) line: usize,
    /// Column, from 1.
    pub(crate) column: usize,
}

/// One value of the document, found by its path.
#[derive(Debug)]
struct Node {
    path: FieldPath,
    /// Where its key starts, when the value is in a mapping.
    key: Option<Position>,
    /// Where the value starts.
    value: Position,
}

/// Positions of the keys, values and scalars of one YAML document.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    nodes: Vec<Node>,
    /// Every scalar (keys and values) with where it starts.
    scalars: Vec<(Position, String)>,
}

/// A collection being walked, for working out the paths of its children.
enum Frame {
    /// A mapping; `key` is the key just read, whose value comes next.
    Map {
        path: FieldPath,
        key: Option<(String, Position)>,
    },
    /// A sequence; `next` is the index of the next element.
    Seq { path: FieldPath, next: usize },
}

impl SourceMap {
    /// Walks the first document of `text`.
    pub(crate) fn build(text: &str) -> SourceMap {
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(Ok((event, span))) = parser.next_event() {
            let at = Position {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            let (scalar, opens) = match &event {
                Event::Scalar(value, ..) => (Some(value.to_string()), None),
                Event::MappingStart(..) => (None, Some(true)),
                Event::SequenceStart(..) => (None, Some(false)),
                Event::Alias(..) => (None, None),
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    continue;
                }
                Event::DocumentEnd => break,
                _ => continue,
            };
            if let Some(value) = &scalar {
                map.scalars.push((at, value.clone()));
            }
            let (path, key) = match stack.last_mut() {
                None => (FieldPath::default(), None),
                Some(Frame::Seq { path, next }) => {
                    let path = path.index(*next);
                    *next += 1;
                    (path, None)
                }
                Some(Frame::Map { path, key }) => match key.take() {
                    Some((name, key_at)) => (path.key(&name), Some(key_at)),
                    None => {
                        // This node is a key. A key that is itself a
                        // collection gets the placeholder name `?`.
                        let name = scalar.unwrap_or_else(|| "?".to_owned());
                        let child = path.key(&name);
                        *key = Some((name, at));
                        if let Some(is_map) = opens {
                            stack.push(Frame::open(child, is_map));
                        }
                        continue;
                    }
                },
            };
            if let Some(is_map) = opens {
                stack.push(Frame::open(path.clone(), is_map));
            }
            map.nodes.push(Node {
                path,
                key,
                value: at,
            });
        }
        map
    }

    /// Where the key of the value at `path` starts.
    pub(crate) fn key_position(&self, path: &FieldPath) -> Option<Position> {
        self.node(path).and_then(|node| node.key)
    }

    /// Where the value at `path` starts.
    pub(crate) fn value_position(&self, path: &FieldPath) -> Option<Position> {
        self.node(path).map(|node| node.value)
    }

    /// The position of `path`'s value, else of the closest ancestor that has
    /// one.
    pub(crate) fn nearest_position(&self, path: &FieldPath) -> Option<Position> {
        let mut path = path.clone();
        loop {
            if let Some(at) = self.value_position(&path) {
                return Some(at);
            }
            path = path.parent()?;
        }
    }

    /// The text of the scalar that starts at `at`.
    pub(crate) fn scalar_at(&self, at: Position) -> Option<&str> {
        self.scalars
            .iter()
            .find(|(start, _)| *start == at)
            .map(|(_, value)| value.as_str())
    }

    fn node(&self, path: &FieldPath) -> Option<&Node> {
        self.nodes.iter().find(|node| node.path == *path)
    }
}

impl Frame {
    fn open(path: FieldPath, is_map: bool) -> Frame {
        if is_map {
            Frame::Map { path, key: None }
        } else {
            Frame::Seq { path, next: 0 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn finds_keys_values_and_sequence_elements() {
        let text = "vms:\n  vm01:\n    host: a\n    groups:\n      - web\n  vm02: { host: b, groups: [x, y] }\n";
        let map = SourceMap::build(text);
        let vm01 = FieldPath::keys(["vms", "vm01"]);
        assert_eq!(map.key_position(&vm01), at(2, 3));
        assert_eq!(map.value_position(&vm01.key("host")), at(3, 11));
        assert_eq!(map.key_position(&vm01.key("groups")), at(4, 5));
        assert_eq!(map.value_position(&vm01.key("groups").index(0)), at(5, 9));
        let vm02 = FieldPath::keys(["vms", "vm02"]);
        assert_eq!(map.value_position(&vm02), at(6, 9));
        assert_eq!(map.value_position(&vm02.key("groups").index(1)), at(6, 32));
        assert_eq!(
            map.scalar_at(Position {
                line: 6,
                column: 17
            }),
            Some("b")
        );
    }

    #[test]
    fn nearest_position_falls_back_to_ancestors() {
        let map = SourceMap::build("vms:\n  vm01: { host: a }\n");
        let missing = FieldPath::keys(["vms", "vm01", "port"]);
        assert_eq!(map.value_position(&missing), None);
        assert_eq!(map.nearest_position(&missing), at(2, 9));
    }

    #[test]
    fn collection_keys_do_not_shift_later_paths() {
        let map = SourceMap::build("? [a, b]\n: 1\nlater: 2\n");
        assert_eq!(map.value_position(&FieldPath::keys(["later"])), at(3, 8));
    }

    #[test]
    fn stops_quietly_at_a_syntax_error() {
        let map = SourceMap::build("vms:\n  vm01: { host: a\n");
        assert_eq!(
            map.key_position(&FieldPath::keys(["vms", "vm01"])),
            at(2, 3)
        );
    }
}
