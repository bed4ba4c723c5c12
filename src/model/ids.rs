//! Identifiers: card ids and variable names, checked once when they are made.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The string is empty.
    #[error("an identifier cannot be empty")]
    Empty,
    /// The string starts with something other than a letter or `_`.
    #[error("`{0}` must start with a letter or `_`")]
    BadStart(String),
    /// The string contains a character outside `[A-Za-z0-9_-]`.
    #[error("`{0}` may only contain letters, digits, `_` and `-`")]
    BadChar(String),
}

fn check_ident(s: &str, allow_dash: bool) -> Result<(), IdError> {
    let mut chars = s.chars();
    match chars.next() {
        None => return Err(IdError::Empty),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        Some(_) => return Err(IdError::BadStart(s.to_owned())),
    }
    if chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (allow_dash && c == '-')) {
        Ok(())
    } else {
        Err(IdError::BadChar(s.to_owned()))
    }
}

macro_rules! ident_type {
    ($(#[$doc:meta])* $name:ident, dash = $dash:expr $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Makes an identifier, or says why the text is not one.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_ident(&s, $dash)?;
                Ok(Self(s))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

ident_type!(
    /// The id of a card, unique within a playbook (`welcome`, `ask-email`).
    CardId,
    dash = true,

);

ident_type!(
    /// The name of a conversation variable (`email`, `company_size`).
    VarName,
    dash = false,

);

/// Variables the engine provides in every conversation; a card may read them but never save
/// to them.
pub const SYSTEM_VARIABLES: &[&str] = &[
    "conversation_id",
    "channel",
    "page_url",
    "started_at",
    "bot",
    "agent",
];

impl VarName {
    /// Whether this is one of [`SYSTEM_VARIABLES`].
    pub fn is_system(&self) -> bool {
        SYSTEM_VARIABLES.contains(&self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(CardId::new("ask-email").is_ok());
        assert!(VarName::new("ask-email").is_err());
        assert_eq!(CardId::new(""), Err(IdError::Empty));
        assert!(matches!(CardId::new("1st"), Err(IdError::BadStart(_))));
        assert!(serde_json::from_str::<CardId>("\"a b\"").is_err());
    }
}
