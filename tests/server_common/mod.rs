//! Shared helpers of the server tests: a server on a loopback port, a JSON client.
#![allow(dead_code)]

pub mod vendor;

use std::path::{Path, PathBuf};

use playbook::runtime::driver::Clock;
use serde_json::Value;

pub const ANA: &str = "ana-token-0123456789";
pub const BOB: &str = "bob-token-0123456789";
pub const ADMIN: &str = "admin-token-0123456789";

/// A config with agents ana and bob in team Sales (online), and `extra` appended. New
/// conversations are not limited per address (tests start many from 127.0.0.1).
pub fn config(dir: &Path, extra: &str, turns: u32) -> PathBuf {
    config_with(dir, extra, turns, "conversations_per_minute = 0\n")
}

/// [`config`] with `limits` (lines of the `[limits]` section) instead of the default ones.
pub fn config_with(dir: &Path, extra: &str, turns: u32, limits: &str) -> PathBuf {
    let text = format!(
        "admin_token = \"{ADMIN}\"\n\
         [limits]\nturns_per_minute = {turns}\n{limits}\
         [[agents]]\nname = \"ana\"\ntoken = \"{ANA}\"\nteams = [\"Sales\"]\npresence = \"online\"\n\
         [[agents]]\nname = \"bob\"\ntoken = \"{BOB}\"\nteams = [\"Sales\"]\npresence = \"online\"\n\
         [[pools]]\nname = \"Inbound SDRs\"\nmembers = [\"sam\", \"tia\"]\n{extra}"
    );
    let path = dir.join("playbook.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A playbook folder with the repo's demo playbook and the test playbooks.
pub fn playbooks(dir: &Path) -> PathBuf {
    let p = dir.join("playbooks");
    std::fs::create_dir_all(&p).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        root.join("playbooks/demo.playbook"),
        p.join("demo.playbook"),
    )
    .unwrap();
    for f in ["timeout.playbook", "quick.playbook"] {
        std::fs::copy(root.join("tests/server_common").join(f), p.join(f)).unwrap();
    }
    p
}

/// The database a server of this suite runs on. `None` (SQLite in the data folder) except in
/// `pg_suite`, the same suites compiled again for PostgreSQL, where each call gives a schema
/// of its own in `PLAYBOOK_TEST_DATABASE_URL` (so tests run in parallel). Without that
/// variable `pg_suite` prints one line and exits successfully: nothing to test against.
pub fn database() -> Option<playbook::persist::PgOptions> {
    if env!("CARGO_CRATE_NAME") != "pg_suite" {
        return None;
    }
    let Ok(url) = std::env::var("PLAYBOOK_TEST_DATABASE_URL") else {
        // Straight to the file descriptor: the test harness captures `println!`.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL tests skipped: PLAYBOOK_TEST_DATABASE_URL is not set"
        );
        std::process::exit(0);
    };
    let mut opts = playbook::persist::PgOptions::new(url);
    opts.schema = Some(fresh_schema());
    opts.pool_size = 4;
    Some(opts)
}

/// A new schema name, unique across test processes.
pub fn fresh_schema() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t_{}_{}_{}",
        std::process::id(),
        nanos,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether this run of the suite is on PostgreSQL.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "pg_suite"
}

/// A running in-process server.
pub struct Server {
    pub base: String,
    pub addr: String,
    pub client: reqwest::Client,
    pub state: playbook::server::AppState,
    /// Its PostgreSQL schema, in `pg_suite`.
    pub database: Option<playbook::persist::PgOptions>,
}

impl Server {
    pub async fn start(dir: &Path, extra_config: &str) -> Server {
        Self::start_with(dir, extra_config, 1000).await
    }

    pub async fn start_with(dir: &Path, extra_config: &str, turns: u32) -> Server {
        Self::start_config(dir, config(dir, extra_config, turns)).await
    }

    /// A server with these `[limits]` lines.
    pub async fn start_limits(dir: &Path, extra_config: &str, limits: &str) -> Server {
        Self::start_config(dir, config_with(dir, extra_config, 1000, limits)).await
    }

    async fn start_config(dir: &Path, config: PathBuf) -> Server {
        Self::start_on(dir, config, database()).await
    }

    /// A server on `database` (a second replica of a server's, say) with this config file.
    pub async fn start_on(
        dir: &Path,
        config: PathBuf,
        database: Option<playbook::persist::PgOptions>,
    ) -> Server {
        let opts = playbook::server::ServeOptions {
            playbooks: playbooks(dir),
            data: dir.join("data"),
            addr: "127.0.0.1:0".into(),
            config: Some(config),
            database: database.clone(),
        };
        let (state, _) = playbook::server::launch(&opts, Clock::wall())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = playbook::server::router(state.clone());
        // The production edge (timeouts, connection cap, peer addresses), as `serve` runs it.
        let limits = playbook::server::edge::EdgeLimits::from(&state.config().limits);
        tokio::spawn(async move {
            playbook::server::edge::run(listener, app, limits)
                .await
                .unwrap()
        });
        Server {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::new(),
            state,
            database,
        }
    }
}

/// Sends a request and returns (status, JSON body or Null).
pub async fn call(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The texts of a list of messages.
pub fn texts(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A client WebSocket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next JSON frame whose `type` is `ty` (others skipped), within `secs` seconds.
pub async fn next_frame(ws: &mut Ws, ty: &str, secs: u64) -> Value {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let fut = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == ty {
                        return v;
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("no `{ty}` frame within {secs} s"))
}

/// One webhook request as the fake CRM received it.
#[derive(Clone, Debug)]
pub struct Hit {
    /// Its `Idempotency-Key`.
    pub key: String,
    /// Its JSON body.
    pub body: Value,
    /// What the CRM answered.
    pub status: u16,
}

/// The fake CRM's log: it answers 503 to the first `fail_first` requests (so retries
/// happen), then 200 after the delay given to [`fake_crm`].
#[derive(Default)]
pub struct Crm {
    /// Every request, in the order answered.
    pub hits: Vec<Hit>,
    /// How many requests are refused first.
    pub fail_first: usize,
}

impl Crm {
    /// The keys answered 200, with how often.
    pub fn delivered(&self) -> std::collections::BTreeMap<String, usize> {
        let mut m = std::collections::BTreeMap::new();
        for h in self.hits.iter().filter(|h| h.status == 200) {
            *m.entry(h.key.clone()).or_default() += 1;
        }
        m
    }
}

/// Serves the fake CRM on a loopback port; returns its webhook URL.
pub async fn fake_crm(
    state: std::sync::Arc<std::sync::Mutex<Crm>>,
    delay: std::time::Duration,
) -> String {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().route(
        "/crm",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                let fail = {
                    let s = state.lock().unwrap();
                    s.hits.len() < s.fail_first
                };
                let status = if fail {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    tokio::time::sleep(delay).await;
                    StatusCode::OK
                };
                state.lock().unwrap().hits.push(Hit {
                    key,
                    body,
                    status: status.as_u16(),
                });
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/crm")
}

/// Sends a request through the router itself (`oneshot`, no socket) and returns (status,
/// JSON body or Null).
/// A GET through the router with a bearer token, answered as text.
pub async fn oneshot_text(router: &axum::Router, path: &str, token: &str) -> (u16, String) {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

pub async fn oneshot(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
