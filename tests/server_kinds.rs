//! Message kinds (`say`, `ask`, `reprompt`, `notice`) over HTTP, over the visitor's
//! WebSocket, and after a restart on the same data folder: all three must agree.

mod server_common;

use futures_util::StreamExt;
use serde_json::{Value, json};
use server_common::{Server, call};
use tokio_tungstenite::tungstenite::Message;

fn kinds(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, t)| ((*k).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_reprompt_and_say_are_told_apart_live_and_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), "").await;
    let (c, b) = (&s.client, &s.base);

    // The timeout playbook: its question is asked by a timer firing, not by a request.
    let (st, v) = call(
        c,
        "POST",
        &format!("{b}/api/conversations"),
        None,
        Some(json!({"playbook": "timeout"})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        kinds(&v["messages"]),
        pairs(&[("say", "Connecting you...")])
    );
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    let (mut vws, _) = tokio_tungstenite::connect_async(format!(
        "ws://{}/api/conversations/{id}/ws?token={token}",
        s.addr
    ))
    .await
    .unwrap();
    let mut pushed = Vec::new();
    while pushed.len() < 2 {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(5), vws.next())
            .await
            .expect("the timer's messages within 5 s");
        let Some(Ok(Message::Text(t))) = frame else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "message" {
            pushed.push(v["message"].clone());
        }
    }
    assert_eq!(
        kinds(&Value::Array(pushed)),
        pairs(&[
            ("say", "Nobody is free right now."),
            ("ask", "Leave your email and we'll call you back."),
        ])
    );

    // A bad answer gets a re-prompt, pushed and answered as `reprompt`.
    let msgs = format!("{b}/api/conversations/{id}/messages");
    let (st, v) = call(
        c,
        "POST",
        &msgs,
        Some(&token),
        Some(json!({"text": "not an email"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let got = kinds(&v["messages"]);
    assert_eq!(got.len(), 2, "{v}");
    assert_eq!(got[0], ("say".to_owned(), "not an email".to_owned()));
    assert_eq!(got[1].0, "reprompt", "{v}");
    let frame = loop {
        let Some(Ok(Message::Text(t))) = vws.next().await else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["type"] == "message" && v["message"]["from"]["role"] == "bot" {
            break v;
        }
    };
    assert_eq!(frame["message"]["kind"], "reprompt");
    let (st, v) = call(
        c,
        "POST",
        &msgs,
        Some(&token),
        Some(json!({"text": "eve@example.com"})),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        kinds(&v["messages"])
            .iter()
            .skip(1)
            .all(|(k, _)| k == "say"),
        "{v}"
    );

    let (_, live) = call(c, "GET", &format!("{msgs}?after=0"), Some(&token), None).await;
    let live = kinds(&live["messages"]);
    assert_eq!(
        live.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["say", "say", "ask", "say", "reprompt", "say", "say"],
        "{live:?}"
    );

    // A second server on the same data folder is refused while this one runs; on
    // PostgreSQL it is a replica and opens.
    let opts = playbook::server::ServeOptions {
        playbooks: dir.path().join("playbooks"),
        data: dir.path().join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(dir.path().join("playbook.toml")),
        database: s.database.clone(),
    };
    let second = tokio::task::spawn_blocking(move || playbook::server::open(&opts))
        .await
        .unwrap();
    match (&s.database, second) {
        (None, Err(err)) => assert!(err.contains("in use by another"), "{err}"),
        (None, Ok(_)) => panic!("a second server on one data folder was allowed"),
        (Some(_), r) => assert!(r.is_ok(), "a replica could not open: {:?}", r.err()),
    }
}
