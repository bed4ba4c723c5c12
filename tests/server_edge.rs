//! The server's edge (issue 11): slow and numerous clients over loopback (header-read
//! timeout, idle timeout, connection cap), the per-address limit on new conversations, every
//! error as the documented JSON, and webhook secrets kept from agents. Deadlines are short
//! real ones, asserted as "eventually", never as "took less than".

mod server_common;

use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use server_common::{ANA, Server, call};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

/// Reads until the server closes the connection (within 10 s) and returns what it sent.
async fn until_closed(s: &mut TcpStream) -> String {
    let read = async {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return String::from_utf8_lossy(&got).into_owned(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server still holds the connection after 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_limits(
        dir.path(),
        "",
        "conversations_per_minute = 0\nheader_read_timeout_ms = 200\n",
    )
    .await;
    let mut slow = TcpStream::connect(&s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    // Whole requests are still served.
    let (st, _) = call(&s.client, "GET", &format!("{}/healthz", s.base), None, None).await;
    assert_eq!(st, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_limits(
        dir.path(),
        "",
        "conversations_per_minute = 0\nidle_timeout_ms = 200\n",
    )
    .await;
    let mut slow = TcpStream::connect(&s.addr).await.unwrap();
    slow.write_all(
        b"POST /api/conversations HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"playbook\"",
    )
    .await
    .unwrap();
    until_closed(&mut slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_get_a_json_503_and_slots_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_limits(
        dir.path(),
        "",
        "conversations_per_minute = 0\nmax_connections = 2\n",
    )
    .await;
    let first = TcpStream::connect(&s.addr).await.unwrap();
    let _second = TcpStream::connect(&s.addr).await.unwrap();
    // The two slots are taken once the server has accepted both; a third is refused.
    let refused = async {
        loop {
            let mut third = TcpStream::connect(&s.addr).await.unwrap();
            let answer = until_closed(&mut third).await;
            if !answer.is_empty() {
                return answer;
            }
        }
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("no 503");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "busy");

    // A closed connection frees its slot.
    drop(first);
    let served = async {
        loop {
            let mut c = TcpStream::connect(&s.addr).await.unwrap();
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            if until_closed(&mut c).await.starts_with("HTTP/1.1 200") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the freed slot was never reused");
}

async fn app(dir: &std::path::Path, limits: &str, extra: &str) -> axum::Router {
    let opts = playbook::server::ServeOptions {
        playbooks: server_common::playbooks(dir),
        data: dir.join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(server_common::config_with(dir, extra, 1000, limits)),
        database: None,
    };
    let (state, _) = playbook::server::launch(&opts, playbook::runtime::driver::Clock::wall())
        .await
        .unwrap();
    playbook::server::router(state)
}

fn start_from(ip: [u8; 4]) -> Request<Body> {
    let mut req = Request::builder()
        .method("POST")
        .uri("/api/conversations")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(r#"{"playbook": "demo"}"#))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((ip, 40000))));
    req
}

async fn json_of(r: axum::response::Response) -> Value {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "not JSON: {:?}",
            String::from_utf8_lossy(&bytes).into_owned()
        )
    })
}

#[tokio::test(start_paused = true)]
async fn new_conversations_are_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "conversations_per_minute = 2\n", "").await;
    for _ in 0..2 {
        let r = app
            .clone()
            .oneshot(start_from([10, 0, 0, 1]))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = app
        .clone()
        .oneshot(start_from([10, 0, 0, 1]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()[header::RETRY_AFTER], "30");
    assert_eq!(json_of(r).await["error"]["code"], "rate_limited");
    // Another address is not affected; the first gets a token back after 30 s.
    let r = app
        .clone()
        .oneshot(start_from([10, 0, 0, 2]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    tokio::time::advance(Duration::from_secs(30)).await;
    let r = app
        .clone()
        .oneshot(start_from([10, 0, 0, 1]))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn every_error_is_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "conversations_per_minute = 0\n", "").await;
    let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
    let cases = [
        // Wrong methods: the router's own 405.
        (
            Request::delete("/api/conversations")
                .body(Body::empty())
                .unwrap(),
            405,
            "method_not_allowed",
        ),
        (
            Request::post("/api/agent/me").body(Body::empty()).unwrap(),
            405,
            "method_not_allowed",
        ),
        // A plain request to a WebSocket route.
        (get("/api/conversations/c_x/ws?token=t"), 400, "bad_request"),
        (
            get(&format!("/api/agent/ws?token={ANA}")),
            400,
            "bad_request",
        ),
        // A path segment that is not UTF-8: axum's own rejection.
        (get("/api/conversations/%FF/messages"), 400, "bad_request"),
        (get("/nowhere"), 404, "not_found"),
    ];
    for (req, status, code) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = app.clone().oneshot(req).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{what}");
        if status == 405 {
            assert!(r.headers().contains_key(header::ALLOW), "{what}");
        }
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/json",
            "{what}"
        );
        let v = json_of(r).await;
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
}

/// Starts a conversation and has ana add a lead to it, so the outbox has a record to deliver.
async fn one_record(s: &Server) {
    let b = &s.base;
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "demo"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["conversation"].as_str().unwrap();
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{b}/api/agent/conversations/{id}/records"),
        Some(ANA),
        Some(json!({"type": "lead", "title": "Lead", "person": {"email": "ann@example.com"}})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
}

/// The records list once `done` holds for its first record (within 10 s).
async fn records_until(s: &Server, done: impl Fn(&Value) -> bool) -> Value {
    let url = format!("{}/api/records", s.base);
    let poll = async {
        loop {
            let (_, v) = call(&s.client, "GET", &url, Some(ANA), None).await;
            if v.get(0).is_some_and(&done) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the record never got there")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_secrets_in_the_url_are_never_shown_to_agents() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on port 1: every attempt fails and is stored as `last_error`.
    let s = Server::start(
        dir.path(),
        "[webhook]\nurl = \"http://bot:pa55word@127.0.0.1:1/crm?api_token=s3cret\"\nretry_min_ms = 50\nretry_max_ms = 100\n",
    )
    .await;
    one_record(&s).await;
    let v = records_until(&s, |r| r["last_error"].is_string()).await;
    let error = v[0]["last_error"].as_str().unwrap();
    assert!(
        !error.contains("s3cret") && !error.contains("pa55word"),
        "{error}"
    );
    assert!(error.contains("127.0.0.1:1/crm?REDACTED"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_secret_can_travel_in_a_header_from_the_environment() {
    use axum::routing::post;
    // A CRM that takes only requests carrying the secret. `cargo test` sets CARGO_PKG_NAME
    // for the test process, so no test has to change its environment.
    let want = std::env::var("CARGO_PKG_NAME").unwrap();
    let crm = axum::Router::new().route(
        "/crm",
        post(move |h: axum::http::HeaderMap| async move {
            if h.get("x-crm-token").is_some_and(|v| v == want.as_str()) {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let crm_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, crm).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &format!(
            "[webhook]\nurl = \"http://{crm_addr}/crm\"\nheader = \"X-Crm-Token\"\nheader_value_env = \"CARGO_PKG_NAME\"\nretry_min_ms = 50\nretry_max_ms = 100\n"
        ),
    )
    .await;
    one_record(&s).await;
    let v = records_until(&s, |r| r["delivered_at"].is_number()).await;
    assert!(v[0]["last_error"].is_null(), "{v}");
}

/// The server process's resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Measures what an idle visitor WebSocket costs the server: `playbook serve` in its own
/// process, 1,000 conversations started, then 1,000 sockets opened and left idle; prints the
/// growth of the server's RSS per socket. Linux only (reads /proc).
/// `cargo test --test server_edge idle_socket_memory -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check: run by hand"]
async fn idle_socket_memory() {
    use futures_util::StreamExt;
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let config = server_common::config_with(dir.path(), "", 1000, "conversations_per_minute = 0\n");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_playbook"))
        .arg("serve")
        .arg("--playbooks")
        .arg(server_common::playbooks(dir.path()))
        .arg("--data")
        .arg(dir.path().join("data"))
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let up = async {
        while client.get(format!("{base}/healthz")).send().await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), up)
        .await
        .expect("the server did not come up");
    let mut convs = Vec::new();
    for _ in 0..N {
        let (st, v) = call(
            &client,
            "POST",
            &format!("{base}/api/conversations"),
            None,
            Some(json!({"playbook": "demo"})),
        )
        .await;
        assert_eq!(st, 201);
        convs.push((
            v["conversation"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        ));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(child.id());
    let mut sockets = Vec::new();
    for (id, token) in &convs {
        let url = format!("ws://127.0.0.1:{port}/api/conversations/{id}/ws?token={token}");
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        // The status frame: the server's side of the socket is set up.
        ws.next().await.unwrap().unwrap();
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(child.id());
    println!(
        "server RSS: {before} KiB with {N} conversations, {after} KiB with {N} idle sockets: {:.1} KiB per socket",
        (after.saturating_sub(before)) as f64 / N as f64
    );
    drop(sockets);
    let _ = child.kill();
    let _ = child.wait();
}
