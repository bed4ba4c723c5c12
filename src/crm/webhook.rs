//! The generic JSON webhook (`[webhook]`, or `[[crm]] kind = "webhook"`): each record is
//! `POST`ed as the stored `{"record": …, "transcript": […]}` with an `Idempotency-Key`
//! header, over `http://` or `https://`. The receiver deduplicates by the key, so there
//! are no steps. Any failure, whatever the status, is retried with backoff (as before
//! native connectors existed); a 429's `Retry-After` is honoured.
//!
//! Must not: show the URL's userinfo or query (where receivers put tokens) or the secret
//! header's value in an error.

use serde_json::Value;

use super::{CrmConfig, CrmError, Job};
use crate::capture::Stored;

/// The webhook connector.
pub struct Webhook {
    /// Its section.
    pub cfg: CrmConfig,
    client: reqwest::Client,
}

impl Webhook {
    /// A connector for this section (token read).
    pub fn new(cfg: CrmConfig, client: reqwest::Client) -> Self {
        Webhook { cfg, client }
    }

    /// The URL as agents and logs may see it.
    pub fn shown_url(&self) -> String {
        crate::server::redact::url(self.cfg.url.as_deref().unwrap_or_default())
    }

    /// One attempt.
    pub async fn deliver(
        &self,
        stored: &Stored,
        body: &Value,
        _job: &mut Job,
    ) -> Result<(), CrmError> {
        let url = self.cfg.url.as_deref().unwrap_or_default();
        let bytes = serde_json::to_vec(body).map_err(|e| CrmError::Transient(e.to_string()))?;
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("idempotency-key", &stored.record.key);
        if let (Some(name), Some(value)) = (&self.cfg.header, &self.cfg.token) {
            req = req.header(name.as_str(), value.0.as_str());
        }
        let resp = req.body(bytes).send().await.map_err(|e| {
            CrmError::Transient(super::http::network(
                e,
                &format!("POST {}", self.shown_url()),
            ))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if status.as_u16() == 429 {
            let secs = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(10);
            return Err(CrmError::RateLimited {
                retry_after_ms: secs.saturating_mul(1000),
            });
        }
        Err(CrmError::Transient(format!("webhook answered {status}")))
    }
}
