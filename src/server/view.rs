//! What the API shows of a conversation: its messages, its status, its summary in an agent's
//! list (with who the visitor is, where, and since when they wait) and its detail — JSON made
//! from the hub (for conversations it holds) or from stored rows (the folders).
//!
//! Must not: change anything.

use serde_json::{Value, json};

use crate::capture::{Line, LineKind, Who};
use crate::desk::ConvState;
use crate::engine::{Engine, Phase, Session};
use crate::persist::{ConvRow, DeskColumn, RecordRow};
use crate::runtime::Hub;

/// Who the visitor is and where they are, for an agent's list and detail: `visitor`
/// (`name` and `email` from the playbook's variables of those names, which an identity token
/// or a question sets), `page_url`, `channel` (the one used last), `started_at` and, while
/// the conversation waits in Unassigned, `waiting_since`.
fn add_visitor(v: &mut Value, engine: Option<&Engine>, s: &Session, waiting_since: Option<u64>) {
    let vars = engine.map(|e| e.variables(s)).unwrap_or_default();
    let known = |k: &str| {
        vars.get(k)
            .map(|x| x.trim())
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
    };
    v["visitor"] = json!({"name": known("name"), "email": known("email")});
    v["page_url"] = json!(s.page_url());
    v["channel"] = json!(s.channel().name());
    v["started_at"] = json!(s.started_at.0);
    v["waiting_since"] = json!(waiting_since);
}

/// When a conversation in Unassigned began to wait: the desk entry's time. Entries stored
/// before the desk kept it say 0; for those, while a conversation waits the engine only
/// relays the visitor's lines, so the wait began at its last line from anyone else (the live
/// chat's online line, said as it entered). `None` when neither tells (the caller falls
/// back to the start).
fn wait_began<L: std::borrow::Borrow<Line>>(
    entry: Option<&crate::desk::DeskConversation>,
    mut newest_first: impl Iterator<Item = L>,
) -> Option<u64> {
    if let Some(e) = entry.filter(|e| e.since.0 > 0) {
        return Some(e.since.0);
    }
    newest_first
        .find(|l| !matches!(l.borrow().from, Who::Visitor))
        .map(|l| l.borrow().at.0)
}

/// The API's name of a phase.
pub fn status_name(phase: Phase) -> &'static str {
    match phase {
        Phase::New | Phase::Asking => "waiting",
        Phase::Queued => "queued",
        Phase::Live => "with_agent",
        Phase::Ended(_) | Phase::Failed => "ended",
    }
}

/// The API's name of a line's kind: it has always shown the visitor's own lines as `say`.
fn kind_name(kind: LineKind) -> &'static str {
    match kind {
        LineKind::Visitor | LineKind::Say => "say",
        LineKind::Ask => "ask",
        LineKind::Reprompt => "reprompt",
        LineKind::Notice => "notice",
    }
}

/// One line as the API shows it; `seq` counts from 1.
pub fn message_json(seq: u64, line: &Line) -> Value {
    let from = match &line.from {
        Who::Visitor => json!({"role": "visitor"}),
        Who::Bot(n) => json!({"role": "bot", "name": n}),
        Who::Agent(n) => json!({"role": "agent", "name": n}),
        Who::System => json!({"role": "system"}),
    };
    let mut v = json!({
        "seq": seq,
        "at": line.at.0,
        "channel": line.channel,
        "from": from,
        "kind": kind_name(line.kind),
        "text": line.text,
    });
    if !line.buttons.is_empty() {
        v["buttons"] = json!(line.buttons);
    }
    v
}

/// A conversation's status and its messages with `seq > after` (`None` when the hub does not
/// hold it).
pub fn history(hub: &Hub, id: &str, after: u64) -> Option<(&'static str, Vec<Value>)> {
    let t = hub.transcript(id)?;
    let s = hub.session(id)?;
    let from = usize::try_from(after)
        .unwrap_or(usize::MAX)
        .min(t.lines.len());
    let msgs = t.lines[from..]
        .iter()
        .enumerate()
        .map(|(i, l)| message_json((from + i + 1) as u64, l))
        .collect();
    Some((status_name(s.phase()), msgs))
}

/// The bot's display name in a conversation (the agent's once one joined).
pub fn bot_name(hub: &Hub, id: &str) -> String {
    let Some(s) = hub.session(id) else {
        return String::new();
    };
    if let Some(a) = s.handler() {
        return a.to_owned();
    }
    hub.engine_of(id)
        .and_then(|e| e.program().playbook().playbook.bot.clone())
        .unwrap_or_else(|| crate::engine::DEFAULT_BOT_NAME.to_owned())
}

/// The language of a conversation's playbook (its `language`), for the widget's own words.
pub fn language(hub: &Hub, id: &str) -> Option<String> {
    hub.engine_of(id)
        .and_then(|e| e.program().playbook().playbook.language.clone())
}

