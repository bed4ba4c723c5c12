//! Social channels: WhatsApp (Cloud API), Messenger and Instagram, both ways.
//!
//! **Inbound** (`/api/channels/{whatsapp,messenger,instagram}/webhook`). `GET` answers
//! Meta's verification (`hub.mode=subscribe`, the configured `hub.verify_token` → the
//! `hub.challenge` echoed; else 403). `POST` is a delivery: its raw body must carry a valid
//! `X-Hub-Signature-256` (HMAC-SHA256 under the app secret, compared in constant time) or it
//! is refused with 401 before anything is read. Its messages are applied one at a time, in
//! the order delivered, under one lock per server (so two deliveries of one contact never
//! interleave): a contact without a conversation (or whose conversation ended) starts one on
//! the channel's `playbook`; text becomes visitor text; a reply button, list row, quick reply
//! or postback this server sent becomes the visitor's choice. Each message id is written in
//! the **same commit** as the change it made ([`Driver::apply_with`]), and checked before
//! applying: a message Meta delivers again — even after a crash between our commit and our
//! 200 — is found and skipped; an id already stored makes the commit a conflict, so two
//! racing replicas cannot both apply it. Statuses, echoes of our own messages, reactions and
//! other kinds are acknowledged (200) and logged, never an error Meta would retry forever.
//!
//! **Outbound** ([`run`]). The store is the outbox: a linked conversation's lines are in the
//! store once committed, and `channel_sends` holds each outbound line's state keyed by
//! (conversation, line seq) — the idempotency key. After every commit the sender reads the
//! conversation and sends, in order, each bot, agent or notice line not yet done that was
//! said on the social channel (the channel the visitor used last). A line is claimed
//! (`sending`, in one conditional write, so of replicas on one database one sends it; a
//! claim older than a minute is taken over) before its request and marked `sent` after it,
//! so a restart resends only a line whose request was in flight at the crash:
//! **at-least-once for that one line** (the Graph API
//! has no idempotency key; the key rides in `biz_opaque_callback_data` / `metadata` so a
//! duplicate can be recognised in Meta's status and echo events). 429, 5xx and network
//! errors are retried with backoff (1 s doubling to 5 min), in order; other refusals mark the
//! line `failed` with Meta's message and the next line goes on.
//!
//! **Linking from the widget** (`POST` and `DELETE /api/conversations/{id}/link`). A web
//! visitor asks for a one-time code (`LINK-` and ten letters, an hour, in `channel_codes`)
//! shown as a QR code and a deep link (`wa.me/<number>?text=<code>`, `m.me/<page>?ref=<code>`,
//! `ig.me/m/<user>?ref=<code>`).
//! The first message carrying it (in its text, or a Messenger/Instagram `referral.ref`) links
//! the contact to that conversation: the message id, the spent code, the contact's link and
//! the switch of channel ([`Command::SwitchChannel`], which transcribes the message without
//! feeding it to the flow and says a notice) are one commit. Every transcript line carries the
//! channel the visitor used last, so the sender sends exactly the lines said on its channel:
//! replies follow the visitor, and come back to the web after "disconnect" (the link row is
//! deleted; what the contact writes next starts a conversation of its own).
//!
//! **Channel rules**, in virtual time (the driver's clock), at the time of sending: a bot
//! (or system) message more than 24 h after the visitor's last message on the channel is
//! held; an agent's message on Messenger or Instagram up to 7 days after goes with
//! `MESSAGE_TAG` / `HUMAN_AGENT`, later it is held; on WhatsApp outside 24 h the configured
//! `template` is sent instead, or the message is held. A held line is stored as `held` with
//! the reason and logged at `warn`.
//!
//! A held or refused line is marked on it in the agent detail and told to the handling
//! agent's inbox at once.
//!
//! Must not: acknowledge a delivery before its change is stored, log or echo a token or app
//! secret, send a line it has not claimed, or link a contact with a code that is spent,
//! expired or another channel's.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::mpsc;

use super::config::MetaPage;
use super::handlers::{ApiJson, VisitorToken, messages_of, visitor_read};
use super::{ApiError, AppState};
use crate::capture::{Line, LineKind, Who};
use crate::engine::{Channel, Phase};
use crate::persist::{ChannelLink, ChannelSend, CodeChange, Commit};
use crate::runtime::Command;
use crate::runtime::driver::DriverError;

/// The 24-hour messaging window, in ms.
pub const WINDOW_MS: u64 = 24 * 3600 * 1000;
/// How long a Messenger/Instagram agent may answer with the `HUMAN_AGENT` tag, in ms.
pub const HUMAN_AGENT_MS: u64 = 7 * 24 * 3600 * 1000;
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);
/// On a shared store: how long a replica's claim on a line stands before another may take
/// it over (the claimer died mid-send).
const LEASE_MS: i64 = 60_000;
/// A button's payload: `choice:<seq of the question line>:<index from 0>`.
const CHOICE: &str = "choice:";
/// Link codes: `LINK-` and ten letters of an alphabet without look-alikes (0/O, 1/I).
const CODE_PREFIX: &str = "LINK-";
const CODE_LEN: usize = 10;
const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// How long a link code stands: the visitor scans it or taps the link right away.
pub const CODE_TTL_MS: u64 = 3600 * 1000;

/// A social channel this server can be connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Social {
    /// WhatsApp Cloud API.
    WhatsApp,
    /// Facebook Messenger.
    Messenger,
    /// Instagram messaging.
    Instagram,
}

impl Social {
    /// The name in paths and in the store.
    pub fn name(self) -> &'static str {
        match self {
            Social::WhatsApp => "whatsapp",
            Social::Messenger => "messenger",
            Social::Instagram => "instagram",
        }
    }

    fn parse(s: &str) -> Option<Social> {
        Some(match s {
            "whatsapp" => Social::WhatsApp,
            "messenger" => Social::Messenger,
            "instagram" => Social::Instagram,
            _ => return None,
        })
    }

    /// The engine's channel tag.
    pub fn channel(self) -> Channel {
        match self {
            Social::WhatsApp => Channel::WhatsApp,
            Social::Messenger => Channel::Messenger,
            Social::Instagram => Channel::Instagram,
        }
    }
}

/// One channel's settings, as the code needs them: WhatsApp's and a page's alike.
struct Settings<'a> {
    /// The phone number id or page id: the messages endpoint's, and our own id in events.
    id: &'a str,
    verify_token: &'a str,
    app_secret: &'a [u8],
    playbook: &'a str,
    base_url: &'a str,
    token: &'a str,
}

