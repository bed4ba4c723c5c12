//! Social channels end to end: Meta's webhooks (built from the documented examples, signed
//! like Meta signs them) into a real server on a loopback port, and every outbound message
//! checked at a fake Graph API (path, `Authorization`, body). The 24-hour rule runs in
//! virtual time: the test pauses tokio's clock, advances it a day, and resumes.

mod server_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use playbook::engine::Instant;
use playbook::runtime::driver::Clock;
use serde_json::{Value, json};
use server_common::ANA;
use sha2::Sha256;

const T0: Instant = Instant(1_767_603_600_000); // 2026-01-05 09:00 UTC
/// `token_env` and `app_secret_env` name `CARGO_PKG_NAME`, which cargo sets for every test
/// process: a real environment variable, without any test changing the environment.
const SECRET: &str = "playbook";

#[derive(Debug, Clone)]
struct Sent {
    path: String,
    auth: String,
    body: Value,
}

#[derive(Default)]
struct Graph {
    sent: Vec<Sent>,
    /// Answer 503 to this many requests first.
    fail_first: usize,
    seen: usize,
    /// A request whose body holds this text is recorded, then answered only after 30 s.
    slow: Option<String>,
}

/// The fake Graph API on a loopback port; returns its base URL (`…/v21.0`).
async fn fake_graph(state: Arc<Mutex<Graph>>) -> String {
    use axum::http::{HeaderMap, StatusCode, Uri};
    let app = axum::Router::new().fallback(axum::routing::post(
        move |uri: Uri, headers: HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let slow = {
                    let mut g = state.lock().unwrap();
                    g.seen += 1;
                    if g.seen <= g.fail_first {
                        return (StatusCode::SERVICE_UNAVAILABLE, String::new());
                    }
                    g.sent.push(Sent {
                        path: uri.path().to_owned(),
                        auth: headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned(),
                        body: serde_json::from_str(&body).unwrap_or(Value::Null),
                    });
                    g.slow.as_ref().is_some_and(|s| body.contains(s.as_str()))
                };
                if slow {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                (
                    StatusCode::OK,
                    json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.out"}]})
                        .to_string(),
                )
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/v21.0")
}

struct App {
    base: String,
    client: reqwest::Client,
    state: playbook::server::AppState,
    graph: Arc<Mutex<Graph>>,
    _dir: tempfile::TempDir,
}

/// A server with all three channels on `playbook`, talking to a fake Graph API, on a
/// virtual clock starting at `T0`.
async fn app(playbook: &str, fail_first: usize) -> App {
    app_with(playbook, fail_first, "").await
}

/// [`app`] with more lines in `[channels.whatsapp]`.
async fn app_with(playbook: &str, fail_first: usize, whatsapp: &str) -> App {
    let graph = Arc::new(Mutex::new(Graph {
        fail_first,
        ..Graph::default()
    }));
    let url = fake_graph(graph.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = channels_config(playbook, &url).replace(
        "[channels.messenger]",
        &format!("{whatsapp}[channels.messenger]"),
    );
    let config = server_common::config(dir.path(), &extra, 1000);
    let opts = playbook::server::ServeOptions {
        playbooks: server_common::playbooks(dir.path()),
        data: dir.path().join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(config),
        database: server_common::database(),
    };
    let (state, _) = playbook::server::launch(&opts, Clock::starting_at(T0))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = playbook::server::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    App {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        state,
        graph,
        _dir: dir,
    }
}

/// The `[channels.*]` sections, all on `playbook`, talking to the Graph API at `url`.
fn channels_config(playbook: &str, url: &str) -> String {
    format!(
        "[channels.whatsapp]\nphone_number_id = \"1065\"\nnumber = \"15550001111\"\n\
         token_env = \"CARGO_PKG_NAME\"\napp_secret_env = \"CARGO_PKG_NAME\"\n\
         verify_token = \"verify-me\"\nplaybook = \"{playbook}\"\nbase_url = \"{url}\"\n\
         [channels.messenger]\npage_id = \"4242\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
         app_secret_env = \"CARGO_PKG_NAME\"\nverify_token = \"verify-me\"\n\
         playbook = \"{playbook}\"\nbase_url = \"{url}\"\n\
         [channels.instagram]\npage_id = \"17841\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
         app_secret_env = \"CARGO_PKG_NAME\"\nverify_token = \"verify-me\"\n\
         playbook = \"{playbook}\"\nbase_url = \"{url}\"\n"
    )
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// A WhatsApp Cloud API delivery (Meta's "text message" example) of these messages.
fn wa_delivery(from: &str, messages: Vec<Value>) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1065"},
                    "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": from}],
                    "messages": messages
                }
            }]
        }]
    })
}

fn wa_text(from: &str, id: &str, text: &str) -> Value {
    json!({"from": from, "id": id, "timestamp": "1767603600", "type": "text", "text": {"body": text}})
}

/// A Messenger (or Instagram) delivery of one `messaging` event.
fn page_delivery(object: &str, page: &str, event: Value) -> Value {
    json!({"object": object, "entry": [{"id": page, "time": 1767603600000u64, "messaging": [event]}]})
}

