//! The per-client limit on new conversations (`POST /api/conversations` needs no token, so
//! the client's address is all there is to limit by): a token bucket per address of
//! `limits.conversations_per_minute` tokens, refilled evenly over a minute. An empty bucket
//! answers `429` with the API's JSON error and a `Retry-After` header.
//!
//! IPv6 clients are limited per /64 (one subscriber usually holds a whole /64). The address
//! is the TCP peer's ([`ConnectInfo`]): behind a reverse proxy every client shares the
//! proxy's, so raise the limit (or set 0) and limit at the proxy. A request without a peer
//! address (an in-process call) shares one bucket.
//!
//! Must not: grow without bound (full buckets are forgotten once the table is large), or
//! read a clock other than tokio's (tests pause it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use super::ApiError;

/// Above this many tracked clients, buckets that have refilled are dropped (a full bucket is
/// the same as no bucket).
const SWEEP_ABOVE: usize = 10_000;

/// Buckets by client; cheap to clone.
#[derive(Clone, Debug)]
pub struct Limiter(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    per_minute: u32,
    /// Per client, when its bucket will be full again (the "theoretical arrival time" of the
    /// GCRA form of a token bucket: integer time, no drifting fractions of tokens).
    full_at: Mutex<HashMap<IpAddr, Instant>>,
}

impl Limiter {
    /// A limiter of `per_minute` new conversations per client; `0` allows everything.
    pub fn new(per_minute: u32) -> Self {
        Limiter(Arc::new(Inner {
            per_minute,
            full_at: Mutex::new(HashMap::new()),
        }))
    }

    /// Takes a token for `client`, or says how many whole seconds until one is there.
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let n = self.0.per_minute;
        if n == 0 {
            return Ok(());
        }
        // One token comes back every `interval`; a full bucket holds `n` of them.
        let interval = Duration::from_secs(60) / n;
        let window = interval * n;
        // A panic elsewhere cannot leave an entry half-written: the data is still usable.
        let mut full_at = self.0.full_at.lock().unwrap_or_else(|e| e.into_inner());
        if full_at.len() >= SWEEP_ABOVE {
            full_at.retain(|_, at| *at > now);
        }
        let at = full_at.get(&client).copied().unwrap_or(now).max(now);
        let next = at + interval;
        let debt = next - now;
        if debt > window {
            let wait = debt - window;
            return Err(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
        }
        full_at.insert(client, next);
        Ok(())
    }
}

/// The bucket key of an address: IPv4 as is, IPv6 by its /64 (IPv4-mapped ones as IPv4).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
    }
}

/// Middleware for the route that starts conversations.
pub async fn limit(State(limiter): State<Limiter>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    match limiter.take(key(ip), Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(secs) => (
            [(RETRY_AFTER, secs.to_string())],
            ApiError::RateLimited(format!(
                "too many new conversations from your address; try again in {secs} s"
            )),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_and_refills_evenly() {
        let l = Limiter::new(2);
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let t = Instant::now();
        assert_eq!(l.take(a, t), Ok(()));
        assert_eq!(l.take(a, t), Ok(()));
        assert_eq!(l.take(a, t), Err(30));
        assert_eq!(l.take(b, t), Ok(()));
        assert_eq!(l.take(a, t + Duration::from_secs(20)), Err(10));
        assert_eq!(l.take(a, t + Duration::from_secs(30)), Ok(()));
        assert_eq!(Limiter::new(0).take(a, t), Ok(()));
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let one: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(key(one), key(two));
        assert_ne!(key(one), key(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(key(mapped), IpAddr::from([10, 0, 0, 1]));
    }
}
