//! The server's state guarantees, through `router(state)` with `oneshot` and tokio's paused
//! clock: a change the store refused is not applied anywhere and its retry succeeds; timers
//! fire in virtual time through the same driver; refused inputs do not use up the rate limit;
//! ended conversations leave memory and are read back from the store.

mod server_common;

use std::time::Duration;

use playbook::engine::Instant;
use playbook::persist::SqliteOptions;
use playbook::persist::sqlite::SqliteStore;
use playbook::runtime::driver::Clock;
use playbook::server::{AppState, Config};
use serde_json::{Value, json};
use server_common::ANA;

const T0: Instant = Instant(1_767_603_600_000); // 2026-01-05 09:00 UTC

enum Db {
    Sqlite(std::path::PathBuf),
    Postgres(playbook::persist::PgOptions),
}

struct App {
    state: AppState,
    router: axum::Router,
    db: Db,
    _dir: tempfile::TempDir,
}

/// A server over a fresh data folder whose writes give up after 50 ms on a held lock, on a
/// virtual clock starting at `T0`.
async fn app(turns: u32) -> App {
    app_with(turns, "").await
}

/// [`app`] with `extra` appended to the config.
async fn app_with(turns: u32, extra: &str) -> App {
    let dir = tempfile::tempdir().unwrap();
    let playbooks = server_common::playbooks(dir.path());
    let config = Config::load(&server_common::config(dir.path(), extra, turns)).unwrap();
    let (opening, db) = match server_common::database() {
        Some(mut pg) => {
            // A statement that waits for a lock gives up as soon as on SQLite (about).
            pg.statement_timeout = Duration::from_millis(300);
            let store = playbook::persist::PgStore::open(&pg).unwrap();
            let o = playbook::server::open_store(std::sync::Arc::new(store), config, playbooks);
            (o.unwrap(), Db::Postgres(pg))
        }
        None => {
            std::fs::create_dir_all(dir.path().join("data")).unwrap();
            let db = dir.path().join("data/playbook.sqlite");
            let opts = SqliteOptions {
                busy_timeout: Duration::from_millis(50),
            };
            let (store, opened) = SqliteStore::open(&db, opts).unwrap();
            let o = playbook::server::open_with(store, opened, config, playbooks);
            (o.unwrap(), Db::Sqlite(db))
        }
    };
    let (state, _) = playbook::server::start(opening, Clock::starting_at(T0))
        .await
        .unwrap();
    App {
        router: playbook::server::router(state.clone()),
        state,
        db,
        _dir: dir,
    }
}

impl App {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        server_common::oneshot(&self.router, method, path, token, body).await
    }

    async fn start(&self, playbook: &str) -> (String, String, Value) {
        let (st, v) = self
            .call(
                "POST",
                "/api/conversations",
                None,
                Some(json!({"playbook": playbook})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        (
            v["conversation"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
            v,
        )
    }

    async fn history(&self, id: &str, token: &str) -> Value {
        let (st, v) = self
            .call(
                "GET",
                &format!("/api/conversations/{id}/messages"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(st, 200, "{v}");
        v
    }

    /// Another process's write transaction on the database, held until dropped.
    fn hold_write_lock(&self) -> Box<dyn std::any::Any> {
        match &self.db {
            Db::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.execute_batch("BEGIN IMMEDIATE").unwrap();
                Box::new(c)
            }
            Db::Postgres(pg) => Box::new(PgLock::hold(pg)),
        }
    }
}

/// Tables locked against writes by another PostgreSQL session, on a thread of its own (the
/// test's clock is paused), until dropped.
struct PgLock(
    Option<std::sync::mpsc::Sender<()>>,
    Option<std::thread::JoinHandle<()>>,
);

impl PgLock {
    fn hold(pg: &playbook::persist::PgOptions) -> PgLock {
        let url = std::env::var("PLAYBOOK_TEST_DATABASE_URL").unwrap();
        let schema = pg.schema.clone().unwrap();
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(conn);
                client
                    .batch_execute(&format!(
                        "SET search_path = {schema}; BEGIN;
                         LOCK TABLE conversations, records, agents, pools IN EXCLUSIVE MODE"
                    ))
                    .await
                    .unwrap();
                locked_tx.send(()).unwrap();
                let _ = tokio::task::spawn_blocking(move || wait.recv()).await;
                client.batch_execute("ROLLBACK").await.unwrap();
            });
        });
        locked.recv().unwrap();
        PgLock(Some(release), Some(t))
    }
}

