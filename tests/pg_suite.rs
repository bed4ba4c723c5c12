//! The server suites again, each server on PostgreSQL in a schema of its own in
//! `PLAYBOOK_TEST_DATABASE_URL` (`server_common::database` chooses by this crate's name).
//! Without that variable this binary prints one line and passes: there is nothing to run
//! against. `.ci/run` sets it, so there a database that cannot be reached fails the tests.

// Each suite brings its own copy of the shared helpers: they are the same file, compiled as
// the suites expect it.
#![allow(clippy::duplicate_mod)]

#[path = "server.rs"]
mod server;
#[path = "server_api.rs"]
mod server_api;
#[path = "server_channels.rs"]
mod server_channels;
#[path = "server_common/mod.rs"]
mod server_common;
#[path = "server_crm.rs"]
mod server_crm;
#[path = "server_inbox.rs"]
mod server_inbox;
#[path = "server_kinds.rs"]
mod server_kinds;
#[path = "server_state.rs"]
mod server_state;

/// Two replicas on one database, in one process: what one commits reaches the sockets of the
/// other.
mod across_replicas {
    use serde_json::json;

    use crate::server_common::{self, ANA, BOB, Server, call, next_frame as next_of};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_written_on_one_replica_reaches_a_socket_on_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let a = Server::start(dir.path(), "").await;
        let config = dir.path().join("playbook.toml");
        let b = Server::start_on(dir.path(), config, a.database.clone()).await;
        let c = &a.client;

