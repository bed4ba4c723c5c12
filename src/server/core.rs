//! The server's state around the runtime [`Hub`]: which playbook version each conversation
//! runs, visitor tokens, rate windows, which lines were pushed, and the event log that makes it all
//! durable.
//!
//! Every change goes through [`Core`] under one lock, in this order: check the request,
//! apply it to the hub (which refuses what the engine or desk refuses, changing nothing),
//! hand the logged event and any new records to the store's writer *while still holding the
//! lock* (so the log order is the order of application), release the lock, and wait for the
//! write to be durable before answering or pushing anything to a socket.
//!
//! Before every logged event the hub is advanced to the event's time, so timers due by then
//! fire first, both live and when the log is replayed after a restart: replay gives the same
//! sessions, transcripts, desk and records, with no need to log timer firings.
//!
//! Must not: do HTTP, read a clock except through [`Core::now`], or block on storage.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::config::Config;
use super::error::ApiError;
use super::playbooks::{Catalog, ReloadReport, Version, compile};
use crate::capture::{LineKind, ManualDetails, ManualKind, Who};
use crate::desk::{ConvState, Notification, Presence};
use crate::engine::{Channel, Engine, Instant, Phase};
use crate::persist::{Batch, NewRecord, Store, StoreError, VersionRow};
use crate::runtime::{Command, Hub, HubError, Outputs, PlaybookId, StartOptions};

/// One event of the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Logged {
    /// A conversation started.
    Start {
        /// Conversation id.
        id: String,
        /// Playbook name.
        playbook: String,
        /// Playbook version.
        version: i64,
        /// The visitor token (hex).
        token: String,
        /// The visitor's channel.
        channel: Channel,
        /// The page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_url: Option<String>,
    },
    /// A command to a running conversation.
    Cmd {
        /// Conversation id.
        id: String,
        /// What happened.
        cmd: Command,
    },
    /// An agent's presence changed.
    Presence {
        /// The agent.
        agent: String,
        /// Their presence.
        presence: Presence,
    },
}

struct Meta {
    token: String,
    playbook: String,
    version: i64,
    /// How many transcript lines have been pushed to sockets (the next `seq` is this + 1).
    pushed: usize,
    updated_at: u64,
    /// (minute, visitor turns in it).
    window: (u64, u32),
    /// Who reassigned it last (for the "assigned" notification).
    reassigned_by: Option<String>,
}

/// What to push to sockets once the change is durable.
#[derive(Debug, Default)]
pub struct Publish {
    /// Per conversation: new messages and the status after them.
    pub visitor: Vec<(String, Vec<Value>, &'static str)>,
    /// Per agent: notifications.
    pub agents: Vec<(String, Value)>,
}

/// A change that was applied and handed to the writer.
pub struct Applied<T> {
    /// The answer for the caller.
    pub value: T,
    /// Resolves when the change is durable.
    pub ack: oneshot::Receiver<Result<(), StoreError>>,
    /// What to push afterwards.
    pub publish: Publish,
}

/// Resolves when a write is durable.
pub type Ack = oneshot::Receiver<Result<(), StoreError>>;

/// A visitor's input.
#[derive(Debug, Clone)]
pub enum Input {
    /// Typed text.
    Text(String),
    /// A button, counted from 1 as the API does.
    Choice(usize),
}

/// The server's state.
pub struct Core {
    hub: Hub,
    catalog: Catalog,
    convs: HashMap<String, Meta>,
    store: Arc<Store>,
    config: Arc<Config>,
    playbook_dir: PathBuf,
    last_now: u64,
}

/// A placeholder playbook for hub slot 0, never served: the hub needs one to be built.
const NOTHING: &str = "playbook \"(none)\" { start a }\nmessage a \"\" end\n";

fn status_name(phase: Phase) -> &'static str {
    match phase {
        Phase::New | Phase::Asking => "waiting",
        Phase::Queued => "queued",
        Phase::Live => "with_agent",
        Phase::Ended(_) | Phase::Failed => "ended",
    }
}

