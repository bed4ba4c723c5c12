//! What the inbox needs of the agent API: who the waiting visitor is and where (their name
//! and email from the playbook's variables, the page they started on, the channel, when they
//! started and since when they wait in Unassigned) in the folder lists and the detail, and the
//! config's saved replies (`GET /api/agent/saved_replies`, validated when the config loads).
//! Through `router(state)` with `oneshot`, on tokio's paused clock from `T0`.

mod server_common;

use std::time::Duration;

use playbook::engine::Instant;
use playbook::runtime::driver::Clock;
use playbook::server::Config;
use serde_json::{Value, json};
use server_common::{ANA, oneshot};

const T0: Instant = Instant(1_767_603_600_000); // 2026-01-05 09:00 UTC

/// Asks the visitor's name and email, then waits ten minutes for Sales.
const KNOWN: &str = r#"playbook "Known" {
  bot "Kim"
  start name
}

ask name "Your name?" expect text save name -> email

ask email "Your email?" expect email save email -> chat

livechat chat {
  online "Connecting you with sales..."
  wait 10m
  offline "Nobody is free."
  route team "Sales"
  on closed -> bye
  on offline -> bye
}

message bye "Bye!" end
"#;

const SAVED: &str = "[[saved_replies]]\nname = \"pricing\"\ntext = \"Plans start at 49 EUR.\"\n\
                     [[saved_replies]]\nname = \"demo-link\"\ntext = \"Book a demo at https://acme.example/demo\"\n";

async fn app(extra: &str) -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let playbooks = server_common::playbooks(dir.path());
    std::fs::write(playbooks.join("known.playbook"), KNOWN).unwrap();
    let opts = playbook::server::ServeOptions {
        playbooks,
        data: dir.path().join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(server_common::config(dir.path(), extra, 1000)),
        database: server_common::database(),
    };
    let (state, _) = playbook::server::launch(&opts, Clock::starting_at(T0))
        .await
        .unwrap();
    (playbook::server::router(state), dir)
}

async fn say(app: &axum::Router, id: &str, token: &str, text: &str) {
    let path = format!("/api/conversations/{id}/messages");
    let (st, v) = oneshot(app, "POST", &path, Some(token), Some(json!({"text": text}))).await;
    assert_eq!(st, 200, "{v}");
}

/// The conversation `id` in an agent's folder.
async fn in_folder(app: &axum::Router, folder: &str, id: &str) -> Option<Value> {
    let path = format!("/api/agent/conversations?folder={folder}");
    let (st, list) = oneshot(app, "GET", &path, Some(ANA), None).await;
    assert_eq!(st, 200, "{list}");
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .cloned()
}

