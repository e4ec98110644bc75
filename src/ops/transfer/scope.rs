//! Path scopes: the paths a transfer may read or write on a host
//! ([`PathScope`], `Options::scope`), decided on each path as the host
//! resolves it, and the refusal of setuid/setgid/sticky modes
//! (`Options::special_modes`).
//!
//! A scope is a list of absolute glob patterns (`/srv/reports/**`,
//! `/var/log/*.log`); `*` and `?` never match `/`, `**` spans components.
//! A pattern ending in `/**` also admits its directory itself *as a
//! directory* (to list, download with `-r`, or write into), never as a file
//! to read or an entry to create or replace: `/srv/reports/**` lets a
//! token read `/srv/reports` recursively and upload into it, but not
//! replace the entry `/srv/reports` of `/srv` (that would change a
//! directory outside the scope) nor read a *file* of that name.
//!
//! Every check is on the real path the host's SFTP server resolves
//! (`realpath`, which follows every symlink and `..`), never on the path
//! as requested: the request's spelling proves nothing. A refusal names
//! the path as it was requested, never the resolved one (that would tell
//! where a symlink points).
//!
//! # What the checks hold against, and what they cannot
//!
//! Writing: the destination's *directory* is resolved (every symlink in
//! it followed by the host) and `real_dir/name` checked; a symlink as the
//! final name is refused; the temp file is created exclusively (`O_EXCL`,
//! which a symlink in its place makes fail) in `real_dir` (a path without
//! symlinks at that moment) and, before the rename, `real_dir` must still
//! resolve to itself with the temp file in it, else the temp file is
//! removed and the file fails. The rename (`posix-rename@openssh.com`)
//! replaces a symlink that appeared at the final name since, rather than
//! writing through it (a test checks this against OpenSSH). Nothing writes
//! to the temp file by its path again: one SFTP channel carries the data
//! (no extra channels), and `--resume` reopens a leftover only after
//! comparing the handle with its `lstat`.
//!
//! Reading: the source's real path is checked, `lstat` must find a regular
//! file or a directory there (not a symlink), and once opened the handle's
//! attributes (`fstat`: type, mode, owner, size, mtime) must be those
//! `lstat` saw (or those of a second `lstat`, for a file that grows): a
//! regular file swapped for a symlink between the check and the open is
//! caught unless the file put back has the attributes of the target,
//! mtime to the second included — which the caller cannot read, since the
//! target is outside its scope. Verification that reads the file again
//! (read-back) makes the same comparison, and a checksum mismatch under a
//! scope does not show the host's digest (what was hashed may not be the
//! file checked).
//!
//! SFTP has no directory handles (no `openat`): every request names a
//! path, which the host resolves again. A path `realpath` returned holds no
//! symlink, so what could still redirect a later request is a *directory*
//! of that path being renamed or replaced. Through remex a caller cannot
//! do that: an upload replaces files and symlinks (a rename onto a
//! directory fails), never directories, and nothing removes one. Someone
//! else on the host with write access to a directory under the scope (or
//! above it) could, and SFTP gives no client a way to close that window:
//! to move remex's temp file out, they must move a directory that is
//! itself under the scope to a place they can write — so the data goes
//! only where they could already put what they write — and a rename that
//! found the temp file gone fails. The double check before the rename
//! makes a swap that stays in place for the write visible.

use std::fmt;
use std::str::FromStr;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use russh_sftp::protocol::{FileAttributes, StatusCode};

use crate::failure::{ErrorKind, Failure};

use super::sftp::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Sftp, is_status};
use super::{EntryKind, names};

/// Mode bits a transfer sets only with `Options::special_modes`: setuid,
/// setgid, sticky.
pub const SPECIAL_MODE_BITS: u32 = 0o7000;

/// The paths a transfer may touch on a host: absolute glob patterns,
/// parsed from a comma-separated list (`/srv/reports/**,/tmp/**`).
///
/// Displays (and serializes) as the list it was parsed from, normalized
/// (no spaces around the commas), so it round-trips through a store.
#[derive(Debug, Clone)]
pub struct PathScope {
    /// The patterns as given (trimmed), for display.
    patterns: Vec<String>,
    /// Every pattern: a path any of them matches may be read or written.
    entries: GlobSet,
    /// The directories of the patterns that end in `/**` (`/` for `/**`):
    /// admitted as directories only.
    roots: GlobSet,
}