/// 128 random bits as 32 hex digits.
pub fn random_hex() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Core {
    /// Builds the state from the database (replaying the log) and the playbook folder.
    /// Blocking: call it before serving, or from `spawn_blocking`.
    pub fn open(
        store: Arc<Store>,
        config: Arc<Config>,
        playbook_dir: PathBuf,
    ) -> Result<(Core, ReloadReport), String> {
        let (nothing, _) = compile("none.playbook", NOTHING)
            .map_err(|d| format!("built-in placeholder playbook: {d:?}"))?;
        let hub = Hub::new(nothing, config.desk());
        let mut core = Core {
            hub,
            catalog: Catalog::default(),
            convs: HashMap::new(),
            store,
            config,
            playbook_dir,
            last_now: 0,
        };
        for v in core.store.versions().map_err(|e| e.to_string())? {
            match compile(&v.file, &v.source) {
                Ok((engine, playbook)) => {
                    let pid = core.hub.add_playbook(engine);
                    core.catalog.add(
                        &v.name,
                        Version {
                            version: v.version,
                            pid,
                            file: v.file,
                            source: v.source,
                            playbook: Arc::new(playbook),
                        },
                    );
                }
                Err(d) => tracing::error!(
                    playbook = %v.name, version = v.version, diagnostics = ?d,
                    "a stored playbook version no longer compiles; its conversations cannot resume"
                ),
            }
        }
        let events = core.store.events().map_err(|e| e.to_string())?;
        let replayed = events.len();
        for row in events {
            let at = u64::try_from(row.at).unwrap_or(0);
            core.last_now = core.last_now.max(at);
            let logged: Logged = match serde_json::from_str(&row.body) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(seq = row.seq, error = %e, "unreadable event in the log, skipped");
                    continue;
                }
            };
            let mut out = core.hub.advance(Instant(at));
            match core.replay(logged, at) {
                Ok(o) => out.extend(o),
                Err(e) => tracing::warn!(seq = row.seq, error = %e, "event refused on replay"),
            }
            core.publish_lines(&out);
        }
        let now = core.now();
        let out = core.hub.advance(Instant(now));
        core.publish_lines(&out);
        // Every record the ledger holds goes to the table again; the key keeps one copy.
        // This also stores the records of timers that expired while the server was down.
        let records = core.hub.ledger().records().iter().map(new_record).collect();
        core.store
            .write_blocking(Batch {
                records,
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
        tracing::info!(
            events = replayed,
            conversations = core.convs.len(),
            "state restored from the event log"
        );
        let report = core.reload_blocking().map_err(|e| e.to_string())?;
        Ok((core, report))
    }

    fn replay(&mut self, logged: Logged, at: u64) -> Result<Outputs, String> {
        match logged {
            Logged::Start {
                id,
                playbook,
                version,
                token,
                channel,
                page_url,
            } => {
                let pid = self
                    .catalog
                    .get(&playbook, version)
                    .map(|v| v.pid)
                    .ok_or_else(|| format!("unknown playbook {playbook} v{version}"))?;
                let out = self
                    .hub
                    .start(&id, start_opts(pid, channel, page_url), Instant(at))
                    .map_err(|e| e.to_string())?;
                self.convs.insert(id, meta(token, playbook, version, at));
                Ok(out)
            }
            Logged::Cmd { id, cmd } => {
                if let Command::Reassign { by, .. } = &cmd
                    && let Some(m) = self.convs.get_mut(&id)
                {
                    m.reassigned_by = Some(by.clone());
                }
                if let Command::VisitorText { .. } | Command::VisitorChoice { .. } = &cmd
                    && let Some(m) = self.convs.get_mut(&id)
                {
                    m.tick_window(at);
                }
                let out = self
                    .hub
                    .apply(&id, cmd, Instant(at))
                    .map_err(|e| e.to_string())?;
                if let Some(m) = self.convs.get_mut(&id) {
                    m.updated_at = at;
                }
                Ok(out)
            }
            Logged::Presence { agent, presence } => {
                self.hub
                    .set_presence(&agent, presence)
                    .map_err(|e| e.to_string())?;
                Ok(Outputs::default())
            }
        }
    }

    /// Now, in ms since the epoch, never earlier than a time already used.
    pub fn now(&mut self) -> u64 {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_now = self.last_now.max(wall);
        self.last_now
    }

    /// The earliest pending timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.hub.next_deadline().map(|i| i.0)
    }

    /// How many conversations are held.
    pub fn len(&self) -> usize {
        self.convs.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
    }

    /// The config.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Fires the timers due at `now`.
    pub fn advance(&mut self) -> Applied<()> {
        let now = self.now();
        let out = self.hub.advance(Instant(now));
        self.finish(None, out, ())
    }

    /// Fills `publish` with the lines added since the last push, per conversation touched.
    fn publish_lines(&mut self, out: &Outputs) -> Publish {
        let mut publish = Publish::default();
        let mut touched: Vec<&str> = out
            .effects
            .iter()
            .map(|e| e.conversation.as_str())
            .collect();
        touched.dedup();
        let mut done = std::collections::HashSet::new();
        for id in touched {
            if !done.insert(id) {
                continue;
            }
            let (Some(t), Some(s), Some(m)) = (
                self.hub.transcript(id),
                self.hub.session(id),
                self.convs.get_mut(id),
            ) else {
                continue;
            };
            let start = m.pushed.min(t.lines.len());
            m.pushed = t.lines.len();
            if m.pushed > start {
                let msgs = (start..m.pushed)
                    .filter_map(|i| message_json(t, i))
                    .collect();
                publish
                    .visitor
                    .push((id.to_owned(), msgs, status_name(s.phase())));
            }
        }
        publish
    }

    fn finish<T>(&mut self, logged: Option<(u64, &Logged)>, out: Outputs, value: T) -> Applied<T> {
        let mut publish = self.publish_lines(&out);
        for n in &out.notifications {
            publish.agents.push(self.notification_json(n));
        }
        let mut batch = Batch {
            records: out.records.iter().map(new_record).collect(),
            ..Default::default()
        };
        if let Some((at, l)) = logged {
            batch
                .events
                .push((at as i64, serde_json::to_string(l).unwrap_or_default()));
        }
        Applied {
            value,
            ack: self.store.submit(batch),
            publish,
        }
    }

    fn notification_json(&self, n: &Notification) -> (String, Value) {
        match n {
            Notification::EnteredUnassigned {
                agent,
                conversation,
            } => (
                agent.clone(),
                json!({"type": "unassigned", "conversation": conversation}),
            ),
            Notification::MessageArrived {
                agent,
                conversation,
            } => {
                let message = self
                    .hub
                    .transcript(conversation)
                    .zip(self.convs.get(conversation))
                    .and_then(|(t, _)| message_json(t, t.lines.len().checked_sub(1)?));
                (
                    agent.clone(),
                    json!({"type": "message", "conversation": conversation, "message": message}),
                )
            }
            Notification::AssignedToYou {
                agent,
                conversation,
            } => {
                let by = self
                    .convs
                    .get(conversation)
                    .and_then(|m| m.reassigned_by.clone());
                (
                    agent.clone(),
                    json!({"type": "assigned", "conversation": conversation, "by": by}),
                )
            }
        }
    }

    /// Applies a logged change: advance timers to now, apply, log.
    fn change<T>(
        &mut self,
        logged: Logged,
        value: impl FnOnce(&Self, &Outputs) -> T,
    ) -> Result<Applied<T>, ApiError> {
        let now = self.now();
        let mut out = self.hub.advance(Instant(now));
        match self.replay(logged.clone(), now) {
            Ok(o) => out.extend(o),
            Err(_) => {
                // Re-run to get the typed error (replay flattens it); nothing changed.
                let err = self.typed_error(&logged, now);
                // The timers that fired still have to be stored and pushed.
                let applied = self.finish(None, out, ());
                drop(applied.ack);
                return Err(err);
            }
        }
        let publish = self.publish_lines(&out);
        let v = value(self, &out);
        let mut applied = self.finish(Some((now, &logged)), out, v);
        applied.publish.visitor = publish.visitor;
        Ok(applied)
    }

    fn typed_error(&mut self, logged: &Logged, now: u64) -> ApiError {
        match logged {
            Logged::Cmd { id, cmd } => match self.hub.apply(id, cmd.clone(), Instant(now)) {
                Err(e) => ApiError::from(e),
                Ok(_) => ApiError::Internal("a refused event was accepted on retry".into()),
            },
            Logged::Presence { agent, presence } => match self.hub.set_presence(agent, *presence) {
                Err(e) => ApiError::from(e),
                Ok(()) => ApiError::Internal("presence refused then accepted".into()),
            },
            Logged::Start { .. } => ApiError::Internal("could not start the conversation".into()),
        }
    }

    /// Starts a conversation on the newest version of a playbook.
    pub fn start(
        &mut self,
        playbook: &str,
        channel: Channel,
        page_url: Option<String>,
    ) -> Result<Applied<Value>, ApiError> {
        let v = self
            .catalog
            .latest(playbook)
            .ok_or_else(|| ApiError::NotFound(format!("no playbook named `{playbook}`")))?;
        let version = v.version;
        let id = format!("c_{}", &random_hex()?[..20]);
        let token = random_hex()?;
        let logged = Logged::Start {
            id: id.clone(),
            playbook: playbook.to_owned(),
            version,
            token: token.clone(),
            channel,
            page_url,
        };
        self.change(logged, |core, _| {
            let (status, messages) = core.history(&id, 0);
            json!({"conversation": id, "token": token, "status": status, "messages": messages})
        })
    }

    fn meta(&self, id: &str) -> Result<&Meta, ApiError> {
        self.convs
            .get(id)
            .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))
    }

    /// Checks a visitor token (401 when wrong: the conversation's existence is not revealed).
    pub fn visitor_auth(&self, id: &str, token: &str) -> Result<(), ApiError> {
        match self.convs.get(id) {
            Some(m) if super::config::ct_eq(&m.token, token) => Ok(()),
            _ => Err(ApiError::Unauthorized(
                "unknown conversation or wrong visitor token".into(),
            )),
        }
    }

    /// The visitor sends text or a button.
    pub fn visitor(
        &mut self,
        id: &str,
        input: Input,
        channel: Channel,
    ) -> Result<Applied<Value>, ApiError> {
        let limits = self.config.limits.clone();
        let now = self.now();
        let m = self
            .convs
            .get_mut(id)
            .ok_or_else(|| ApiError::NotFound(format!("no conversation `{id}`")))?;
        if m.rate_exceeded(now, limits.turns_per_minute) {
            return Err(ApiError::RateLimited(format!(
                "at most {} messages per minute in one conversation",
                limits.turns_per_minute
            )));
        }
        let cmd = match input {
            Input::Text(text) => {
                check_len(&text, limits.max_message_chars)?;
                Command::VisitorText { text, channel }
            }
            Input::Choice(0) => {
                return Err(ApiError::BadRequest("choices count from 1".into()));
            }
            Input::Choice(n) => Command::VisitorChoice {
                index: n - 1,
                channel,
            },
        };
        let before = m.pushed;
        self.change(
            Logged::Cmd {
                id: id.to_owned(),
                cmd,
            },
            |core, _| {
                let (status, messages) = core.history(id, before as u64);
                json!({"status": status, "messages": messages})
            },
        )
    }

    /// A conversation's status and its messages with `seq > after`.
    pub fn history(&self, id: &str, after: u64) -> (&'static str, Vec<Value>) {
        let (Some(t), Some(s), Some(_)) = (
            self.hub.transcript(id),
            self.hub.session(id),
            self.convs.get(id),
        ) else {
            return ("ended", Vec::new());
        };
        let from = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(t.lines.len());
        let msgs = (from..t.lines.len())
            .filter_map(|i| message_json(t, i))
            .collect();
        (status_name(s.phase()), msgs)
    }

    /// The bot's display name in a conversation (the agent's once one joined).
    pub fn bot_name(&self, id: &str) -> String {
        let Some(s) = self.hub.session(id) else {
            return String::new();
        };
        if let Some(a) = s.agent() {
            return a.to_owned();
        }
        self.hub
            .engine_of(id)
            .and_then(|e| e.program().playbook().playbook.bot.clone())
            .unwrap_or_else(|| crate::engine::DEFAULT_BOT_NAME.to_owned())
    }

    /// An agent's presence.
    pub fn presence(&self, agent: &str) -> Option<Presence> {
        self.hub.desk().presence(agent)
    }

    /// Changes an agent's presence.
    pub fn set_presence(
        &mut self,
        agent: &str,
        presence: Presence,
    ) -> Result<Applied<()>, ApiError> {
        self.change(
            Logged::Presence {
                agent: agent.to_owned(),
                presence,
            },
            |_, _| (),
        )
    }

    /// An agent command on a conversation.
    pub fn agent(&mut self, id: &str, cmd: Command) -> Result<Applied<Value>, ApiError> {
        self.meta(id)?;
        if let Command::AgentMessage { text, .. } = &cmd {
            check_len(text, self.config.limits.max_message_chars)?;
        }
        let is_record = matches!(cmd, Command::CreateRecord { .. });
        self.change(
            Logged::Cmd {
                id: id.to_owned(),
                cmd,
            },
            move |core, out| {
                if is_record {
                    out.records.first().map(record_json).unwrap_or(Value::Null)
                } else {
                    core.summary(id)
                }
            },
        )
    }

    /// A conversation as an agent's list shows it.
    pub fn summary(&self, id: &str) -> Value {
        let (state, agent) = self.desk_state(id);
        let m = self.convs.get(id);
        let last = self
            .hub
            .transcript(id)
            .zip(m)
            .and_then(|(t, _)| message_json(t, t.lines.len().checked_sub(1)?));
        json!({
            "id": id,
            "playbook": m.map(|m| m.playbook.as_str()),
            "version": m.map(|m| m.version),
            "state": state,
            "agent": agent,
            "updated_at": m.map(|m| m.updated_at),
            "last": last,
        })
    }

    fn desk_state(&self, id: &str) -> (&'static str, Option<String>) {
        let status = self
            .hub
            .session(id)
            .map_or("ended", |s| status_name(s.phase()));
        match self.hub.desk().conversation(id).map(|c| &c.state) {
            Some(ConvState::Unassigned) => ("unassigned", None),
            Some(ConvState::Assigned(a)) => ("assigned", Some(a.clone())),
            Some(ConvState::Closed(a)) => ("closed", Some(a.clone())),
            Some(ConvState::TimedOut) => ("timed_out", None),
            None => (status, None),
        }
    }

    /// The agent's folders.
    pub fn folder(&self, agent: &str, folder: &str) -> Result<Vec<Value>, ApiError> {
        let desk = self.hub.desk();
        let ids = match folder {
            "unassigned" => desk.unassigned(),
            "mine" => desk.mine(agent),
            "closed" => desk.closed(),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown folder `{other}`; use unassigned, mine or closed"
                )));
            }
        };
        Ok(ids.into_iter().map(|id| self.summary(id)).collect())
    }

    /// One conversation with everything an agent may see.
    pub fn detail(&self, id: &str) -> Result<Value, ApiError> {
        self.meta(id)?;
        let mut v = self.summary(id);
        let vars: serde_json::Map<String, Value> = self
            .hub
            .engine_of(id)
            .zip(self.hub.session(id))
            .map(|(e, s)| {
                e.variables(s)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let records: Vec<Value> = self
            .hub
            .ledger()
            .records()
            .iter()
            .filter(|r| r.record.conversation == id)
            .map(record_json)
            .collect();
        v["variables"] = Value::Object(vars);
        v["messages"] = Value::Array(self.history(id, 0).1);
        v["records"] = Value::Array(records);
        v["status"] = Value::String(self.history(id, 0).0.to_owned());
        Ok(v)
    }

    /// The newest version of each playbook.
    pub fn playbooks(&self) -> Vec<Value> {
        self.catalog
            .latest_all()
            .map(|(name, v)| {
                json!({"name": name, "title": v.playbook.playbook.name, "version": v.version})
            })
            .collect()
    }

    /// Whether no playbook is served.
    pub fn playbooks_is_empty(&self) -> bool {
        self.catalog.latest_all().next().is_none()
    }

    /// The newest version of a playbook.
    pub fn playbook(&self, name: &str) -> Option<&Version> {
        self.catalog.latest(name)
    }

    /// Re-reads the playbook folder: new versions for changed files that pass `check`.
    pub fn reload(&mut self) -> Result<(ReloadReport, Option<Ack>), ApiError> {
        let (cands, mut report) = self
            .catalog
            .scan(&self.playbook_dir)
            .map_err(|e| ApiError::BadRequest(format!("cannot read the playbook folder: {e}")))?;
        let mut batch = Batch::default();
        for c in cands {
            let version = self.catalog.latest(&c.name).map_or(1, |v| v.version + 1);
            let pid = self.hub.add_playbook(Arc::new(c.engine) as Arc<Engine>);
            batch.versions.push(VersionRow {
                name: c.name.clone(),
                version,
                file: c.file.clone(),
                source: c.source.clone(),
            });
            self.catalog.add(
                &c.name,
                Version {
                    version,
                    pid,
                    file: c.file,
                    source: c.source,
                    playbook: Arc::new(c.playbook),
                },
            );
            report.loaded.push((c.name, version));
        }
        for r in &report.refused {
            tracing::warn!(file = %r.file, diagnostics = r.diagnostics.len(), "playbook refused; the old version keeps serving");
        }
        for (n, v) in &report.loaded {
            tracing::info!(playbook = %n, version = v, "playbook version loaded");
        }
        let ack = (!batch.versions.is_empty()).then(|| self.store.submit(batch));
        Ok((report, ack))
    }

    fn reload_blocking(&mut self) -> Result<ReloadReport, String> {
        let (report, ack) = self.reload().map_err(|e| e.to_string())?;
        if let Some(ack) = ack {
            ack.blocking_recv()
                .map_err(|_| "the writer stopped".to_owned())?
                .map_err(|e| e.to_string())?;
        }
        Ok(report)
    }
}

fn start_opts(pid: PlaybookId, channel: Channel, page_url: Option<String>) -> StartOptions {
    StartOptions {
        playbook: pid,
        channel,
        page_url,
        contact_owner: None,
    }
}

fn meta(token: String, playbook: String, version: i64, at: u64) -> Meta {
    Meta {
        token,
        playbook,
        version,
        pushed: 0,
        updated_at: at,
        window: (at / 60_000, 0),
        reassigned_by: None,
    }
}

impl Meta {
    fn tick_window(&mut self, now: u64) {
        let minute = now / 60_000;
        if self.window.0 != minute {
            self.window = (minute, 0);
        }
        self.window.1 += 1;
    }

    /// Whether one more turn would go over the limit (the turn is counted on success, when
    /// the event is applied).
    fn rate_exceeded(&mut self, now: u64, limit: u32) -> bool {
        let minute = now / 60_000;
        if self.window.0 != minute {
            self.window = (minute, 0);
        }
        self.window.1 >= limit
    }
}

fn check_len(text: &str, max: usize) -> Result<(), ApiError> {
    let n = text.chars().count();
    if n > max {
        return Err(ApiError::TooLarge(format!(
            "the message is {n} characters long; the limit is {max}"
        )));
    }
    Ok(())
}

fn message_json(t: &crate::capture::Transcript, i: usize) -> Option<Value> {
    let line = t.lines.get(i)?;
    // The API has always shown the visitor's own lines as `say`.
    let kind = match line.kind {
        LineKind::Visitor | LineKind::Say => "say",
        LineKind::Ask => "ask",
        LineKind::Reprompt => "reprompt",
        LineKind::Notice => "notice",
    };
    let from = match &line.from {
        Who::Visitor => json!({"role": "visitor"}),
        Who::Bot(n) => json!({"role": "bot", "name": n}),
        Who::Agent(n) => json!({"role": "agent", "name": n}),
        Who::System => json!({"role": "system"}),
    };
    let mut v = json!({
        "seq": i + 1,
        "at": line.at.0,
        "channel": line.channel,
        "from": from,
        "kind": kind,
        "text": line.text,
    });
    if !line.buttons.is_empty() {
        v["buttons"] = json!(line.buttons);
    }
    Some(v)
}

fn new_record(s: &crate::capture::Stored) -> NewRecord {
    NewRecord {
        key: s.record.key.clone(),
        conversation: s.record.conversation.clone(),
        body: serde_json::to_string(s).unwrap_or_default(),
        created_at: s.record.created_at.0 as i64,
    }
}

fn record_json(s: &crate::capture::Stored) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        use crate::desk::DeskError as D;
        use crate::engine::EngineError as E;
        let msg = e.to_string();
        match e {
            HubError::UnknownConversation(_) => ApiError::NotFound(msg),
            HubError::UnknownPlaybook(_) => ApiError::NotFound(msg),
            HubError::ConversationExists(_) => ApiError::Conflict(msg),
            HubError::Engine(E::TextTooLong { .. }) => ApiError::TooLarge(msg),
            HubError::Engine(E::NoSuchChoice { .. }) => ApiError::BadRequest(msg),
            HubError::Engine(E::WrongAgent { .. }) | HubError::Desk(D::NotHandler(_)) => {
                ApiError::Forbidden(msg)
            }
            HubError::Desk(D::UnknownAgent(_)) => ApiError::NotFound(msg),
            HubError::Engine(_) | HubError::Desk(_) => ApiError::Conflict(msg),
        }
    }
}

/// What [`ManualDetails`] an agent's record request carries.
pub fn manual(kind: ManualKind, details: ManualDetails, agent: &str) -> Command {
    Command::CreateRecord {
        agent: agent.to_owned(),
        kind,
        details,
    }
}