#[tokio::test(start_paused = true)]
async fn the_lists_and_the_detail_show_who_waits_where_and_since_when() {
    let (app, _dir) = app("").await;
    let (st, v) = oneshot(
        &app,
        "POST",
        "/api/conversations",
        None,
        Some(
            json!({"playbook": "known", "page_url": "https://www.acme.example/pricing?plan=team"}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();

    // Half a minute for the name, half for the email: it enters Unassigned at T0 + 60 s.
    tokio::time::advance(Duration::from_secs(30)).await;
    say(&app, &id, &token, "Eve Adams").await;
    tokio::time::advance(Duration::from_secs(30)).await;
    say(&app, &id, &token, "eve@example.com").await;
    // What the visitor writes while waiting does not restart the wait.
    tokio::time::advance(Duration::from_secs(120)).await;
    say(&app, &id, &token, "Anyone there?").await;

    let entered = T0.0 + 60_000;
    let c = in_folder(&app, "unassigned", &id)
        .await
        .expect("waiting in Unassigned");
    assert_eq!(
        c["visitor"],
        json!({"name": "Eve Adams", "email": "eve@example.com"}),
        "{c}"
    );
    assert_eq!(c["page_url"], "https://www.acme.example/pricing?plan=team");
    assert_eq!(c["channel"], "web");
    assert_eq!(c["started_at"], T0.0);
    assert_eq!(c["waiting_since"], entered, "{c}");
    assert_eq!(c["last"]["text"], "Anyone there?");

    let detail = format!("/api/agent/conversations/{id}");
    let (st, d) = oneshot(&app, "GET", &detail, Some(ANA), None).await;
    assert_eq!(st, 200, "{d}");
    for k in [
        "visitor",
        "page_url",
        "channel",
        "started_at",
        "waiting_since",
    ] {
        assert_eq!(d[k], c[k], "detail's {k}: {d}");
    }

    // Once picked up it no longer waits; the visitor is still known in Mine.
    let assign = format!("/api/agent/conversations/{id}/assign");
    let (st, s) = oneshot(&app, "POST", &assign, Some(ANA), None).await;
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["waiting_since"], Value::Null, "{s}");
    let m = in_folder(&app, "mine", &id).await.expect("in Mine");
    assert_eq!(m["visitor"]["name"], "Eve Adams", "{m}");
    assert_eq!(m["waiting_since"], Value::Null, "{m}");
    assert!(in_folder(&app, "unassigned", &id).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn an_anonymous_visitor_is_unknown_and_waits_from_the_live_chat() {
    let (app, _dir) = app("").await;
    let (st, v) = oneshot(
        &app,
        "POST",
        "/api/conversations",
        None,
        Some(json!({"playbook": "demo", "channel": "whatsapp"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    tokio::time::advance(Duration::from_secs(45)).await;
    let path = format!("/api/conversations/{id}/messages");
    let (st, r) = oneshot(
        &app,
        "POST",
        &path,
        Some(&token),
        Some(json!({"choice": 2, "channel": "whatsapp"})),
    )
    .await;
    assert_eq!(st, 200, "{r}");

    tokio::time::advance(Duration::from_secs(10)).await;
    let c = in_folder(&app, "unassigned", &id)
        .await
        .expect("waiting in Unassigned");
    assert_eq!(c["visitor"], json!({"name": null, "email": null}), "{c}");
    assert_eq!(c["page_url"], Value::Null);
    assert_eq!(c["channel"], "whatsapp");
    assert_eq!(c["started_at"], T0.0);
    assert_eq!(c["waiting_since"], T0.0 + 45_000, "{c}");
}

#[tokio::test]
async fn agents_get_the_saved_replies_of_the_config() {
    let (saved, _dir) = app(SAVED).await;
    let (st, v) = oneshot(&saved, "GET", "/api/agent/saved_replies", None, None).await;
    assert_eq!(st, 401, "{v}");
    let (st, v) = oneshot(&saved, "GET", "/api/agent/saved_replies", Some(ANA), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v,
        json!([
            {"name": "pricing", "text": "Plans start at 49 EUR."},
            {"name": "demo-link", "text": "Book a demo at https://acme.example/demo"},
        ])
    );

    // None configured: an empty list.
    let (bare, _bare_dir) = app("").await;
    let (st, v) = oneshot(&bare, "GET", "/api/agent/saved_replies", Some(ANA), None).await;
    assert_eq!((st, v), (200, json!([])));
}

#[test]
fn a_bad_saved_reply_is_refused_naming_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox.toml");
    let entry = |name: &str, text: &str| {
        format!("[[saved_replies]]\nname = \"{name}\"\ntext = \"{text}\"\n")
    };
    let long = "x".repeat(2001);
    for (config, why) in [
        (entry("  ", "Hello"), "saved_replies #1 has an empty name"),
        (
            entry("pricing", "A") + &entry("Pricing", "B"),
            "saved reply `Pricing` is listed twice",
        ),
        (entry("two words", "Hi"), "no spaces"),
        (entry("hi", "  "), "saved reply `hi` has an empty text"),
        (
            entry("essay", &long),
            "longer than limits.max_message_chars (2000)",
        ),
        ("[[saved_replies]]\nname = \"x\"\n".to_owned(), "text"),
    ] {
        std::fs::write(&path, &config).unwrap();
        let e = Config::load(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&path.display().to_string()) && e.contains(why),
            "{config}: {e}"
        );
    }
    std::fs::write(&path, SAVED).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.saved_replies.len(), 2);
    assert_eq!(c.saved_replies[1].name, "demo-link");
}
