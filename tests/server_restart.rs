//! Kill -9 and restart: the `playbook serve` binary is SIGKILLed in the middle of
//! conversations and of webhook delivery, restarted on the same data folder, and every
//! conversation continues; every record reaches the webhook, none twice as a new record.

mod server_common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use server_common::{Crm, call, fake_crm, texts};

struct Proc {
    child: Child,
    base: String,
}

impl Proc {
    /// SIGKILL, as a crash would, and wait for it to be gone.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    /// A failing test must not leave a server running (it would hold the test's pipes open).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a conversation on `playbook`: its id, visitor token and the first answer.
async fn start(
    c: &reqwest::Client,
    base: &str,
    playbook: &str,
) -> (String, String, serde_json::Value) {
    let (st, v) = call(
        c,
        "POST",
        &format!("{base}/api/conversations"),
        None,
        Some(json!({"playbook": playbook})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    (id, token, v)
}

fn spawn(dir: &std::path::Path) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_playbook"))
        .args(["serve", "--addr", "127.0.0.1:0", "--playbooks"])
        .arg(dir.join("playbooks"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("playbook.toml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join("server.log"))
                .unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    Proc { child, base: addr }
}

async fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_conversation_and_mid_delivery_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = Arc::new(Mutex::new(Crm {
        fail_first: 3,
        ..Default::default()
    }));
    let url = fake_crm(state.clone(), Duration::ZERO).await;
    server_common::playbooks(dir.path());
    server_common::config(
        dir.path(),
        &format!("[webhook]\nurl = \"{url}\"\nretry_min_ms = 50\nretry_max_ms = 200\n"),
        1000,
    );
    let c = reqwest::Client::new();
    let p = spawn(dir.path());

    // Five conversations finished with a lead, five waiting at the email question.
    let mut done = Vec::new();
    let mut waiting = Vec::new();
    for i in 0..10 {
        let (st, v) = call(
            &c,
            "POST",
            &format!("{}/api/conversations", p.base),
            None,
            Some(json!({"playbook": "quick"})),
        )
        .await;
        assert_eq!(st, 201);
        let id = v["conversation"].as_str().unwrap().to_owned();
        let token = v["token"].as_str().unwrap().to_owned();
        if i < 5 {
            let (st, _) = call(
                &c,
                "POST",
                &format!("{}/api/conversations/{id}/messages", p.base),
                Some(&token),
                Some(json!({"text": format!("v{i}@example.com")})),
            )
            .await;
            assert_eq!(st, 200);
            done.push((id, token));
        } else {
            let (st, _) = call(
                &c,
                "POST",
                &format!("{}/api/conversations/{id}/messages", p.base),
                Some(&token),
                Some(json!({"text": "not an email"})),
            )
            .await;
            assert_eq!(st, 200);
            waiting.push((id, token));
        }
    }
    // A live chat waiting in Unassigned, picked up by ana.
    let (_, v) = call(
        &c,
        "POST",
        &format!("{}/api/conversations", p.base),
        None,
        Some(json!({"playbook": "demo"})),
    )
    .await;
    let live = (
        v["conversation"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );
    call(
        &c,
        "POST",
        &format!("{}/api/conversations/{}/messages", p.base, live.0),
        Some(&live.1),
        Some(json!({"choice": 2})),
    )
    .await;
    let (st, _) = call(
        &c,
        "POST",
        &format!("{}/api/agent/conversations/{}/assign", p.base, live.0),
        Some(server_common::ANA),
        None,
    )
    .await;
    assert_eq!(st, 200);

    // Kill while the webhook is failing and retrying.
    wait_for(
        || state.lock().unwrap().hits.len() >= 2,
        "the first delivery attempts",
    )
    .await;
    p.kill();

    let p = spawn(dir.path());
    // Every conversation is still there, with its history.
    for (id, token) in &done {
        let (st, h) = call(
            &c,
            "GET",
            &format!("{}/api/conversations/{id}/messages", p.base),
            Some(token),
            None,
        )
        .await;
        assert_eq!(st, 200);
        assert_eq!(h["status"], "ended");
        assert_eq!(texts(&h["messages"]).last().unwrap(), "Thanks!");
    }
    for (i, (id, token)) in waiting.iter().enumerate() {
        let (st, v) = call(
            &c,
            "POST",
            &format!("{}/api/conversations/{id}/messages", p.base),
            Some(token),
            Some(json!({"text": format!("w{i}@example.com")})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(texts(&v["messages"]).last().unwrap(), "Thanks!");
    }
    let (st, _) = call(
        &c,
        "POST",
        &format!("{}/api/agent/conversations/{}/messages", p.base, live.0),
        Some(server_common::ANA),
        Some(json!({"text": "still here"})),
    )
    .await;
    assert_eq!(
        st, 200,
        "the live chat continues with its agent after the restart"
    );

    // A live-chat wait of 1 s that expires while the server is down: it fires on start.
    let (_, v) = call(
        &c,
        "POST",
        &format!("{}/api/conversations", p.base),
        None,
        Some(json!({"playbook": "timeout"})),
    )
    .await;
    assert_eq!(v["status"], "queued");
    let waiter = (
        v["conversation"].as_str().unwrap().to_owned(),
        v["token"].as_str().unwrap().to_owned(),
    );

    // Kill again mid-delivery, stay down past the wait, restart, and let delivery finish.
    p.kill();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let p = spawn(dir.path());
    let (_, h) = call(
        &c,
        "GET",
        &format!("{}/api/conversations/{}/messages", p.base, waiter.0),
        Some(&waiter.1),
        None,
    )
    .await;
    assert_eq!(h["status"], "waiting", "{h}");
    assert!(
        texts(&h["messages"]).contains(&"Nobody is free right now.".to_owned()),
        "{h}"
    );
    let expected: BTreeSet<String> = done
        .iter()
        .chain(&waiting)
        .map(|(id, _)| format!("{id}/lead"))
        .collect();
    wait_for(
        || {
            let s = state.lock().unwrap();
            expected.iter().all(|k| s.delivered().contains_key(k))
        },
        "every record delivered",
    )
    .await;
    let (_, recs) = call(
        &c,
        "GET",
        &format!("{}/api/records", p.base),
        Some(server_common::ANA),
        None,
    )
    .await;
    let keys: BTreeSet<String> = recs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        keys, expected,
        "no record lost, none duplicated in the server"
    );
    wait_for(
        || {
            recs.as_array().is_some() && {
                let s = state.lock().unwrap();
                s.delivered().len() == expected.len()
            }
        },
        "deduplicated count",
    )
    .await;
    {
        let s = state.lock().unwrap();
        let stored = s.delivered();
        let delivered: BTreeSet<&String> = stored.keys().collect();
        assert_eq!(delivered, expected.iter().collect());
        // Re-sent keys (a kill between the CRM's 2xx and our bookkeeping) are possible, but
        // always under the same key: the CRM's deduplicated count equals the record count.
        assert_eq!(stored.len(), 10);
    }
    p.kill();
}

/// The whole history of a conversation as its visitor sees it.
async fn history(c: &reqwest::Client, base: &str, id: &str, token: &str) -> serde_json::Value {
    let (st, v) = call(
        c,
        "GET",
        &format!("{base}/api/conversations/{id}/messages"),
        Some(token),
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_between_restarts_rewrites_nothing() {
    use server_common::{ANA, BOB};
    let dir = tempfile::tempdir().unwrap();
    server_common::playbooks(dir.path());
    server_common::config(dir.path(), "", 1000);
    let c = reqwest::Client::new();
    let p = spawn(dir.path());

    // A second server on the same data folder is refused, with the reason.
    let second = Command::new(env!("CARGO_BIN_EXE_playbook"))
        .args(["serve", "--addr", "127.0.0.1:0", "--playbooks"])
        .arg(dir.path().join("playbooks"))
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("in use by another"), "{err}");

    // ana picks up a chat and talks with the visitor; bob goes away.
    let (id, token, _) = start(&c, &p.base, "demo").await;
    let msgs = format!("{}/api/conversations/{id}/messages", p.base);
    let agent = format!("{}/api/agent/conversations/{id}", p.base);
    let steps: [(&str, &str, Option<&str>, serde_json::Value); 4] = [
        (
            "POST",
            msgs.as_str(),
            Some(token.as_str()),
            json!({"choice": 2}),
        ),
        ("POST", &format!("{agent}/assign"), Some(ANA), json!(null)),
        (
            "POST",
            &format!("{agent}/messages"),
            Some(ANA),
            json!({"text": "Hi, Ana here."}),
        ),
        (
            "POST",
            msgs.as_str(),
            Some(token.as_str()),
            json!({"text": "Do you do discounts?"}),
        ),
    ];
    for (m, url, tok, body) in steps {
        let body = (!body.is_null()).then_some(body);
        let (st, v) = call(&c, m, url, tok, body).await;
        assert_eq!(st, 200, "{url}: {v}");
    }
    let (st, _) = call(
        &c,
        "PUT",
        &format!("{}/api/agent/presence", p.base),
        Some(BOB),
        Some(json!({"presence": "away"})),
    )
    .await;
    assert_eq!(st, 200);
    let before = history(&c, &p.base, &id, &token).await;
    assert_eq!(before["status"], "with_agent");
    p.kill();

    // The config now says ana starts offline and bob online: stored presence and history win.
    let text = std::fs::read_to_string(dir.path().join("playbook.toml")).unwrap();
    let text = text
        .replacen("presence = \"online\"", "presence = \"offline\"", 1)
        .replacen("presence = \"online\"", "presence = \"away\"", 1);
    std::fs::write(dir.path().join("playbook.toml"), text).unwrap();
    let p = spawn(dir.path());
    let msgs = format!("{}/api/conversations/{id}/messages", p.base);
    let agent = format!("{}/api/agent/conversations/{id}", p.base);
    assert_eq!(history(&c, &p.base, &id, &token).await, before);
    let (_, agents) = call(
        &c,
        "GET",
        &format!("{}/api/agent/agents", p.base),
        Some(ANA),
        None,
    )
    .await;
    let presence: Vec<(&str, &str)> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["presence"].as_str().unwrap()))
        .collect();
    assert_eq!(presence, [("ana", "online"), ("bob", "away")]);
    // The chat goes on with ana where it was: the visitor's next message is relayed to her,
    // not taken as an answer to a bot question.
    let (st, v) = call(
        &c,
        "POST",
        &msgs,
        Some(&token),
        Some(json!({"text": "Hello?"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "with_agent");
    let (st, v) = call(&c, "POST", &format!("{agent}/close"), Some(ANA), None).await;
    assert_eq!(st, 200, "{v}");
    p.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_pending_at_a_crash_fires_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    server_common::playbooks(dir.path());
    server_common::config(dir.path(), "", 1000);
    let c = reqwest::Client::new();
    let p = spawn(dir.path());
    let (id, token, v) = start(&c, &p.base, "timeout").await;
    assert_eq!(v["status"], "queued");
    // Killed before its 1 s wait is over; down while it passes.
    p.kill();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let p = spawn(dir.path());
    let mut h = history(&c, &p.base, &id, &token).await;
    for _ in 0..100 {
        if h["status"] != "queued" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        h = history(&c, &p.base, &id, &token).await;
    }
    assert_eq!(h["status"], "waiting", "{h}");
    assert_eq!(
        texts(&h["messages"])[1..],
        [
            "Nobody is free right now.",
            "Leave your email and we'll call you back."
        ]
    );
    p.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    server_common::playbooks(dir.path());
    server_common::config(dir.path(), "", 2);
    // The window is the wall-clock minute: start early in one, so the whole test fits in it.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if secs % 60 > 40 {
        tokio::time::sleep(Duration::from_secs(61 - secs % 60)).await;
    }
    let c = reqwest::Client::new();
    let p = spawn(dir.path());
    let (id, token, _) = start(&c, &p.base, "demo").await;
    let send = |base: &str, body: serde_json::Value| {
        let (c, url, token) = (
            c.clone(),
            format!("{base}/api/conversations/{id}/messages"),
            token.clone(),
        );
        async move { call(&c, "POST", &url, Some(&token), Some(body)).await.0 }
    };
    // A refused input does not count; two accepted ones use up the minute.
    assert_eq!(send(&p.base, json!({"choice": 9})).await, 400);
    assert_eq!(send(&p.base, json!({"choice": 1})).await, 200);
    assert_eq!(send(&p.base, json!({"choice": 2})).await, 200);
    p.kill();
    let p = spawn(dir.path());
    assert_eq!(
        send(&p.base, json!({"text": "Ann"})).await,
        429,
        "the window was stored with the conversation"
    );
    p.kill();
}

/// SIGKILL while Pipedrive has made a lead but not yet answered: after the restart the
/// connector finds that lead (its step was begun, not done) instead of making a second one,
/// and goes on with its note; the person, stored as done before the kill, is not searched
/// or made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_between_the_crms_answer_and_our_write_makes_no_duplicate() {
    use server_common::vendor::{self, Fake, Kind};
    let token = std::env::var("CARGO_PKG_NAME").unwrap();
    let fake = Fake::new(Kind::Pipedrive, &token);
    fake.lock().unwrap().slow = Some(("/api/v1/leads".into(), Duration::from_secs(30)));
    let url = vendor::serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    server_common::playbooks(dir.path());
    server_common::config(
        dir.path(),
        &format!(
            "[[crm]]\nkind = \"pipedrive\"\nbase_url = \"{url}\"\ntoken_env = \"CARGO_PKG_NAME\"\nretry_min_ms = 50\nretry_max_ms = 200\n"
        ),
        1000,
    );
    let c = reqwest::Client::new();
    let p = spawn(dir.path());
    let mut convs = Vec::new();
    for i in 0..3 {
        let (id, token, _) = start(&c, &p.base, "quick").await;
        let (st, _) = call(
            &c,
            "POST",
            &format!("{}/api/conversations/{id}/messages", p.base),
            Some(&token),
            Some(json!({"text": format!("k{i}@example.com")})),
        )
        .await;
        assert_eq!(st, 200);
        convs.push(id);
    }
    // The first lead is made at the CRM; its answer is held back. Kill now.
    wait_for(
        || fake.lock().unwrap().count("leads") == 1,
        "the first lead",
    )
    .await;
    p.kill();
    assert_eq!(fake.lock().unwrap().count("notes"), 0);

    let p = spawn(dir.path());
    let mut all = false;
    for _ in 0..200 {
        let (_, v) = call(
            &c,
            "GET",
            &format!("{}/api/records", p.base),
            Some(server_common::ANA),
            None,
        )
        .await;
        let rs = v.as_array().cloned().unwrap_or_default();
        if rs.len() == 3 && rs.iter().all(|r| r["delivered_at"].is_number()) {
            all = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(all, "every record delivered after the restart");
    let f = fake.lock().unwrap();
    assert_eq!(f.count("persons"), 3, "one person per email");
    assert_eq!(f.count("leads"), 3, "no lead made twice");
    assert_eq!(f.count("notes"), 3, "one transcript note per lead");
    let titles: BTreeSet<String> = f.objects["leads"]
        .iter()
        .map(|l| l["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles.len(), 3);
    // The begun lead was looked for, by its title among its person's.
    assert!(
        f.reqs
            .iter()
            .all(|r| !vendor::pipedrive_deprecated(&r.method, &r.path)),
        "no deprecated v1 endpoint"
    );
    let searched = f.hits("GET", "/api/v1/leads/search");
    assert_eq!(searched.len(), 1, "{searched:?}");
    assert_eq!(searched[0].query["term"], "Lead k0@example.com");
    assert_eq!(searched[0].query["exact_match"], "true");
    // Each note is on its own lead.
    let leads: BTreeSet<String> = f.objects["leads"]
        .iter()
        .map(|l| vendor::id_text(&l["id"]))
        .collect();
    let noted: BTreeSet<String> = f.objects["notes"]
        .iter()
        .map(|n| vendor::id_text(&n["lead_id"]))
        .collect();
    assert_eq!(leads, noted);
}
