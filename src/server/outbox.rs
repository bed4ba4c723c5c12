//! The outbox: delivers every stored record to each configured CRM connector
//! ([`crate::crm`]: Pipedrive, HubSpot, Zendesk Sell, the JSON webhook), oldest first.
//! Delivery state lives in the `records` table and each connector's steps in `crm_steps`,
//! so a restart resumes where it stopped, without making anything twice. Due records are
//! claimed with a lease, so replicas on one database never send the same record at the
//! same time.
//!
//! **Order.** A record goes only when every earlier record of its conversation was
//! delivered (an activity after the lead or deal it links to, which it needs the vendor's
//! id of); until then it waits, and records of other conversations go on.
//!
//! **Failures**, by [`CrmError`] kind: a 429 holds that connector back for its
//! `Retry-After`; a 401/403 pauses the connector (every record that needs it says so in
//! `last_error`) until a restart, a reload, or `auth_recheck_ms`; a validation error or an
//! unmapped name parks the record with the vendor's message until a restart or reload; a
//! 5xx, a timeout or a network error is retried with exponential backoff (`retry_min_ms`,
//! doubling, at most `retry_max_ms`).
//!
//! Errors stored in `last_error` (shown to agents) and logged never carry a token or a
//! URL's userinfo or query ([`super::redact`]).
//!
//! Must not: change records, or hold the core lock.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::AppState;
use crate::capture::Stored;
use crate::crm::{Connector, CrmConfig, CrmError, Job};
use crate::persist::{Delivery, RecordRow, Storage, StoreError};

/// How often a record waiting for a paused connector looks again, so a reload that unpauses
/// it is felt within this time (no request goes out while the pause lasts).
const PAUSED_POLL_MS: i64 = 2_000;

/// How many due records one claim takes: few, so a replica that dies holds few back.
const CLAIM: i64 = 4;

/// The most requests one record makes to one connector (organization, person, lead, note…
/// with their searches): the claim's lease covers that many timeouts per record.
const REQUESTS_PER_RECORD: i64 = 8;

/// The delay before attempt `attempts + 1`.
pub fn backoff(min_ms: u64, max_ms: u64, attempts: i64) -> u64 {
    let shift = attempts.clamp(0, 30) as u32;
    min_ms.saturating_mul(1u64 << shift).min(max_ms)
}

fn wall() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A connector with what the outbox knows of it now.
struct Live {
    connector: Connector,
    /// Paused after a 401/403 until this time, with the error.
    paused: Option<(i64, String)>,
    /// No request before this time (a 429's `Retry-After`).
    not_before: i64,
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Storage>,
    f: impl FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let s = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(s.as_ref()))
        .await
        .map_err(|e| StoreError::Io(format!("a storage task failed: {e}")))?
}

