//! Migration of a data folder written by the first server (an event log; committed fixture
//! `tests/fixtures/v1/`, made by `make.py` with that release): after migration every
//! conversation, line, record, desk folder and agent presence reads exactly as the first
//! server showed it; the old log is kept; a file of a newer schema is refused.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, header};
use playbook::engine::Instant;
use playbook::persist::SqliteOptions;
use playbook::persist::sqlite::SqliteStore;
use playbook::runtime::driver::Clock;
use playbook::server::Config;
use serde_json::{Value, json};
use tower::ServiceExt;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// A copy of the fixture's data folder (the server writes to what it opens).
fn copy_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("playbook.sqlite");
    std::fs::copy(fixture().join("data/playbook.sqlite"), &db).unwrap();
    (dir, db)
}

async fn get(router: &axum::Router, path: &str, token: &str) -> Value {
    let req = Request::builder()
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// `v` without the keys named (recursively), for fields the first server computed
/// differently (`updated_at` did not count fired timers there).
/// `v` with every bot line said after an agent closed the chat (a `… closed the
/// conversation` notice) under the bot's own name `bot`: each `messages` list, and `last`.
fn bot_after_close(mut v: Value, bot: &str) -> Value {
    let relabel = |list: &mut Vec<Value>| {
        let mut closed = false;
        for m in list.iter_mut() {
            let text = m["text"].as_str().unwrap_or_default();
            if m["from"]["role"] == "system" && text.ends_with("closed the conversation") {
                closed = true;
            } else if closed && m["from"]["role"] == "bot" {
                m["from"]["name"] = json!(bot);
            }
        }
    };
    if let Some(list) = v.get_mut("messages").and_then(Value::as_array_mut) {
        relabel(list);
        let last = list.last().cloned();
        if let (Some(last), Some(l)) = (last, v.get_mut("last"))
            && l["seq"] == last["seq"]
        {
            *l = last;
        }
    }
    v
}

/// A folder listing with the last line of each closed chat, if the bot's, under the bot's
/// own name (it was said after the agent closed: see [`bot_after_close`]).
fn closed_last_by_bot(mut v: Value, bot: &str) -> Value {
    for c in v.as_array_mut().into_iter().flatten() {
        if c["state"] == "closed" && c["last"]["from"]["role"] == "bot" {
            c["last"]["from"]["name"] = json!(bot);
        }
    }
    v
}

/// A conversation (detail or folder entry) without the fields the first server did not have
/// (who the visitor is and where, since when they wait), after checking them against what it
/// did have: the variables, the first and last lines, the desk state.
fn visitor_checked(mut v: Value) -> Value {
    let c = v.as_object_mut().expect("a conversation");
    let started = c["started_at"].as_u64().expect("started_at");
    if let Some(first) = c.get("messages").and_then(|m| m.get(0)) {
        assert_eq!(first["at"].as_u64(), Some(started), "started_at: {first}");
        for k in ["name", "email"] {
            assert_eq!(
                c["visitor"][k],
                c["variables"].get(k).cloned().unwrap_or(Value::Null)
            );
        }
    }
    assert!(c["visitor"].is_object(), "visitor: {}", c["visitor"]);
    assert!(c["channel"].is_string(), "channel: {}", c["channel"]);
    assert!(c["page_url"].is_string() || c["page_url"].is_null());
    let last = c["last"]["at"].as_u64().unwrap_or(started);
    match c["waiting_since"].as_u64() {
        Some(w) => assert!(c["state"] == "unassigned" && (started..=last).contains(&w)),
        None => assert!(c["waiting_since"].is_null() && c["state"] != "unassigned"),
    }
    for k in [
        "visitor",
        "page_url",
        "channel",
        "started_at",
        "waiting_since",
    ] {
        c.remove(k);
    }
    // Also new: each record's standing with the CRM (this fixture's config has none, so the
    // records wait undelivered).
    if let Some(records) = c.get_mut("records").and_then(Value::as_array_mut) {
        for r in records {
            let d = r
                .as_object_mut()
                .and_then(|r| r.remove("delivery"))
                .expect("delivery");
            assert!(
                ["pending", "delivered"].contains(&d["state"].as_str().unwrap_or("")),
                "{d}"
            );
        }
    }
    v
}

/// [`visitor_checked`] for each conversation of a folder.
fn folder_checked(v: Value) -> Value {
    Value::Array(
        v.as_array()
            .expect("a folder")
            .iter()
            .cloned()
            .map(visitor_checked)
            .collect(),
    )
}

fn without(mut v: Value, keys: &[&str]) -> Value {
    match &mut v {
        Value::Object(m) => {
            for k in keys {
                m.remove(*k);
            }
            for x in m.values_mut() {
                *x = without(x.take(), keys);
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                *x = without(x.take(), keys);
            }
        }
        _ => {}
    }
    v
}

#[tokio::test(start_paused = true)]
async fn a_first_release_data_folder_is_migrated_losing_nothing() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap())
            .unwrap();
    let (dir, db) = copy_data();
    // The clock starts where the first server stopped, so no timer is due yet: what we read
    // is exactly the state it acknowledged.
    let last_at: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT MAX(at) FROM events", [], |r| r.get(0))
        .unwrap();
    let config = Config::load(&fixture().join("playbook.toml")).unwrap();
    let (store, opened) = SqliteStore::open(&db, SqliteOptions::default()).unwrap();
    let opening =
        playbook::server::open_with(store, opened, config.clone(), fixture().join("playbooks"))
            .unwrap();
    let (state, report) =
        playbook::server::start(opening, Clock::starting_at(Instant(last_at as u64)))
            .await
            .unwrap();
    assert!(
        report.loaded.is_empty(),
        "the stored versions are the files: {report:?}"
    );
    let router = playbook::server::router(state);
    let ana = &config
        .agents
        .iter()
        .find(|a| a.name == "ana")
        .unwrap()
        .token;

    let convs = expected["conversations"].as_object().unwrap();
    assert_eq!(convs.len(), 7);
    for (label, c) in convs {
        let id = c["id"].as_str().unwrap();
        let token = c["visitor_token"].as_str().unwrap();
        let history = get(&router, &format!("/api/conversations/{id}/messages"), token).await;
        // Since the fixture was made, the bot speaks as the agent only while the agent handles
        // the chat: migrating replays the log, so the bot's lines after an agent closed (and
        // the display name then) are the bot's own. The rest is exactly as recorded.
        let recorded = bot_after_close(c["visitor_history"].clone(), "Ava");
        let mut want = recorded.clone();
        if label == "b_live_chat_deal" {
            want["bot"] = json!("Ava");
        }
        // Also new since: the playbook's language, for the widget's own words.
        let language = c["playbook"].as_str().map(|p| {
            if p == "demo" {
                json!("en")
            } else {
                Value::Null
            }
        });
        want["language"] = language.unwrap_or(Value::Null);
        // And a waiting conversation's place in line: the fixture's one waiting chat is first.
        if want["status"] == "queued" {
            want["queue_position"] = json!(1);
        }
        assert_eq!(history, want, "{label}: visitor history");
        let detail = get(&router, &format!("/api/agent/conversations/{id}"), ana).await;
        assert_eq!(
            without(visitor_checked(detail), &["updated_at"]),
            without(
                bot_after_close(c["agent_detail"].clone(), "Ava"),
                &["updated_at"]
            ),
            "{label}: agent detail"
        );
    }
    let records = get(&router, "/api/records?limit=1000", ana).await;
    // `parked` (schema version 4) is new since: no migrated record is.
    assert!(
        records
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["parked"] == json!(false)),
        "{records}"
    );
    assert_eq!(
        without(records, &["parked"]),
        expected["records"],
        "records and their delivery state"
    );
    let agents = get(&router, "/api/agent/agents", ana).await;
    assert_eq!(
        agents, expected["agents"],
        "stored presence, not the config's"
    );
    for agent in &config.agents {
        for folder in ["unassigned", "mine", "closed"] {
            let got = get(
                &router,
                &format!("/api/agent/conversations?folder={folder}"),
                &agent.token,
            )
            .await;
            assert_eq!(
                without(folder_checked(got), &["updated_at"]),
                without(
                    closed_last_by_bot(expected["folders"][&agent.name][folder].clone(), "Ava"),
                    &["updated_at"]
                ),
                "{} {folder}",
                agent.name
            );
        }
    }

    // The old log is kept beside the new tables, and a copy of the whole file beside it.
    let c = rusqlite::Connection::open(&db).unwrap();
    let kept: i64 = c
        .query_row("SELECT count(*) FROM events_v1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, expected["events"].as_i64().unwrap());
    let version: String = c
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, playbook::persist::SCHEMA_VERSION.to_string());
    assert!(dir.path().join("playbook.sqlite.v1-backup").exists());
}

