//! Identified visitors: the embedding site tells the widget who the visitor is in a token it
//! signed with the secret it shares with this server (`[identity]` in the config), like the
//! identity verification of Intercom and HubSpot.
//!
//! The token is `PAYLOAD.SIGNATURE`: `PAYLOAD` is the base64url (no padding) of a JSON object
//! with any of `email`, `name` and `owner` (the visitor's CRM owner, for `route owner`);
//! `SIGNATURE` is the lowercase hex HMAC-SHA256 of the `PAYLOAD` text under the secret. A
//! site computes it on its server, e.g. in Python:
//! `payload = urlsafe_b64encode(json.dumps(who).encode()).rstrip(b"=")`,
//! `sig = hmac.new(secret, payload, sha256).hexdigest()`.
//!
//! An unsigned, badly signed or malformed token is ignored (the visitor is anonymous): a
//! visitor must not be able to claim to be someone else.
//!
//! Must not: log the secret or a token.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::runtime::Visitor;

/// Who a valid token says the visitor is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identified {
    /// Email and name, for the playbook's variables.
    pub visitor: Visitor,
    /// The visitor's CRM owner (an agent's name), for `route owner`.
    pub owner: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
}

/// The longest field a token may carry (bytes).
const MAX_FIELD: usize = 256;

/// Why a token was not accepted (logged at debug level, never shown to the visitor).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Not `PAYLOAD.SIGNATURE`.
    #[error("not PAYLOAD.SIGNATURE")]
    Shape,
    /// The signature does not match.
    #[error("bad signature")]
    Signature,
    /// The payload is not base64url JSON with email, name and owner.
    #[error("unreadable payload")]
    Payload,
}

/// Checks a token against the secret; who it says the visitor is when it is genuine.
pub fn verify(secret: &[u8], token: &str) -> Result<Identified, Rejected> {
    let (payload, sig) = token.rsplit_once('.').ok_or(Rejected::Shape)?;
    let sig = hex_bytes(sig)
        .filter(|b| b.len() == 32)
        .ok_or(Rejected::Signature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Rejected::Signature)?;
    mac.update(payload.as_bytes());
    // Constant time: the comparison leaks nothing about how much of a guess was right.
    mac.verify_slice(&sig).map_err(|_| Rejected::Signature)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| Rejected::Payload)?;
    let p: Payload = serde_json::from_slice(&json).map_err(|_| Rejected::Payload)?;
    let clean = |v: Option<String>| {
        v.map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty() && s.len() <= MAX_FIELD)
    };
    Ok(Identified {
        visitor: Visitor {
            email: clean(p.email),
            name: clean(p.name),
        },
        owner: clean(p.owner),
    })
}

/// Signs a payload as a site would (tests and the README's example).
pub fn sign(secret: &[u8], json: &serde_json::Value) -> String {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{payload}.{sig}")
}

/// The bytes of a hex string (either case); `None` for an odd length or a non-hex digit.
pub(crate) fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef-site-secret";

    #[test]
    fn a_signed_token_says_who_the_visitor_is() {
        let t = sign(
            SECRET,
            &json!({"email": "eve@example.com", "name": " Eve ", "owner": "ana"}),
        );
        let who = verify(SECRET, &t).unwrap();
        assert_eq!(who.visitor.email.as_deref(), Some("eve@example.com"));
        assert_eq!(who.visitor.name.as_deref(), Some("Eve"));
        assert_eq!(who.owner.as_deref(), Some("ana"));
    }

    #[test]
    fn anything_else_is_refused() {
        let t = sign(SECRET, &json!({"email": "eve@example.com"}));
        assert_eq!(verify(b"another-secret-0123", &t), Err(Rejected::Signature));
        let (payload, sig) = t.split_once('.').unwrap();
        // Another payload under the same signature (a visitor claiming to be someone else).
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"email": "ceo@example.com"}).to_string());
        assert_eq!(
            verify(SECRET, &format!("{forged}.{sig}")),
            Err(Rejected::Signature)
        );
        assert_eq!(verify(SECRET, payload), Err(Rejected::Shape));
        assert_eq!(
            verify(SECRET, &format!("{payload}.zz")),
            Err(Rejected::Signature)
        );
        assert_eq!(
            verify(SECRET, &sign(SECRET, &json!({"admin": true}))),
            Err(Rejected::Payload)
        );
        let long = sign(SECRET, &json!({"name": "x".repeat(300)}));
        assert_eq!(verify(SECRET, &long).unwrap().visitor.name, None);
    }
}