fn desk_state(hub: &Hub, id: &str) -> (&'static str, Option<String>) {
    let status = hub.session(id).map_or("ended", |s| status_name(s.phase()));
    match hub.desk().conversation(id).map(|c| &c.state) {
        Some(ConvState::Unassigned) => ("unassigned", None),
        Some(ConvState::Assigned(a)) => ("assigned", Some(a.clone())),
        Some(ConvState::Closed(a)) => ("closed", Some(a.clone())),
        Some(ConvState::TimedOut) => ("timed_out", None),
        None => (status, None),
    }
}

/// A conversation as an agent's list shows it.
pub fn summary(hub: &Hub, id: &str) -> Value {
    let (state, agent) = desk_state(hub, id);
    let (playbook, version) = hub
        .playbook_of(id)
        .map_or((None, None), |(n, v)| (Some(n), Some(v)));
    let last = hub.transcript(id).and_then(|t| {
        t.lines
            .last()
            .map(|l| message_json(t.lines.len() as u64, l))
    });
    let mut v = json!({
        "id": id,
        "playbook": playbook,
        "version": version,
        "state": state,
        "agent": agent,
        "updated_at": hub.state(id).map(|s| s.updated_at.0),
        "last": last,
    });
    if let Some(s) = hub.session(id) {
        let waiting = (state == "unassigned").then(|| {
            let entry = hub.state(id).and_then(|c| c.desk.as_ref());
            hub.transcript(id)
                .and_then(|t| wait_began(entry, t.lines.iter().rev()))
                .unwrap_or(s.started_at.0)
        });
        add_visitor(&mut v, hub.engine_of(id).map(|e| &**e), s, waiting);
    }
    v
}

/// A stored conversation as an agent's list shows it (for folders read from the store), with
/// its `lines` (JSON, oldest first) and the engine of its playbook version, which names its
/// variables (without it, `visitor` is unknown).
pub fn stored_summary(row: &ConvRow, lines: &[String], engine: Option<&Engine>) -> Value {
    let state = match row.desk {
        Some(DeskColumn::Unassigned) => "unassigned",
        Some(DeskColumn::Assigned) => "assigned",
        Some(DeskColumn::Closed) => "closed",
        Some(DeskColumn::TimedOut) => "timed_out",
        None if row.ended => "ended",
        None => "waiting",
    };
    let last = lines
        .last()
        .and_then(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| message_json(u64::try_from(row.lines).unwrap_or(0), &l));
    let mut v = json!({
        "id": row.id,
        "playbook": row.playbook,
        "version": row.version,
        "state": state,
        "agent": row.agent,
        "updated_at": row.updated_at,
        "last": last,
    });
    // The row's state is the runtime's; a row it cannot read still lists, without these.
    if let Ok(conv) = serde_json::from_str::<crate::runtime::ConvState>(&row.state) {
        let s = &conv.session;
        let waiting = (state == "unassigned").then(|| {
            let parsed = lines
                .iter()
                .rev()
                .filter_map(|l| serde_json::from_str::<Line>(l).ok());
            wait_began(conv.desk.as_ref(), parsed).unwrap_or(s.started_at.0)
        });
        add_visitor(&mut v, engine, s, waiting);
    }
    v
}

/// A stored record as the inbox shows it: the record with its transcript, and `delivery` —
/// `delivered` (with `delivered_at`), `pending` (still being tried: `attempts`, and
/// `last_error` once one failed) or `parked` (the CRM refused it, or a name has no id:
/// `last_error` says why; tried again at the next start or reload).
fn record_json(r: &RecordRow) -> Value {
    let mut v = r.body.clone();
    let state = match (r.delivered_at, r.parked) {
        (Some(_), _) => "delivered",
        (None, true) => "parked",
        (None, false) => "pending",
    };
    // Errors stored before redaction existed may still quote a secret URL.
    let error = r.last_error.as_deref().map(super::redact::text);
    v["delivery"] = json!({
        "state": state,
        "delivered_at": r.delivered_at,
        "attempts": r.attempts,
        "last_error": error,
    });
    v
}

/// One conversation with everything an agent may see; `records` come from the store.
pub fn detail(hub: &Hub, id: &str, records: &[RecordRow]) -> Option<Value> {
    let (status, messages) = history(hub, id, 0)?;
    let mut v = summary(hub, id);
    let vars: serde_json::Map<String, Value> = hub
        .engine_of(id)
        .zip(hub.session(id))
        .map(|(e, s)| {
            e.variables(s)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    v["variables"] = Value::Object(vars);
    if let Some(c) = hub.state(id).and_then(|s| s.consent.as_ref()) {
        v["consent"] = serde_json::to_value(c).unwrap_or(Value::Null);
    }
    // The social contact the visitor linked or wrote from, once known.
    if let Some(s) = hub.state(id).and_then(|s| s.social.as_ref()) {
        v["visitor"]["social"] = serde_json::to_value(s).unwrap_or(Value::Null);
    }
    v["messages"] = Value::Array(messages);
    v["records"] = Value::Array(records.iter().map(record_json).collect());
    v["status"] = Value::String(status.to_owned());
    Some(v)
}