/// A secret's text, empty when absent.
fn secret(s: &Option<super::config::Secret>) -> &str {
    s.as_ref().map(|s| s.0.as_str()).unwrap_or_default()
}

fn settings(state: &AppState, ch: Social) -> Option<Settings<'_>> {
    let c = &state.config().channels;
    // A config parsed without `load` has no secrets: nothing can be signed or sent with them.
    Some(match ch {
        Social::WhatsApp => {
            let w = c.whatsapp.as_ref()?;
            Settings {
                id: &w.phone_number_id,
                verify_token: &w.verify_token,
                app_secret: secret(&w.app_secret).as_bytes(),
                playbook: &w.playbook,
                base_url: &w.base_url,
                token: secret(&w.token),
            }
        }
        Social::Messenger | Social::Instagram => {
            let p = if ch == Social::Messenger {
                &c.messenger
            } else {
                &c.instagram
            };
            let p: &MetaPage = p.as_ref()?;
            Settings {
                id: &p.page_id,
                verify_token: &p.verify_token,
                app_secret: secret(&p.app_secret).as_bytes(),
                playbook: &p.playbook,
                base_url: &p.base_url,
                token: secret(&p.token),
            }
        }
    })
}

/// What the server holds for the channels: the delivery lock, which conversations are
/// linked, and the sender's queue.
pub struct ChannelState {
    /// One delivery at a time: messages are applied in the order Meta sent them, and a
    /// contact's first messages never start two conversations.
    lock: tokio::sync::Mutex<()>,
    /// Linked conversations: id → (channel, contact).
    linked: Mutex<HashMap<String, (Social, String)>>,
    work: mpsc::UnboundedSender<String>,
    queue: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl ChannelState {
    /// An empty state (the sender loads the links when it starts).
    pub fn new() -> Self {
        let (work, rx) = mpsc::unbounded_channel();
        ChannelState {
            lock: tokio::sync::Mutex::new(()),
            linked: Mutex::new(HashMap::new()),
            work,
            queue: Mutex::new(Some(rx)),
        }
    }

    fn link(&self, conv: &str, ch: Social, contact: &str) {
        super::lock(&self.linked).insert(conv.to_owned(), (ch, contact.to_owned()));
    }

    fn unlink(&self, conv: &str) {
        super::lock(&self.linked).remove(conv);
    }

    fn linked(&self, conv: &str) -> Option<(Social, String)> {
        super::lock(&self.linked).get(conv).cloned()
    }
}

impl Default for ChannelState {
    fn default() -> Self {
        Self::new()
    }
}

fn channel_of(name: &str, state: &AppState) -> Result<Social, ApiError> {
    Social::parse(name)
        .filter(|ch| settings(state, *ch).is_some())
        .ok_or_else(|| ApiError::NotFound(format!("no channel `{name}` is configured")))
}

/// `GET /api/channels/{channel}/webhook`: Meta's subscription check.
pub(super) async fn verify(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let ch = channel_of(&name, &state)?;
    let Some(s) = settings(&state, ch) else {
        return Err(ApiError::NotFound(format!(
            "no channel `{name}` is configured"
        )));
    };
    let mode = q.get("hub.mode").map(String::as_str);
    let token = q.get("hub.verify_token");
    let ok =
        mode == Some("subscribe") && token.is_some_and(|t| super::config::ct_eq(t, s.verify_token));
    match (ok, q.get("hub.challenge")) {
        (true, Some(challenge)) => Ok((StatusCode::OK, challenge.clone()).into_response()),
        _ => Err(ApiError::Forbidden(
            "the verify token does not match the configured one".into(),
        )),
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the body, in constant time.
pub fn signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.strip_prefix("sha256=")) else {
        return false;
    };
    let Some(sig) = super::identity::hex_bytes(hex.trim()) else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// What a contact sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Typed text (or a button whose payload is not one of ours: its title).
    Text(String),
    /// One of our buttons: the question line's seq and the button index.
    Choice {
        /// The question's line.
        seq: u64,
        /// From 0.
        index: usize,
        /// The button's title, used as text when the question is no longer current.
        title: String,
    },
    /// A link code from the widget: in typed text (`said`), or in a Messenger/Instagram
    /// link's `ref` (no text).
    Link {
        /// The code, upper-case.
        code: String,
        /// The text it came in, if any.
        said: Option<String>,
    },
}

/// One message of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The contact's id on the channel (WhatsApp number, page-scoped id).
    pub contact: String,
    /// Meta's message id (`wamid…`, `mid…`).
    pub id: String,
    /// What it says.
    pub input: Input,
}

fn choice_or_text(payload: &str, title: &str) -> Input {
    let parsed = payload.strip_prefix(CHOICE).and_then(|rest| {
        let (seq, index) = rest.split_once(':')?;
        Some((seq.parse().ok()?, index.parse().ok()?))
    });
    match parsed {
        Some((seq, index)) => Input::Choice {
            seq,
            index,
            title: title.to_owned(),
        },
        None => Input::Text(title.to_owned()),
    }
}

/// Typed text, or a link code when it carries one.
fn text_or_link(text: String) -> Input {
    match find_code(&text) {
        Some(code) => Input::Link {
            code,
            said: Some(text),
        },
        None => Input::Text(text),
    }
}

/// The link code in a text (`LINK-` and ten letters of the code alphabet, any case).
pub fn find_code(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    upper.match_indices(CODE_PREFIX).find_map(|(i, _)| {
        let rest = &upper[i + CODE_PREFIX.len()..];
        let body: String = rest.chars().take(CODE_LEN).collect();
        let ok = body.len() == CODE_LEN && body.bytes().all(|b| CODE_ALPHABET.contains(&b));
        ok.then(|| format!("{CODE_PREFIX}{body}"))
    })
}

/// A new link code: `LINK-` and ten random letters of [`CODE_ALPHABET`] (50 bits).
pub fn new_code() -> Result<String, ApiError> {
    let mut b = [0u8; CODE_LEN];
    getrandom::fill(&mut b).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    // 32 letters: each byte's low five bits pick one without bias.
    let body: String = b
        .iter()
        .map(|x| CODE_ALPHABET[usize::from(x & 31)] as char)
        .collect();
    Ok(format!("{CODE_PREFIX}{body}"))
}

