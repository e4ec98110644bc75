//! The lexer: OpenSSH's `strdelim` (the keyword) and `argv_split` (the
//! rest of the line).

use super::error::Refusal;

/// Splits a line into its keyword and the rest (after blanks or one `=`);
/// `None` for a blank line or a comment. The rest is empty when the
/// keyword has no argument.
pub(super) fn split_keyword(raw: &str) -> Option<(&str, &str)> {
    const BLANKS: [char; 4] = [' ', '\t', '\r', '\n'];
    let line = raw
        .trim_end_matches([' ', '\t', '\r', '\n', '\x0c'])
        .trim_start_matches(BLANKS);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find([' ', '\t', '\r', '\n', '='])
        .unwrap_or(line.len());
    let (word, rest) = line.split_at(end);
    // One `=` may separate the keyword from its value, with blanks around.
    let rest = match rest.strip_prefix('=') {
        Some(rest) => rest.trim_start_matches(BLANKS),
        None => {
            let rest = rest.trim_start_matches(BLANKS);
            rest.strip_prefix('=')
                .unwrap_or(rest)
                .trim_start_matches(BLANKS)
        }
    };
    Some((word, rest))
}

/// Splits the arguments of a line: blanks separate; `"` and `'` quote; `\`
/// escapes a quote, a `\`, or (outside quotes) a blank; a `#` starting an
/// argument ends the line.
pub(super) fn split_args(rest: &str) -> Result<Vec<String>, Refusal> {
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(args),
            Some(_) => {}
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (c, quote) {
                ('\\', _) => match chars.peek() {
                    Some(&next)
                        if next == '\''
                            || next == '"'
                            || next == '\\'
                            || (quote.is_none() && next == ' ') =>
                    {
                        arg.push(next);
                        chars.next();
                    }
                    // Not an escape: the `\` stays.
                    _ => arg.push('\\'),
                },
                (' ' | '\t', None) => break,
                ('"' | '\'', None) => quote = Some(c),
                (c, Some(q)) if c == q => quote = None,
                (c, _) => arg.push(c),
            }
        }
        if quote.is_some() {
            return Err(Refusal::invalid("invalid quotes: a quote is not closed"));
        }
        args.push(arg);
    }
}
