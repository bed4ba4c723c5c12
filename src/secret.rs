//! [`Secret`]: a token, key or password read from the environment — one type for all of
//! them (CRM tokens, webhook header values, identity and channel secrets), so none is ever
//! printed by `Debug` or read from the environment in a second way.
//!
//! Must not: log, or put a value into an error.

/// A secret string: `Debug` shows that it is set, never what it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(REDACTED)")
    }
}

impl Secret {
    /// The value of environment variable `var`. `Err` reads "`VAR`, which is not set …"
    /// (or empty, when `allow_empty` is false), never a value, for the caller to put after
    /// the setting that named it.
    pub fn from_env(var: &str, allow_empty: bool) -> Result<Secret, String> {
        match std::env::var(var) {
            Ok(v) if allow_empty || !v.is_empty() => Ok(Secret(v)),
            Ok(_) => Err(format!("`{var}`, which is empty")),
            Err(_) => Err(format!("`{var}`, which is not set (or not UTF-8)")),
        }
    }
}