/// The messages of a delivery, in order, and how many entries were ignored (statuses,
/// echoes, unsupported kinds). Never fails on well-formed JSON.
pub fn parse_delivery(ch: Social, v: &Value, own_id: &str) -> (Vec<Inbound>, usize) {
    let mut out = Vec::new();
    let mut ignored = 0;
    let empty = Vec::new();
    let arr = |v: &Value, k: &str| v.get(k).and_then(Value::as_array).unwrap_or(&empty).clone();
    let s = |v: &Value, path: &[&str]| -> Option<String> {
        let mut cur = v;
        for k in path {
            cur = cur.get(k)?;
        }
        cur.as_str().map(str::to_owned)
    };
    for entry in arr(v, "entry") {
        if ch == Social::WhatsApp {
            for change in arr(&entry, "changes") {
                let value = change.get("value").cloned().unwrap_or(Value::Null);
                ignored += arr(&value, "statuses").len();
                for m in arr(&value, "messages") {
                    let (Some(from), Some(id)) = (s(&m, &["from"]), s(&m, &["id"])) else {
                        ignored += 1;
                        continue;
                    };
                    let input = match s(&m, &["type"]).as_deref() {
                        Some("text") => s(&m, &["text", "body"]).map(text_or_link),
                        Some("interactive") => ["button_reply", "list_reply"]
                            .iter()
                            .find_map(|k| m.get("interactive")?.get(k))
                            .and_then(|r| {
                                let id = r.get("id")?.as_str()?;
                                let title = r.get("title").and_then(Value::as_str).unwrap_or(id);
                                Some(choice_or_text(id, title))
                            }),
                        Some("button") => s(&m, &["button", "payload"]).map(|p| {
                            let title = s(&m, &["button", "text"]).unwrap_or_else(|| p.clone());
                            choice_or_text(&p, &title)
                        }),
                        _ => None,
                    };
                    match input {
                        Some(input) => out.push(Inbound {
                            contact: from,
                            id,
                            input,
                        }),
                        None => {
                            tracing::info!(channel = ch.name(), kind = ?s(&m, &["type"]), "a message of an unsupported kind was ignored");
                            ignored += 1;
                        }
                    }
                }
            }
        } else {
            for m in arr(&entry, "messaging") {
                let Some(sender) = s(&m, &["sender", "id"]) else {
                    ignored += 1;
                    continue;
                };
                let echo = m
                    .get("message")
                    .and_then(|x| x.get("is_echo"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if echo || sender == own_id {
                    // Our own message coming back: not the visitor's.
                    ignored += 1;
                    continue;
                }
                // A link opened from the widget (`m.me/<page>?ref=<code>`): on a thread
                // already open a `referral` event, on a new one the Get Started postback's.
                let referral = s(&m, &["referral", "ref"])
                    .or_else(|| s(&m, &["postback", "referral", "ref"]))
                    .or_else(|| s(&m, &["message", "referral", "ref"]))
                    .and_then(|r| find_code(&r));
                let parsed = if let Some(code) = referral {
                    let id = s(&m, &["message", "mid"])
                        .or_else(|| s(&m, &["postback", "mid"]))
                        .or_else(|| m.get("timestamp").map(|t| format!("referral:{sender}:{t}")));
                    id.map(|id| (id, Input::Link { code, said: None }))
                } else if let Some(msg) = m.get("message") {
                    let id = s(msg, &["mid"]);
                    let text = s(msg, &["text"]);
                    let input = match s(msg, &["quick_reply", "payload"]) {
                        Some(p) => Some(choice_or_text(&p, text.as_deref().unwrap_or(&p))),
                        None => text.map(text_or_link),
                    };
                    id.zip(input)
                } else if let Some(pb) = m.get("postback") {
                    let payload = s(pb, &["payload"]).unwrap_or_default();
                    let title = s(pb, &["title"]).unwrap_or_else(|| payload.clone());
                    // Older postbacks carry no mid: the sender and timestamp name them.
                    let id = s(pb, &["mid"])
                        .or_else(|| m.get("timestamp").map(|t| format!("postback:{sender}:{t}")));
                    id.map(|id| (id, choice_or_text(&payload, &title)))
                } else {
                    None
                };
                match parsed {
                    Some((id, input)) => out.push(Inbound {
                        contact: sender,
                        id,
                        input,
                    }),
                    None => {
                        tracing::info!(
                            channel = ch.name(),
                            "an event of an unsupported kind was ignored"
                        );
                        ignored += 1;
                    }
                }
            }
        }
    }
    (out, ignored)
}

fn own_id(state: &AppState, ch: Social) -> String {
    settings(state, ch)
        .map(|s| s.id.to_owned())
        .unwrap_or_default()
}

/// `POST /api/channels/{channel}/webhook`: a delivery from Meta.
pub(super) async fn deliver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let ch = channel_of(&name, &state)?;
    let Some(s) = settings(&state, ch) else {
        return Err(ApiError::NotFound(format!(
            "no channel `{name}` is configured"
        )));
    };
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|h| h.to_str().ok());
    if !signature_ok(s.app_secret, &body, sig) {
        tracing::warn!(
            channel = ch.name(),
            "a webhook delivery with a missing or wrong signature was refused"
        );
        return Err(ApiError::Unauthorized(
            "X-Hub-Signature-256 is missing or does not match the body".into(),
        ));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not JSON: {e}")))?;
    let playbook = s.playbook.to_owned();
    let (messages, ignored) = parse_delivery(ch, &v, &own_id(&state, ch));
    if ignored > 0 {
        tracing::debug!(
            channel = ch.name(),
            ignored,
            "delivery entries acknowledged and ignored"
        );
    }
    let shared = state.0.channels.clone();
    let _one = shared.lock.lock().await;
    let mut applied = 0;
    for m in &messages {
        if apply_one(&state, ch, &playbook, m).await? {
            applied += 1;
        }
    }
    Ok(Json(json!({"received": messages.len(), "applied": applied})).into_response())
}

/// Applies one message; `false` when it was applied before or refused (logged). A storage
/// failure is an error: Meta retries the delivery, and what was applied is found then.
async fn apply_one(
    state: &AppState,
    ch: Social,
    playbook: &str,
    m: &Inbound,
) -> Result<bool, ApiError> {
    let (name, id, contact) = (ch.name(), m.id.clone(), m.contact.clone());
    let (seen, conv) = state
        .blocking(move |st| {
            Ok((
                st.channel_message_seen(name, &id)?,
                st.channel_contact(name, &contact)?,
            ))
        })
        .await?;
    if seen {
        tracing::info!(channel = name, "a message delivered again was skipped");
        return Ok(false);
    }
    if let Input::Link { code, said } = &m.input
        && let Some(done) = link_contact(state, ch, m, code, said.as_deref(), conv.clone()).await?
    {
        return Ok(done);
    }
    let current = match &conv {
        Some(c) => {
            let c2 = c.clone();
            state
                .blocking(move |st| st.conversation(&c2))
                .await?
                .filter(|(row, _)| !row.ended)
        }
        None => None,
    };
    let message_row = Commit {
        channel_messages: vec![(name.to_owned(), m.id.clone(), String::new())],
        ..Commit::default()
    };
    let Some((row, lines)) = current else {
        // A new contact, or one whose conversation is over: its message starts one. The
        // message's text is not taken as an answer to the playbook's first question.
        let new = format!("c_{}", &super::random_hex()?[..20]);
        let at = i64::try_from(state.driver().now().0).unwrap_or(i64::MAX);
        let mut extra = message_row;
        extra.channel_messages[0].2 = new.clone();
        extra.channel_links.push(ChannelLink {
            channel: name.to_owned(),
            contact: m.contact.clone(),
            conversation: Some(new.clone()),
            replaces: conv,
            at,
        });
        let cmd = Command::Start {
            playbook: Some(playbook.to_owned()),
            channel: ch.channel(),
            page_url: None,
            contact_owner: None,
            token: Some(super::random_hex()?),
            visitor: Default::default(),
            // The message is in the transcript (agents see how the contact opened), cut to
            // the engine's limit so a long one still starts the conversation.
            said: opening(&m.input)
                .map(|t| t.chars().take(crate::engine::MAX_TEXT_CHARS).collect()),
        };
        return match state.driver().apply_with(&new, cmd, extra).await {
            Ok(_) => {
                state.0.channels.link(&new, ch, &m.contact);
                poke(state, &new);
                tracing::info!(channel = name, conversation = %new, "a contact started a conversation");
                Ok(true)
            }
            Err(DriverError::Hub(e)) => {
                // The configured playbook is missing or refused the start: the operator must
                // hear of it (the contact gets no answer).
                tracing::warn!(channel = name, playbook, reason = %e, "a contact could not start a conversation");
                Ok(false)
            }
            Err(e) => refused(name, e),
        };
    };
    let conv = row.id.clone();
    let cmd = match &m.input {
        Input::Text(t)
        | Input::Link {
            said: Some(t),
            code: _,
        } => Command::VisitorText {
            text: t.clone(),
            channel: ch.channel(),
        },
        Input::Link { said: None, .. } => {
            // A link opened again in a conversation it no longer links: nothing was said.
            tracing::info!(channel = name, "a link that links nothing was ignored");
            return Ok(false);
        }
        Input::Choice { seq, index, title } => {
            if current_question(&lines) == question_at(&lines, *seq)
                && question_at(&lines, *seq).is_some()
            {
                Command::VisitorChoice {
                    index: *index,
                    channel: ch.channel(),
                }
            } else {
                // A button of an earlier question: what it says, not which one it was.
                Command::VisitorText {
                    text: title.clone(),
                    channel: ch.channel(),
                }
            }
        }
    };
    let mut extra = message_row;
    extra.channel_messages[0].2 = conv.clone();
    match state.driver().apply_with(&conv, cmd, extra).await {
        Ok(_) => {
            state.0.channels.link(&conv, ch, &m.contact);
            poke(state, &conv);
            Ok(true)
        }
        Err(e) => refused(name, e),
    }
}

/// Links the contact to the conversation a widget's code names, in one commit with the
/// message id, the spent code and the switch of channel. `None`: the code links nothing
/// (unknown, spent, expired, another channel's, or its conversation is over), and the
/// message is taken like any other.
async fn link_contact(
    state: &AppState,
    ch: Social,
    m: &Inbound,
    code: &str,
    said: Option<&str>,
    current: Option<String>,
) -> Result<Option<bool>, ApiError> {
    let name = ch.name();
    let c = code.to_owned();
    let found = state.blocking(move |st| st.channel_code(&c)).await?;
    let at = i64::try_from(state.driver().now().0).unwrap_or(i64::MAX);
    let ttl = i64::try_from(CODE_TTL_MS).unwrap_or(i64::MAX);
    let Some(found) =
        found.filter(|f| !f.spent && f.channel == name && at.saturating_sub(f.created_at) <= ttl)
    else {
        tracing::info!(
            channel = name,
            "a link code that links nothing was taken as a message"
        );
        return Ok(None);
    };
    let target = found.conversation;
    // Two codes asked for at once: the first one used links, the other links nothing (a
    // conversation continues on one social contact at a time).
    let t = target.clone();
    let now_linked = state.blocking(move |st| st.channel_link_of(&t)).await?;
    if now_linked.is_some_and(|(c, contact)| c != name || contact != m.contact) {
        tracing::info!(
            channel = name,
            "a link code of a conversation linked since was taken as a message"
        );
        return Ok(None);
    }
    let extra = Commit {
        channel_messages: vec![(name.to_owned(), m.id.clone(), target.clone())],
        channel_links: vec![ChannelLink {
            channel: name.to_owned(),
            contact: m.contact.clone(),
            conversation: Some(target.clone()),
            replaces: current.clone(),
            at,
        }],
        channel_codes: vec![CodeChange::Spend {
            code: code.to_owned(),
            at,
        }],
        ..Commit::default()
    };
    let cmd = Command::SwitchChannel {
        channel: ch.channel(),
        contact: Some(m.contact.clone()),
        said: said.map(str::to_owned),
    };
    match state.driver().apply_with(&target, cmd, extra).await {
        Ok(_) => {
            if let Some(old) = current.filter(|o| *o != target) {
                state.0.channels.unlink(&old);
            }
            state.0.channels.link(&target, ch, &m.contact);
            poke(state, &target);
            tracing::info!(channel = name, conversation = %target, "a contact linked a conversation from the widget");
            Ok(Some(true))
        }
        Err(DriverError::Hub(e)) => {
            tracing::info!(channel = name, reason = %e, "a link code's conversation refused the link");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// The channels a web visitor can continue on: configured, with what their link needs
/// (WhatsApp its `number`, Instagram a `username`).
pub fn linkable(state: &AppState) -> Vec<Social> {
    [Social::WhatsApp, Social::Messenger, Social::Instagram]
        .into_iter()
        .filter(|ch| link_url(state, *ch, "").is_some())
        .collect()
}

/// The deep link that opens the channel's app with `code`.
fn link_url(state: &AppState, ch: Social, code: &str) -> Option<String> {
    let c = &state.config().channels;
    match ch {
        Social::WhatsApp => {
            let number = c.whatsapp.as_ref()?.number.as_ref()?;
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            Some(format!("https://wa.me/{digits}?text={code}"))
        }
        Social::Messenger => {
            let p = c.messenger.as_ref()?;
            let page = p.username.as_deref().unwrap_or(&p.page_id);
            Some(format!("https://m.me/{page}?ref={code}"))
        }
        Social::Instagram => {
            let user = c.instagram.as_ref()?.username.as_ref()?;
            Some(format!("https://ig.me/m/{user}?ref={code}"))
        }
    }
}

/// A QR code of `text` as an SVG document (dark modules on white, with the quiet zone).
pub fn qr_svg(text: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::new(text.as_bytes())
        .map_err(|e| ApiError::Internal(format!("cannot draw the QR code: {e}")))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(180, 180)
        .dark_color(qrcode::render::svg::Color("#111111"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// The channel a conversation continues on, if a social contact is linked to it.
pub async fn linked_channel(
    state: &AppState,
    conv: &str,
) -> Result<Option<&'static str>, ApiError> {
    let c = conv.to_owned();
    let link = state.blocking(move |st| st.channel_link_of(&c)).await?;
    Ok(link
        .and_then(|(ch, _)| Social::parse(&ch))
        .map(Social::name))
}

/// What a visitor asks to link.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LinkReq {
    channel: String,
}

/// `POST /api/conversations/{id}/link`: a one-time code (and its deep link and QR code)
/// that links the social contact who sends it to this conversation.
pub(super) async fn link(
    State(state): State<AppState>,
    Path(id): Path<String>,
    VisitorToken(token): VisitorToken,
    ApiJson(req): ApiJson<LinkReq>,
) -> Result<Response, ApiError> {
    let ch = linkable(&state)
        .into_iter()
        .find(|ch| ch.name() == req.channel)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "`{}` is not a channel this chat can continue on",
                req.channel
            ))
        })?;
    let phase = visitor_read(&state, &id, token, |hub, id| {
        hub.session(id).map(|s| s.phase())
    })
    .await?;
    if phase.is_none_or(|p| matches!(p, Phase::Ended(_) | Phase::Failed)) {
        return Err(ApiError::Conflict("the conversation is over".into()));
    }
    if let Some(on) = linked_channel(&state, &id).await? {
        return Err(ApiError::Conflict(format!(
            "the conversation already continues on {on}; disconnect it first"
        )));
    }
    let code = new_code()?;
    let now = state.driver().now().0;
    let at = i64::try_from(now).unwrap_or(i64::MAX);
    let commit = Commit {
        channel_codes: vec![CodeChange::Issue {
            code: code.clone(),
            channel: ch.name().to_owned(),
            conversation: id.clone(),
            at,
        }],
        ..Commit::default()
    };
    state.blocking(move |st| st.commit(&commit)).await?;
    let url = link_url(&state, ch, &code).unwrap_or_default();
    let v = json!({
        "channel": ch.name(),
        "code": code,
        "qr_svg": qr_svg(&url)?,
        "url": url,
        "expires_at": now.saturating_add(CODE_TTL_MS),
    });
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

/// `DELETE /api/conversations/{id}/link`: the visitor goes back to the web; the social
/// contact is unlinked (what it writes next starts a conversation of its own).
pub(super) async fn unlink(
    State(state): State<AppState>,
    Path(id): Path<String>,
    VisitorToken(token): VisitorToken,
) -> Result<Json<Value>, ApiError> {
    let phase = visitor_read(&state, &id, token, |hub, id| {
        hub.session(id).map(|s| s.phase())
    })
    .await?;
    let c = id.clone();
    let Some((channel, contact)) = state.blocking(move |st| st.channel_link_of(&c)).await? else {
        return Err(ApiError::Conflict(
            "the conversation is not linked to a social channel".into(),
        ));
    };
    let at = i64::try_from(state.driver().now().0).unwrap_or(i64::MAX);
    let extra = Commit {
        channel_links: vec![ChannelLink {
            channel,
            contact,
            conversation: None,
            replaces: Some(id.clone()),
            at,
        }],
        ..Commit::default()
    };
    let cmd = Command::SwitchChannel {
        channel: Channel::Web,
        contact: None,
        said: None,
    };
    let out = match state.driver().apply_with(&id, cmd, extra.clone()).await {
        Ok(out) => Some(out),
        // Already on the web (the visitor wrote there since), or over: only the link goes.
        Err(DriverError::Hub(_)) => {
            state.blocking(move |st| st.commit(&extra)).await?;
            None
        }
        Err(e) => return Err(e.into()),
    };
    state.0.channels.unlink(&id);
    let (status, messages) = match &out {
        Some(out) => messages_of(out, &id),
        None => (phase.map_or("ended", super::view::status_name), Vec::new()),
    };
    Ok(Json(json!({"status": status, "messages": messages})))
}

/// What a message says, as the transcript shows it (a link opened says nothing).
fn opening(input: &Input) -> Option<&str> {
    match input {
        Input::Text(t) | Input::Link { said: Some(t), .. } => Some(t),
        Input::Choice { title, .. } => Some(title),
        Input::Link { said: None, .. } => None,
    }
}

fn refused(name: &str, e: DriverError) -> Result<bool, ApiError> {
    match e {
        DriverError::Hub(e) => {
            // The visitor's input did not fit (the conversation moved on): Meta must not
            // retry it.
            tracing::info!(channel = name, reason = %e, "a social message was refused");
            Ok(false)
        }
        e => Err(ApiError::from(e)),
    }
}

/// The buttons of the line with `seq` (from 1), if it has any.
fn question_at(lines: &[String], seq: u64) -> Option<Vec<String>> {
    let i = usize::try_from(seq).ok()?.checked_sub(1)?;
    let line: Line = serde_json::from_str(lines.get(i)?).ok()?;
    (!line.buttons.is_empty()).then_some(line.buttons)
}

/// The buttons of the newest line with buttons.
fn current_question(lines: &[String]) -> Option<Vec<String>> {
    lines.iter().rev().find_map(|l| {
        let line: Line = serde_json::from_str(l).ok()?;
        (!line.buttons.is_empty()).then_some(line.buttons)
    })
}

fn poke(state: &AppState, conv: &str) {
    let _ = state.0.channels.work.send(conv.to_owned());
}

/// Whether any channel is configured.
pub fn any(state: &AppState) -> bool {
    let c = &state.config().channels;
    c.whatsapp.is_some() || c.messenger.is_some() || c.instagram.is_some()
}

/// The sender: loads the links, then sends every linked conversation's new lines after each
/// commit (and once at start, for what a crash left unsent).
pub async fn run(state: AppState) {
    let Some(mut rx) = super::lock(&state.0.channels.queue).take() else {
        return;
    };
    match state.blocking(|st| st.channel_links()).await {
        Ok(links) => {
            for (ch, contact, conv) in links {
                if let Some(ch) = Social::parse(&ch) {
                    state.0.channels.link(&conv, ch, &contact);
                    poke(&state, &conv);
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the channel links"),
    }
    tokio::spawn(watch(state.clone()));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap_or_default();
    while let Some(conv) = rx.recv().await {
        if let Err(delay) = send_new(&state, &client, &conv).await {
            let state = state.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                poke(&state, &conv);
            });
        }
    }
}

/// Pokes the sender for every linked conversation a commit changed.
async fn watch(state: AppState) {
    let mut rx = state.driver().subscribe_all();
    loop {
        match rx.recv().await {
            Ok(out) => {
                for u in out.updates.iter().filter(|u| !u.lines.is_empty()) {
                    if state.0.channels.linked(&u.conversation).is_some() {
                        poke(&state, &u.conversation);
                    } else if state.store().shared() {
                        // Another replica may have linked it since this one started.
                        learn(&state, &u.conversation).await;
                    }
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                // Missed some: look at every linked conversation.
                let all: Vec<String> = super::lock(&state.0.channels.linked)
                    .keys()
                    .cloned()
                    .collect();
                for c in all {
                    poke(&state, &c);
                }
            }
            Err(_) => return,
        }
    }
}

/// Reads a conversation's link from the store; pokes the sender when there is one.
async fn learn(state: &AppState, conv: &str) {
    let c = conv.to_owned();
    match state.blocking(move |st| st.channel_link_of(&c)).await {
        Ok(Some((ch, contact))) => {
            if let Some(ch) = Social::parse(&ch) {
                state.0.channels.link(conv, ch, &contact);
                poke(state, conv);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read a conversation's channel link"),
    }
}

/// What to do with one outbound line.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Send this request body to the channel's messages endpoint.
    Send(Value),
    /// Keep it back, for this reason.
    Hold(String),
}

/// Sends the conversation's lines not yet done, in order. `Err(delay)`: try again then.
async fn send_new(state: &AppState, client: &reqwest::Client, conv: &str) -> Result<(), Duration> {
    if state.0.channels.linked(conv).is_none() {
        return Ok(());
    }
    let c = conv.to_owned();
    let read = state
        .blocking(move |st| {
            Ok((
                st.channel_link_of(&c)?,
                st.conversation(&c)?,
                st.channel_sends(&c)?,
            ))
        })
        .await;
    // The stored link decides, not this replica's memory of it: another replica may have
    // unlinked the contact or moved it to another conversation since.
    let (ch, contact, lines, sends) = match read {
        Ok((Some((ch, contact)), Some((_, lines)), sends)) => match Social::parse(&ch) {
            Some(ch) => {
                state.0.channels.link(conv, ch, &contact);
                (ch, contact, lines, sends)
            }
            None => return Ok(()),
        },
        Ok((None, _, _)) => {
            state.0.channels.unlink(conv);
            return Ok(());
        }
        Ok((_, None, _)) => return Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a linked conversation");
            return Err(RETRY_MIN);
        }
    };
    let done: HashMap<i64, ChannelSend> = sends.into_iter().map(|s| (s.seq, s)).collect();
    let lines: Vec<Line> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let now = state.driver().now().0;
    for (i, line) in lines.iter().enumerate() {
        let seq = i as i64 + 1;
        let prior = done.get(&seq);
        if prior.is_some_and(|s| s.status != "sending" && s.status != "retry") {
            continue;
        }
        // Each line carries the channel the visitor used last when it was said: replies
        // follow the visitor there (and back to the web once they return).
        if !outbound(line) || line.channel != ch.channel() {
            continue;
        }
        let last_visitor = lines[..i]
            .iter()
            .rev()
            .find(|l| l.from == Who::Visitor && l.channel == ch.channel())
            // Before any visitor line there: the first line there (the start of a
            // conversation the contact began, or the notice of the link).
            .or_else(|| lines.iter().find(|l| l.channel == ch.channel()))
            .map_or(now, |l| l.at.0);
        let plan = plan(
            state,
            ch,
            &contact,
            line,
            conv,
            seq,
            now.saturating_sub(last_visitor),
        );
        let attempts = prior.map_or(0, |p| p.attempts);
        let mut send = ChannelSend {
            seq,
            status: "sending".into(),
            attempts: attempts + 1,
            last_error: None,
        };
        let body = match plan {
            Plan::Hold(why) => {
                tracing::warn!(channel = ch.name(), conversation = conv, seq, reason = %why, "a message was held");
                send.status = "held".into();
                send.attempts = attempts;
                send.last_error = Some(why.clone());
                store_send(state, conv, send).await?;
                tell_handler(state, conv, seq, ch, "held", &why).await;
                continue;
            }
            Plan::Send(body) => body,
        };
        // Claimed (marked `sending`) before the request: a crash from here until `sent`
        // resends this line once. Another replica holding it sends it and what follows.
        let lease = if state.store().shared() { LEASE_MS } else { 0 };
        let (c, at) = (conv.to_owned(), i64::try_from(now).unwrap_or(i64::MAX));
        match state
            .blocking(move |st| st.channel_claim(&c, seq, at, lease))
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(Duration::from_millis(lease.unsigned_abs().max(1_000))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a message to send");
                return Err(RETRY_MIN);
            }
        }
        let (url, token) = endpoint(state, ch);
        let result = client
            .post(&url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        let (status, text) = match result {
            Ok(r) => {
                let st = r.status();
                (Some(st), r.text().await.unwrap_or_default())
            }
            Err(e) => (None, super::redact::text(&e.to_string())),
        };
        match status {
            Some(st) if st.is_success() => {
                send.status = "sent".into();
                store_send(state, conv, send).await?;
            }
            Some(st) if st.as_u16() != 429 && st.is_client_error() => {
                let msg = meta_error(&text).unwrap_or_else(|| format!("HTTP {st}"));
                tracing::warn!(channel = ch.name(), conversation = conv, seq, error = %msg, "Meta refused a message");
                send.status = "failed".into();
                send.last_error = Some(msg.clone());
                store_send(state, conv, send).await?;
                tell_handler(state, conv, seq, ch, "failed", &msg).await;
            }
            other => {
                let msg = match other {
                    Some(st) => format!("HTTP {st}"),
                    None => text,
                };
                let delay = backoff(send.attempts);
                tracing::info!(channel = ch.name(), conversation = conv, seq, error = %msg, ?delay, "a message will be sent again");
                send.status = "retry".into();
                send.last_error = Some(msg);
                store_send(state, conv, send).await?;
                return Err(delay);
            }
        }
    }
    Ok(())
}

/// Tells the agent handling `conv` that line `seq` did not reach the visitor (`held` or
/// `failed`): their inbox shows it. Nobody handling it: the line's state in the agent
/// detail is all there is.
async fn tell_handler(state: &AppState, conv: &str, seq: i64, ch: Social, status: &str, why: &str) {
    let c = conv.to_owned();
    let handler = state
        .driver()
        .read(Some(conv), move |hub| {
            hub.session(&c).and_then(|s| s.handler().map(str::to_owned))
        })
        .await
        .ok()
        .flatten();
    if let Some(agent) = handler {
        let event = json!({"type": "undelivered", "conversation": {"id": conv}, "seq": seq,
            "channel": ch.name(), "status": status, "error": why});
        state.tell_agent(&agent, &event);
    }
}

/// The lines of a conversation a social channel did not get: `seq → (status, why)`.
pub async fn undelivered(
    state: &AppState,
    conv: &str,
) -> Result<HashMap<i64, (String, Option<String>)>, ApiError> {
    let c = conv.to_owned();
    let sends = state.blocking(move |st| st.channel_sends(&c)).await?;
    Ok(sends
        .into_iter()
        .filter(|s| s.status == "held" || s.status == "failed")
        .map(|s| (s.seq, (s.status, s.last_error)))
        .collect())
}

fn backoff(attempts: i64) -> Duration {
    let n = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    RETRY_MIN.saturating_mul(1 << n.min(16)).min(RETRY_MAX)
}

fn meta_error(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("error")?
        .get("message")?
        .as_str()
        .map(|s| s.chars().take(300).collect())
}

async fn store_send(state: &AppState, conv: &str, send: ChannelSend) -> Result<(), Duration> {
    let c = conv.to_owned();
    let at = i64::try_from(state.driver().now().0).unwrap_or(i64::MAX);
    state
        .blocking(move |st| st.channel_send(&c, &send, at))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot store a message's delivery state");
            RETRY_MIN
        })
}

/// Whether a line goes out to the visitor: what the bot, an agent or the chat says.
fn outbound(line: &Line) -> bool {
    line.from != Who::Visitor && line.kind != LineKind::Visitor
}

fn endpoint(state: &AppState, ch: Social) -> (String, String) {
    settings(state, ch)
        .map(|s| {
            let url = format!("{}/{}/messages", s.base_url.trim_end_matches('/'), s.id);
            (url, s.token.to_owned())
        })
        .unwrap_or_default()
}

/// The request for one line, or why it is held (`since` = ms since the visitor's last
/// message on the channel).
fn plan(
    state: &AppState,
    ch: Social,
    contact: &str,
    line: &Line,
    conv: &str,
    seq: i64,
    since: u64,
) -> Plan {
    let key = format!("{conv}:{seq}");
    let agent = matches!(line.from, Who::Agent(_));
    match ch {
        Social::WhatsApp => {
            let Some(w) = &state.config().channels.whatsapp else {
                return Plan::Hold("WhatsApp is not configured".into());
            };
            if since > WINDOW_MS {
                return match &w.template {
                    Some(t) => {
                        Plan::Send(whatsapp_template(contact, t, &w.template_language, &key))
                    }
                    None => Plan::Hold(
                        "outside WhatsApp's 24-hour window and no template is configured".into(),
                    ),
                };
            }
            Plan::Send(whatsapp_body(contact, line, seq, &key))
        }
        Social::Messenger | Social::Instagram => {
            let mut body = page_body(contact, line, seq, &key);
            if since > WINDOW_MS {
                if !agent {
                    return Plan::Hold("an automated message outside the 24-hour window".into());
                }
                if since > HUMAN_AGENT_MS {
                    return Plan::Hold(
                        "an agent's message more than 7 days after the visitor's last".into(),
                    );
                }
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!("HUMAN_AGENT");
            }
            Plan::Send(body)
        }
    }
}

fn numbered(text: &str, buttons: &[String]) -> String {
    let mut out = text.to_owned();
    for (i, b) in buttons.iter().enumerate() {
        out.push_str(&format!("\n{}. {b}", i + 1));
    }
    out
}

fn fits(buttons: &[String], max: usize, chars: usize) -> bool {
    buttons.len() <= max && buttons.iter().all(|b| b.chars().count() <= chars)
}

/// A WhatsApp Cloud API message for a line: text; a question with ≤ 3 answers (titles ≤ 20
/// characters) as reply buttons, ≤ 10 (titles ≤ 24) as a list, else numbered text.
pub fn whatsapp_body(to: &str, line: &Line, seq: i64, key: &str) -> Value {
    let b = &line.buttons;
    let text = if line.text.trim().is_empty() {
        "…"
    } else {
        &line.text
    };
    let id = |i: usize| format!("{CHOICE}{seq}:{i}");
    let mut v = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "biz_opaque_callback_data": key,
    });
    if b.is_empty() || !(fits(b, 3, 20) || fits(b, 10, 24)) {
        v["type"] = json!("text");
        v["text"] = json!({"preview_url": false, "body": numbered(&line.text, b)});
    } else if fits(b, 3, 20) {
        let buttons: Vec<Value> = b
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"type": "reply", "reply": {"id": id(i), "title": t}}))
            .collect();
        v["type"] = json!("interactive");
        v["interactive"] =
            json!({"type": "button", "body": {"text": text}, "action": {"buttons": buttons}});
    } else {
        let rows: Vec<Value> = b
            .iter()
            .enumerate()
            .map(|(i, t)| json!({"id": id(i), "title": t}))
            .collect();
        v["type"] = json!("interactive");
        v["interactive"] = json!({"type": "list", "body": {"text": text}, "action": {"button": "Choose", "sections": [{"rows": rows}]}});
    }
    v
}

