//! CORS on the visitor routes only (preflights through `oneshot`, no socket), the agents list
//! for reassigning, and the typing frame before the bot's answer.

mod server_common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use server_common::{ANA, Server, call};
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

async fn app(dir: &std::path::Path, extra: &str) -> axum::Router {
    let opts = playbook::server::ServeOptions {
        playbooks: server_common::playbooks(dir),
        data: dir.join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(server_common::config(dir, extra, 1000)),
        database: server_common::database(),
    };
    let (state, _) = playbook::server::launch(&opts, playbook::runtime::driver::Clock::wall())
        .await
        .unwrap();
    playbook::server::router(state)
}

fn preflight(path: &str, origin: &str, method: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri(path)
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "content-type,authorization",
        )
        .body(Body::empty())
        .unwrap()
}

fn allow_origin(r: &axum::response::Response) -> Option<&str> {
    r.headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn visitor_routes_answer_any_origin_by_default_agent_routes_none() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "").await;
    let site = "https://www.customer.example";

    for (path, method) in [
        ("/api/conversations", "POST"),
        ("/api/conversations/c_x/messages", "POST"),
        ("/api/conversations/c_x/messages", "GET"),
        ("/widget.js", "GET"),
    ] {
        let r = app
            .clone()
            .oneshot(preflight(path, site, method))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(allow_origin(&r), Some("*"), "{path}");
        let methods = r.headers()[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap();
        assert!(methods.contains(method), "{path}: {methods}");
        let headers = r.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .unwrap();
        assert!(headers.contains("authorization"), "{path}: {headers}");
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
                .is_none()
        );
    }

    // A real cross-origin start gets the header too.
    let start = Request::builder()
        .method("POST")
        .uri("/api/conversations")
        .header(header::ORIGIN, site)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"playbook": "quick"}).to_string()))
        .unwrap();
    let r = app.clone().oneshot(start).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(allow_origin(&r), Some("*"));

    // The agent, admin and record routes stay same-origin.
    for (path, method) in [
        ("/api/agent/me", "GET"),
        ("/api/agent/agents", "GET"),
        ("/api/agent/conversations/c_x/assign", "POST"),
        ("/api/records", "GET"),
        ("/api/admin/reload", "POST"),
    ] {
        let r = app
            .clone()
            .oneshot(preflight(path, site, method))
            .await
            .unwrap();
        assert_eq!(allow_origin(&r), None, "{path}");
        assert_ne!(r.status(), StatusCode::OK, "{path}");
    }
    let me = Request::builder()
        .uri("/api/agent/me")
        .header(header::ORIGIN, site)
        .header(header::AUTHORIZATION, format!("Bearer {ANA}"))
        .body(Body::empty())
        .unwrap();
    let r = app.clone().oneshot(me).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(allow_origin(&r), None);
}

#[tokio::test]
async fn configured_origins_are_the_only_ones_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(
        dir.path(),
        "[cors]\nallowed_origins = [\"https://www.acme.example\"]\n",
    )
    .await;
    let r = app
        .clone()
        .oneshot(preflight(
            "/api/conversations",
            "https://www.acme.example",
            "POST",
        ))
        .await
        .unwrap();
    assert_eq!(allow_origin(&r), Some("https://www.acme.example"));
    let r = app
        .clone()
        .oneshot(preflight(
            "/api/conversations",
            "https://evil.example",
            "POST",
        ))
        .await
        .unwrap();
    assert_eq!(allow_origin(&r), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_list_shows_presence_and_teams() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        "[[agents]]\nname = \"cy\"\ntoken = \"cy-token-0123456789\"\n",
    )
    .await;
    let (c, b) = (&s.client, &s.base);
    let url = format!("{b}/api/agent/agents");
    let (st, _) = call(c, "GET", &url, None, None).await;
    assert_eq!(st, 401);
    let (st, v) = call(c, "GET", &url, Some(ANA), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!([
            {"name": "ana", "presence": "online", "teams": ["Sales"]},
            {"name": "bob", "presence": "online", "teams": ["Sales"]},
            {"name": "cy", "presence": "offline", "teams": []},
        ])
    );
    let (st, _) = call(
        c,
        "PUT",
        &format!("{b}/api/agent/presence"),
        Some("bob-token-0123456789"),
        Some(json!({"presence": "away"})),
    )
    .await;
    assert_eq!(st, 200);
    let (_, v) = call(c, "GET", &url, Some(ANA), None).await;
    assert_eq!(v[1]["presence"], "away");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_comes_before_the_bots_answer() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{}/api/conversations", s.base),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (id, token) = (
        v["conversation"].as_str().unwrap(),
        v["token"].as_str().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/conversations/{id}/ws?token={token}",
        s.addr
    ))
    .await
    .unwrap();
    ws.send(Message::Text(r#"{"text": "nope"}"#.into()))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
            .await
            .expect("frames within 5 s");
        let Some(Ok(Message::Text(t))) = frame else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        seen.push(match v["type"].as_str().unwrap() {
            "message" => format!("message:{}", v["message"]["from"]["role"].as_str().unwrap()),
            other => other.to_owned(),
        });
    }
    assert_eq!(seen, ["status", "message:visitor", "typing", "message:bot"]);
}