#[test]
fn a_data_folder_of_a_newer_release_is_refused() {
    let (dir, db) = copy_data();
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             INSERT INTO meta VALUES ('schema_version', '99');",
        )
        .unwrap();
    }
    let opts = playbook::server::ServeOptions {
        playbooks: fixture().join("playbooks"),
        data: dir.path().to_owned(),
        addr: "127.0.0.1:0".into(),
        config: Some(fixture().join("playbook.toml")),
        database: None,
    };
    let err = playbook::server::open(&opts).unwrap_err();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("newer release"), "{err}");
}

/// A database from before analytics (schema 3, no `stats`) is counted once when a server
/// opens it: the starts, outcomes, live chats and records its conversations still tell — the
/// same totals the replay of the first release's log counted as it ran — and a second open
/// adds nothing.
#[test]
fn a_database_from_before_analytics_is_counted_once() {
    use playbook::persist::sqlite::SqliteReader;
    let (dir, db) = copy_data();
    let opts = playbook::server::ServeOptions {
        playbooks: fixture().join("playbooks"),
        data: dir.path().to_owned(),
        addr: "127.0.0.1:0".into(),
        config: Some(fixture().join("playbook.toml")),
        database: None,
    };
    let report = |db: &Path| {
        let r = SqliteReader::open(db).unwrap();
        let rows = r.stats("demo", None, 0, 1_000_000).unwrap();
        let mut totals = std::collections::BTreeMap::new();
        for (_, key, n) in rows {
            let kind = key.split('\t').next().unwrap().to_owned();
            if ["started", "ended", "live", "handled", "record"].contains(&kind.as_str()) {
                *totals.entry(key).or_insert(0) += n;
            }
        }
        totals
    };
    // The first release's log, replayed through the runtime: counted as it runs.
    drop(playbook::server::open(&opts).unwrap());
    let replayed = report(&db);
    assert!(
        replayed.get("started\tweb").is_some_and(|n| *n > 0),
        "{replayed:?}"
    );
    // The same data as a release before analytics left it.
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("DROP TABLE stats; UPDATE meta SET value = '3' WHERE key = 'schema_version';")
        .unwrap();
    drop(c);
    drop(playbook::server::open(&opts).unwrap());
    let backfilled = report(&db);
    let sum = |m: &std::collections::BTreeMap<String, i64>, prefix: &str| {
        m.iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, n)| *n)
            .sum::<i64>()
    };
    // Starts count by each conversation's last channel (one moved from web to email), so
    // the total agrees.
    for prefix in ["started\t", "ended\t", "record\t"] {
        assert_eq!(
            sum(&backfilled, prefix),
            sum(&replayed, prefix),
            "{prefix}: {backfilled:?} / {replayed:?}"
        );
    }
    for key in ["record\tlead", "live\tpicked_up", "live\tclosed"] {
        assert_eq!(
            backfilled.get(key),
            replayed.get(key),
            "{key}: {backfilled:?}"
        );
    }
    // Opened again: nothing is counted twice.
    drop(playbook::server::open(&opts).unwrap());
    assert_eq!(report(&db), backfilled);
}
