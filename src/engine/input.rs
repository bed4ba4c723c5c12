//! Validation of typed input (`ask` cards). Hand-written checks rather than regexes: they
//! run on every visitor turn and must never panic on any text.

use super::compile::Expect;

/// Whether the trimmed `input` is valid for `expect`.
pub(crate) fn valid(expect: &Expect, input: &str) -> bool {
    match expect {
        Expect::Text => !input.is_empty(),
        Expect::Email => is_email(input),
        Expect::Phone => is_phone(input),
        Expect::Number => parse_number(input).is_some(),
        Expect::Pattern(p) => p.is_match(input),
    }
}

/// The re-prompt used when an `ask` card has none.
pub(crate) fn default_reprompt(expect: &Expect) -> &'static str {
    match expect {
        Expect::Text => "Please type an answer.",
        Expect::Email => "Please enter a valid email address.",
        Expect::Phone => "Please enter a valid phone number.",
        Expect::Number => "Please enter a number.",
        Expect::Pattern(_) => "Sorry, that doesn't look right. Please try again.",
    }
}

/// `^[^\s@]+@[^\s@]+\.[^\s@]+$`: one `@`, no whitespace, something before the `@`, and a
/// dot in the domain with something on both sides.
pub fn is_email(s: &str) -> bool {
    // Byte scan for ASCII text (what visitors type almost always); `char::is_whitespace` is
    // true for exactly these ASCII bytes (tab, line feed, vertical tab, form feed, carriage
    // return, space). Other text takes the Unicode check.
    let space = if s.is_ascii() {
        s.bytes().any(|b| matches!(b, b'\t'..=b'\r' | b' '))
    } else {
        s.chars().any(char::is_whitespace)
    };
    if space {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') {
        return false;
    }
    // Some dot with at least one character before and after it.
    // (`.` is one byte in UTF-8 and never part of another character's encoding.)
    domain
        .bytes()
        .enumerate()
        .any(|(i, b)| b == b'.' && i > 0 && i + 1 < domain.len())
}

/// Digits with an optional leading `+`, spaces, dots, dashes and parentheses; 6 to 20 digits.
pub fn is_phone(s: &str) -> bool {
    let body = s.strip_prefix('+').unwrap_or(s);
    let mut digits = 0;
    for c in body.chars() {
        match c {
            '0'..='9' => digits += 1,
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return false,
        }
    }
    (6..=20).contains(&digits)
}

/// A decimal number: optional sign, digits, optional fraction (`12`, `-3.5`, `.5`, `4.`).
/// No exponents, no `inf`/`NaN`, at most 40 characters.
pub fn parse_number(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() > 40 {
        return None;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "ann@example.com",
            "a@b.c",
            "x.y+z@sub.example.co.uk",
            "é@é.é",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "",
            "not-an-email",
            "carol at example",
            "a@b",
            "@b.c",
            "a@.c",
            "a@b.",
            "a@b@c.d",
            "a b@c.d",
            "a@b.c ",
            "a\u{b}b@c.d",
            "a\u{c}b@c.d",
            "a\u{a0}b@c.d",
            "é\u{2003}@é.é",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        // The regex of the spec agrees on these.
        let re = regex::Regex::new(r"^[^\s@]+@[^\s@]+\.[^\s@]+$").unwrap();
        for s in [
            "a@b.c", "a@b..c", "a@.b.c", "a@b.c.", "a.@b.c", "@", "a@b.c@d",
        ] {
            assert_eq!(is_email(s), re.is_match(s), "{s}");
        }
    }

    #[test]
    fn phones_and_numbers() {
        assert!(is_phone("+49 (30) 123-45.67"));
        assert!(is_phone("123456"));
        assert!(!is_phone("12345"));
        assert!(!is_phone("123456789012345678901"));
        assert!(!is_phone("12+3456"));
        assert!(!is_phone("call me"));
        assert_eq!(parse_number("12"), Some(12.0));
        assert_eq!(parse_number(" -3.5 "), Some(-3.5));
        assert_eq!(parse_number(".5"), Some(0.5));
        assert_eq!(parse_number("4."), Some(4.0));
        for bad in ["", ".", "-", "1e5", "inf", "NaN", "1,5", "1.2.3", "++1"] {
            assert_eq!(parse_number(bad), None, "{bad}");
        }
    }
}
