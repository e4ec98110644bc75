//! Argv templates of actions: a word such as `--since={days}d` is text
//! and `{param}` placeholders; `{{` and `}}` are literal braces. A
//! placeholder fills part of one word (or the whole word), never more:
//! the words reach the host as argv, not through a shell. No I/O.

/// One piece of a template word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text (braces already unescaped).
    Text(String),
    /// A placeholder: the param's name.
    Param(String),
}

/// One word of an action's `command`, `args` or an `env` value, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    /// Its pieces, in order; text pieces are never empty.
    pub pieces: Vec<Piece>,
}

/// Whether `name` can name a param (and so a placeholder):
/// `[a-z][a-z0-9_]{0,63}`.
pub fn is_param_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 64
}

impl Template {
    /// Parses `word`.
    ///
    /// # Errors
    ///
    /// A `{` that opens no `{name}` (write `{{` for a brace), a `}` alone
    /// (write `}}`), a placeholder that is not closed or whose name is not
    /// a param name.
    pub fn parse(word: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = word.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => {
                    return Err(
                        "a `}` closes no placeholder: write `}}` for a literal brace".to_owned(),
                    );
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "the placeholder `{{{name}` is not closed: write `{{name}}` for a param, `{{{{` for a literal brace"
                        ));
                    }
                    if !is_param_name(&name) {
                        return Err(format!(
                            "`{{{name}}}` is not a placeholder: a param name is lower-case letters, digits and `_`, starting with a letter (write `{{{{` and `}}}}` for literal braces)"
                        ));
                    }
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Param(name));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The names of the params it uses, in order (repeats kept).
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Param(name) => Some(name.as_str()),
            Piece::Text(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(word: &str) -> Vec<Piece> {
        Template::parse(word)
            .unwrap_or_else(|e| panic!("{word}: {e}"))
            .pieces
    }

    #[test]
    fn words_are_text_and_placeholders() {
        let text = |t: &str| Piece::Text(t.to_owned());
        let param = |p: &str| Piece::Param(p.to_owned());
        assert_eq!(parsed("systemctl"), [text("systemctl")]);
        assert_eq!(parsed("{unit}"), [param("unit")]);
        assert_eq!(
            parsed("--since={days}d"),
            [text("--since="), param("days"), text("d")]
        );
        assert_eq!(parsed("{a}{b_2}"), [param("a"), param("b_2")]);
        assert_eq!(parsed("{{json}}"), [text("{json}")]);
        assert_eq!(parsed("x{{{a}}}y"), [text("x{"), param("a"), text("}y")]);
        assert_eq!(parsed(""), []);
        let word = Template::parse("{a}-{b}-{a}").unwrap_or_default();
        assert_eq!(word.params().collect::<Vec<_>>(), ["a", "b", "a"]);
    }

    #[test]
    fn bad_braces_and_names_are_refused() {
        for word in [
            "{", "}", "a}b", "{a", "{}", "{A}", "{1a}", "{a-b}", "{a b}", "{{a}", "${a",
        ] {
            assert!(Template::parse(word).is_err(), "{word}");
        }
        let long = format!("{{{}}}", "a".repeat(65));
        assert!(Template::parse(&long).is_err());
        assert!(Template::parse(&format!("{{{}}}", "a".repeat(64))).is_ok());
    }
}