/// Runs forever, delivering records to these connectors.
pub async fn run(state: AppState, configs: Vec<CrmConfig>) {
    let mut live = Vec::new();
    for cfg in configs {
        let shown = super::redact::url(&cfg.base());
        let name = cfg.name().to_owned();
        match Connector::new(cfg) {
            Ok(connector) => {
                tracing::info!(connector = %name, url = %shown, "delivering records to the CRM");
                live.push(Live {
                    connector,
                    paused: None,
                    not_before: 0,
                });
            }
            Err(e) => {
                tracing::error!(connector = %name, error = %super::redact::text(&e), "cannot build the CRM connector; records are kept undelivered");
                return;
            }
        }
    }
    let store = Arc::clone(state.store());
    // Long enough to try each claimed record at every connector (one request each for a
    // webhook, a few for a vendor), each within its timeout; a replica that dies meanwhile
    // lets them go after that.
    let lease = live
        .iter()
        .map(|l| {
            let cfg = l.connector.config();
            let requests = if cfg.kind == crate::crm::Kind::Webhook {
                1
            } else {
                REQUESTS_PER_RECORD
            };
            (cfg.timeout_ms as i64).saturating_mul(requests)
        })
        .sum::<i64>()
        .saturating_mul(CLAIM)
        .saturating_add(10_000);
    let mut generation = u64::MAX;
    loop {
        // A restart or reload: parked records get another chance, paused connectors check
        // their token again.
        let now_gen = state.0.outbox_generation.load(Ordering::Relaxed);
        if now_gen != generation {
            generation = now_gen;
            for l in &mut live {
                l.paused = None;
            }
            match blocking(&store, |s| s.unpark(wall())).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "parked records are tried again"),
                Err(e) => tracing::error!(error = %e, "cannot unpark records"),
            }
        }
        let now = wall();
        let due = blocking(&store, move |s| s.due(now, lease, CLAIM)).await;
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "outbox cannot read records");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if due.is_empty() {
            let next = blocking(&store, |s| s.next_due()).await.ok().flatten();
            let wait = next.map_or(60_000, |n| (n - wall()).clamp(0, 60_000)) as u64;
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(wait)) => {}
                () = state.outbox_notified() => {}
            }
            continue;
        }
        for r in due {
            let key = r.key.clone();
            let outcome = match one(&store, &mut live, &r).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!(key = %key, error = %e, "cannot deliver a record");
                    let next = wall() + 1_000;
                    Outcome::Retry(e.to_string(), next)
                }
            };
            let stored = match outcome {
                Outcome::Delivered => {
                    tracing::info!(key = %key, "record delivered");
                    let o = vec![(key.clone(), Ok(wall()))];
                    blocking(&store, move |s| s.deliveries(&o)).await
                }
                Outcome::Retry(e, next) => {
                    let o: Vec<(String, Delivery)> = vec![(key.clone(), Err((e, next)))];
                    blocking(&store, move |s| s.deliveries(&o)).await
                }
                Outcome::Park(e) => {
                    tracing::warn!(key = %key, error = %e, "record parked: the CRM refused it; fix it, then restart or reload");
                    let k = key.clone();
                    blocking(&store, move |s| s.park(&k, &e)).await
                }
            };
            if let Err(e) = stored {
                tracing::error!(error = %e, "cannot store a delivery outcome");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// What became of one record.
enum Outcome {
    Delivered,
    /// Not yet: this error, next attempt at this time.
    Retry(String, i64),
    /// Refused: parked with this error.
    Park(String),
}

/// One record through every connector, in order.
async fn one(
    store: &Arc<dyn Storage>,
    live: &mut [Live],
    r: &RecordRow,
) -> Result<Outcome, StoreError> {
    let conversation = r.conversation.clone();
    let earlier = blocking(store, move |s| s.records_of(&conversation)).await?;
    if let Some(e) = earlier
        .iter()
        .find(|e| e.id < r.id && e.delivered_at.is_none())
    {
        // Soon after the earlier one's next attempt (a parked one: checked now and then).
        let wait = live
            .iter()
            .map(|l| l.connector.config().retry_max_ms)
            .max()
            .unwrap_or(60_000) as i64;
        return Ok(Outcome::Retry(
            format!(
                "waiting for {} of the same conversation to be delivered first",
                e.key
            ),
            wall() + if e.parked { wait } else { wait.min(5_000) },
        ));
    }
    let stored: Stored = match serde_json::from_value(r.body.clone()) {
        Ok(s) => s,
        Err(e) => {
            return Ok(Outcome::Park(format!(
                "the stored record cannot be read: {e}"
            )));
        }
    };
    for l in live.iter_mut() {
        let now = wall();
        let name = l.connector.name().to_owned();
        if let Some((until, why)) = &l.paused {
            if *until > now {
                return Ok(Outcome::Retry(
                    format!("{name}: paused: {why}"),
                    (*until).min(now + PAUSED_POLL_MS),
                ));
            }
            l.paused = None;
        }
        if l.not_before > now {
            return Ok(Outcome::Retry(
                format!("{name}: waiting for the CRM's rate limit"),
                l.not_before,
            ));
        }
        let mut job = Job::load(Arc::clone(store), &name, &stored).await?;
        let cfg = l.connector.config();
        let (min, max, recheck) = (cfg.retry_min_ms, cfg.retry_max_ms, cfg.auth_recheck_ms);
        match l.connector.deliver(&stored, &r.body, &mut job).await {
            Ok(()) => {}
            Err(CrmError::Auth { status, message }) => {
                let why = format!("the CRM refused the token ({status}): {message}");
                tracing::error!(connector = %name, error = %why, "CRM connector paused until a restart, a reload or the next check");
                let until = now + recheck as i64;
                l.paused = Some((until, why.clone()));
                return Ok(Outcome::Retry(
                    format!("{name}: paused: {why}"),
                    until.min(now + PAUSED_POLL_MS),
                ));
            }
            Err(CrmError::RateLimited { retry_after_ms }) => {
                l.not_before = now + retry_after_ms as i64;
                tracing::warn!(connector = %name, retry_after_ms, "the CRM asked to slow down");
                return Ok(Outcome::Retry(
                    format!("{name}: rate limited (429); next try in {retry_after_ms} ms"),
                    l.not_before,
                ));
            }
            Err(e) if e.parks() => return Ok(Outcome::Park(format!("{name}: {e}"))),
            Err(e) => {
                let next = now + backoff(min, max, r.attempts) as i64;
                tracing::warn!(key = %r.key, connector = %name, attempts = r.attempts + 1, error = %e, "record delivery failed; will retry");
                return Ok(Outcome::Retry(format!("{name}: {e}"), next));
            }
        }
    }
    Ok(Outcome::Delivered)
}

/// The connectors of a config: `[webhook]` as one named `webhook`, then every `[[crm]]`.
pub fn connectors(config: &super::Config) -> Vec<CrmConfig> {
    let mut out: Vec<CrmConfig> = config.webhook.iter().map(|w| w.as_crm()).collect();
    out.extend(config.crm.iter().cloned());
    out
}

/// Wakes the outbox for news (also used after a reload to recheck paused connectors).
pub(crate) fn reset(state: &AppState) {
    state.0.outbox_generation.fetch_add(1, Ordering::Relaxed);
    state.poke_outbox();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(100, 1_000, 0), 100);
        assert_eq!(backoff(100, 1_000, 1), 200);
        assert_eq!(backoff(100, 1_000, 3), 800);
        assert_eq!(backoff(100, 1_000, 4), 1_000);
        assert_eq!(backoff(100, 1_000, 1_000), 1_000);
    }
}