        // ana listens on B; the visitor starts on A and asks for sales on A.
        let (mut ana, _) =
            tokio_tungstenite::connect_async(format!("ws://{}/api/agent/ws?token={ANA}", b.addr))
                .await
                .unwrap();
        let (st, v) = call(
            c,
            "POST",
            &format!("{}/api/conversations", a.base),
            None,
            Some(json!({"playbook": "demo"})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        let id = v["conversation"].as_str().unwrap().to_owned();
        let token = v["token"].as_str().unwrap().to_owned();
        let (mut visitor, _) = tokio_tungstenite::connect_async(format!(
            "ws://{}/api/conversations/{id}/ws?token={token}",
            a.addr
        ))
        .await
        .unwrap();
        next_of(&mut visitor, "status", 2).await;
        let (st, v) = call(
            c,
            "POST",
            &format!("{}/api/conversations/{id}/messages", a.base),
            Some(&token),
            Some(json!({"choice": 2})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        // The agent on B is told (a notice through the database)...
        let n = next_of(&mut ana, "unassigned", 2).await;
        assert_eq!(n["conversation"], id.as_str());
        // ...and B lists it (read from the database).
        let (_, list) = call(
            c,
            "GET",
            &format!("{}/api/agent/conversations?folder=unassigned", b.base),
            Some(ANA),
            None,
        )
        .await;
        assert_eq!(list[0]["id"], id.as_str(), "{list}");

        // ana picks up and writes on B; the visitor's socket on A gets the line within a
        // second, and nothing twice.
        let agent = format!("{}/api/agent/conversations/{id}", b.base);
        let (st, v) = call(c, "POST", &format!("{agent}/assign"), Some(ANA), None).await;
        assert_eq!(st, 200, "{v}");
        let (st, v) = call(
            c,
            "POST",
            &format!("{agent}/messages"),
            Some(ANA),
            Some(json!({"text": "Hi, Ana here"})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let mut seqs = Vec::new();
        loop {
            let m = next_of(&mut visitor, "message", 1).await;
            seqs.push(m["message"]["seq"].as_u64().unwrap());
            if m["message"]["text"] == "Hi, Ana here" {
                break;
            }
        }
        let mut sorted = seqs.clone();
        sorted.dedup();
        assert_eq!(seqs, sorted, "each line once, in order");
        // The history agrees, from either replica.
        for s in [&a, &b] {
            let (_, h) = call(
                c,
                "GET",
                &format!("{}/api/conversations/{id}/messages", s.base),
                Some(&token),
                None,
            )
            .await;
            assert_eq!(
                server_common::texts(&h["messages"])
                    .last()
                    .map(String::as_str),
                Some("Hi, Ana here")
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_reloaded_on_one_replica_is_served_by_the_others() {
        use crate::server_common::ADMIN;
        let dir = tempfile::tempdir().unwrap();
        let a = Server::start(dir.path(), "").await;
        let config = dir.path().join("playbook.toml");
        let b = Server::start_on(dir.path(), config, a.database.clone()).await;
        let c = &a.client;

        // The quick playbook changes; only A is told to reload.
        let file = dir.path().join("playbooks/quick.playbook");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("Your email?", "Your work email?")).unwrap();
        let (st, r) = call(
            c,
            "POST",
            &format!("{}/api/admin/reload", a.base),
            Some(ADMIN),
            None,
        )
        .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["loaded"], json!([["quick", 2]]));

        // A conversation starts on version 2 on A and goes on on B, which adopts the version
        // from the database within a few seconds.
        let (st, v) = call(
            c,
            "POST",
            &format!("{}/api/conversations", a.base),
            None,
            Some(json!({"playbook": "quick"})),
        )
        .await;
        assert_eq!(st, 201, "{v}");
        assert_eq!(server_common::texts(&v["messages"]), ["Your work email?"]);
        let id = v["conversation"].as_str().unwrap().to_owned();
        let token = v["token"].as_str().unwrap().to_owned();
        let mut served = false;
        for _ in 0..50 {
            let (_, list) = call(c, "GET", &format!("{}/api/playbooks", b.base), None, None).await;
            if list
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "quick" && p["version"] == 2)
            {
                served = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(served, "B never served version 2");
        let (st, v) = call(
            c,
            "POST",
            &format!("{}/api/conversations/{id}/messages", b.base),
            Some(&token),
            Some(json!({"text": "eve@example.com"})),
        )
        .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["status"], "ended");
    }

    /// Automatic assignment across two replicas with a capacity of one each: four chats asked
    /// for at once, two on each replica, make exactly one open chat per agent (the load check
    /// in the commit refuses a second replica giving the same place) and two waiting; a close
    /// on one replica gives a waiting chat out, whichever replica it started on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_never_give_an_agent_more_than_their_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let extra = "[desk]\nassignment = \"round_robin\"\ncapacity = 1\n";
        let a = Server::start(dir.path(), extra).await;
        let config = dir.path().join("playbook.toml");
        let b = Server::start_on(dir.path(), config, a.database.clone()).await;
        let c = &a.client;
        let mut chats = Vec::new();
        for base in [&a.base, &b.base, &a.base, &b.base] {
            let (st, v) = call(
                c,
                "POST",
                &format!("{base}/api/conversations"),
                None,
                Some(json!({"playbook": "demo"})),
            )
            .await;
            assert_eq!(st, 201, "{v}");
            let id = v["conversation"].as_str().unwrap().to_owned();
            let token = v["token"].as_str().unwrap().to_owned();
            chats.push((base.clone(), id, token));
        }
        let ask = |(base, id, token): &(String, String, String)| {
            let url = format!("{base}/api/conversations/{id}/messages");
            let token = token.clone();
            async move { call(c, "POST", &url, Some(&token), Some(json!({"choice": 2}))).await }
        };
        let (r0, r1, r2, r3) = tokio::join!(
            ask(&chats[0]),
            ask(&chats[1]),
            ask(&chats[2]),
            ask(&chats[3])
        );
        for (st, v) in [&r0, &r1, &r2, &r3] {
            assert_eq!(*st, 200, "{v}");
        }
        let folder = |agent: &'static str, folder: &'static str| {
            let base = b.base.clone();
            async move {
                let (st, v) = call(
                    c,
                    "GET",
                    &format!("{base}/api/agent/conversations?folder={folder}"),
                    Some(agent),
                    None,
                )
                .await;
                assert_eq!(st, 200, "{v}");
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            }
        };
        let ana_mine = folder(ANA, "mine").await;
        let bob_mine = folder(BOB, "mine").await;
        let waiting = folder(ANA, "unassigned").await;
        assert_eq!(
            (ana_mine.len(), bob_mine.len(), waiting.len()),
            (1, 1, 2),
            "ana {ana_mine:?} bob {bob_mine:?} waiting {waiting:?}"
        );
        // ana closes hers on A: the oldest waiting chat becomes hers.
        let (st, v) = call(
            c,
            "POST",
            &format!("{}/api/agent/conversations/{}/close", a.base, ana_mine[0]),
            Some(ANA),
            None,
        )
        .await;
        assert_eq!(st, 200, "{v}");
        let mut now_mine = Vec::new();
        for _ in 0..30 {
            now_mine = folder(ANA, "mine").await;
            if now_mine.len() == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        // One of the two waiting chats (the one that entered Unassigned first, by the clock:
        // the folder lists by start order, which replicas reserve in blocks) is now ana's, and
        // the other still waits.
        assert_eq!(now_mine.len(), 1, "{now_mine:?}");
        assert!(
            waiting.contains(&now_mine[0]),
            "{now_mine:?} of {waiting:?}"
        );
        let still: Vec<String> = waiting.into_iter().filter(|w| *w != now_mine[0]).collect();
        assert_eq!(folder(ANA, "unassigned").await, still);
    }
}
