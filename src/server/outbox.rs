//! The outbox: delivers every stored record to the CRM webhook, oldest first, as
//! `POST <url>` with the record JSON and an `Idempotency-Key` header; a non-2xx answer or a
//! network error is retried with exponential backoff (`retry_min_ms`, doubling, at most
//! `retry_max_ms`) until it succeeds. Delivery state lives in the `records` table, so a
//! restart resumes where it stopped. A crash between the CRM's 2xx and our write of
//! "delivered" sends the record again under the same key: the CRM deduplicates by it.
//!
//! Must not: change records, or hold the core lock.

use std::time::Duration;

use super::AppState;
use super::config::Webhook;
use crate::persist::RecordRow;

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
            tracing::error!(error = %e, "cannot build the webhook client; records are kept undelivered");
            return;
        }
    };
    loop {
        let now = wall();
        let due = state.blocking(move |s| s.due(now, 64)).await;
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

async fn deliver(client: &reqwest::Client, w: &Webhook, r: &RecordRow) -> Result<(), String> {
    let body = serde_json::to_vec(&r.body).map_err(|e| e.to_string())?;
    let resp = client
        .post(&w.url)
        .header("content-type", "application/json")
        .header("idempotency-key", &r.key)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
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
        };
        assert_eq!(backoff(&w, 0), 100);
        assert_eq!(backoff(&w, 1), 200);
        assert_eq!(backoff(&w, 3), 800);
        assert_eq!(backoff(&w, 4), 1_000);
        assert_eq!(backoff(&w, 1_000), 1_000);
    }
}
