//! The server over real HTTP and WebSocket on loopback: the live-chat story, the timeout
//! story, the pick-up race, and bad input.

mod server_common;

use futures_util::SinkExt;
use serde_json::{Value, json};
use server_common::{ADMIN, ANA, BOB, Server, Ws, call, texts};
use tokio_tungstenite::tungstenite::Message;

async fn ws(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

/// The next JSON frame whose `type` is `ty` (others skipped), within 5 s.
async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    server_common::next_frame(ws, ty, 5).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_chat_story() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let c = &s.client;
    let b = &s.base;
    let mut ana_ws = ws(&format!("ws://{}/api/agent/ws?token={ANA}", s.addr)).await;

    // The visitor starts on the demo and asks for sales.
    let (st, v) = call(c, "POST", &format!("{b}/api/conversations"), None,
        Some(json!({"playbook": "demo", "channel": "web", "page_url": "https://acme.example/pricing"}))).await;
    assert_eq!(st, 201, "{v}");
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 32);
    assert_eq!(
        texts(&v["messages"]),
        ["Hi, I'm Ava from Acme.", "What brings you here today?"]
    );
    assert_eq!(
        v["messages"][1]["buttons"],
        json!(["Book a demo", "Talk to sales", "Just browsing"])
    );
    assert_eq!(v["messages"][1]["kind"], "ask");
    let msgs = format!("{b}/api/conversations/{id}/messages");
    let (st, v) = call(c, "POST", &msgs, Some(&token), Some(json!({"choice": 2}))).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "queued");
    assert_eq!(
        texts(&v["messages"]),
        ["Talk to sales", "Connecting you with our sales team..."]
    );
    let n = next_of(&mut ana_ws, "unassigned").await;
    assert_eq!(n["conversation"], id.as_str());

    // It is in Unassigned; ana picks it up, bob is too late.
    let (st, list) = call(
        c,
        "GET",
        &format!("{b}/api/agent/conversations?folder=unassigned"),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(list[0]["id"], id.as_str());
    let conv = format!("{b}/api/agent/conversations/{id}");
    let (st, v) = call(c, "POST", &format!("{conv}/assign"), Some(ANA), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["state"], "assigned");
    let (st, v) = call(c, "POST", &format!("{conv}/assign"), Some(BOB), None).await;
    assert_eq!(st, 409, "{v}");

    // Messages both ways, over the visitor's WebSocket.
    let mut vws = ws(&format!(
        "ws://{}/api/conversations/{id}/ws?token={token}",
        s.addr
    ))
    .await;
    assert_eq!(next_of(&mut vws, "status").await["status"], "with_agent");
    let (st, _) = call(
        c,
        "POST",
        &format!("{conv}/messages"),
        Some(ANA),
        Some(json!({"text": "Hi, Ana here. How can I help?"})),
    )
    .await;
    assert_eq!(st, 200);
    let m = next_of(&mut vws, "message").await;
    assert_eq!(m["message"]["text"], "Hi, Ana here. How can I help?");
    assert_eq!(
        m["message"]["from"],
        json!({"role": "agent", "name": "ana"})
    );
    vws.send(Message::Text(
        r#"{"text": "We need 50 seats", "channel": "whatsapp"}"#.into(),
    ))
    .await
    .unwrap();
    let n = next_of(&mut ana_ws, "message").await;
    assert_eq!(n["conversation"], id.as_str());
    assert_eq!(n["message"]["text"], "We need 50 seats");
    assert_eq!(n["message"]["channel"], "whatsapp");
    // Bad input on the socket gets an error frame, not a dropped socket.
    vws.send(Message::Text("{not json".into())).await.unwrap();
    assert_eq!(
        next_of(&mut vws, "error").await["error"]["code"],
        "bad_request"
    );

    // Reassign to bob (bob only, ana can't talk any more), bob closes.
    let (st, _) = call(
        c,
        "POST",
        &format!("{conv}/reassign"),
        Some(ANA),
        Some(json!({"to": "bob"})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _) = call(
        c,
        "POST",
        &format!("{conv}/messages"),
        Some(ANA),
        Some(json!({"text": "still me"})),
    )
    .await;
    assert_eq!(st, 403);
    let (_, mine) = call(
        c,
        "GET",
        &format!("{b}/api/agent/conversations?folder=mine"),
        Some(BOB),
        None,
    )
    .await;
    assert_eq!(mine[0]["id"], id.as_str());
    let (st, _) = call(
        c,
        "POST",
        &format!("{conv}/messages"),
        Some(BOB),
        Some(json!({"text": "Bob here, closing up."})),
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = call(c, "POST", &format!("{conv}/close"), Some(BOB), None).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = call(c, "POST", &format!("{conv}/close"), Some(BOB), None).await;
    assert_eq!(st, 409);
    let (_, closed) = call(
        c,
        "GET",
        &format!("{b}/api/agent/conversations?folder=closed"),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(closed[0]["id"], id.as_str());

    // A deal from the closed conversation.
    let (st, rec) = call(
        c,
        "POST",
        &format!("{conv}/records"),
        Some(BOB),
        Some(json!({
        "type": "deal", "title": "50 seats", "value": 12000, "currency": "EUR",
        "person": {"name": "Dana", "email": "dana@example.com"}, "organization": "Dana Ltd"})),
    )
    .await;
    assert_eq!(st, 201, "{rec}");
    assert_eq!(rec["record"]["key"], format!("{id}/#desk-1"));
    assert_eq!(rec["record"]["owner"], "bob");
    assert_eq!(rec["record"]["data"]["type"], "deal");
    assert!(rec["transcript"].as_array().unwrap().len() >= 6);
    let (st, recs) = call(c, "GET", &format!("{b}/api/records"), Some(ANA), None).await;
    assert_eq!(st, 200);
    assert!(
        recs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == format!("{id}/#desk-1"))
    );

    // The visitor's history keeps every channel, and ends with the goodbye.
    let (st, h) = call(c, "GET", &msgs, Some(&token), None).await;
    assert_eq!(st, 200);
    assert_eq!(h["status"], "ended");
    let hist = texts(&h["messages"]);
    assert!(hist.contains(&"We need 50 seats".to_owned()), "{hist:?}");
    assert_eq!(hist.last().unwrap(), "Have a great day!");
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let (_, after) = call(
        c,
        "GET",
        &format!("{msgs}?after={}", seqs.len() - 1),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(texts(&after["messages"]), ["Have a great day!"]);
    let (_, detail) = call(c, "GET", &conv, Some(ANA), None).await;
    assert_eq!(detail["state"], "closed");
    assert_eq!(detail["records"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_story_ends_in_a_lead() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (c, b) = (&s.client, &s.base);
    let (st, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "timeout"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["status"], "queued");
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    let mut vws = ws(&format!(
        "ws://{}/api/conversations/{id}/ws?token={token}",
        s.addr
    ))
    .await;
    // Nobody picks up within 1 s: the offline message and the email question are pushed.
    let m = next_of(&mut vws, "message").await;
    assert_eq!(m["message"]["text"], "Nobody is free right now.");
    let m = next_of(&mut vws, "message").await;
    assert_eq!(
        m["message"]["text"],
        "Leave your email and we'll call you back."
    );
    // Too late to pick up now.
    let (st, _) = call(
        c,
        "POST",
        &format!("{b}/api/agent/conversations/{id}/assign"),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(st, 409);
    let msgs = format!("{b}/api/conversations/{id}/messages");
    let (st, v) = call(
        c,
        "POST",
        &msgs,
        Some(&token),
        Some(json!({"text": "carol@example.com"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "ended");
    let (_, recs) = call(c, "GET", &format!("{b}/api/records"), Some(ANA), None).await;
    let lead = recs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["conversation"] == id.as_str())
        .unwrap();
    assert_eq!(lead["key"], format!("{id}/lead"));
    assert_eq!(
        lead["body"]["record"]["data"]["title"],
        "Callback carol@example.com"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_many_agents_picks_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = String::new();
    for i in 0..16 {
        extra.push_str(&format!(
            "[[agents]]\nname = \"a{i}\"\ntoken = \"agent-token-{i:04}-xxxxxx\"\nteams = [\"Sales\"]\npresence = \"online\"\n"
        ));
    }
    let s = Server::start(dir.path(), &extra).await;
    let (c, b) = (&s.client, &s.base);
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "demo"})),
    )
    .await;
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations/{id}/messages"),
        Some(&token),
        Some(json!({"choice": 2})),
    )
    .await;
    assert_eq!(v["status"], "queued");
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (c, url) = (
            c.clone(),
            format!("{b}/api/agent/conversations/{id}/assign"),
        );
        tasks.push(tokio::spawn(async move {
            call(
                &c,
                "POST",
                &url,
                Some(&format!("agent-token-{i:04}-xxxxxx")),
                None,
            )
            .await
            .0
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 409).count(), 15, "{codes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (c, b) = (&s.client, &s.base);
    // Malformed JSON and unknown fields: 400 with a reason.
    let r = c
        .post(format!("{b}/api/conversations"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "bad_request");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    let (st, _) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "nope"})),
    )
    .await;
    assert_eq!(st, 404);
    // Too large a body: 413.
    let big = "x".repeat(20_000);
    let (st, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": big})),
    )
    .await;
    assert_eq!(st, 413, "{v}");
    // Tokens.
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    let (_, other) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    let other_token = other["token"].as_str().unwrap();
    let msgs = format!("{b}/api/conversations/{id}/messages");
    assert_eq!(call(c, "GET", &msgs, None, None).await.0, 401);
    assert_eq!(call(c, "GET", &msgs, Some(other_token), None).await.0, 401);
    assert_eq!(call(c, "GET", &msgs, Some(&token), None).await.0, 200);
    assert_eq!(
        call(c, "GET", &format!("{b}/api/agent/me"), None, None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            c,
            "GET",
            &format!("{b}/api/agent/me"),
            Some("wrong-token-000000000"),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(c, "GET", &format!("{b}/api/records"), Some(&token), None)
            .await
            .0,
        401
    );
    let (st, me) = call(c, "GET", &format!("{b}/api/agent/me"), Some(ANA), None).await;
    assert_eq!((st, me["name"].as_str()), (200, Some("ana")));
    // Neither or both of text/choice; choice 0; a too-long message; a choice with no buttons.
    assert_eq!(
        call(c, "POST", &msgs, Some(&token), Some(json!({})))
            .await
            .0,
        400
    );
    assert_eq!(
        call(c, "POST", &msgs, Some(&token), Some(json!({"choice": 0})))
            .await
            .0,
        400
    );
    assert_eq!(
        call(
            c,
            "POST",
            &msgs,
            Some(&token),
            Some(json!({"text": "y".repeat(2001)}))
        )
        .await
        .0,
        413
    );
    assert_eq!(
        call(c, "POST", &msgs, Some(&token), Some(json!({"choice": 1})))
            .await
            .0,
        409
    );
    // Reassign to an offline agent; presence changes.
    let (st, v) = call(
        c,
        "PUT",
        &format!("{b}/api/agent/presence"),
        Some(BOB),
        Some(json!({"presence": "away"})),
    )
    .await;
    assert_eq!((st, &v["presence"]), (200, &json!("away")));
    assert_eq!(
        call(
            c,
            "PUT",
            &format!("{b}/api/agent/presence"),
            Some(BOB),
            Some(json!({"presence": "gone"}))
        )
        .await
        .0,
        400
    );
    // Admin reload needs the admin token.
    assert_eq!(
        call(c, "POST", &format!("{b}/api/admin/reload"), Some(ANA), None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(
            c,
            "POST",
            &format!("{b}/api/admin/reload"),
            Some(ADMIN),
            None
        )
        .await
        .0,
        200
    );
    // Pages.
    let page = c
        .get(format!("{b}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("/widget?playbook=demo") && page.contains("/inbox"),
        "{page}"
    );
    let g = c
        .get(format!("{b}/api/playbooks/demo/graph?format=dot"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(g.starts_with("digraph"), "{g}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_conversation_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_common::Server::start_with(dir.path(), "", 3).await;
    let (c, b) = (&s.client, &s.base);
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    let msgs = format!("{b}/api/conversations/{id}/messages");
    for _ in 0..3 {
        // Invalid emails: re-prompts, each a turn.
        assert_eq!(
            call(c, "POST", &msgs, Some(&token), Some(json!({"text": "no"})))
                .await
                .0,
            200
        );
    }
    let (st, v) = call(c, "POST", &msgs, Some(&token), Some(json!({"text": "no"}))).await;
    assert_eq!(st, 429, "{v}");
    assert_eq!(v["error"]["code"], "rate_limited");
    // Other conversations are not affected.
    let (_, w) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    let url = format!(
        "{b}/api/conversations/{}/messages",
        w["conversation"].as_str().unwrap()
    );
    assert_eq!(
        call(
            c,
            "POST",
            &url,
            w["token"].as_str(),
            Some(json!({"text": "no"}))
        )
        .await
        .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_makes_versions_and_refuses_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (c, b) = (&s.client, &s.base);
    let pb = dir.path().join("playbooks/quick.playbook");
    // A conversation on v1, waiting at the email question.
    let (_, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    // A broken file is refused with diagnostics; v1 keeps serving.
    std::fs::write(
        &pb,
        "playbook \"Quick\" { start email }\nmessage email \"x\" -> nowhere\n",
    )
    .unwrap();
    let (st, r) = call(
        c,
        "POST",
        &format!("{b}/api/admin/reload"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, 422, "{r}");
    assert!(
        r["refused"][0]["diagnostics"][0]
            .as_str()
            .unwrap()
            .contains("nowhere"),
        "{r}"
    );
    let (_, list) = call(c, "GET", &format!("{b}/api/playbooks"), None, None).await;
    let quick = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "quick")
        .unwrap()
        .clone();
    assert_eq!(quick["version"], 1);
    // A good change makes v2; new conversations start on it, the old one finishes on v1.
    std::fs::write(
        &pb,
        "playbook \"Quick 2\" { start hi }\nmessage hi \"Version two\" end\n",
    )
    .unwrap();
    let (st, r) = call(
        c,
        "POST",
        &format!("{b}/api/admin/reload"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["loaded"], json!([["quick", 2]]));
    assert_eq!(
        r["warnings"],
        json!([]),
        "the config has every team and pool named"
    );
    // A playbook routing to a team nobody is in is served, with a warning that says so.
    std::fs::write(
        dir.path().join("playbooks/ghost.playbook"),
        "playbook \"Ghost\" { start chat }\n\
         livechat chat {\n  online \"...\"\n  wait 1m\n  offline \"Nobody.\"\n  route team \"Ghosts\"\n  on closed -> bye\n  on offline -> bye\n}\n\
         message bye \"Bye\" end\n",
    )
    .unwrap();
    let (st, r) = call(
        c,
        "POST",
        &format!("{b}/api/admin/reload"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["loaded"], json!([["ghost", 1]]));
    assert_eq!(
        r["warnings"],
        json!([
            "W004 in playbook `ghost`: card `chat` names the team `Ghosts`, which the config does not have"
        ])
    );
    std::fs::remove_file(dir.path().join("playbooks/ghost.playbook")).unwrap();
    let (_, v2) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "quick"})),
    )
    .await;
    assert_eq!(texts(&v2["messages"]), ["Version two"]);
    let (st, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations/{id}/messages"),
        Some(&token),
        Some(json!({"text": "old@example.com"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(texts(&v["messages"]).last().unwrap(), "Thanks!");
}
