//! One JSON request to a vendor, and its answer sorted into a [`CrmError`] kind: 2xx →
//! the body; 429 → [`CrmError::RateLimited`] with `Retry-After`; 401/403 →
//! [`CrmError::Auth`]; another 4xx → [`CrmError::Rejected`] with the vendor's message;
//! 5xx, timeouts and network errors → [`CrmError::Transient`].
//!
//! Must not: put the token anywhere but its header, or quote a URL's query (it holds the
//! emails searched for) or the token in an error.

use reqwest::Method;
use serde_json::Value;

use super::{CrmError, Token};

/// How requests authenticate.
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    /// `Authorization: Bearer TOKEN` (HubSpot private apps, Zendesk Sell).
    Bearer(Token),
    /// A header of its own (Pipedrive's `x-api-token`).
    Header(String, Token),
}

/// A vendor's API root with its authentication.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub client: reqwest::Client,
    pub base: String,
    pub auth: Auth,
}

/// The longest vendor message kept in an error (they can quote the whole request).
const MESSAGE_CHARS: usize = 300;

impl Http {
    /// Sends `method base+path?query` with `body` as JSON and reads the JSON answer.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, CrmError> {
        let what = format!("{method} {path}");
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("accept", "application/json");
        if !query.is_empty() {
            req = req.query(query);
        }
        req = match &self.auth {
            Auth::Bearer(t) => req.bearer_auth(&t.0),
            Auth::Header(name, t) => req.header(name.as_str(), t.0.as_str()),
        };
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b).map_err(|e| CrmError::Transient(e.to_string()))?);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| CrmError::Transient(network(e, &what)))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = resp
            .text()
            .await
            .map_err(|e| CrmError::Transient(network(e, &what)))?;
        classify(status, retry_after, &text, &what)
    }
}

/// A reqwest error without its URL, with its causes (refused, timed out …).
pub(crate) fn network(e: reqwest::Error, what: &str) -> String {
    let timeout = e.is_timeout();
    let e = e.without_url();
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why.push_str(": ");
        why.push_str(&s.to_string());
        source = s.source();
    }
    let why = crate::server::redact::text(&why);
    if timeout {
        format!("no answer in time to {what} ({why})")
    } else {
        format!("{what} failed: {why}")
    }
}

/// Sorts an answer by status.
pub(crate) fn classify(
    status: u16,
    retry_after_s: Option<u64>,
    text: &str,
    what: &str,
) -> Result<Value, CrmError> {
    if (200..300).contains(&status) {
        return Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap_or(Value::Null)
        });
    }
    let message = message(text);
    match status {
        429 => Err(CrmError::RateLimited {
            retry_after_ms: retry_after_s.unwrap_or(10).saturating_mul(1000),
        }),
        401 | 403 => Err(CrmError::Auth { status, message }),
        400..=499 => Err(CrmError::Rejected {
            status,
            what: what.to_owned(),
            message,
        }),
        _ => Err(CrmError::Transient(format!(
            "{what} answered {status}: {message}"
        ))),
    }
}

/// The vendor's own words from an error body: Pipedrive's `error`, HubSpot's `message`,
/// Zendesk Sell's `errors[].error.message`/`details`, or the text itself; shortened.
fn message(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut parts: Vec<String> = Vec::new();
    for k in ["error", "message", "error_info"] {
        if let Some(s) = v.get(k).and_then(Value::as_str) {
            parts.push(s.to_owned());
        }
    }
    if let Some(errors) = v.get("errors").and_then(Value::as_array) {
        for e in errors {
            let inner = e.get("error").unwrap_or(e);
            for k in ["message", "details"] {
                if let Some(s) = inner.get(k).and_then(Value::as_str) {
                    parts.push(s.to_owned());
                }
            }
        }
    }
    let mut m = if parts.is_empty() {
        text.trim().to_owned()
    } else {
        parts.join("; ")
    };
    if m.chars().count() > MESSAGE_CHARS {
        m = m.chars().take(MESSAGE_CHARS).collect::<String>() + "…";
    }
    crate::server::redact::text(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_status() {
        assert_eq!(classify(201, None, "{\"a\":1}", "POST /x").unwrap()["a"], 1);
        assert!(matches!(
            classify(429, Some(7), "", "POST /x"),
            Err(CrmError::RateLimited {
                retry_after_ms: 7000
            })
        ));
        assert!(matches!(
            classify(401, None, "{\"error\":\"bad token\"}", "GET /x"),
            Err(CrmError::Auth { status: 401, .. })
        ));
        let e = classify(
            422,
            None,
            r#"{"errors":[{"error":{"code":"invalid","message":"email is invalid"}}]}"#,
            "POST /v2/leads",
        )
        .unwrap_err();
        assert!(
            e.parks() && e.to_string().contains("email is invalid"),
            "{e}"
        );
        assert!(matches!(
            classify(503, None, "down", "POST /x"),
            Err(CrmError::Transient(_))
        ));
    }
}
