//! Names: remote path joining, temp names, and the rules that keep a
//! download inside its directory. No I/O.

use sha2::{Digest as _, Sha256};

/// The temp file next to `name` in the same directory, for `host`:
/// `.NAME.TAG.remex-part`, TAG being 8 hex digits of the SHA-256 of the
/// host's name. Fixed per host and destination, so `--resume` finds it and
/// a later run reuses (and so removes) a leftover of a lost connection;
/// different per host, so hosts sharing a filesystem (an NFS home) never
/// write the same temp file. Names too long to extend become
/// `.remex-HASH.TAG.remex-part`.
pub(super) fn temp_name(name: &str, host: &str) -> String {
    let tag = short_hash(host);
    if name.len() <= 200 {
        format!(".{name}.{tag}.remex-part")
    } else {
        format!(".remex-{}.{tag}.remex-part", short_hash(name))
    }
}

/// A temp name of this run's own, `.NAME.TAG.RANDOM.remex-part`: used when
/// [`temp_name`] is in use by another upload to the same destination.
pub(super) fn unique_temp_name(name: &str, host: &str) -> String {
    let random: u32 = rand::random();
    let usual = temp_name(name, host);
    let stem = usual.strip_suffix(".remex-part").unwrap_or(&usual);
    format!("{stem}.{random:08x}.remex-part")
}

fn short_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    hex::encode(&digest[..4])
}

/// `dir/name` for remote (always `/`-separated) paths.
pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() || dir == "." {
        name.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// Splits a remote path into its directory and last name:
/// `a/b/c` → (`a/b`, `c`), `c` → (`.`, `c`), `/c` → (`/`, `c`).
pub(super) fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => ("/".to_owned(), trimmed[1..].to_owned()),
        Some(i) => (trimmed[..i].to_owned(), trimmed[i + 1..].to_owned()),
        None => (".".to_owned(), trimmed.to_owned()),
    }
}

/// A remote path as SFTP takes it: `~` and `~/…` mean the login
/// directory, which is where SFTP's relative paths start.
pub(super) fn remote_path(path: &str) -> String {
    if path == "~" || path == "~/" {
        ".".to_owned()
    } else if let Some(rest) = path.strip_prefix("~/") {
        rest.to_owned()
    } else {
        path.to_owned()
    }
}

/// Checks one name a server sent in a directory listing (or the last name
/// of a REMOTE argument) before it becomes a local file name.
pub(super) fn check_entry_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("an empty name".to_owned())
    } else if name == "." || name == ".." {
        Err(format!("the name `{name}`"))
    } else if name.contains('/') {
        Err(format!("the name {name:?} contains `/`"))
    } else if name.contains('\0') {
        Err(format!("the name {name:?} contains a NUL byte"))
    } else {
        Ok(())
    }
}

/// Whether a symlink at depth `depth` below the download root (0: directly
/// in it) with `target` stays inside the root. Allowed: relative targets
/// made of at most `depth` leading `..` followed by names (no `..` after a
/// name, which could climb out of a directory reached through another
/// symlink). Refused: absolute targets, and everything else.
pub(super) fn link_stays_inside(depth: usize, target: &str) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut ups = 0;
    let mut seen_name = false;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if seen_name => return false,
            ".." => ups += 1,
            _ => seen_name = true,
        }
    }
    ups <= depth
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_sit_next_to_the_file() {
        let t = temp_name("app.conf", "vm01");
        assert!(
            t.starts_with(".app.conf.") && t.ends_with(".remex-part"),
            "{t}"
        );
        assert_eq!(t.len(), ".app.conf.".len() + 8 + ".remex-part".len());
        assert_ne!(t, temp_name("app.conf", "vm02"));
        let long = "x".repeat(250);
        let t = temp_name(&long, "vm01");
        assert!(t.starts_with(".remex-") && t.ends_with(".remex-part") && t.len() < 60);
    }

    #[test]
    fn remote_paths_split_and_join() {
        assert_eq!(split("/a/b/c"), ("/a/b".into(), "c".into()));
        assert_eq!(split("/c"), ("/".into(), "c".into()));
        assert_eq!(split("c"), (".".into(), "c".into()));
        assert_eq!(split("a/b/"), ("a".into(), "b".into()));
        assert_eq!(join("/", "c"), "/c");
        assert_eq!(join(".", "c"), "c");
        assert_eq!(join("/a", "c"), "/a/c");
        assert_eq!(remote_path("~/x/y"), "x/y");
        assert_eq!(remote_path("~"), ".");
        assert_eq!(remote_path("/etc"), "/etc");
    }

    #[test]
    fn hostile_names_are_refused() {
        assert!(check_entry_name("ok.txt").is_ok());
        assert!(check_entry_name("..").is_err());
        assert!(check_entry_name(".").is_err());
        assert!(check_entry_name("").is_err());
        assert!(check_entry_name("a/../../etc").is_err());
        assert!(check_entry_name("/etc").is_err());
        assert!(check_entry_name("a\0b").is_err());
        assert!(check_entry_name("..hidden").is_ok());
    }

    #[test]
    fn links_must_stay_inside() {
        assert!(link_stays_inside(0, "file"));
        assert!(link_stays_inside(0, "./dir/file"));
        assert!(link_stays_inside(1, "../file"));
        assert!(link_stays_inside(2, "../../x/y"));
        assert!(!link_stays_inside(0, "../file"));
        assert!(!link_stays_inside(1, "../../file"));
        assert!(!link_stays_inside(3, "/etc/passwd"));
        assert!(!link_stays_inside(3, "a/../b"));
        assert!(!link_stays_inside(3, "sub/link/.."));
        assert!(!link_stays_inside(3, ""));
    }
}
