//! [`Hub`]: many conversations wired to engine, desk, ledger, transcripts and a sink.
//!
//! # How calls are ordered
//!
//! - **Agent actions go through the desk, then the engine** — but atomically: the engine
//!   steps a *copy* of the session first (it refuses what makes no sense, e.g. a pick-up
//!   after the wait ended), then the desk applies its change (it refuses what it knows is
//!   wrong, e.g. an agent who is not online), and only when both accept is the copy kept. So
//!   on any error neither the session nor the desk changed.
//! - **Effects are routed** after the step: `EnterUnassigned` → `desk.enqueue`,
//!   `LeaveUnassigned` → `desk.time_out`, `RelayToAgent` → `desk.visitor_message` (the agent
//!   is notified), `SetTimer`/`CancelTimer` → the timer queue, `Capture` → the ledger; a
//!   record the ledger takes as new goes to the sink and to `desk.note_capture` (so a
//!   replayed step neither writes twice nor moves a pool's round robin). `Entered` only
//!   passes through to the caller.
//! - **Timers** live in one ordered queue keyed by (deadline, conversation, kind), where the
//!   conversation is its start order and kinds order as wait, idle, idle-capture. So timers
//!   due at the same instant always fire in the same order. [`Hub::advance`] fires each due
//!   timer at `max(deadline, last time seen)` — virtual time never runs backwards.
//! - **Time** is given by the caller with every call; a `now` older than one seen before is
//!   raised to it. A refused call does not move the hub's clock.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::sink::{NullSink, RecordSink};
use super::types::{Command, Emitted, Outputs};
use crate::capture::{self, Commit, Ledger, ManualDetails, ManualKind, Transcript};
use crate::desk::{Desk, DeskError, Presence};
use crate::engine::{
    Channel, Effect, Engine, EngineError, Event, Instant, Session, Timer, TimerKind,
};
use crate::program::Program;

/// Which of the hub's playbooks a conversation runs (0 is the one given to [`Hub::new`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PlaybookId(pub u16);

/// How a conversation starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    /// The playbook it runs.
    pub playbook: PlaybookId,
    /// The visitor's channel.
    pub channel: Channel,
    /// The page the chat started on.
    pub page_url: Option<String>,
    /// The visitor's CRM owner, if known (for `route owner`).
    pub contact_owner: Option<String>,
}

/// Why the hub refused a call. The conversation and the desk are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// No conversation with this id.
    #[error("no conversation `{0}`")]
    UnknownConversation(String),
    /// A conversation with this id exists already.
    #[error("conversation `{0}` already exists")]
    ConversationExists(String),
    /// No playbook with this id.
    #[error("no playbook #{0}")]
    UnknownPlaybook(u16),
    /// The engine refused the event.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The desk refused the action.
    #[error(transparent)]
    Desk(#[from] DeskError),
}

/// A conversation's state as saved and restored: session and transcript.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The engine session.
    pub session: Session,
    /// The transcript so far.
    pub transcript: Transcript,
}

struct Conv {
    id: String,
    playbook: u16,
    session: Session,
    transcript: Transcript,
    contact_owner: Option<String>,
    /// Agent-made records so far (their keys are `<id>/#desk-<n>`).
    manual: u32,
    /// The deadline queued for each timer kind (index [`rank`]).
    timers: [Option<Instant>; 3],
    /// Set by [`Hub::start_at`] for its `Start` step: the card and variables to start with.
    start_at: Option<(crate::CardIx, Vec<(String, String)>)>,
}

/// Timer kinds in firing order at equal deadlines.
fn rank(k: TimerKind) -> u8 {
    match k {
        TimerKind::Wait => 0,
        TimerKind::Idle => 1,
        TimerKind::IdleCapture => 2,
    }
}

const KINDS: [TimerKind; 3] = [TimerKind::Wait, TimerKind::Idle, TimerKind::IdleCapture];