#[tokio::test]
async fn the_widgets_look_comes_from_the_config_for_any_origin() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(
        dir.path(),
        "[widget]\naccent = \"#0f766e\"\navatar = \"/avatar.svg\"\n",
    )
    .await;
    let r = app
        .clone()
        .oneshot(
            Request::builder()
                .uri("/api/widget")
                .header(header::ORIGIN, "https://www.customer.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(allow_origin(&r), Some("*"));
    let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v, json!({"accent": "#0f766e", "avatar": "/avatar.svg"}));
    let r = app
        .oneshot(
            Request::builder()
                .uri("/avatar.svg")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/svg+xml");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_visitor_sees_their_place_in_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (c, b) = (&s.client, &s.base);
    // A visitor opens the chat first but asks for sales last: the line is by asking.
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "demo"})),
    )
    .await;
    let late = v["conversation"].as_str().unwrap().to_owned();
    let late_token = v["token"].as_str().unwrap().to_owned();
    // Two visitors ask for sales, one after the other.
    let mut visitors = Vec::new();
    for _ in 0..2 {
        let (_, v) = call(
            c,
            "POST",
            &format!("{b}/api/conversations"),
            None,
            Some(json!({"playbook": "demo"})),
        )
        .await;
        let (id, token) = (
            v["conversation"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        );
        let (st, v) = call(
            c,
            "POST",
            &format!("{b}/api/conversations/{id}/messages"),
            Some(&token),
            Some(json!({"choice": 2})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        visitors.push((id, token));
    }
    let (second, token) = &visitors[1];
    let (_, h) = call(
        c,
        "GET",
        &format!("{b}/api/conversations/{second}/messages"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(h["status"], "queued");
    assert_eq!(h["queue_position"], 2, "{h}");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (st, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations/{late}/messages"),
        Some(&late_token),
        Some(json!({"choice": 2})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let (_, h) = call(
        c,
        "GET",
        &format!("{b}/api/conversations/{late}/messages"),
        Some(&late_token),
        None,
    )
    .await;
    assert_eq!(h["queue_position"], 3, "{h}");
    let (_, folder) = call(
        c,
        "GET",
        &format!("{b}/api/agent/conversations?folder=unassigned"),
        Some(ANA),
        None,
    )
    .await;
    let order: Vec<&str> = folder
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            visitors[0].0.as_str(),
            visitors[1].0.as_str(),
            late.as_str()
        ]
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/conversations/{second}/ws?token={token}",
        s.addr
    ))
    .await
    .unwrap();
    assert_eq!(
        server_common::next_frame(&mut ws, "queue", 5).await["position"],
        2
    );
    // The first is picked up: the second moves to the front.
    let first = &visitors[0].0;
    let (st, _) = call(
        c,
        "POST",
        &format!("{b}/api/agent/conversations/{first}/assign"),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        server_common::next_frame(&mut ws, "queue", 5).await["position"],
        1
    );
    let (_, h) = call(
        c,
        "GET",
        &format!("{b}/api/conversations/{second}/messages"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(h["queue_position"], 1, "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_visitor_sees_the_handling_agent_typing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (c, b) = (&s.client, &s.base);
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "demo"})),
    )
    .await;
    let (id, token) = (
        v["conversation"].as_str().unwrap(),
        v["token"].as_str().unwrap(),
    );
    let (st, _) = call(
        c,
        "POST",
        &format!("{b}/api/conversations/{id}/messages"),
        Some(token),
        Some(json!({"choice": 2})),
    )
    .await;
    assert_eq!(st, 200);
    let typing = format!("{b}/api/agent/conversations/{id}/typing");
    // Nobody handles it yet: nobody may type in it.
    assert_eq!(call(c, "POST", &typing, Some(ANA), None).await.0, 403);
    let (st, _) = call(
        c,
        "POST",
        &format!("{b}/api/agent/conversations/{id}/assign"),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/conversations/{id}/ws?token={token}",
        s.addr
    ))
    .await
    .unwrap();
    server_common::next_frame(&mut ws, "status", 5).await;
    // bob does not handle it; ana does, and her typing reaches the visitor.
    assert_eq!(
        call(c, "POST", &typing, Some(server_common::BOB), None)
            .await
            .0,
        403
    );
    assert_eq!(call(c, "POST", &typing, Some(ANA), None).await.0, 204);
    server_common::next_frame(&mut ws, "typing", 5).await;
    assert_eq!(
        call(
            c,
            "POST",
            &format!("{b}/api/agent/conversations/c_nope/typing"),
            Some(ANA),
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sockets_channel_is_freed_when_its_last_socket_closes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{}/api/conversations", s.base),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let (id, token) = (
        v["conversation"].as_str().unwrap(),
        v["token"].as_str().unwrap(),
    );
    let url = format!("ws://{}/api/conversations/{id}/ws?token={token}", s.addr);
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut agent, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/api/agent/ws?token={ANA}", s.addr))
            .await
            .unwrap();
    // Each socket has said hello (or is registered) before we count.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), a.next()).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), b.next()).await;
    let eventually = |want: (usize, usize)| {
        let state = s.state.clone();
        async move {
            for _ in 0..200 {
                if state.socket_channels() == want {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!(
                "socket channels stayed {:?}, wanted {want:?}",
                state.socket_channels()
            );
        }
    };
    eventually((1, 1)).await;
    a.close(None).await.unwrap();
    eventually((1, 1)).await;
    b.close(None).await.unwrap();
    agent.close(None).await.unwrap();
    eventually((0, 0)).await;
}