fn page_text(sender: &str, page: &str, mid: &str, text: &str) -> Value {
    json!({"sender": {"id": sender}, "recipient": {"id": page}, "timestamp": 1767603600000u64,
           "message": {"mid": mid, "text": text}})
}

impl App {
    async fn post_raw(&self, channel: &str, body: &str, sig: Option<String>) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}/api/channels/{channel}/webhook", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(s) = sig {
            req = req.header("x-hub-signature-256", s);
        }
        let r = req.send().await.unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    async fn deliver(&self, channel: &str, v: &Value) -> Value {
        let body = v.to_string();
        let (st, out) = self.post_raw(channel, &body, Some(sign(&body))).await;
        assert_eq!(st, 200, "{out}");
        out
    }

    async fn conversation_of(&self, channel: &'static str, contact: &str) -> Option<String> {
        let c = contact.to_owned();
        let store = self.state.store().clone();
        tokio::task::spawn_blocking(move || store.channel_contact(channel, &c).unwrap())
            .await
            .unwrap()
    }

    async fn detail(&self, id: &str) -> Value {
        let r = self
            .client
            .get(format!("{}/api/agent/conversations/{id}", self.base))
            .bearer_auth(ANA)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn agent(&self, path: &str, body: Value) -> u16 {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ANA)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn sent(&self) -> Vec<Sent> {
        self.graph.lock().unwrap().sent.clone()
    }

    /// Waits (real time) until `n` requests reached the fake Graph API.
    async fn wait_sent(&self, n: usize) -> Vec<Sent> {
        for _ in 0..300 {
            let s = self.sent();
            if s.len() >= n {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("only {:?} sent, expected {n}", self.sent());
    }

    /// Lets the sender finish what it is doing (real time), then returns what was sent.
    async fn settle(&self) -> Vec<Sent> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.sent()
    }
}

fn visitor_texts(detail: &Value) -> Vec<String> {
    detail["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"]["role"] == "visitor")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_webhook_is_verified_with_the_configured_token_only() {
    let a = app("quick", 0).await;
    let get = |q: &str| {
        let url = format!("{}/api/channels/whatsapp/webhook?{q}", a.base);
        let c = a.client.clone();
        async move {
            let r = c.get(url).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (st, body) =
        get("hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444").await;
    assert_eq!((st, body.as_str()), (200, "1158201444"));
    let (st, body) =
        get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444").await;
    assert_eq!(st, 403);
    assert!(!body.contains("verify-me"), "{body}");
    assert_eq!(
        get("hub.mode=unsubscribe&hub.verify_token=verify-me&hub.challenge=1")
            .await
            .0,
        403
    );
    let r = a
        .client
        .get(format!("{}/api/channels/telegram/webhook", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn a_bad_or_missing_signature_is_refused_and_nothing_is_stored() {
    let a = app("quick", 0).await;
    let body = wa_delivery(
        "16315551181",
        vec![wa_text("16315551181", "wamid.A1", "hi")],
    )
    .to_string();
    // Signed with another secret, then not signed, then a signature of another body.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"not-the-secret").unwrap();
    mac.update(body.as_bytes());
    let wrong: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for sig in [
        Some(format!("sha256={wrong}")),
        None,
        Some(sign("{}")),
        Some("sha256=zz".into()),
    ] {
        let (st, v) = a.post_raw("whatsapp", &body, sig).await;
        assert_eq!(st, 401, "{v}");
        assert_eq!(v["error"]["code"], "unauthorized");
    }
    assert_eq!(a.conversation_of("whatsapp", "16315551181").await, None);
    assert!(a.settle().await.is_empty());
    // Signed but not JSON: 400 with the reason. Signed, JSON, nothing we know: 200.
    let (st, v) = a
        .post_raw("whatsapp", "{not json", Some(sign("{not json")))
        .await;
    assert_eq!(st, 400, "{v}");
    let out = a.deliver("whatsapp", &json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {"statuses": [{"id": "wamid.x", "status": "read"}]}}]}]})).await;
    assert_eq!(out, json!({"received": 0, "applied": 0}));
}

#[tokio::test]
async fn a_whatsapp_contact_starts_a_conversation_and_gets_the_bots_messages() {
    let a = app("quick", 0).await;
    let from = "16315551181";
    let id = a.says_hi("whatsapp", from).await;
    let sent = a.wait_sent(1).await;
    assert_eq!(sent[0].path, "/v21.0/1065/messages");
    assert_eq!(sent[0].auth, format!("Bearer {SECRET}"));
    assert_eq!(
        sent[0].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": from,
               "biz_opaque_callback_data": format!("{id}:2"), "type": "text",
               "text": {"preview_url": false, "body": "Your email?"}})
    );
    // The answer goes into the same conversation; the bot's thanks go out.
    a.deliver(
        "whatsapp",
        &wa_delivery(from, vec![wa_text(from, "wamid.2", "kerry@example.com")]),
    )
    .await;
    let sent = a.wait_sent(2).await;
    assert_eq!(sent[1].body["text"]["body"], "Thanks!");
    let d = a.detail(&id).await;
    assert_eq!(visitor_texts(&d), ["hi", "kerry@example.com"]);
    assert_eq!(d["channel"], "whatsapp");
    assert_eq!(a.settle().await.len(), 2);
}