impl Drop for PgLock {
    fn drop(&mut self) {
        drop(self.0.take());
        if let Some(t) = self.1.take() {
            let _ = t.join();
        }
    }
}

fn texts(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_refused_write_changes_nothing_and_its_retry_succeeds() {
    let a = app(1000).await;
    let (id, token, _) = a.start("demo").await;
    let before = a.history(&id, &token).await;
    let msgs = format!("/api/conversations/{id}/messages");

    // The write lock is held elsewhere (as by a second process, or a full disk): 503.
    let lock = a.hold_write_lock();
    let (st, v) = a
        .call("POST", &msgs, Some(&token), Some(json!({"choice": 2})))
        .await;
    assert_eq!(st, 503, "{v}");
    assert_eq!(v["error"]["code"], "storage");
    // Nothing changed in memory: the history, the desk, and the visitor's allowance.
    assert_eq!(a.history(&id, &token).await, before);
    let (_, unassigned) = a
        .call(
            "GET",
            "/api/agent/conversations?folder=unassigned",
            Some(ANA),
            None,
        )
        .await;
    assert_eq!(unassigned, json!([]));

    // The same request again, once the store is back: it behaves as if the first had never
    // been made (not a 409 for a "second" answer).
    drop(lock);
    let (st, v) = a
        .call("POST", &msgs, Some(&token), Some(json!({"choice": 2})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        texts(&v["messages"]),
        ["Talk to sales", "Connecting you with our sales team..."]
    );
    let after = a.history(&id, &token).await;
    assert_eq!(after["status"], "queued");
    let seqs: Vec<u64> = after["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap, no repeat"
    );

    // An agent action refused by the store is not applied either; its retry is.
    let assign = format!("/api/agent/conversations/{id}/assign");
    let lock = a.hold_write_lock();
    let (st, _) = a.call("POST", &assign, Some(ANA), None).await;
    assert_eq!(st, 503);
    drop(lock);
    let (st, v) = a.call("POST", &assign, Some(ANA), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "assigned");
}

#[tokio::test(start_paused = true)]
async fn timers_fire_in_virtual_time_and_a_refused_firing_is_retried() {
    let a = app(1000).await;
    let (id, token, v) = a.start("timeout").await;
    assert_eq!(v["status"], "queued");
    // The 1 s wait passes while the store refuses writes: nothing fires for good.
    let lock = a.hold_write_lock();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(a.history(&id, &token).await["status"], "queued");
    drop(lock);
    // Once the store is back, the retry (after its backoff) fires it.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let h = a.history(&id, &token).await;
    assert_eq!(h["status"], "waiting");
    assert_eq!(
        &texts(&h["messages"])[1..],
        [
            "Nobody is free right now.",
            "Leave your email and we'll call you back."
        ]
    );
    // The offline message is stamped with the virtual deadline, not the wall clock. (On
    // PostgreSQL a timer fires when claimed, every 500 ms: a late firing is stamped no
    // earlier than the hub's clock, which the reads meanwhile moved on.)
    let at = h["messages"][1]["at"].as_u64().unwrap();
    if server_common::on_postgres() {
        assert!((T0.0 + 1_000..=T0.0 + 1_600).contains(&at), "{at}");
    } else {
        assert_eq!(at, T0.0 + 1_000);
    }
    let (st, _) = a
        .call(
            "POST",
            &format!("/api/agent/conversations/{id}/assign"),
            Some(ANA),
            None,
        )
        .await;
    assert_eq!(st, 409, "too late to pick up");
}

#[tokio::test(start_paused = true)]
async fn refused_inputs_do_not_use_up_the_rate_limit() {
    let a = app(3).await;
    let (id, token, _) = a.start("demo").await;
    let msgs = format!("/api/conversations/{id}/messages");
    for _ in 0..5 {
        let (st, _) = a
            .call("POST", &msgs, Some(&token), Some(json!({"choice": 9})))
            .await;
        assert_eq!(st, 400, "no such button");
    }
    // Three accepted inputs fit in the minute; the fourth does not.
    let (st, _) = a
        .call("POST", &msgs, Some(&token), Some(json!({"choice": 1})))
        .await;
    assert_eq!(st, 200);
    for text in ["11-200", "Ann"] {
        let (st, v) = a
            .call("POST", &msgs, Some(&token), Some(json!({"text": text})))
            .await;
        assert_eq!(st, 200, "{v}");
    }
    let (st, v) = a
        .call(
            "POST",
            &msgs,
            Some(&token),
            Some(json!({"text": "ann@acme.example"})),
        )
        .await;
    assert_eq!(st, 429, "{v}");
    // A new minute, a new allowance.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (st, _) = a
        .call(
            "POST",
            &msgs,
            Some(&token),
            Some(json!({"text": "ann@acme.example"})),
        )
        .await;
    assert_eq!(st, 200);
}

#[tokio::test(start_paused = true)]
async fn ended_conversations_leave_memory_and_are_read_from_the_store() {
    let a = app(1000).await;
    let (id, token, _) = a.start("quick").await;
    let msgs = format!("/api/conversations/{id}/messages");
    let (st, v) = a
        .call(
            "POST",
            &msgs,
            Some(&token),
            Some(json!({"text": "eve@example.com"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ended");
    let held = a.state.driver().stats().await.unwrap().conversations;
    assert_eq!(held, 0, "an ended conversation is not held in memory");
    // Still there for its visitor and for agents, read back from the store.
    let h = a.history(&id, &token).await;
    assert_eq!(h["status"], "ended");
    assert_eq!(texts(&h["messages"]).last(), Some(&"Thanks!"));
    let (st, d) = a
        .call(
            "GET",
            &format!("/api/agent/conversations/{id}"),
            Some(ANA),
            None,
        )
        .await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["records"][0]["record"]["key"], format!("{id}/lead"));
    assert_eq!(a.state.driver().stats().await.unwrap().conversations, 0);
    // A wrong token still learns nothing.
    let (st, _) = a
        .call("GET", &msgs, Some("0123456789abcdef0123456789abcdef"), None)
        .await;
    assert_eq!(st, 401);
}

#[tokio::test(start_paused = true)]
async fn idle_conversations_leave_memory_and_their_timers_bring_them_back() {
    let a = app(1000).await;
    // The demo's first question nudges after 10 minutes of silence.
    let (id, token, _) = a.start("demo").await;
    let driver = a.state.driver();
    if server_common::on_postgres() {
        // Replicas hold nothing between commits; the timer is a row any of them claims.
        assert_eq!(driver.stats().await.unwrap().conversations, 0);
        tokio::time::sleep(Duration::from_secs(6 * 60)).await;
    } else {
        assert_eq!(driver.stats().await.unwrap().conversations, 1);
        // Untouched for more than the idle time: out of memory at the next look, timer kept.
        tokio::time::sleep(Duration::from_secs(6 * 60)).await;
        let mut held = usize::MAX;
        for _ in 0..10 {
            // Each request lets the driver look (it sweeps between groups).
            held = driver.stats().await.unwrap().conversations;
            if held == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(held, 0, "an idle conversation is not held in memory");
    }
    // The nudge is due at 10 minutes: the conversation comes back, and the nudge is said.
    tokio::time::sleep(Duration::from_secs(4 * 60 + 1)).await;
    let h = a.history(&id, &token).await;
    let texts = texts(&h["messages"]);
    assert_eq!(
        texts.last(),
        Some(&"Still there? Pick an option whenever you're ready."),
        "{h}"
    );
    assert_eq!(
        h["messages"].as_array().unwrap().last().unwrap()["at"],
        T0.0 + 10 * 60 * 1000
    );
    // And a request for an idle conversation loads it: the visitor can go on.
    let (st, v) = a
        .call(
            "POST",
            &format!("/api/conversations/{id}/messages"),
            Some(&token),
            Some(json!({"choice": 1})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
}

#[tokio::test(start_paused = true)]
async fn a_team_outside_its_hours_takes_nobody_and_opens_on_time() {
    // Sales works 10:00-18:00 in Lisbon (UTC in winter); the clock starts at 09:00 UTC on a
    // Monday. ana and bob are online all along.
    let a = app_with(
        1000,
        "[[teams]]\nname = \"Sales\"\ntimezone = \"Europe/Lisbon\"\nhours = [\"mon-fri 10:00-18:00\"]\n",
    )
    .await;
    let talk = |id: &str, token: &str| {
        let (id, token) = (id.to_owned(), token.to_owned());
        let a = &a;
        async move {
            a.call(
                "POST",
                &format!("/api/conversations/{id}/messages"),
                Some(&token),
                Some(json!({"choice": 2})),
            )
            .await
        }
    };
    let (id, token, _) = a.start("demo").await;
    let (st, v) = talk(&id, &token).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        texts(&v["messages"]),
        [
            "Talk to sales",
            "Sorry, we're all busy right now. Leave your email and we'll get back to you.",
            "What's your name?"
        ]
    );
    // An hour later the team is open: the next visitor waits for ana or bob.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let (id, token, _) = a.start("demo").await;
    let (st, v) = talk(&id, &token).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "queued", "{v}");
}

/// Round robin with a capacity of one through the API, on either store: the first two chats
/// go to ana and bob at once (the visitor hears them join), the third waits first in line,
/// and is ana's the moment she closes hers.
#[tokio::test(start_paused = true)]
async fn automatic_assignment_gives_the_next_waiting_chat_when_a_place_frees() {
    let a = app_with(1000, "[desk]\nassignment = \"round_robin\"\ncapacity = 1\n").await;
    let mut chats = Vec::new();
    for _ in 0..3 {
        let (id, token, _) = a.start("demo").await;
        let (st, v) = a
            .call(
                "POST",
                &format!("/api/conversations/{id}/messages"),
                Some(&token),
                Some(json!({"choice": 2})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
        chats.push((id, token, v));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let joined = |v: &Value, who: &str| {
        texts(&v["messages"]).contains(&format!("{who} joined the conversation").as_str())
    };
    assert!(joined(&chats[0].2, "ana"), "{}", chats[0].2);
    assert_eq!(chats[0].2["status"], "with_agent");
    assert!(joined(&chats[1].2, "bob"), "{}", chats[1].2);
    assert_eq!(chats[2].2["status"], "queued", "{}", chats[2].2);
    let h = a.history(&chats[2].0, &chats[2].1).await;
    assert_eq!(h["queue_position"], 1, "{h}");
    let (st, v) = a
        .call(
            "POST",
            &format!("/api/agent/conversations/{}/close", chats[0].0),
            Some(ANA),
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let h = a.history(&chats[2].0, &chats[2].1).await;
    assert_eq!(h["status"], "with_agent", "{h}");
    assert_eq!(h["bot"], "ana", "{h}");
    assert!(joined(&h, "ana"), "{h}");
    // ana's Mine folder holds it, and nothing waits.
    let (_, v) = a
        .call(
            "GET",
            "/api/agent/conversations?folder=unassigned",
            Some(ANA),
            None,
        )
        .await;
    assert_eq!(v.as_array().map(Vec::len), Some(0), "{v}");
}

/// Flow analytics through the API, on either store: a known mix of six demo conversations
/// (browsing; too small; a qualified lead; a live chat picked up after 30 s and closed
/// after 2 min; one nobody picks up in time; one with nobody available) gives exactly these
/// counts, in virtual time.
#[tokio::test(start_paused = true)]
async fn analytics_count_a_known_mix_exactly() {
    use server_common::{ADMIN, BOB};
    let a = app(1000).await;
    let say = |id: String, token: String, body: Value| {
        let a = &a;
        async move {
            let (st, v) = a
                .call(
                    "POST",
                    &format!("/api/conversations/{id}/messages"),
                    Some(&token),
                    Some(body),
                )
                .await;
            assert_eq!(st, 200, "{v}");
            v
        }
    };
    let agent = |token: &'static str, method: &'static str, path: String, body: Option<Value>| {
        let a = &a;
        async move {
            let (st, v) = a.call(method, &path, Some(token), body).await;
            assert_eq!(st, 200, "{path}: {v}");
        }
    };
    // 1: just browsing. 2: a team too small. 3: a qualified demo lead.
    let (c1, t1, _) = a.start("demo").await;
    say(c1, t1, json!({"choice": 3})).await;
    let (c2, t2, _) = a.start("demo").await;
    say(c2.clone(), t2.clone(), json!({"choice": 1})).await;
    say(c2, t2, json!({"choice": 1})).await;
    let (c3, t3, _) = a.start("demo").await;
    say(c3.clone(), t3.clone(), json!({"choice": 1})).await;
    say(c3.clone(), t3.clone(), json!({"choice": 2})).await;
    say(c3.clone(), t3.clone(), json!({"text": "Eve"})).await;
    // The last answer comes from WhatsApp: outcomes count by the channel used last.
    let v = say(
        c3,
        t3,
        json!({"text": "eve@example.com", "channel": "whatsapp"}),
    )
    .await;
    assert_eq!(v["status"], "ended", "{v}");
    // 4: sales, picked up by ana after 30 s and closed 2 min later. 5: sales, nobody picks
    // up within the card's 2 minutes.
    let (c4, t4, _) = a.start("demo").await;
    say(c4.clone(), t4, json!({"choice": 2})).await;
    let (c5, t5, _) = a.start("demo").await;
    say(c5, t5, json!({"choice": 2})).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let base = format!("/api/agent/conversations/{c4}");
    agent(ANA, "POST", format!("{base}/assign"), None).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    agent(ANA, "POST", format!("{base}/close"), None).await;
    // 6: sales with everyone away: nobody available.
    for t in [ANA, BOB] {
        let body = Some(json!({"presence": "away"}));
        agent(t, "PUT", "/api/agent/presence".into(), body).await;
    }
    let (c6, t6, _) = a.start("demo").await;
    say(c6, t6, json!({"choice": 2})).await;

    let (st, _) = a
        .call("GET", "/api/admin/stats?playbook=demo", None, None)
        .await;
    assert_eq!(st, 401);
    let (st, r) = a
        .call("GET", "/api/admin/stats?playbook=demo", Some(ADMIN), None)
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["from"].as_str(), r["to"].as_str()),
        (Some("2025-12-07"), Some("2026-01-05"))
    );
    assert_eq!(r["started"], 6);
    assert_eq!(r["channels"], json!({"web": 6}));
    assert_eq!(
        r["outcomes"],
        json!({"qualified": 1, "disqualified": 1, "none": 2})
    );
    assert_eq!(r["records"], json!({"lead": 1}));
    assert_eq!(
        r["channel_outcomes"],
        json!({"web": {"disqualified": 1, "none": 2}, "whatsapp": {"qualified": 1}})
    );
    let card = |id: &str| {
        r["cards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no card {id}"))
            .clone()
    };
    let counts = |id: &str| {
        let c = card(id);
        (
            c["entered"].as_i64().unwrap(),
            c["left"].as_i64().unwrap(),
            c["stopped"].as_i64().unwrap(),
        )
    };
    assert_eq!(counts("welcome"), (6, 6, 0));
    assert_eq!(counts("size"), (2, 2, 0));
    assert_eq!(counts("sales"), (3, 3, 0));
    assert_eq!(counts("ask_name"), (2, 0, 2), "abandoned there");
    assert_eq!(counts("thanks"), (1, 0, 0));
    assert_eq!(card("thanks")["ended"], json!({"qualified": 1}));
    assert_eq!(card("bye")["ended"], json!({"none": 2}));
    assert_eq!(card("too_small")["ended"], json!({"disqualified": 1}));
    let taken = |from: &str, link: &str| {
        r["links"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["from"] == from && k["link"] == link)
            .map(|k| k["count"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no link {from} {link}"))
    };
    assert_eq!(
        [
            taken("welcome", "answer:0"),
            taken("welcome", "answer:1"),
            taken("welcome", "answer:2")
        ],
        [2, 3, 1]
    );
    assert_eq!(
        [taken("size", "answer:0"), taken("size", "answer:1")],
        [1, 1]
    );
    assert_eq!(taken("sales", "closed"), 1);
    assert_eq!(taken("route_lead", "rule:0"), 1);
    let live = &r["live_chat"];
    assert_eq!(
        [
            &live["requested"],
            &live["no_agent"],
            &live["queued"],
            &live["picked_up"],
            &live["timed_out"],
            &live["closed"]
        ],
        [3, 1, 2, 1, 1, 1].map(|n| json!(n)).each_ref()
    );
    assert_eq!(live["pickup"]["median_s"], 30, "{live}");
    assert_eq!(live["chat"]["median_s"], 120, "{live}");
    assert_eq!(live["handled"], json!({"ana": 1}));
    // The same report as text, CSV and a graph; bad requests say what is wrong.
    for (format, has) in [
        ("text", "welcome"),
        ("csv", "section,card"),
        ("mermaid", "entered 6"),
    ] {
        let (st, v) = server_common::oneshot_text(
            &a.router,
            &format!("/api/admin/stats?playbook=demo&format={format}"),
            ADMIN,
        )
        .await;
        assert_eq!(st, 200);
        assert!(v.contains(has), "{format}: {v}");
    }
    let (st, v) = a
        .call(
            "GET",
            "/api/admin/stats?playbook=demo&from=2026-02-01",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, _) = a
        .call("GET", "/api/admin/stats?playbook=nope", Some(ADMIN), None)
        .await;
    assert_eq!(st, 404);
    // Another day counts apart.
    let (_, r) = a
        .call(
            "GET",
            "/api/admin/stats?playbook=demo&from=2026-01-06&to=2026-01-06",
            Some(ADMIN),
            None,
        )
        .await;
    assert_eq!(r["started"], 0);
}
