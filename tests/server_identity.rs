//! Identified visitors: a token the site signed with the shared secret fills the playbook's
//! `email` and `name` and routes `route owner` to the visitor's CRM owner; an unsigned or
//! badly signed one is ignored. Through `router(state)` with `oneshot`. (The playbook asks
//! for the name and email on its offline branch, so `check` knows they can be set; a known
//! visitor's are set from the start.)

mod server_common;

use playbook::server::identity::sign;
use serde_json::json;
use server_common::{ANA, BOB, oneshot, texts};

const SECRET: &str = "site-secret-0123456789abcdef";

const OWNED: &str = r#"playbook "Owned" {
  bot "Oli"
  start hello
}

message hello "Hi {name}!" -> chat

livechat chat {
  online "Connecting you with your account manager..."
  wait 1m
  offline "Your account manager is away."
  route owner
  on closed -> bye
  on offline -> name
}

ask name "Your name?" expect text save name -> email

ask email "Your email?" expect email save email -> lead

capture lead lead {
  title "Callback {email}"
  person email "{email}"
} -> bye

message bye "Bye!" end
"#;

async fn app() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let playbooks = server_common::playbooks(dir.path());
    std::fs::write(playbooks.join("owned.playbook"), OWNED).unwrap();
    let var = "PLAYBOOK_TEST_IDENTITY_SECRET";
    // SAFETY: `set_var` races with other threads reading the environment. Every test of this
    // binary writes the same value before reading it, and nothing else here reads it.
    unsafe { std::env::set_var(var, SECRET) };
    let config = server_common::config(
        dir.path(),
        &format!("[identity]\nsecret_env = \"{var}\"\n"),
        1000,
    );
    let opts = playbook::server::ServeOptions {
        playbooks,
        data: dir.path().join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(config),
        database: server_common::database(),
    };
    let (state, _) = playbook::server::launch(&opts, playbook::runtime::driver::Clock::wall())
        .await
        .unwrap();
    (playbook::server::router(state), dir)
}

#[tokio::test]
async fn a_signed_visitor_is_known_and_routed_to_their_owner() {
    let (app, _dir) = app().await;
    let identity = sign(
        SECRET.as_bytes(),
        &json!({"email": "eve@example.com", "name": "Eve", "owner": "bob"}),
    );
    let (st, v) = oneshot(
        &app,
        "POST",
        "/api/conversations",
        None,
        Some(json!({"playbook": "owned", "identity": identity})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["identified"], true);
    assert_eq!(
        texts(&v["messages"]),
        ["Hi Eve!", "Connecting you with your account manager..."]
    );
    let id = v["conversation"].as_str().unwrap();

    // Routed to bob, the owner: ana (online, same team) may not take it; bob may.
    let assign = format!("/api/agent/conversations/{id}/assign");
    let (st, v) = oneshot(&app, "POST", &assign, Some(ANA), None).await;
    assert_eq!(st, 409, "{v}");
    let (st, v) = oneshot(&app, "POST", &assign, Some(BOB), None).await;
    assert_eq!(st, 200, "{v}");
    // The playbook knows the email too.
    let (st, d) = oneshot(
        &app,
        "GET",
        &format!("/api/agent/conversations/{id}"),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["variables"]["email"], "eve@example.com", "{d}");
}

#[tokio::test]
async fn an_unsigned_or_forged_identity_is_ignored() {
    let (app, _dir) = app().await;
    let forged = sign(
        b"not-the-site-secret-0123",
        &json!({"name": "Mallory", "owner": "bob"}),
    );
    for identity in [json!(forged), json!("eyJuYW1lIjoiTWFsbG9yeSJ9"), json!("")] {
        let (st, v) = oneshot(
            &app,
            "POST",
            "/api/conversations",
            None,
            Some(json!({"playbook": "owned", "identity": identity})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(v["identified"], false);
        // Anonymous: no name, and `route owner` has nobody to route to, so the visitor is
        // told and the flow takes the live chat's offline branch at once.
        assert_eq!(
            texts(&v["messages"]),
            ["Hi !", "Your account manager is away.", "Your name?"],
            "{v}"
        );
    }
}