/// Why a scope's text is not a scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path scope pattern {pattern:?}: {reason}")]
pub struct ScopeError {
    /// The pattern at fault (empty for an empty list).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PathScope {
    /// Parses a comma-separated list of absolute glob patterns.
    ///
    /// # Errors
    ///
    /// An empty list or pattern, a relative pattern, a `.` or `..` or empty
    /// component, a trailing `/`, a NUL byte, or a glob that does not parse.
    pub fn parse(list: &str) -> Result<PathScope, ScopeError> {
        let patterns: Vec<String> = list.split(',').map(|p| p.trim().to_owned()).collect();
        let mut entries = GlobSetBuilder::new();
        let mut roots = GlobSetBuilder::new();
        for pattern in &patterns {
            let bad = |reason: &str| ScopeError {
                pattern: pattern.clone(),
                reason: reason.to_owned(),
            };
            check_pattern(pattern).map_err(|reason| bad(&reason))?;
            entries.add(glob(pattern).map_err(|e| bad(&e.kind().to_string()))?);
            if let Some(root) = pattern.strip_suffix("/**") {
                let root = if root.is_empty() { "/" } else { root };
                roots.add(glob(root).map_err(|e| bad(&e.kind().to_string()))?);
            }
        }
        let built = |set: GlobSetBuilder| {
            set.build().map_err(|e| ScopeError {
                pattern: list.to_owned(),
                reason: e.to_string(),
            })
        };
        Ok(PathScope {
            entries: built(entries)?,
            roots: built(roots)?,
            patterns,
        })
    }

    /// A scope admitting every path (`/**`): the behaviour without one,
    /// spelled out.
    pub fn everything() -> PathScope {
        // A fixed, valid pattern: parsing it cannot fail.
        PathScope::parse("/**").unwrap_or_else(|_| PathScope {
            patterns: vec!["/**".to_owned()],
            entries: GlobSet::empty(),
            roots: GlobSet::empty(),
        })
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `path` (absolute, as the host resolved it) may be read as a
    /// file, or created or replaced as an entry of its directory.
    pub fn allows(&self, path: &str) -> bool {
        path.starts_with('/') && path != "/" && self.entries.is_match(path)
    }

    /// Whether `path` may be used as a directory: listed, downloaded with
    /// `-r`, written into. Besides what [`PathScope::allows`] admits, the
    /// directory of a `…/**` pattern.
    pub fn allows_dir(&self, path: &str) -> bool {
        self.allows(path) || (path.starts_with('/') && self.roots.is_match(path))
    }
}

/// One pattern, compiled: `*` and `?` do not match `/`.
fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

/// What a pattern must look like before it is a glob: absolute and
/// normalized, as the host's real paths are.
fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("an empty pattern (write `/**` for every path)".to_owned());
    }
    if pattern.contains('\0') {
        return Err("contains a NUL byte".to_owned());
    }
    if !pattern.starts_with('/') {
        return Err("not absolute: a pattern starts with `/`".to_owned());
    }
    if pattern.len() > 1 && pattern.ends_with('/') {
        return Err(format!(
            "ends in `/`, which no path does (`{pattern}**` for the directory and \
             everything in it)"
        ));
    }
    if pattern == "/" {
        return Err("`/` names only the root directory (`/**` for every path)".to_owned());
    }
    for part in pattern.split('/').skip(1) {
        match part {
            "" => return Err("has an empty component (`//`)".to_owned()),
            "." | ".." => {
                return Err(format!(
                    "has a `{part}` component; patterns match the host's real paths, \
                     which have none"
                ));
            }
            part if part.contains("**") && part != "**" => {
                return Err(format!(
                    "`{part}`: `**` spans directories only as a whole component \
                     (`/srv/**/x`, `/srv/**`); within a name, write `*`"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

impl fmt::Display for PathScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns.join(","))
    }
}

impl FromStr for PathScope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PathScope::parse(s)
    }
}