/// The one place that runs many conversations: see the module docs for the rules.
pub struct Hub {
    engines: Vec<Arc<Engine>>,
    desk: Desk,
    ledger: Ledger,
    sink: Box<dyn RecordSink>,
    index: HashMap<String, u32>,
    convs: Vec<Conv>,
    /// (deadline, conversation index, kind rank).
    timers: BTreeSet<(Instant, u32, u8)>,
    now: Instant,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("playbooks", &self.engines.len())
            .field("conversations", &self.convs.len())
            .field("timers", &self.timers.len())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// What a desk-first action does to the desk, applied after the engine accepted the event.
type DeskOp<'a> = Box<dyn FnOnce(&mut Desk) -> Result<(), DeskError> + 'a>;

impl Hub {
    /// A hub running one playbook, with a desk (its agents, teams and pools), an empty
    /// ledger and a sink that drops records (see [`Hub::with_sink`]).
    pub fn new(engine: impl Into<Arc<Engine>>, desk: Desk) -> Self {
        Hub {
            engines: vec![engine.into()],
            desk,
            ledger: Ledger::new(),
            sink: Box::new(NullSink),
            index: HashMap::new(),
            convs: Vec::new(),
            timers: BTreeSet::new(),
            now: Instant(0),
        }
    }

    /// [`Hub::new`] from a checked program.
    pub fn from_program(program: Program, desk: Desk) -> Self {
        Self::new(Engine::new(program), desk)
    }

    /// Sends records the ledger accepts to this sink.
    pub fn with_sink(mut self, sink: impl RecordSink + 'static) -> Self {
        self.sink = Box::new(sink);
        self
    }

    /// Adds another playbook; conversations choose it in [`StartOptions::playbook`].
    pub fn add_playbook(&mut self, engine: impl Into<Arc<Engine>>) -> PlaybookId {
        self.engines.push(engine.into());
        PlaybookId((self.engines.len() - 1) as u16)
    }

    /// The engine of a playbook.
    pub fn engine(&self, id: PlaybookId) -> Option<&Arc<Engine>> {
        self.engines.get(id.0 as usize)
    }

    /// The desk.
    pub fn desk(&self) -> &Desk {
        &self.desk
    }

    /// The desk, to add agents, teams and pools. Do not move conversations on it directly:
    /// use the hub's agent actions so the engine follows.
    pub fn desk_mut(&mut self) -> &mut Desk {
        &mut self.desk
    }

    /// The ledger of records committed so far.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The latest time the hub has seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Conversation ids, in start order.
    pub fn conversations(&self) -> impl Iterator<Item = &str> {
        self.convs.iter().map(|c| c.id.as_str())
    }

    /// How many conversations the hub holds.
    pub fn len(&self) -> usize {
        self.convs.len()
    }

    /// Whether the hub holds no conversation.
    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
    }

