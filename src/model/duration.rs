//! Durations written as `30s`, `2m`, `1h30m`, `2d`.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The longest duration a playbook may write (a year); longer is surely a typo.
pub const MAX_SECONDS: u32 = 365 * 24 * 3600;

/// A positive span of time with one-second resolution.
///
/// Zero is not a duration here: a wait of zero or an idle timeout of zero is always a mistake,
/// so it cannot be represented.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(try_from = "String", into = "String")]
pub struct Duration(NonZeroU32);

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing, or not a number followed by a unit.
    #[error(
        "`{0}` is not a duration; write a number and a unit, like `30s`, `2m`, `1h30m` or `2d`"
    )]
    Malformed(String),
    /// A unit other than `d`, `h`, `m`, `s`.
    #[error("`{0}` has an unknown unit; use `d`, `h`, `m` or `s`")]
    UnknownUnit(String),
    /// Adds up to zero.
    #[error("`{0}` is zero; a duration must be at least `1s`")]
    Zero(String),
    /// Longer than [`MAX_SECONDS`].
    #[error("`{0}` is longer than a year")]
    TooLong(String),
}

impl Duration {
    /// A duration of `secs` seconds, if it is positive and at most a year.
    pub fn from_secs(secs: u32) -> Option<Self> {
        if secs > MAX_SECONDS {
            return None;
        }
        NonZeroU32::new(secs).map(Self)
    }

    /// The length in seconds.
    pub fn as_secs(self) -> u32 {
        self.0.get()
    }

    /// The length in milliseconds, the unit of the engine's clock.
    pub fn as_millis(self) -> u64 {
        u64::from(self.0.get()) * 1000
    }
}

impl FromStr for Duration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, DurationError> {
        let malformed = || DurationError::Malformed(s.to_owned());
        if s.is_empty() {
            return Err(malformed());
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(malformed());
            }
            // More than 10 digits cannot fit in a year of seconds anyway.
            if digits > 10 {
                return Err(DurationError::TooLong(s.to_owned()));
            }
            let n: u64 = rest[..digits].parse().map_err(|_| malformed())?;
            rest = &rest[digits..];
            let unit = rest.chars().next().ok_or_else(malformed)?;
            let scale = match unit {
                'd' => 86_400,
                'h' => 3_600,
                'm' => 60,
                's' => 1,
                c if c.is_alphabetic() => return Err(DurationError::UnknownUnit(s.to_owned())),
                _ => return Err(malformed()),
            };
            rest = &rest[unit.len_utf8()..];
            total = total.saturating_add(n.saturating_mul(scale));
        }
        if total == 0 {
            return Err(DurationError::Zero(s.to_owned()));
        }
        if total > u64::from(MAX_SECONDS) {
            return Err(DurationError::TooLong(s.to_owned()));
        }
        Ok(Self::from_secs(total as u32).expect("checked range"))
    }
}

impl TryFrom<String> for Duration {
    type Error = DurationError;
    fn try_from(s: String) -> Result<Self, DurationError> {
        s.parse()
    }
}

impl From<Duration> for String {
    fn from(d: Duration) -> String {
        d.to_string()
    }
}

impl fmt::Display for Duration {
    /// The canonical spelling: largest units first, zero parts left out (`90s` → `1m30s`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut secs = self.as_secs();
        for (unit, scale) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
            if secs >= scale {
                write!(f, "{}{unit}", secs / scale)?;
                secs %= scale;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let d: Duration = "90s".parse().unwrap();
        assert_eq!(d.as_secs(), 90);
        assert_eq!(d.to_string(), "1m30s");
        assert_eq!("1h30m".parse::<Duration>().unwrap().as_secs(), 5400);
        assert_eq!("2d".parse::<Duration>().unwrap().to_string(), "2d");
    }

    #[test]
    fn rejects_bad_durations() {
        assert!(matches!(
            "0s".parse::<Duration>(),
            Err(DurationError::Zero(_))
        ));
        assert!(matches!(
            "2x".parse::<Duration>(),
            Err(DurationError::UnknownUnit(_))
        ));
        assert!(matches!(
            "m".parse::<Duration>(),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            "5".parse::<Duration>(),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            "400d".parse::<Duration>(),
            Err(DurationError::TooLong(_))
        ));
        assert!(matches!(
            "99999999999999999999s".parse::<Duration>(),
            Err(DurationError::TooLong(_))
        ));
    }
}