#[tokio::test]
async fn a_delivery_meta_repeats_is_applied_once() {
    let a = app("quick", 0).await;
    let from = "16315551182";
    a.says_hi("whatsapp", from).await;
    let twice = wa_delivery(from, vec![wa_text(from, "wamid.2", "not an email")]);
    let first = a.deliver("whatsapp", &twice).await;
    assert_eq!(first, json!({"received": 1, "applied": 1}));
    let again = a.deliver("whatsapp", &twice).await;
    assert_eq!(again, json!({"received": 1, "applied": 0}));
    // And the first one, again: no second conversation.
    let id = a.says_hi("whatsapp", from).await;
    assert_eq!(visitor_texts(&a.detail(&id).await), ["hi", "not an email"]);
}

#[tokio::test]
async fn two_messages_of_one_contact_in_one_delivery_are_applied_in_order() {
    let a = app("quick", 0).await;
    let from = "16315551183";
    let out = a
        .deliver(
            "whatsapp",
            &wa_delivery(
                from,
                vec![
                    wa_text(from, "wamid.1", "hello"),
                    wa_text(from, "wamid.2", "no email here"),
                    wa_text(from, "wamid.3", "kerry@example.com"),
                ],
            ),
        )
        .await;
    assert_eq!(out, json!({"received": 3, "applied": 3}));
    let id = a.conversation_of("whatsapp", from).await.unwrap();
    let d = a.detail(&id).await;
    assert_eq!(
        visitor_texts(&d),
        ["hello", "no email here", "kerry@example.com"]
    );
    let last = d["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["text"], "Thanks!");
    // What went out, in the transcript's order.
    let n = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["from"]["role"] != "visitor")
        .count();
    let sent = a.wait_sent(n).await;
    let bodies: Vec<&str> = sent
        .iter()
        .map(|s| s.body["text"]["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.first(), Some(&"Your email?"));
    assert_eq!(bodies.last(), Some(&"Thanks!"));
}

#[tokio::test]
async fn buttons_follow_each_channels_limits_and_a_tap_is_a_choice() {
    let a = app("demo", 0).await;
    // WhatsApp: three answers are reply buttons; tapping one answers the question.
    let from = "16315551184";
    let id = a.says_hi("whatsapp", from).await;
    let sent = a.wait_sent(2).await;
    assert_eq!(sent[0].body["text"]["body"], "Hi, I'm Ava from Acme.");
    let q = &sent[1].body;
    assert_eq!(q["type"], "interactive");
    assert_eq!(q["interactive"]["type"], "button");
    assert_eq!(
        q["interactive"]["body"]["text"],
        "What brings you here today?"
    );
    let buttons = q["interactive"]["action"]["buttons"].as_array().unwrap();
    assert_eq!(buttons.len(), 3);
    assert_eq!(buttons[0]["reply"]["title"], "Book a demo");
    let reply_id = buttons[0]["reply"]["id"].as_str().unwrap().to_owned();
    let tap = json!({"from": from, "id": "wamid.2", "timestamp": "1767603601", "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": reply_id, "title": "Book a demo"}}});
    a.deliver("whatsapp", &wa_delivery(from, vec![tap])).await;
    let sent = a.wait_sent(3).await;
    assert_eq!(
        sent[2].body["interactive"]["body"]["text"],
        "How many people work at your company?"
    );
    assert_eq!(visitor_texts(&a.detail(&id).await), ["hi", "Book a demo"]);

    // Messenger: quick replies, and their payload comes back as the choice.
    let psid = "6080000000001";
    a.says_hi("messenger", psid).await;
    let sent = a.wait_sent(5).await;
    let q = &sent[4];
    assert_eq!(q.path, "/v21.0/4242/messages");
    assert_eq!(q.body["recipient"]["id"], psid);
    assert_eq!(q.body["messaging_type"], "RESPONSE");
    let qr = q.body["message"]["quick_replies"].as_array().unwrap();
    assert_eq!(qr.len(), 3);
    assert_eq!(qr[1]["title"], "Talk to sales");
    let payload = qr[2]["payload"].as_str().unwrap().to_owned();
    let tap = json!({"sender": {"id": psid}, "recipient": {"id": "4242"}, "timestamp": 1767603602000u64,
        "message": {"mid": "m_2", "text": "Just browsing", "quick_reply": {"payload": payload}}});
    a.deliver("messenger", &page_delivery("page", "4242", tap))
        .await;
    let mid = a.conversation_of("messenger", psid).await.unwrap();
    assert_eq!(
        visitor_texts(&a.detail(&mid).await),
        ["hi", "Just browsing"]
    );
    // Our own message echoed back is not the visitor's.
    let echo = json!({"sender": {"id": "4242"}, "recipient": {"id": psid}, "timestamp": 1767603603000u64,
        "message": {"mid": "m_3", "is_echo": true, "text": "Thanks"}});
    let out = a
        .deliver("messenger", &page_delivery("page", "4242", echo))
        .await;
    assert_eq!(out["received"], 0);
}