fn whatsapp_template(to: &str, name: &str, language: &str, key: &str) -> Value {
    json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "biz_opaque_callback_data": key,
        "type": "template",
        "template": {"name": name, "language": {"code": language}},
    })
}

/// A Messenger / Instagram Send API message for a line: text with ≤ 13 quick replies
/// (titles cut to 20 characters), more as numbered text.
pub fn page_body(to: &str, line: &Line, seq: i64, key: &str) -> Value {
    let b = &line.buttons;
    let mut message = if b.is_empty() || b.len() > 13 {
        json!({"text": numbered(&line.text, b)})
    } else {
        let replies: Vec<Value> = b
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let title: String = if t.chars().count() > 20 {
                    t.chars().take(19).chain(['…']).collect()
                } else {
                    t.clone()
                };
                json!({"content_type": "text", "title": title, "payload": format!("{CHOICE}{seq}:{i}")})
            })
            .collect();
        let text = if line.text.trim().is_empty() {
            "…"
        } else {
            &line.text
        };
        json!({"text": text, "quick_replies": replies})
    };
    message["metadata"] = json!(key);
    json!({"recipient": {"id": to}, "messaging_type": "RESPONSE", "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_raw_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(b"{\"a\":1}");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let good = format!("sha256={hex}");
        assert!(signature_ok(b"secret", b"{\"a\":1}", Some(&good)));
        assert!(!signature_ok(b"secret", b"{\"a\": 1}", Some(&good)));
        assert!(!signature_ok(b"other", b"{\"a\":1}", Some(&good)));
        assert!(!signature_ok(b"", b"{\"a\":1}", Some(&good)));
        assert!(!signature_ok(b"secret", b"{\"a\":1}", Some(&hex)));
        assert!(!signature_ok(b"secret", b"{\"a\":1}", Some("sha256=abc")));
        assert!(!signature_ok(b"secret", b"{\"a\":1}", None));
    }

    #[test]
    fn postbacks_instagram_and_unknown_events_parse_without_failing() {
        let v = json!({"object": "instagram", "entry": [{"id": "17841", "messaging": [
            {"sender": {"id": "u1"}, "recipient": {"id": "17841"}, "timestamp": 1,
             "postback": {"mid": "m_pb", "title": "Yes", "payload": "choice:3:0"}},
            {"sender": {"id": "u1"}, "recipient": {"id": "17841"}, "timestamp": 2,
             "postback": {"title": "Get Started", "payload": "GET_STARTED"}},
            {"sender": {"id": "u1"}, "recipient": {"id": "17841"}, "timestamp": 3,
             "read": {"mid": "m_x"}},
            {"sender": {"id": "u1"}, "recipient": {"id": "17841"}, "timestamp": 4,
             "message": {"mid": "m_img", "attachments": [{"type": "image"}]}},
            {"recipient": {"id": "17841"}}
        ]}]});
        let (msgs, ignored) = parse_delivery(Social::Instagram, &v, "17841");
        assert_eq!(ignored, 3);
        assert_eq!(
            msgs,
            [
                Inbound {
                    contact: "u1".into(),
                    id: "m_pb".into(),
                    input: Input::Choice {
                        seq: 3,
                        index: 0,
                        title: "Yes".into()
                    }
                },
                Inbound {
                    contact: "u1".into(),
                    id: "postback:u1:2".into(),
                    input: Input::Text("Get Started".into())
                },
            ]
        );
        // Not an object at all, or entries of the wrong type: nothing, no panic.
        for v in [
            json!([1, 2]),
            json!({"entry": "x"}),
            json!({"entry": [{"changes": 5}]}),
        ] {
            assert_eq!(parse_delivery(Social::WhatsApp, &v, "1").0, []);
            assert_eq!(parse_delivery(Social::Messenger, &v, "1").0, []);
        }
        let wa = json!({"entry": [{"changes": [{"value": {"messages": [
            {"from": "1555", "id": "wamid.S", "type": "sticker", "sticker": {}},
            {"from": "1555", "id": "wamid.B", "type": "button", "button": {"payload": "choice:2:1", "text": "No"}},
            {"from": "1555", "id": "wamid.L", "type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "other", "title": "Blue"}}}
        ]}}]}]});
        let (msgs, ignored) = parse_delivery(Social::WhatsApp, &wa, "1");
        assert_eq!(ignored, 1);
        assert_eq!(
            msgs[0].input,
            Input::Choice {
                seq: 2,
                index: 1,
                title: "No".into()
            }
        );
        assert_eq!(msgs[1].input, Input::Text("Blue".into()));
    }

    #[test]
    fn link_codes_are_found_in_any_case_and_only_whole() {
        let code = new_code().unwrap();
        assert_eq!(code.len(), 15);
        assert_eq!(
            find_code(&format!("Continue my chat {code}")),
            Some(code.clone())
        );
        assert_eq!(
            find_code(&format!("please {}!", code.to_lowercase())),
            Some(code)
        );
        // Too short, or with a letter the alphabet leaves out (0, 1, I, O).
        assert_eq!(find_code("LINK-ABCDEFGHJ"), None);
        assert_eq!(find_code("LINK-ABCDEFGHJ0"), None);
        assert_eq!(find_code("LINK- ABCDEFGHJK"), None);
        assert_eq!(find_code("no code"), None);
        assert!(matches!(text_or_link("hello".into()), Input::Text(_)));
        // Multi-byte text before the code: found, no panic at a char boundary.
        assert_eq!(
            find_code("Grüße LINK-ZZZZZZZZZZ"),
            Some("LINK-ZZZZZZZZZZ".into())
        );
        assert_eq!(find_code("LINK-ÄÄÄÄÄÄÄÄÄÄ"), None);
    }

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
