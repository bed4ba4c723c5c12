//! Money as an exact decimal: what the visitor or the agent typed ("5000", "49.90"), kept as
//! digits so a CRM never receives `5000.0` or `49.899999…`.
//!
//! In a record's JSON it is a string (`"value": "5000"`); read back it accepts a string or a
//! number, so records stored before (as `5000.0`) still load. Connectors that must send a
//! JSON number (Pipedrive's lead `value.amount`) use [`Money::to_json_number`].
//!
//! Must not: do arithmetic (nothing here adds money), or accept anything but plain decimal
//! digits with an optional sign and one `.`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most digits a value may have: enough for any price, few enough that a JSON number
/// of it reads back exactly as a 64-bit float (15 significant digits).
pub const MAX_DIGITS: usize = 15;

/// An exact decimal amount in canonical form: no leading zeros, no trailing fractional
/// zeros, no `+`, `-0` is `0` (`"5000"`, `"49.9"`, `"-3.25"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Money(String);

impl Money {
    /// Reads `[+-]digits[.digits]` (surrounding blanks ignored); `None` for anything else
    /// or more than [`MAX_DIGITS`] significant digits.
    pub fn parse(s: &str) -> Option<Money> {
        Self::parse_upto(s, MAX_DIGITS)
    }

    fn parse_upto(s: &str, max_digits: usize) -> Option<Money> {
        let s = s.trim();
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        if int.len() + frac.len() > max_digits {
            return None;
        }
        let mut out = String::with_capacity(int.len() + frac.len() + 2);
        if neg && !(int.is_empty() && frac.is_empty()) {
            out.push('-');
        }
        out.push_str(if int.is_empty() { "0" } else { int });
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        Some(Money(out))
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// As a JSON number whose text is exactly this decimal: an integer when there is no
    /// fraction; otherwise the float whose shortest form (what serde_json writes) is these
    /// digits, which holds for up to [`MAX_DIGITS`] significant digits.
    pub fn to_json_number(&self) -> serde_json::Number {
        if let Ok(i) = self.0.parse::<i64>() {
            return i.into();
        }
        self.0
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            // Parsed by `parse`: always a finite number.
            .unwrap_or_else(|| 0.into())
    }

    /// From a float read from old data or a JSON number: its shortest decimal form.
    pub fn from_f64(v: f64) -> Option<Money> {
        if !v.is_finite() {
            return None;
        }
        // `{}` of an f64 never uses an exponent and prints the shortest round-trip digits.
        // Old records may hold more digits than new input may (up to the engine's 40
        // characters): they are kept as they were.
        Money::parse_upto(&format!("{v}"), 400)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount such as \"5000\" or 49.90")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Money, E> {
                Money::parse(v).ok_or_else(|| E::custom(format!("`{v}` is not a decimal amount")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Money, E> {
                Money::parse(&v.to_string()).ok_or_else(|| E::custom("amount too large"))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Money, E> {
                Money::parse(&v.to_string()).ok_or_else(|| E::custom("amount too large"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Money, E> {
                Money::from_f64(v).ok_or_else(|| E::custom("not a finite amount"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_exact_and_refusing() {
        for (input, want) in [
            ("5000", "5000"),
            ("5000.0", "5000"),
            (" 049.90 ", "49.9"),
            ("+1.25", "1.25"),
            ("-0.00", "0"),
            (".5", "0.5"),
            ("-12.340", "-12.34"),
        ] {
            assert_eq!(Money::parse(input).unwrap().as_str(), want, "{input}");
        }
        for bad in [
            "",
            ".",
            "1e3",
            "1,000",
            "NaN",
            "--1",
            "1.2.3",
            "1234567890123456",
        ] {
            assert!(Money::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(Money::from_f64(5000.0).unwrap().as_str(), "5000");
        assert_eq!(
            Money::from_f64(0.1 + 0.2).unwrap().as_str(),
            "0.30000000000000004"
        );
        assert_eq!(Money::from_f64(f64::NAN), None);
    }

    #[test]
    fn json_is_a_string_and_reads_old_numbers() {
        let m = Money::parse("49.90").unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"49.9\"");
        let old: Money = serde_json::from_str("12000.0").unwrap();
        assert_eq!(old.as_str(), "12000");
        let int: Money = serde_json::from_str("7").unwrap();
        assert_eq!(int.as_str(), "7");
        assert!(serde_json::from_str::<Money>("\"x\"").is_err());
        // The wire number's text is the decimal itself.
        assert_eq!(
            serde_json::to_string(&Money::parse("5000").unwrap().to_json_number()).unwrap(),
            "5000"
        );
        assert_eq!(
            serde_json::to_string(&Money::parse("19.99").unwrap().to_json_number()).unwrap(),
            "19.99"
        );
    }
}
