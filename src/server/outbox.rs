//! The outbox: delivers every stored record to the CRM webhook, oldest first, as
//! `POST <url>` with the record JSON and an `Idempotency-Key` header; a non-2xx answer or a
//! network error is retried with exponential backoff (`retry_min_ms`, doubling, at most
//! `retry_max_ms`) until it succeeds. Delivery state lives in the `records` table, so a
//! restart resumes where it stopped. Due records are claimed with a lease, so replicas on
//! one database never send the same record at the same time. A crash between the CRM's 2xx and our write of
//! "delivered" sends the record again under the same key: the CRM deduplicates by it.
//!
//! Errors stored in `last_error` (shown to agents) and logged never carry the URL's
//! userinfo or query ([`super::redact`]); the secret header's value is never logged.
//!
//! Must not: change records, or hold the core lock.

use std::time::Duration;

use super::AppState;
use super::config::Webhook;
use crate::persist::RecordRow;

/// How many due records one claim takes: few, so a replica that dies holds few back (for
/// `CLAIM` × the webhook's timeout + 10 s).
const CLAIM: i64 = 4;

/// The delay before attempt `attempts + 1`.
pub fn backoff(w: &Webhook, attempts: i64) -> u64 {
    let shift = attempts.clamp(0, 30) as u32;
    w.retry_min_ms
        .saturating_mul(1u64 << shift)
        .min(w.retry_max_ms)
}

fn wall() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs forever, delivering records.
pub async fn run(state: AppState, webhook: Webhook) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(webhook.timeout_ms))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %super::redact::text(&e.to_string()), "cannot build the webhook client; records are kept undelivered");
            return;
        }
    };
    tracing::info!(url = %webhook.shown_url(), secret_header = ?webhook.header, "delivering records to the webhook");
    loop {
        let now = wall();
        // Claimed for long enough to try each of them (one at a time, each within the
        // webhook's timeout); a replica that dies meanwhile lets them go after that.
        let lease = (webhook.timeout_ms as i64).saturating_mul(CLAIM) + 10_000;
        let due = state.blocking(move |s| s.due(now, lease, CLAIM)).await;
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "outbox cannot read records");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let next = state.blocking(|s| s.next_due()).await.ok().flatten();
            let wait = next.map_or(60_000, |n| (n - wall()).clamp(0, 60_000)) as u64;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                () = state.outbox_notified() => {}
            }
            continue;
        }
        for r in due {
            let outcome = deliver(&client, &webhook, &r).await;
            let delivery = match outcome {
                Ok(()) => {
                    tracing::info!(key = %r.key, "record delivered");
                    Ok(wall())
                }
                Err(e) => {
                    let next = wall() + backoff(&webhook, r.attempts) as i64;
                    tracing::warn!(key = %r.key, attempts = r.attempts + 1, error = %e, "record delivery failed; will retry");
                    Err((e, next))
                }
            };
            let outcome = vec![(r.key.clone(), delivery)];
            if let Err(e) = state.blocking(move |s| s.deliveries(&outcome)).await {
                tracing::error!(error = %e, "cannot store a delivery outcome");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// One attempt. The error says what went wrong and where, with the URL redacted: reqwest's
/// own message quotes the whole URL, so it is taken without it.
async fn deliver(client: &reqwest::Client, w: &Webhook, r: &RecordRow) -> Result<(), String> {
    let body = serde_json::to_vec(&r.body).map_err(|e| e.to_string())?;
    let mut req = client
        .post(&w.url)
        .header("content-type", "application/json")
        .header("idempotency-key", &r.key);
    if let (Some(name), Some(value)) = (&w.header, &w.header_value) {
        req = req.header(name.as_str(), value.0.as_str());
    }
    let resp = req.body(body).send().await.map_err(|e| {
        let e = e.without_url();
        // The source chain says why (refused, timed out, DNS); it may quote the URL again.
        let mut why = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            why.push_str(": ");
            why.push_str(&s.to_string());
            source = s.source();
        }
        super::redact::text(&format!("{why} (POST {})", w.shown_url()))
    })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("webhook answered {}", resp.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let w = Webhook {
            url: String::new(),
            retry_min_ms: 100,
            retry_max_ms: 1_000,
            timeout_ms: 1,
            header: None,
            header_value_env: None,
            header_value: None,
        };
        assert_eq!(backoff(&w, 0), 100);
        assert_eq!(backoff(&w, 1), 200);
        assert_eq!(backoff(&w, 3), 800);
        assert_eq!(backoff(&w, 4), 1_000);
        assert_eq!(backoff(&w, 1_000), 1_000);
    }
}
