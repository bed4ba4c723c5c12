//! The listener edge of `playbook serve`: accepts TCP connections and serves the router on
//! each with hyper's HTTP/1 (WebSocket upgrades included), bounded so that slow, idle or
//! numerous clients cannot hold the server:
//!
//! - **Header-read timeout** (`limits.header_read_timeout_ms`): a client must send a
//!   request's headers within this time, or the connection is closed. hyper restarts this
//!   clock when a keep-alive connection waits for its next request, so it also bounds how
//!   long an idle keep-alive connection is kept.
//! - **Idle timeout** (`limits.idle_timeout_ms`): an HTTP connection that moves no byte for
//!   this long (a stalled body, a response the client does not read) is asked to close
//!   (hyper finishes a request in flight first) and is dropped after as long again. Upgraded
//!   WebSockets are exempt: an open chat waiting for an agent is idle by design.
//! - **Connection cap** (`limits.max_connections`, kept below the process's file limit): a
//!   connection over the cap gets a `503` JSON error and is closed at once instead of waiting
//!   in the kernel's queue until the client gives up. A slot is freed when its socket closes,
//!   WebSockets included.
//! - [`lean_ws`]: the WebSocket settings that keep an idle socket small.
//!
//! The peer address goes into each request as [`ConnectInfo`] (per-client limits read it).
//!
//! Must not: know routes, tokens or conversations; answer anything itself but the `503` of
//! a connection over the cap.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::ws::WebSocketUpgrade;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use super::ApiError;
use super::config::Limits;

/// File descriptors kept free of connections: the SQLite database and its WAL, the webhook's
/// client, the playbook folder during a reload, logs.
const RESERVED_FDS: u64 = 64;

/// The edge's bounds, from the `[limits]` config section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Time to send a request's headers (also the keep-alive idle time).
    pub header_read_timeout: Duration,
    /// Time an HTTP connection may move no byte.
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused with a 503.
    pub max_connections: usize,
}

impl From<&Limits> for EdgeLimits {
    fn from(l: &Limits) -> Self {
        EdgeLimits {
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(l.idle_timeout_ms),
            max_connections: l.max_connections,
        }
    }
}

/// A WebSocket upgrade with the settings of a chat socket: messages of at most `max_message`
/// bytes, a small read buffer (tungstenite allocates 128 KiB per socket by default, eagerly),
/// frames written as they come (no 128 KiB write buffer), and a bounded backlog for a client
/// that stops reading (the socket fails instead of growing).
pub fn lean_ws(ws: WebSocketUpgrade, max_message: usize) -> WebSocketUpgrade {
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(64 * 1024)
        .max_message_size(max_message)
        .max_frame_size(max_message)
}

/// Serves `app` on `listener` within `limits` until accepting fails for good (it does not
/// on Linux: per-connection errors are skipped, a full file table is waited out).
pub async fn run(listener: TcpListener, app: Router, limits: EdgeLimits) -> std::io::Result<()> {
    let cap = fd_budget(limits.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let mut full = false;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // EMFILE/ENFILE and the like: the cap should prevent it, but the file table
                // is shared with everything else in the process; wait for a descriptor.
                tracing::error!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            if !full {
                tracing::warn!(
                    max_connections = cap,
                    "connection cap reached; refusing new connections with 503"
                );
                full = true;
            }
            refuse(&stream);
            continue;
        };
        full = false;
        // Chat frames are small and interactive: send them at once.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, peer, slot, app.clone(), limits));
    }
}

/// Errors of one incoming connection (it was reset before we took it): nothing to wait for.
fn is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// The connection cap, lowered to what the process's file limit allows (raising the soft
/// limit towards the hard one first, as servers commonly do), so that accepting never fails
/// for want of a descriptor.
fn fd_budget(want: usize) -> usize {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let need = (want as u64).saturating_add(RESERVED_FDS);
        let mut lim = getrlimit(Resource::Nofile);
        if let Some(soft) = lim.current
            && soft < need
        {
            let raised = lim.maximum.map_or(need, |hard| hard.min(need));
            let new = Rlimit {
                current: Some(raised),
                maximum: lim.maximum,
            };
            if raised > soft && setrlimit(Resource::Nofile, new).is_ok() {
                lim.current = Some(raised);
            }
        }
        if let Some(soft) = lim.current {
            let budget = soft.saturating_sub(RESERVED_FDS).max(1);
            if budget < want as u64 {
                tracing::warn!(
                    max_connections = want,
                    file_limit = soft,
                    used = budget,
                    "max_connections is above the file limit (ulimit -n); using less"
                );
                return budget as usize;
            }
        }
    }
    want.max(1)
}

/// Answers a connection over the cap with a `503` and closes it. Never waits: the answer is
/// far smaller than a socket's send buffer, and a client that cannot take it loses nothing
/// but the explanation.
fn refuse(stream: &TcpStream) {
    let e = ApiError::Busy("the server is at its connection limit; try again shortly".into());
    let (status, code) = e.status_code();
    let body = serde_json::json!({"error": {"code": code, "message": e.to_string()}}).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// Serves one connection: hyper with the header-read timeout, and an idle watchdog.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    app: Router,
    limits: EdgeLimits,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
        _slot: slot,
    });
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(req.map(Body::new))
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut closing = false;
    let mut deadline = activity.last() + limits.idle_timeout;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                let due = activity.last() + limits.idle_timeout;
                if due > Instant::now() {
                    deadline = due;
                } else if !closing {
                    // Finishes a request in flight, then closes.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    deadline = Instant::now() + limits.idle_timeout;
                } else {
                    tracing::debug!(%peer, "idle connection dropped");
                    return;
                }
            }
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.opened.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }
}

/// The socket, noting activity, and holding its slot under the cap for as long as it is open
/// (an upgraded WebSocket keeps it).
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
