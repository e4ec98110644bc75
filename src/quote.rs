//! POSIX shell quoting: the one place where an argv becomes a shell string.
//!
//! sshd hands the command of an `exec` request to the login shell as
//! `$SHELL -c STRING`, so an argv has to be turned into one string that the
//! remote shell splits back into exactly the same words. Every argument is
//! wrapped in single quotes unless it consists only of characters that no
//! POSIX shell treats specially; a single quote inside is written as `'\''`.
//!
//! **Invariant:** nothing else in remex builds a remote command line from
//! user-supplied words; callers pass argv, or opt into a raw shell string.

/// Quotes one word for a POSIX shell (sh, dash, bash, zsh, busybox ash).
///
/// ```
/// assert_eq!(remex::quote::quote("ls"), "ls");
/// assert_eq!(remex::quote::quote("a b"), "'a b'");
/// assert_eq!(remex::quote::quote("it's"), r"'it'\''s'");
/// assert_eq!(remex::quote::quote(""), "''");
/// ```
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    // `=` is only special in the first word before a command name
    // (`VAR=value cmd`), so a leading word containing `=` gets quoted.
    if plain && !word.contains('=') {
        return word.to_owned();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('\'');
    for c in word.chars() {
        if c == '\'' {
            quoted.push_str(r"'\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// Quotes an argv into one shell string whose words are exactly `argv`.
pub fn join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|word| quote(word.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `printf '%s\0' WORDS` through a real `sh -c` and returns the words
    /// it received: the round trip a remote shell performs.
    fn round_trip(argv: &[&str]) -> Vec<String> {
        let script = format!("printf '%s\\0' {}", join(argv));
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap_or_else(|e| panic!("running sh: {e}"));
        assert!(out.status.success(), "sh failed for {script:?}");
        let text = String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("utf-8: {e}"));
        let mut words: Vec<String> = text.split('\0').map(str::to_owned).collect();
        words.pop(); // after the last NUL
        words
    }

    #[test]
    fn plain_words_stay_bare() {
        assert_eq!(join(&["uname", "-a"]), "uname -a");
        assert_eq!(quote("/usr/bin/env"), "/usr/bin/env");
    }

    #[test]
    fn special_words_are_quoted() {
        assert_eq!(quote("$(id)"), "'$(id)'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("X=1"), "'X=1'");
        assert_eq!(quote("*"), "'*'");
    }

    #[test]
    fn every_tricky_word_survives_a_real_shell() {
        let cases: &[&str] = &[
            "",
            " ",
            "two words",
            "it's",
            "''",
            "\"double\"",
            "$(touch /tmp/remex-pwned)",
            "`id`",
            "a;b",
            "a|b",
            "a&&b",
            "*",
            "?",
            "~",
            "$HOME",
            "line\nbreak",
            "tab\there",
            "back\\slash",
            "héllo wörld ✓",
            "!event",
            "-n",
            "X=1",
            "{a,b}",
            "#comment",
        ];
        assert_eq!(round_trip(cases), cases);
    }
}