impl PartialEq for PathScope {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for PathScope {}

impl serde::Serialize for PathScope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PathScope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PathScope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The refusal of a path outside the scope, naming it as requested.
pub(super) fn outside(requested: &str, what: &str) -> Failure {
    Failure::refused(
        ErrorKind::Denied,
        format!(
            "{requested}: outside the paths this transfer may {what} \
             (as the host resolves it; symlinks and `..` included)"
        ),
    )
}

/// The refusal of a mode with setuid/setgid/sticky bits (`what`: the file
/// or directory it was for).
pub(super) fn special_mode(what: &str, mode: u32) -> Failure {
    Failure::refused(
        ErrorKind::Denied,
        format!(
            "{what}: mode {:04o} has setuid/setgid/sticky bits ({:04o}), which this \
             transfer may not set; nothing was written",
            mode & 0o7777,
            mode & SPECIAL_MODE_BITS
        ),
    )
}

/// The host's real path of `path` (relative paths from the SFTP server's
/// directory; OpenSSH's server allows the final component to be missing);
/// `Ok(None)` when a directory of it does not exist.
pub(super) async fn real_path(sftp: &Sftp, path: &str) -> Result<Option<String>, Failure> {
    let name = match sftp.raw.realpath(path).await {
        Ok(name) => name,
        Err(e) if is_status(&e, StatusCode::NoSuchFile) => return Ok(None),
        Err(e) => return Err(sftp.failure("resolving", path, &e)),
    };
    match name.files.into_iter().next() {
        Some(file) if file.filename.starts_with('/') => Ok(Some(file.filename)),
        _ => Err(Failure::new(
            ErrorKind::Protocol,
            format!("resolving {path}: the server's answer is not an absolute path"),
        )),
    }
}

/// Where an upload may write `requested` on the host: the real path of its
/// directory and the name in it, after checking `real_dir/name` against
/// `scope` and that the name is not a symlink there (unless `kind` is a
/// symlink: the rename replaces a symlink, it never writes through one).
/// For a directory, one that already exists there needs only to be one
/// the scope lets the upload write into (nothing about the entry itself
/// changes).
pub(super) async fn place_for_write(
    sftp: &Sftp,
    scope: &PathScope,
    requested: &str,
    kind_of: EntryKind,
) -> Result<(String, String), Failure> {
    let (dir, name) = names::split(requested);
    if names::check_entry_name(&name).is_err() {
        return Err(outside(requested, "write"));
    }
    let Some(real_dir) = real_path(sftp, &dir).await? else {
        return Err(if lexically_allowed_on(sftp, scope, requested).await {
            Failure::new(
                ErrorKind::Transfer,
                format!("{dir}: no such directory on the host (add --mkdir to create it)"),
            )
        } else {
            outside(requested, "write")
        });
    };
    let target = names::join(&real_dir, &name);
    if !scope.allows_dir(&target) {
        return Err(outside(requested, "write"));
    }
    let found = sftp.lstat(&target).await?;
    let found = found.as_ref().map(kind);
    if found == Some(S_IFLNK) && kind_of != EntryKind::Symlink {
        return Err(Failure::refused(
            ErrorKind::Denied,
            format!(
                "{requested}: is a symlink on the host; a transfer limited to paths \
                 does not write through (or replace) one"
            ),
        ));
    }
    let existing_dir = kind_of == EntryKind::Dir && found == Some(S_IFDIR);
    if !existing_dir && !scope.allows(&target) {
        return Err(outside(requested, "write"));
    }
    Ok((real_dir, name))
}

/// Refuses an upload's destination `requested` that the host resolves
/// outside the scope (as a directory to write into, or an entry), before
/// anything else looks at it. One with a missing directory passes when it
/// lies, as written, inside: `--mkdir` checks each directory it makes.
pub(super) async fn check_destination(
    sftp: &Sftp,
    scope: &PathScope,
    requested: &str,
) -> Result<(), Failure> {
    let admitted = match real_path(sftp, requested).await? {
        Some(real) => scope.allows_dir(&real),
        None => lexically_allowed_on(sftp, scope, requested).await,
    };
    if admitted {
        Ok(())
    } else {
        Err(outside(requested, "write"))
    }
}

/// `mkdir -p` under a scope: each missing directory is created where its
/// parent really is, and only when the scope admits it there.
pub(super) async fn mkdir_all(sftp: &Sftp, scope: &PathScope, path: &str) -> Result<(), Failure> {
    let mut missing = Vec::new();
    let mut at = path.trim_end_matches('/').to_owned();
    while !at.is_empty() && at != "/" && at != "." {
        match sftp.stat(&at).await? {
            Some(attrs) if kind(&attrs) == S_IFDIR => break,
            Some(_) => {
                return Err(Failure::new(
                    ErrorKind::Transfer,
                    format!("creating {path}: {at} exists and is not a directory"),
                ));
            }
            None => {
                let (parent, _) = names::split(&at);
                missing.push(std::mem::replace(&mut at, parent));
            }
        }
    }
    for dir in missing.into_iter().rev() {
        let (real_dir, name) = place_for_write(sftp, scope, &dir, EntryKind::Dir).await?;
        let real = names::join(&real_dir, &name);
        sftp.mkdir(&real, 0o755).await?;
        confirm_dir(sftp, &real_dir, &dir).await?;
    }
    Ok(())
}

/// Checks, just before an upload renames its temp file `temp` (a file or
/// a symlink) over the destination, that the directory it was written in
/// is still `real_dir` — its real path unchanged, no directory of it
/// swapped — and that the temp file is there. Otherwise the temp file is
/// removed and the entry fails.
///
/// The temp file's own name is not matched against the scope (a pattern
/// like `/var/log/*.log` does not match `.app.log.TAG.remex-part`): what
/// matters is where it is, and the destination was checked.
pub(super) async fn confirm_temp(
    sftp: &Sftp,
    real_dir: &str,
    temp: &str,
    requested: &str,
) -> Result<(), Failure> {
    let dir_now = real_path(sftp, real_dir).await;
    let file = sftp.lstat(temp).await;
    let in_place = matches!(&dir_now, Ok(Some(real)) if real == real_dir)
        && matches!(&file, Ok(Some(attrs)) if kind(attrs) == S_IFREG || kind(attrs) == S_IFLNK);
    if in_place {
        return Ok(());
    }
    let _ = sftp.remove(temp).await;
    Err(Failure::refused(
        ErrorKind::Denied,
        format!(
            "{requested}: a directory of the path changed on the host while the file \
             was written; the temp file was removed and the destination not replaced"
        ),
    ))
}

/// Checks that the directory `real_dir` still resolves to itself (after
/// creating something in it).
async fn confirm_dir(sftp: &Sftp, real_dir: &str, requested: &str) -> Result<(), Failure> {
    match real_path(sftp, real_dir).await? {
        Some(real) if real == real_dir => Ok(()),
        _ => Err(Failure::refused(
            ErrorKind::Denied,
            format!("{requested}: a directory of the path changed on the host meanwhile"),
        )),
    }
}

/// What a download reads for `requested`: its real path and its `lstat`
/// attributes, after checking it against `scope` (a directory as such).
/// `Ok(None)`: it does not exist (and lies, as requested, inside the scope;
/// outside, the answer is the refusal, so that the scope does not tell what
/// exists beyond it).
pub(super) async fn place_for_read(
    sftp: &Sftp,
    scope: &PathScope,
    requested: &str,
) -> Result<Option<(String, FileAttributes)>, Failure> {
    let missing = |inside: bool| {
        if inside {
            Ok(None)
        } else {
            Err(outside(requested, "read"))
        }
    };
    let Some(real) = real_path(sftp, requested).await? else {
        return missing(lexically_allowed_on(sftp, scope, requested).await);
    };
    if !scope.allows_dir(&real) {
        return Err(outside(requested, "read"));
    }
    let Some(attrs) = sftp.lstat(&real).await? else {
        return missing(true);
    };
    let admitted = match kind(&attrs) {
        S_IFDIR => scope.allows_dir(&real),
        S_IFLNK => return Err(changed(requested)),
        _ => scope.allows(&real),
    };
    if !admitted {
        return Err(outside(requested, "read"));
    }
    Ok(Some((real, attrs)))
}

/// Checks that the file opened as `handle` at `real` is the one checked
/// before (`before`: its `lstat` then), not what a symlink swapped in
/// since leads to. A file that changed meanwhile (a growing log) passes
/// when a second `lstat` matches the handle.
pub(super) async fn confirm_open(
    sftp: &Sftp,
    handle: &str,
    real: &str,
    before: &FileAttributes,
    requested: &str,
) -> Result<(), Failure> {
    let opened = sftp
        .raw
        .fstat(handle)
        .await
        .map_err(|e| sftp.failure("examining", requested, &e))?
        .attrs;
    if kind(&opened) == S_IFREG && same_file(&opened, before) {
        return Ok(());
    }
    match sftp.lstat(real).await? {
        Some(now) if kind(&now) == S_IFREG && same_file(&opened, &now) => Ok(()),
        _ => Err(changed(requested)),
    }
}

/// Whether two attribute sets can be the same file: type and mode, owner,
/// size and mtime alike.
fn same_file(a: &FileAttributes, b: &FileAttributes) -> bool {
    a.permissions == b.permissions
        && a.uid == b.uid
        && a.gid == b.gid
        && a.size == b.size
        && a.mtime == b.mtime
}

/// The refusal of a file that was swapped (for a symlink, or another
/// file) between the check and the open.
fn changed(requested: &str) -> Failure {
    Failure::refused(
        ErrorKind::Denied,
        format!(
            "{requested}: changed on the host between the path check and the open \
             (a symlink in its place?); nothing was read"
        ),
    )
}

/// Whether `requested`, with `.` and `..` taken lexically, falls in the
/// scope: only to choose between "no such file" and the refusal when the
/// host cannot resolve it, never to admit anything.
fn lexically_allowed(scope: &PathScope, requested: &str) -> bool {
    normalize(requested).is_some_and(|path| scope.allows_dir(&path))
}

/// [`lexically_allowed`] for a path that may be relative: from the SFTP
/// server's directory (the login or sudo user's home).
async fn lexically_allowed_on(sftp: &Sftp, scope: &PathScope, requested: &str) -> bool {
    if requested.starts_with('/') {
        return lexically_allowed(scope, requested);
    }
    match real_path(sftp, ".").await {
        Ok(Some(base)) => lexically_allowed(scope, &names::join(&base, requested)),
        _ => false,
    }
}

/// `path` made absolute with `.` and `..` taken lexically; `None` when it
/// is relative (it depends on the server's directory).
pub(super) fn normalize(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether a symlink created at `real_dir/…` with `target` points, as
/// written, inside the scope: a link out of it would hand whoever follows
/// it later (a web server, the next download) a path outside.
pub(super) fn link_allowed(scope: &PathScope, real_dir: &str, target: &str) -> bool {
    let joined = if target.starts_with('/') {
        target.to_owned()
    } else {
        names::join(real_dir, target)
    };
    normalize(&joined).is_some_and(|path| scope.allows_dir(&path))
}

/// The type bits of `attrs`.
fn kind(attrs: &FileAttributes) -> u32 {
    attrs.permissions.unwrap_or(0) & S_IFMT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(list: &str) -> PathScope {
        match PathScope::parse(list) {
            Ok(scope) => scope,
            Err(e) => panic!("{list}: {e}"),
        }
    }

    #[test]
    fn a_star_stays_in_one_component_and_two_span_them() {
        let s = scope("/srv/reports/**, /var/log/*.log,/home/?/x");
        assert!(s.allows("/srv/reports/a"));
        assert!(s.allows("/srv/reports/a/b/c.csv"));
        assert!(s.allows("/srv/reports/.hidden"));
        assert!(!s.allows("/srv/reports"));
        assert!(!s.allows("/srv/reportsX/a"));
        assert!(!s.allows("/srv/other/a"));
        assert!(s.allows("/var/log/app.log"));
        assert!(!s.allows("/var/log/nginx/access.log"));
        assert!(!s.allows("/var/log/app.log.1"));
        assert!(s.allows("/home/a/x"));
        assert!(!s.allows("/home/ab/x"));
        assert!(!s.allows("/home/a/b/x"));
        assert!(!s.allows("relative/srv/reports/a"));
        assert!(!s.allows("srv/reports/a"));
    }

    #[test]
    fn the_directory_of_a_recursive_pattern_is_a_directory_only() {
        let s = scope("/srv/reports/**,/var/log/*.log");
        assert!(s.allows_dir("/srv/reports"));
        assert!(!s.allows("/srv/reports"));
        assert!(s.allows_dir("/srv/reports/sub"));
        assert!(!s.allows_dir("/srv"));
        assert!(!s.allows_dir("/var/log"));
        assert!(!s.allows_dir("/"));
        let all = PathScope::everything();
        assert!(all.allows("/etc/shadow"));
        assert!(all.allows_dir("/"));
        assert!(all.allows("/a/b/c"));
        assert!(!all.allows("/"));
    }

    #[test]
    fn bad_patterns_are_refused_naming_them() {
        for (list, why) in [
            ("", "empty"),
            ("/srv/**,", "empty"),
            ("srv/**", "absolute"),
            ("~/x/**", "absolute"),
            ("/srv/../etc/**", ".."),
            ("/srv/./x", "`.`"),
            ("/srv//x", "empty component"),
            ("/srv/", "ends in"),
            ("/", "root"),
            ("/srv/\0/**", "NUL"),
            ("/srv/[a", "unclosed"),
            ("/srv/a**", "whole component"),
        ] {
            match PathScope::parse(list) {
                Ok(s) => panic!("{list:?} parsed as {s}"),
                Err(e) => assert!(
                    e.to_string().to_lowercase().contains(&why.to_lowercase()),
                    "{list:?}: {e} (wanted {why})"
                ),
            }
        }
    }

    #[test]
    fn a_scope_round_trips_as_text_and_json() {
        let s = scope(" /srv/reports/** , /tmp/**");
        assert_eq!(s.to_string(), "/srv/reports/**,/tmp/**");
        assert_eq!(scope(&s.to_string()), s);
        let json = serde_json::to_string(&s).unwrap_or_default();
        assert_eq!(json, "\"/srv/reports/**,/tmp/**\"");
        let back: PathScope = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, s);
        assert!(back.allows("/tmp/x"));
        assert!(serde_json::from_str::<PathScope>("\"tmp/**\"").is_err());
        assert_eq!(s.patterns(), ["/srv/reports/**", "/tmp/**"]);
        assert_eq!(
            "/x/*".parse::<PathScope>().map(|s| s.to_string()),
            Ok("/x/*".to_owned())
        );
    }

    #[test]
    fn lexical_paths_only_choose_the_message() {
        assert_eq!(
            normalize("/srv/reports/../../etc/shadow").as_deref(),
            Some("/etc/shadow")
        );
        assert_eq!(normalize("/../..").as_deref(), Some("/"));
        assert_eq!(normalize("/a/./b/").as_deref(), Some("/a/b"));
        assert_eq!(normalize("a/b"), None);
        let s = scope("/srv/reports/**");
        assert!(!lexically_allowed(&s, "/srv/reports/../../etc/shadow"));
        assert!(lexically_allowed(&s, "/srv/reports/x/../y"));
        assert!(!lexically_allowed(&s, "reports/y"));
    }

    #[test]
    fn links_made_inside_must_point_inside() {
        let s = scope("/srv/reports/**");
        assert!(link_allowed(&s, "/srv/reports/a", "b"));
        assert!(link_allowed(&s, "/srv/reports/a", "../b/c"));
        assert!(link_allowed(&s, "/srv/reports/a", ".."));
        assert!(link_allowed(&s, "/srv/reports/a", "/srv/reports/x"));
        assert!(!link_allowed(&s, "/srv/reports/a", "../../etc"));
        assert!(!link_allowed(&s, "/srv/reports", "/"));
        assert!(!link_allowed(&s, "/srv/reports", "/etc/shadow"));
    }

    #[test]
    fn refusals_name_the_request_and_the_mode() {
        let f = outside("/srv/reports/x", "read");
        assert_eq!(f.kind, ErrorKind::Denied);
        assert!(
            f.message.starts_with("/srv/reports/x: outside"),
            "{}",
            f.message
        );
        let f = special_mode("a.sh", 0o104_755);
        assert!(
            f.message.contains("4755") && f.message.contains("4000"),
            "{}",
            f.message
        );
    }
}