    /// A conversation's session.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.conv(id).ok().map(|c| &self.convs[c as usize].session)
    }

    /// A conversation's transcript.
    pub fn transcript(&self, id: &str) -> Option<&Transcript> {
        self.conv(id)
            .ok()
            .map(|c| &self.convs[c as usize].transcript)
    }

    /// The engine a conversation runs on.
    pub fn engine_of(&self, id: &str) -> Option<&Arc<Engine>> {
        let c = self.conv(id).ok()?;
        self.engines.get(self.convs[c as usize].playbook as usize)
    }

    /// The earliest pending timer deadline of the whole hub.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|t| t.0)
    }

    /// How many timers are pending, over all conversations.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// A conversation's session and transcript, to store.
    pub fn snapshot(&self, id: &str) -> Option<Snapshot> {
        let c = &self.convs[self.conv(id).ok()? as usize];
        Some(Snapshot {
            session: c.session.clone(),
            transcript: c.transcript.clone(),
        })
    }

    /// Puts back a stored session and transcript (after a restart, or to replay a step) and
    /// re-arms exactly the timers the session holds. Records already committed stay
    /// committed: replayed captures are recognised by their keys.
    pub fn restore(&mut self, id: &str, snap: Snapshot) -> Result<(), HubError> {
        let c = self.conv(id)?;
        for k in KINDS {
            self.unqueue(c, k);
        }
        let timers: Vec<Timer> = snap.session.timers().collect();
        let conv = &mut self.convs[c as usize];
        conv.session = snap.session;
        conv.transcript = snap.transcript;
        for t in timers {
            self.queue(c, t);
        }
        Ok(())
    }

    fn conv(&self, id: &str) -> Result<u32, HubError> {
        self.index
            .get(id)
            .copied()
            .ok_or_else(|| HubError::UnknownConversation(id.to_owned()))
    }

    fn tick(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        self.now
    }

    /// Starts a conversation under an id the caller chose.
    pub fn start(
        &mut self,
        id: &str,
        opts: StartOptions,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        self.begin(id, opts, None, now)
    }

    /// Starts a conversation mid-flow: at `card`, with `vars` set first and no greeting
    /// (see [`Engine::start_at`]). Scenario tests use it to test a long flow's tail.
    pub fn start_at(
        &mut self,
        id: &str,
        opts: StartOptions,
        card: crate::CardIx,
        vars: &[(&str, &str)],
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let at = (
            card,
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self.begin(id, opts, Some(at), now)
    }

    /// What [`Hub::start`] and [`Hub::start_at`] share: a new conversation slot, the start
    /// event, and the slot undone if the engine refuses (so an error changes nothing).
    fn begin(
        &mut self,
        id: &str,
        opts: StartOptions,
        start_at: Option<(crate::CardIx, Vec<(String, String)>)>,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        if self.index.contains_key(id) {
            return Err(HubError::ConversationExists(id.to_owned()));
        }
        if self.engines.get(opts.playbook.0 as usize).is_none() {
            return Err(HubError::UnknownPlaybook(opts.playbook.0));
        }
        let c = self.convs.len() as u32;
        self.convs.push(Conv {
            id: id.to_owned(),
            playbook: opts.playbook.0,
            session: Session::new(),
            transcript: Transcript::default(),
            contact_owner: opts.contact_owner.clone(),
            manual: 0,
            timers: [None; 3],
            start_at,
        });
        self.index.insert(id.to_owned(), c);
        let event = Event::Start {
            conversation: id.into(),
            channel: opts.channel,
            page_url: opts.page_url.as_deref().map(Into::into),
            contact_owner: opts.contact_owner.as_deref().map(Into::into),
        };
        let r = self.step(c, event, now, None);
        if r.is_err() {
            // Start cannot fail on a new session; undo the slot anyway so errors change nothing.
            self.convs.pop();
            self.index.remove(id);
        }
        r
    }

    /// The visitor typed something.
    pub fn visitor_text(
        &mut self,
        id: &str,
        text: &str,
        channel: Channel,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let event = Event::VisitorText {
            text: text.into(),
            channel,
        };
        self.step(c, event, now, None)
    }

    /// The visitor pressed button `index` (from 0).
    pub fn visitor_choice(
        &mut self,
        id: &str,
        index: usize,
        channel: Channel,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        self.step(c, Event::VisitorChoice { index, channel }, now, None)
    }

    /// An agent assigns the waiting conversation to themselves.
    pub fn assign_self(
        &mut self,
        id: &str,
        agent: &str,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let op: DeskOp<'_> = Box::new(move |d: &mut Desk| d.assign_self(id, agent));
        self.step(
            c,
            Event::AgentJoined {
                agent: agent.into(),
            },
            now,
            Some(op),
        )
    }

    /// The handling agent `by` passes the conversation to `to` (who must be online).
    pub fn reassign(
        &mut self,
        id: &str,
        by: &str,
        to: &str,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let op: DeskOp<'_> = Box::new(move |d: &mut Desk| d.reassign(id, by, to));
        self.step(c, Event::Reassigned { to: to.into() }, now, Some(op))
    }

    /// The handling agent writes to the visitor.
    pub fn agent_message(
        &mut self,
        id: &str,
        agent: &str,
        text: &str,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let event = Event::AgentMessage {
            agent: agent.into(),
            text: text.into(),
        };
        self.step(c, event, now, None)
    }

    /// The handling agent closes the conversation (the flow goes on at `on closed`).
    pub fn close(&mut self, id: &str, agent: &str, now: Instant) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let op: DeskOp<'_> = Box::new(move |d: &mut Desk| d.close(id, agent));
        self.step(
            c,
            Event::AgentClosed {
                agent: agent.into(),
            },
            now,
            Some(op),
        )
    }

    /// Changes an agent's presence (it matters from the next routing decision on).
    pub fn set_presence(&mut self, agent: &str, presence: Presence) -> Result<(), HubError> {
        Ok(self.desk.set_presence(agent, presence)?)
    }

    /// An agent makes a lead or deal from a conversation, open or closed (source `Live chat`,
    /// owner the agent, the transcript so far attached, key `<id>/#desk-<n>`).
    pub fn create_record(
        &mut self,
        id: &str,
        agent: &str,
        kind: ManualKind,
        details: ManualDetails,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        if self.desk.presence(agent).is_none() {
            return Err(DeskError::UnknownAgent(agent.to_owned()).into());
        }
        let now = self.tick(now);
        let conv = &mut self.convs[c as usize];
        conv.manual += 1;
        let ctx = capture::Context {
            key: format!("{id}/#desk-{}", conv.manual),
            conversation: id,
            now,
            channel: conv.session.channel(),
            live_chat: true,
            agent: Some(agent),
            messages: conv.session.messages(),
            lead: None,
            deal: None,
        };
        let record = capture::manual(kind, details, &ctx);
        let mut out = Outputs::default();
        self.commit(c, record, &mut out);
        out.notifications = self.desk.take_notifications();
        Ok(out)
    }

    /// Applies a [`Command`] to a conversation (`Start` creates it; `Presence` is desk-wide
    /// and ignores `id`).
    pub fn apply(&mut self, id: &str, cmd: Command, now: Instant) -> Result<Outputs, HubError> {
        match cmd {
            Command::Start {
                channel,
                page_url,
                contact_owner,
            } => self.start(
                id,
                StartOptions {
                    playbook: PlaybookId(0),
                    channel,
                    page_url,
                    contact_owner,
                },
                now,
            ),
            Command::VisitorText { text, channel } => self.visitor_text(id, &text, channel, now),
            Command::VisitorChoice { index, channel } => {
                self.visitor_choice(id, index, channel, now)
            }
            Command::Pickup { agent } => self.assign_self(id, &agent, now),
            Command::AgentMessage { agent, text } => self.agent_message(id, &agent, &text, now),
            Command::Reassign { by, to } => self.reassign(id, &by, &to, now),
            Command::Close { agent } => self.close(id, &agent, now),
            Command::Presence { agent, presence } => {
                self.set_presence(&agent, presence)?;
                Ok(Outputs::default())
            }
            Command::CreateRecord {
                agent,
                kind,
                details,
            } => self.create_record(id, &agent, kind, details, now),
        }
    }

    /// Fires every timer due at or before `now`, in (deadline, conversation, kind) order,
    /// including timers those steps arm that are also due.
    pub fn advance(&mut self, now: Instant) -> Outputs {
        let now = self.now.max(now);
        let mut out = Outputs::default();
        while let Some(&(at, c, r)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let kind = KINDS[r as usize];
            self.convs[c as usize].timers[r as usize] = None;
            // A timer the engine no longer holds is ignored by it; a late one re-checks state.
            if let Ok(o) = self.step(c, Event::TimerFired(Timer { kind, at }), at, None) {
                out.extend(o);
            }
        }
        self.now = now;
        out
    }

    fn queue(&mut self, c: u32, t: Timer) {
        let r = rank(t.kind);
        self.unqueue(c, t.kind);
        self.convs[c as usize].timers[r as usize] = Some(t.at);
        self.timers.insert((t.at, c, r));
    }

    fn unqueue(&mut self, c: u32, kind: TimerKind) {
        let r = rank(kind);
        if let Some(at) = self.convs[c as usize].timers[r as usize].take() {
            self.timers.remove(&(at, c, r));
        }
    }

    /// One engine step for conversation `c`, with the desk change of an agent action applied
    /// between the engine's acceptance and the session's update.
    fn step(
        &mut self,
        c: u32,
        event: Event<'_>,
        now: Instant,
        desk_op: Option<DeskOp<'_>>,
    ) -> Result<Outputs, HubError> {
        // The clock only moves on success: a refused call changes nothing.
        let now = self.now.max(now);
        let engine = Arc::clone(&self.engines[self.convs[c as usize].playbook as usize]);
        let mut effects = Vec::new();
        match desk_op {
            None => {
                let conv = &mut self.convs[c as usize];
                match conv.start_at.take() {
                    Some((card, vars)) => {
                        let vars: Vec<(&str, &str)> =
                            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                        engine.start_at(
                            &mut conv.session,
                            event.clone(),
                            card,
                            &vars,
                            now,
                            &self.desk,
                            &mut effects,
                        )?
                    }
                    None => engine.step(
                        &mut conv.session,
                        event.clone(),
                        now,
                        &self.desk,
                        &mut effects,
                    )?,
                }
            }
            Some(op) => {
                let mut next = self.convs[c as usize].session.clone();
                engine.step(&mut next, event.clone(), now, &self.desk, &mut effects)?;
                op(&mut self.desk)?;
                self.convs[c as usize].session = next;
            }
        }
        self.now = now;
        self.convs[c as usize]
            .transcript
            .record(&event, now, &effects);
        let mut out = Outputs::default();
        for e in &effects {
            self.route(c, e, &mut out);
        }
        let id = &self.convs[c as usize].id;
        out.effects = effects
            .into_iter()
            .map(|e| Emitted {
                conversation: id.clone(),
                effect: e.into_owned(),
            })
            .collect();
        out.notifications = self.desk.take_notifications();
        Ok(out)
    }

    /// Carries out the parts of an effect that concern the hub's own parts.
    fn route(&mut self, c: u32, e: &Effect<'_>, out: &mut Outputs) {
        let conv = &self.convs[c as usize];
        match e {
            Effect::SetTimer(t) => self.queue(c, *t),
            Effect::CancelTimer { kind } => self.unqueue(c, *kind),
            // Desk refusals below cannot happen when the desk is only moved through the hub
            // (the checker allows one live chat per path, so a conversation enters once);
            // the engine's state is the truth, so a refusal is not allowed to undo a step.
            Effect::EnterUnassigned { route } => {
                let _ = self
                    .desk
                    .enqueue(&conv.id, route.as_ref(), conv.contact_owner.as_deref());
            }
            Effect::LeaveUnassigned => {
                let _ = self.desk.time_out(&conv.id);
            }
            Effect::RelayToAgent { agent: Some(_), .. } => {
                let _ = self.desk.visitor_message(&conv.id);
            }
            Effect::Capture(r) => self.commit(c, (**r).clone(), out),
            // Entered reports progress through the playbook (coverage reads it); the hub's
            // parts have nothing to do for it.
            Effect::RelayToAgent { agent: None, .. }
            | Effect::Entered { .. }
            | Effect::Say { .. }
            | Effect::Ask { .. }
            | Effect::End { .. }
            | Effect::Failed(_) => {}
        }
    }

    fn commit(&mut self, c: u32, record: capture::Record, out: &mut Outputs) {
        let key = record.key.clone();
        let lines = &self.convs[c as usize].transcript.lines;
        if self.ledger.commit(record, lines) != Commit::New {
            return;
        }
        let Some(stored) = self.ledger.get(&key).cloned() else {
            return;
        };
        self.desk.note_capture(&stored.record);
        if let Err(e) = self.sink.put(&stored) {
            out.sink_errors.push(e.to_string());
        }
        out.records.push(stored);
    }
}