#[test]
fn button_formats_per_channel_limits() {
    use playbook::capture::{Line, LineKind, Who};
    use playbook::server::channels::{page_body, whatsapp_body};
    let line = |n: usize, long: bool| Line {
        at: T0,
        from: Who::Bot("Ava".into()),
        kind: LineKind::Ask,
        channel: playbook::engine::Channel::WhatsApp,
        text: "Pick one".into(),
        buttons: (0..n)
            .map(|i| {
                if long {
                    format!("A rather long answer {i}")
                } else {
                    format!("Answer {i}")
                }
            })
            .collect(),
    };
    let wa = |n, long| whatsapp_body("1", &line(n, long), 4, "c:4");
    assert_eq!(wa(3, false)["interactive"]["type"], "button");
    assert_eq!(
        wa(3, false)["interactive"]["action"]["buttons"][2]["reply"]["id"],
        "choice:4:2"
    );
    // A title over 20 characters cannot be a button: a list (rows take 24).
    assert_eq!(wa(3, true)["interactive"]["type"], "list");
    assert_eq!(wa(4, false)["interactive"]["type"], "list");
    let rows = wa(10, false)["interactive"]["action"]["sections"][0]["rows"].clone();
    assert_eq!(rows.as_array().unwrap().len(), 10);
    assert_eq!(rows[9]["id"], "choice:4:9");
    let text = wa(11, false);
    assert_eq!(text["type"], "text");
    assert!(
        text["text"]["body"]
            .as_str()
            .unwrap()
            .ends_with("\n11. Answer 10")
    );
    let page = |n, long| page_body("p", &line(n, long), 4, "c:4");
    assert_eq!(
        page(13, false)["message"]["quick_replies"]
            .as_array()
            .unwrap()
            .len(),
        13
    );
    assert_eq!(
        page(13, true)["message"]["quick_replies"][0]["title"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        20
    );
    assert!(page(14, false)["message"].get("quick_replies").is_none());
    assert!(
        page(14, false)["message"]["text"]
            .as_str()
            .unwrap()
            .contains("\n14. Answer 13")
    );
}

#[tokio::test]
async fn a_failed_send_is_retried_and_sent_once() {
    let a = app("quick", 2).await;
    let from = "16315551185";
    a.says_hi("whatsapp", from).await;
    // Two 503s, then 200 after the backoff (1 s, 2 s).
    let sent = a.wait_sent(1).await;
    assert_eq!(sent[0].body["text"]["body"], "Your email?");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(a.sent().len(), 1);
    assert_eq!(a.graph.lock().unwrap().seen, 3);
}

/// Jumps virtual (and tokio) time by `d`, firing what is due meanwhile.
async fn jump(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

#[tokio::test]
async fn the_24_hour_window_holds_bot_messages_and_tags_agents_on_messenger() {
    let a = app("timeout", 0).await;
    let psid = "6080000000002";
    let id = a.says_hi("messenger", psid).await;
    let sent = a.wait_sent(1).await;
    assert_eq!(sent[0].body["message"]["text"], "Connecting you...");
    assert_eq!(
        a.agent(&format!("/api/agent/conversations/{id}/assign"), json!({}))
            .await,
        200
    );
    let sent = a.wait_sent(2).await; // "ana joined the conversation"
    assert_eq!(sent[1].body["messaging_type"], "RESPONSE");

    // A day and an hour later: the agent may still answer, with the human-agent tag.
    jump(Duration::from_secs(25 * 3600)).await;
    let msg = format!("/api/agent/conversations/{id}/messages");
    assert_eq!(a.agent(&msg, json!({"text": "Still there?"})).await, 200);
    let sent = a.wait_sent(3).await;
    assert_eq!(sent[2].body["message"]["text"], "Still there?");
    assert_eq!(sent[2].body["messaging_type"], "MESSAGE_TAG");
    assert_eq!(sent[2].body["tag"], "HUMAN_AGENT");
    // The bot's goodbye after the close is automated: held, not sent.
    assert_eq!(
        a.agent(&format!("/api/agent/conversations/{id}/close"), json!({}))
            .await,
        200
    );
    let sent = a.settle().await;
    assert!(
        sent.iter().all(|s| s.body["message"]["text"] != "Bye!"),
        "{sent:?}"
    );
    let c = id.clone();
    let store = a.state.store().clone();
    let sends = tokio::task::spawn_blocking(move || store.channel_sends(&c).unwrap())
        .await
        .unwrap();
    let held: Vec<_> = sends.iter().filter(|s| s.status == "held").collect();
    assert!(!held.is_empty(), "{sends:?}");
    assert!(held[0].last_error.as_deref().unwrap().contains("24-hour"));
}

#[tokio::test]
async fn whatsapp_outside_the_window_holds_an_agents_message_without_a_template() {
    let a = app("timeout", 0).await;
    let from = "16315551186";
    let (id, before) = a.picked_up("whatsapp", from).await;
    let msg = format!("/api/agent/conversations/{id}/messages");
    assert_eq!(a.agent(&msg, json!({"text": "Within the day"})).await, 200);
    let sent = a.wait_sent(before + 1).await;
    assert_eq!(sent[before].body["text"]["body"], "Within the day");
    jump(Duration::from_secs(25 * 3600)).await;
    assert_eq!(a.agent(&msg, json!({"text": "A day later"})).await, 200);
    let sent = a.settle().await;
    assert_eq!(sent.len(), before + 1, "{sent:?}");
    // The visitor writes again: the window opens, the next agent message goes.
    a.deliver(
        "whatsapp",
        &wa_delivery(from, vec![wa_text(from, "wamid.2", "back")]),
    )
    .await;
    assert_eq!(a.agent(&msg, json!({"text": "Welcome back"})).await, 200);
    let sent = a.wait_sent(before + 2).await;
    assert_eq!(sent[before + 1].body["text"]["body"], "Welcome back");
}

/// The `playbook serve` binary on `dir`; its address, and the process (killed on drop).
struct Proc(std::process::Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &std::path::Path) -> Proc {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_playbook"))
        .args(["serve", "--addr", "127.0.0.1:0", "--playbooks"])
        .arg(dir.join("playbooks"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(dir.join("playbook.toml"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    Proc(child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_send_resends_only_that_line_and_loses_none() {
    if server_common::on_postgres() {
        // The binary runs on its data folder: once is enough.
        return;
    }
    let graph = Arc::new(Mutex::new(Graph {
        slow: Some("Thanks!".into()),
        ..Graph::default()
    }));
    let url = fake_graph(graph.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    server_common::playbooks(dir.path());
    server_common::config(dir.path(), &channels_config("quick", &url), 1000);
    let c = reqwest::Client::new();
    let post = |base: String, v: Value| {
        let c = c.clone();
        async move {
            let body = v.to_string();
            let r = c
                .post(format!("{base}/api/channels/whatsapp/webhook"))
                .header("x-hub-signature-256", sign(&body))
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let count = |text: &str| {
        graph
            .lock()
            .unwrap()
            .sent
            .iter()
            .filter(|s| s.body["text"]["body"] == text)
            .count()
    };
    let from = "16315551190";
    let p = spawn(dir.path());
    let base = p.1.clone();
    post(
        base.clone(),
        wa_delivery(from, vec![wa_text(from, "wamid.1", "hi")]),
    )
    .await;
    post(
        base.clone(),
        wa_delivery(from, vec![wa_text(from, "wamid.2", "kerry@example.com")]),
    )
    .await;
    // "Thanks!" reached Meta, whose answer is held back: the server dies before it knows.
    for _ in 0..200 {
        if count("Thanks!") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(count("Thanks!"), 1);
    drop(p);
    graph.lock().unwrap().slow = None;

    let p = spawn(dir.path());
    let base = p.1.clone();
    for _ in 0..200 {
        if count("Thanks!") == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The line in flight is sent again (at-least-once, as documented); the line Meta had
    // acknowledged is not.
    assert_eq!(count("Thanks!"), 2);
    assert_eq!(count("Your email?"), 1);
    // Meta repeats the delivery the dead server had taken: nothing is applied twice.
    post(
        base.clone(),
        wa_delivery(from, vec![wa_text(from, "wamid.2", "kerry@example.com")]),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(graph.lock().unwrap().sent.len(), 3);
}

#[tokio::test]
async fn a_line_is_claimed_by_one_sender_and_taken_over_after_the_lease() {
    let a = app("quick", 0).await;
    let store = a.state.store().clone();
    tokio::task::spawn_blocking(move || {
        use playbook::persist::ChannelSend;
        let t = 1_000_000;
        assert!(store.channel_claim("c_x", 1, t, 60_000).unwrap());
        // A second sender (another replica) does not get it while the claim stands.
        assert!(!store.channel_claim("c_x", 1, t + 59_999, 60_000).unwrap());
        // The first died: after the lease it is taken over, one attempt more.
        assert!(store.channel_claim("c_x", 1, t + 60_000, 60_000).unwrap());
        let sends = store.channel_sends("c_x").unwrap();
        assert_eq!(
            (sends[0].status.as_str(), sends[0].attempts),
            ("sending", 2)
        );
        let sent = ChannelSend {
            seq: 1,
            status: "sent".into(),
            attempts: 2,
            last_error: None,
        };
        store.channel_send("c_x", &sent, t).unwrap();
        // Sent is final; a line to retry is claimed at once.
        assert!(!store.channel_claim("c_x", 1, t + 10_000_000, 0).unwrap());
        let retry = ChannelSend {
            seq: 2,
            status: "retry".into(),
            attempts: 1,
            last_error: Some("HTTP 503".into()),
        };
        store.channel_send("c_x", &retry, t).unwrap();
        assert!(store.channel_claim("c_x", 2, t, 60_000).unwrap());
        assert_eq!(store.channel_link_of("c_x").unwrap(), None);
    })
    .await
    .unwrap();
    let from = "16315551191";
    let id = a.says_hi("whatsapp", from).await;
    let store = a.state.store().clone();
    let link = tokio::task::spawn_blocking(move || store.channel_link_of(&id).unwrap())
        .await
        .unwrap();
    assert_eq!(link, Some(("whatsapp".to_owned(), from.to_owned())));
}

impl App {
    /// A contact says "hi" on `channel` (the "timeout" playbook queues them at once) and ana
    /// picks the chat up: the conversation and how many messages went out by then.
    async fn picked_up(&self, channel: &'static str, contact: &str) -> (String, usize) {
        let id = self.says_hi(channel, contact).await;
        self.wait_sent(1).await;
        let assign = format!("/api/agent/conversations/{id}/assign");
        assert_eq!(self.agent(&assign, json!({})).await, 200);
        let sent = self.wait_sent(2).await.len();
        (id, sent)
    }

    /// A contact's first message, "hi" (WhatsApp, else Messenger's page 4242): the
    /// conversation it started.
    async fn says_hi(&self, channel: &'static str, contact: &str) -> String {
        let hi = match channel {
            "whatsapp" => wa_delivery(contact, vec![wa_text(contact, "wamid.1", "hi")]),
            _ => page_delivery("page", "4242", page_text(contact, "4242", "m_1", "hi")),
        };
        self.deliver(channel, &hi).await;
        self.conversation_of(channel, contact).await.unwrap()
    }

    /// A visitor call: `(status, body)`.
    async fn visitor(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    /// A web conversation on `playbook`: `(id, visitor token)`.
    async fn web_start(&self, playbook: &str) -> (String, String) {
        let r = self
            .client
            .post(format!("{}/api/conversations", self.base))
            .json(&json!({"playbook": playbook}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.unwrap();
        (
            v["conversation"].as_str().unwrap().to_owned(),
            v["token"].as_str().unwrap().to_owned(),
        )
    }

    /// Asks for a link code: the `POST …/link` answer.
    async fn link_code(&self, id: &str, token: &str, channel: &str) -> Value {
        let (st, v) = self
            .visitor(
                "POST",
                &format!("/api/conversations/{id}/link"),
                token,
                Some(json!({"channel": channel})),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        v
    }
}

fn texts_on(history: &Value, channel: &str) -> Vec<String> {
    history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["channel"] == channel)
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_web_visitor_continues_on_whatsapp_and_comes_back_to_the_web() {
    let a = app("timeout", 0).await;
    // The widget lists the channels a visitor can continue on: Instagram has no username.
    let look: Value = a
        .client
        .get(format!("{}/api/widget", a.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        look["channels"],
        json!([{"channel": "whatsapp", "label": "WhatsApp"}, {"channel": "messenger", "label": "Messenger"}])
    );
    let (id, token) = a.web_start("timeout").await;
    assert_eq!(
        a.agent(&format!("/api/agent/conversations/{id}/assign"), json!({}))
            .await,
        200
    );
    let link = a.link_code(&id, &token, "whatsapp").await;
    let code = link["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("LINK-") && code.len() == 15, "{code}");
    assert_eq!(
        link["url"],
        format!("https://wa.me/15550001111?text={code}")
    );
    assert!(link["qr_svg"].as_str().unwrap().contains("<svg"));
    // An hour from now (the virtual clock runs on from T0 with real time).
    let expires = link["expires_at"].as_u64().unwrap() - T0.0;
    assert!((3_600_000..3_660_000).contains(&expires), "{expires}");
    // Nothing of the web chat went to WhatsApp.
    assert!(a.settle().await.is_empty());

    // The visitor sends the pre-filled message from WhatsApp: linked, and told on both sides.
    let from = "491701234567";
    let out = a
        .deliver(
            "whatsapp",
            &wa_delivery(
                from,
                vec![wa_text(
                    from,
                    "wamid.L1",
                    &format!("Continue my chat {code}"),
                )],
            ),
        )
        .await;
    assert_eq!(out, json!({"received": 1, "applied": 1}));
    assert_eq!(
        a.conversation_of("whatsapp", from).await.as_deref(),
        Some(id.as_str())
    );
    let sent = a.wait_sent(1).await;
    assert_eq!(sent[0].body["to"], from);
    assert_eq!(
        sent[0].body["text"]["body"],
        "The conversation continues on WhatsApp"
    );
    // The agent's reply follows the visitor to WhatsApp.
    let msg = format!("/api/agent/conversations/{id}/messages");
    assert_eq!(a.agent(&msg, json!({"text": "Hi on WhatsApp"})).await, 200);
    let sent = a.wait_sent(2).await;
    assert_eq!(sent[1].body["text"]["body"], "Hi on WhatsApp");
    // The visitor's answer there lands in the same conversation.
    a.deliver(
        "whatsapp",
        &wa_delivery(from, vec![wa_text(from, "wamid.L2", "Great, thanks")]),
    )
    .await;
    // The widget shows the whole history, each message with its channel.
    let (st, h) = a
        .visitor(
            "GET",
            &format!("/api/conversations/{id}/messages"),
            &token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{h}");
    assert_eq!(h["linked"], "whatsapp");
    assert_eq!(
        texts_on(&h, "whatsapp"),
        [
            format!("Continue my chat {code}"),
            "The conversation continues on WhatsApp".into(),
            "Hi on WhatsApp".into(),
            "Great, thanks".into()
        ]
    );
    assert!(texts_on(&h, "web").contains(&"Connecting you...".to_owned()));
    // A record made now carries the social id; the WhatsApp number fills the phone.
    let (st, rec) = {
        let r = a
            .client
            .post(format!("{}/api/agent/conversations/{id}/records", a.base))
            .bearer_auth(ANA)
            .json(&json!({"type": "lead", "title": "Kerry", "person": {"name": "Kerry"}}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(st, 201, "{rec}");
    let person = &rec["record"]["data"]["person"];
    assert_eq!(person["social"], json!({"channel": "whatsapp", "id": from}));
    assert_eq!(person["phone"], format!("+{from}"));
    // And the inbox shows it with the visitor.
    assert_eq!(
        a.detail(&id).await["visitor"]["social"],
        json!({"channel": "whatsapp", "id": from})
    );

    // The code is spent: sent again by someone else, it links nothing (a conversation of
    // their own starts).
    let other = "491709999999";
    a.deliver(
        "whatsapp",
        &wa_delivery(other, vec![wa_text(other, "wamid.X1", &code)]),
    )
    .await;
    let theirs = a.conversation_of("whatsapp", other).await.unwrap();
    assert_ne!(theirs, id);

    // "Disconnect" in the widget: back on the web, the contact unlinked.
    let (st, v) = a
        .visitor(
            "DELETE",
            &format!("/api/conversations/{id}/link"),
            &token,
            None,
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"][0]["text"], "The conversation continues here");
    assert_eq!(v["messages"][0]["channel"], "web");
    assert_eq!(a.conversation_of("whatsapp", from).await, None);
    let before = a.settle().await.len();
    assert_eq!(a.agent(&msg, json!({"text": "Back on the web"})).await, 200);
    let after = a.settle().await;
    assert!(
        after[before..].iter().all(|s| s.body["to"] != from),
        "{:?}",
        &after[before..]
    );
    let (_, h) = a
        .visitor(
            "GET",
            &format!("/api/conversations/{id}/messages"),
            &token,
            None,
        )
        .await;
    assert_eq!(h["linked"], Value::Null);
    assert_eq!(texts_on(&h, "web").last().unwrap(), "Back on the web");
    // Not linked any more: a second disconnect is refused.
    let (st, _) = a
        .visitor(
            "DELETE",
            &format!("/api/conversations/{id}/link"),
            &token,
            None,
        )
        .await;
    assert_eq!(st, 409);
}

#[tokio::test]
async fn link_codes_are_refused_for_strangers_unknown_channels_and_linked_chats() {
    let a = app("timeout", 0).await;
    let (id, token) = a.web_start("timeout").await;
    let path = format!("/api/conversations/{id}/link");
    // Two codes asked for before either is used: only the first one used links.
    let spare = a.link_code(&id, &token, "whatsapp").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, _) = a
        .visitor(
            "POST",
            &path,
            "wrong-token",
            Some(json!({"channel": "whatsapp"})),
        )
        .await;
    assert_eq!(st, 401);
    // Instagram has no username configured; Telegram is not a channel at all.
    for ch in ["instagram", "telegram"] {
        let (st, v) = a
            .visitor("POST", &path, &token, Some(json!({"channel": ch})))
            .await;
        assert_eq!(st, 404, "{v}");
    }
    // A Messenger link: `m.me/<page>?ref=<code>`; opening it sends a referral event.
    let link = a.link_code(&id, &token, "messenger").await;
    let code = link["code"].as_str().unwrap().to_owned();
    assert_eq!(link["url"], format!("https://m.me/4242?ref={code}"));
    let psid = "6080000000009";
    let referral = json!({"sender": {"id": psid}, "recipient": {"id": "4242"}, "timestamp": 1767603605000u64,
        "referral": {"ref": code, "source": "SHORTLINK", "type": "OPEN_THREAD"}});
    let out = a
        .deliver(
            "messenger",
            &page_delivery("page", "4242", referral.clone()),
        )
        .await;
    assert_eq!(out, json!({"received": 1, "applied": 1}));
    assert_eq!(
        a.conversation_of("messenger", psid).await.as_deref(),
        Some(id.as_str())
    );
    let sent = a.wait_sent(1).await;
    assert_eq!(sent[0].body["recipient"]["id"], psid);
    assert_eq!(
        sent[0].body["message"]["text"],
        "The conversation continues on Messenger"
    );
    // The same event delivered again is applied once.
    let again = a
        .deliver("messenger", &page_delivery("page", "4242", referral))
        .await;
    assert_eq!(again["applied"], 0);
    // Linked already: a second code is refused until the visitor disconnects.
    let (st, v) = a
        .visitor("POST", &path, &token, Some(json!({"channel": "whatsapp"})))
        .await;
    assert_eq!(st, 409, "{v}");
    let other = "491702222222";
    a.deliver(
        "whatsapp",
        &wa_delivery(other, vec![wa_text(other, "wamid.S1", &spare)]),
    )
    .await;
    assert_ne!(a.conversation_of("whatsapp", other).await.unwrap(), id);
    // Back on the web by writing there: disconnecting then only unlinks (no second notice).
    let (st, v) = a
        .visitor(
            "POST",
            &format!("/api/conversations/{id}/messages"),
            &token,
            Some(json!({"text": "hello from the web", "channel": "web"})),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = a.visitor("DELETE", &path, &token, None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["messages"], json!([]));
    assert!(
        ["waiting", "queued", "with_agent"].contains(&v["status"].as_str().unwrap()),
        "{v}"
    );
    assert_eq!(a.conversation_of("messenger", psid).await, None);
}

#[tokio::test]
async fn an_expired_link_code_links_nothing() {
    let a = app("quick", 0).await;
    let (id, token) = a.web_start("quick").await;
    let code = a.link_code(&id, &token, "whatsapp").await["code"]
        .as_str()
        .unwrap()
        .to_owned();
    jump(Duration::from_secs(3601)).await;
    let from = "491701111111";
    a.deliver(
        "whatsapp",
        &wa_delivery(from, vec![wa_text(from, "wamid.E1", &code)]),
    )
    .await;
    let theirs = a.conversation_of("whatsapp", from).await.unwrap();
    assert_ne!(theirs, id);
}

#[tokio::test]
async fn whatsapp_outside_the_window_sends_the_configured_template() {
    let a = app_with(
        "timeout",
        0,
        "template = \"follow_up\"\ntemplate_language = \"de\"\n",
    )
    .await;
    let from = "16315551187";
    let (id, before) = a.picked_up("whatsapp", from).await;
    jump(Duration::from_secs(25 * 3600)).await;
    let msg = format!("/api/agent/conversations/{id}/messages");
    assert_eq!(a.agent(&msg, json!({"text": "A day later"})).await, 200);
    let sent = a.wait_sent(before + 1).await;
    // Its key is its line: after the contact's "hi" and the `before` lines sent.
    assert_eq!(
        sent[before].body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": from,
               "biz_opaque_callback_data": format!("{id}:{}", before + 2), "type": "template",
               "template": {"name": "follow_up", "language": {"code": "de"}}})
    );
}

#[tokio::test]
async fn messenger_holds_an_agents_message_after_seven_days() {
    let a = app("timeout", 0).await;
    let psid = "6080000000003";
    let (id, before) = a.picked_up("messenger", psid).await;
    jump(Duration::from_secs(8 * 24 * 3600)).await;
    let msg = format!("/api/agent/conversations/{id}/messages");
    assert_eq!(a.agent(&msg, json!({"text": "A week later"})).await, 200);
    assert_eq!(a.settle().await.len(), before);
    let store = a.state.store().clone();
    let c = id.clone();
    let sends = tokio::task::spawn_blocking(move || store.channel_sends(&c).unwrap())
        .await
        .unwrap();
    let held = sends.iter().find(|s| s.status == "held").expect("held");
    assert!(
        held.last_error.as_deref().unwrap().contains("7 days"),
        "{held:?}"
    );
    // The agent sees it on the line in the inbox.
    let d = a.detail(&id).await;
    let line = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "A week later")
        .unwrap();
    assert_eq!(line["delivery"]["status"], "held");
    assert!(
        line["delivery"]["error"]
            .as_str()
            .unwrap()
            .contains("7 days")
    );
}

#[tokio::test]
async fn racing_deliveries_of_a_new_contact_start_one_conversation() {
    let a = app("quick", 0).await;
    let from = "16315551190";
    // Meta retries before the first delivery was answered, and the contact writes again: three
    // deliveries at once, two of them the same message.
    let first = wa_delivery(from, vec![wa_text(from, "wamid.R1", "hello")]);
    let second = wa_delivery(from, vec![wa_text(from, "wamid.R2", "kerry@example.com")]);
    let (x, y, z) = tokio::join!(
        a.deliver("whatsapp", &first),
        a.deliver("whatsapp", &first),
        a.deliver("whatsapp", &second),
    );
    let applied: u64 = [x, y, z]
        .iter()
        .map(|v| v["applied"].as_u64().unwrap())
        .sum();
    assert_eq!(applied, 2);
    let id = a.conversation_of("whatsapp", from).await.unwrap();
    // One conversation in the store (nobody else wrote). Which of two racing deliveries is
    // first is the network's choice; each is applied whole, one after the other.
    let store = a.state.store().clone();
    let rows = tokio::task::spawn_blocking(move || store.scan(0, i64::MAX, 100).unwrap())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].id, id);
}

#[tokio::test]
async fn a_link_another_replica_removed_is_not_sent_to() {
    let a = app("timeout", 0).await;
    let from = "16315551191";
    let (id, before) = a.picked_up("whatsapp", from).await;
    // Another replica unlinks the contact (this server's memory still has the link).
    let store = a.state.store().clone();
    let c = id.clone();
    tokio::task::spawn_blocking(move || {
        store
            .commit(&playbook::persist::Commit {
                channel_links: vec![playbook::persist::ChannelLink {
                    channel: "whatsapp".into(),
                    contact: "16315551191".into(),
                    conversation: None,
                    replaces: Some(c),
                    at: 0,
                }],
                ..Default::default()
            })
            .unwrap()
    })
    .await
    .unwrap();
    let msg = format!("/api/agent/conversations/{id}/messages");
    assert_eq!(a.agent(&msg, json!({"text": "Anyone?"})).await, 200);
    assert_eq!(a.settle().await.len(), before);
}
