//! DSL string literals: reading escapes, writing them back, and mapping offsets inside a
//! string's value to offsets in its source (so a template error points at the exact brace).
//!
//! Owns only the escape rules; knows nothing about cards or the grammar.

/// Why a string literal could not be read: byte range inside the literal and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EscapeError {
    /// Offset of the backslash inside the literal (quotes included).
    pub start: usize,
    /// One past the end of the bad escape inside the literal.
    pub end: usize,
    /// What is wrong, in English.
    pub message: String,
}

/// Reads a literal such as `"a \"b\" \u{1F600}"` (quotes included) into its value.
pub(crate) fn unescape(literal: &str) -> Result<String, EscapeError> {
    let inner = literal
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(literal);
    let base = usize::from(literal.starts_with('"'));
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.char_indices();
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let bad = |end: usize, message: String| EscapeError {
            start: base + at,
            end: base + end,
            message,
        };
        match chars.next() {
            Some((_, '"')) => out.push('"'),
            Some((_, '\\')) => out.push('\\'),
            Some((_, 'n')) => out.push('\n'),
            Some((_, 't')) => out.push('\t'),
            Some((_, 'u')) => {
                let rest = &inner[at + 2..];
                let close = rest.find('}');
                let ok = rest.starts_with('{')
                    && close.is_some_and(|c| (2..=7).contains(&c))
                    && rest[1..close.unwrap_or(1)]
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit());
                if !ok {
                    let end = at + 2 + close.map_or(0, |c| c + 1).min(rest.len());
                    return Err(bad(
                        end.max(at + 2),
                        "a `\\u` escape needs 1 to 6 hex digits in braces, like `\\u{1F600}`"
                            .into(),
                    ));
                }
                let close = close.unwrap_or(1);
                let hex = &rest[1..close];
                let end = at + 2 + close + 1;
                let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                match ch {
                    Some(ch) => out.push(ch),
                    None => {
                        return Err(bad(
                            end,
                            format!("`\\u{{{hex}}}` is not a Unicode character"),
                        ));
                    }
                }
                // Skip the braces and digits.
                for _ in 0..close + 1 {
                    chars.next();
                }
            }
            Some((i, other)) => {
                return Err(bad(
                    i + other.len_utf8(),
                    format!(
                        "`\\{other}` is not an escape; use `\\\"`, `\\\\`, `\\n`, `\\t` or `\\u{{...}}`"
                    ),
                ));
            }
            None => return Err(bad(at + 1, "a string cannot end with `\\`".into())),
        }
    }
    Ok(out)
}

/// Writes `value` as a literal that [`unescape`] reads back exactly.
pub(crate) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The offset inside `literal` (quotes included) where byte `offset` of its value was
/// written. Only called on literals that [`unescape`] accepted.
pub(crate) fn source_offset(literal: &str, offset: usize) -> usize {
    let mut value_len = 0;
    let mut i = 1; // after the opening quote
    let bytes = literal.as_bytes();
    while i < literal.len().saturating_sub(1) {
        if value_len >= offset {
            return i;
        }
        if bytes[i] == b'\\' {
            let (width, len) = match bytes.get(i + 1) {
                Some(b'u') => {
                    let close = literal[i..].find('}').map_or(2, |c| c + 1);
                    let hex = literal.get(i + 3..i + close - 1).unwrap_or("");
                    let len = u32::from_str_radix(hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .map_or(1, char::len_utf8);
                    (close, len)
                }
                _ => (2, 1),
            };
            i += width;
            value_len += len;
        } else {
            let len = literal[i..].chars().next().map_or(1, char::len_utf8);
            i += len;
            value_len += len;
        }
    }
    i.min(literal.len())
}

/// Whether `s` can be written without quotes where the grammar takes a word (a language tag).
pub(crate) fn is_word(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !s.contains("->")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for s in [
            "",
            "a\"b\\c\nd\te",
            "caf\u{e9} \u{1F600}",
            "\u{0}\r\u{7f}",
            "{{x}}",
        ] {
            assert_eq!(unescape(&escape(s)).unwrap(), s, "{s:?}");
        }
        assert_eq!(unescape(r#""\u{1F600}x""#).unwrap(), "\u{1F600}x");
    }

    #[test]
    fn bad_escapes_are_located() {
        let e = unescape(r#""ab\qc""#).unwrap_err();
        assert_eq!((e.start, e.end), (3, 5));
        assert!(unescape(r#""\u{D800}""#).is_err());
        assert!(unescape(r#""\u{}""#).is_err());
        assert!(unescape(r#""\u{1234567}""#).is_err());
        assert!(unescape(r#""\u""#).is_err());
    }

    #[test]
    fn maps_value_offsets_to_source() {
        let lit = r#""a\"b{x""#;
        // value `a"b{x`: the `{` is byte 3 of the value, byte 5 of the literal
        assert_eq!(source_offset(lit, 3), 5);
        let lit = r#""\u{1F600}{""#;
        assert_eq!(source_offset(lit, 4), 10);
    }
}
