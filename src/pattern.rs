//! Wildcard patterns as OpenSSH uses them (`*` any run, `?` one character):
//! shared by target globs and known_hosts host patterns.

/// Whether `text` matches `pattern`, where `*` matches any run of bytes
/// (including none) and `?` exactly one byte (OpenSSH's `match_pattern`).
/// Everything else matches itself. No recursion, so no blow-up on
/// attacker-chosen input.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    glob_match(pattern.as_bytes(), text.as_bytes())
}

fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index
    // it has swallowed up to).
    let mut star: Option<(usize, usize)> = None;
    loop {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                p += 1;
                star = Some((p, t));
                continue;
            }
            (Some(&pc), Some(&tc)) if pc == b'?' || pc == tc => {
                p += 1;
                t += 1;
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        // Mismatch: let the last `*` swallow one more byte, if any is left.
        match star {
            Some((sp, st)) if st < text.len() => {
                p = sp;
                t = st + 1;
                star = Some((sp, t));
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{glob_match, wildcard_match};

    #[test]
    fn matches_like_openssh() {
        assert!(wildcard_match("vm0*", "vm01"));
        assert!(wildcard_match("vm0*", "vm0"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("v?01", "vm01"));
        assert!(wildcard_match("*.example.net", "a.b.example.net"));
        assert!(wildcard_match("[127.0.0.*]:2222", "[127.0.0.9]:2222"));
        assert!(!wildcard_match("vm0*", "vm10"));
        assert!(!wildcard_match("v?01", "v01"));
        assert!(!wildcard_match("a*b", "acbd"));
        assert!(wildcard_match("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"", b""));
        assert!(!glob_match(b"", b"a"));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
        assert!(glob_match(b"a*b*c", b"abcbc"));
        assert!(!glob_match(b"a*b*c", b"abcb"));
        assert!(glob_match(b"**a", b"ba"));
        assert!(glob_match(b"*?", b"x"));
        assert!(!glob_match(b"*?", b""));
        assert!(!glob_match(b"a?", b"a"));
    }
}
