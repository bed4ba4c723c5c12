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
//!   is notified), `SetTimer`/`CancelTimer` → the timer queue, `Capture` → the
//!   conversation's record keys (a key seen before is not made again) and then the ledger,
//!   the sink and `desk.note_capture` (so a pool's round robin moves once per record). `Entered` only
//!   passes through to the caller.
//! - **Timers** live in one ordered queue keyed by (deadline, conversation, kind), where the
//!   conversation is its start order and kinds order as wait, idle, idle-capture. So timers
//!   due at the same instant always fire in the same order. [`Hub::advance`] fires each due
//!   timer at `max(deadline, last time seen)` — virtual time never runs backwards.
//! - **Time** is given by the caller with every call; a `now` older than one seen before is
//!   raised to it. A refused call does not move the hub's clock.
//!
//! # Units of work (durable drivers)
//!
//! A durable driver wraps a group of calls in a unit ([`Hub::begin`]): the hub remembers how
//! every conversation it touches looked before (its state and transcript length) and how the
//! desk looked, and [`Hub::seal`] closes the unit and lists exactly what changed — the rows to
//! write. While a sealed unit is being stored, the next unit may already run on top of it.
//! When the store has a unit, [`Hub::keep`] forgets its "before"; when a write failed,
//! [`Hub::rollback`] puts everything back as it was before the oldest unit not yet stored (the
//! later ones were built on it), so a failed write changes nothing in memory.
//! Conversations are loaded on demand ([`Hub::insert`]) and dropped when over
//! ([`Hub::evict`]): the hub holds what is open, not everything that ever happened.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::sink::{NullSink, RecordSink};
use super::types::{Command, ConvUpdate, Emitted, Outputs};
use crate::capture::{self, Commit, Ledger, ManualDetails, ManualKind, Stored, Transcript};
use crate::desk::{Desk, DeskConversation, DeskError, Notification, Presence};
use crate::engine::{
    Channel, Effect, Engine, EngineError, Event, Instant, Phase, Session, Timer, TimerKind,
};
use crate::program::Program;

/// Which of the hub's playbooks a conversation runs (0 is the one given to [`Hub::new`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PlaybookId(pub u16);

/// How a `Start` step begins: at a card (or the playbook's start), with variables set first.
type StartAt = (Option<crate::CardIx>, Vec<(String, String)>);

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
    /// The visitor's secret, when a server hands one out ([`Hub::token`]).
    pub token: Option<String>,
    /// Who the visitor is, as the embedding site vouched.
    pub visitor: super::types::Visitor,
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
    /// No playbook of this name.
    #[error("no playbook named `{0}`")]
    UnknownPlaybookName(String),
    /// The visitor sent more messages in this minute than the limit allows.
    #[error("at most {0} messages per minute in one conversation")]
    RateLimited(u32),
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

/// Whether the hub keeps every record it made in its [`Ledger`] (scenarios, `run`), or only
/// hands them out in [`Outputs::records`] (a server, which stores them: its memory must not
/// grow with every record ever made).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RecordMemory {
    /// Keep them in the ledger.
    #[default]
    Keep,
    /// Only emit them.
    Emit,
}

/// A conversation's state besides its transcript: what a store writes as its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvState {
    /// The engine session.
    pub session: Session,
    /// The visitor's CRM owner, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_owner: Option<String>,
    /// The visitor's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Agent-made records so far (their keys are `<id>/#desk-<n>`).
    #[serde(default)]
    pub manual: u32,
    /// Keys of the records made in this conversation (a key is made once).
    #[serde(default)]
    pub records: Vec<String>,
    /// Accepted visitor inputs in the current minute: `(minute since the epoch, count)`.
    #[serde(default)]
    pub window: (u64, u32),
    /// The last accepted change.
    #[serde(default)]
    pub updated_at: Instant,
    /// Where it is on the desk, if it reached it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desk: Option<DeskConversation>,
    /// The buttons of the last question (a pressed button is written as its label).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
    /// The visitor's consent, once given (gone when they decline later); every record made
    /// after it carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<capture::Consent>,
    /// When an agent took the live chat (for its length in the analytics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_since: Option<Instant>,
    /// The social contact the visitor linked, once they did (kept after they go back to the
    /// web: it is still theirs); every record made after it carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub social: Option<capture::SocialId>,
}

/// A stored conversation, to put back into a hub ([`Hub::insert`]).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its id.
    pub id: String,
    /// Its start order.
    pub ord: u64,
    /// The playbook it runs.
    pub playbook: PlaybookId,
    /// The stored revision.
    pub rev: u64,
    /// Its state.
    pub state: ConvState,
    /// Its transcript lines.
    pub lines: Vec<capture::Line>,
    /// How many of them the store keeps apart from the row (the rest ride in the row).
    pub flushed: u64,
}

/// At most this many lines ride in a conversation's row before they move to the store's
/// lines table (they also move when the conversation ends).
pub const TAIL_LINES: usize = 16;

/// One conversation a unit changed or started: its new row.
#[derive(Debug, Clone)]
pub struct ConvChange {
    /// Its id.
    pub id: String,
    /// Its start order.
    pub ord: u64,
    /// The playbook's name and version.
    pub playbook: (String, i64),
    /// The revision the row becomes (1 for a new conversation).
    pub rev: u64,
    /// Its state now.
    pub state: ConvState,
    /// Lines that ride in the row now (not yet moved), with their sequence numbers (from 1).
    pub tail: Vec<(u64, capture::Line)>,
    /// Lines that move out of the row to the lines table now.
    pub flush: Vec<(u64, capture::Line)>,
    /// All its lines now.
    pub line_count: u64,
    /// Its earliest pending timer.
    pub next_due: Option<Instant>,
}

/// What a unit of work changed: what a durable driver writes.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// Conversations changed or started, in order of first change.
    pub convs: Vec<ConvChange>,
    /// Agents whose presence changed.
    pub agents: Vec<(String, Presence)>,
    /// Agents whose load changed: `(agent, before, after)`.
    pub loads: Vec<(String, crate::desk::Load, crate::desk::Load)>,
    /// Pools whose round robin moved: `(pool, before, next)`.
    pub pools: Vec<(String, usize, usize)>,
    /// The desk's entry counter, when it moved.
    pub desk_seq: Option<u64>,
    /// The start-order counter, when it moved.
    pub next_ord: Option<u64>,
    /// Records made.
    pub records: Vec<Stored>,
    /// Analytics counters added.
    pub stats: crate::stats::Tally,
}

impl Changes {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
            && self.convs.is_empty()
            && self.agents.is_empty()
            && self.loads.is_empty()
            && self.pools.is_empty()
            && self.desk_seq.is_none()
            && self.records.is_empty()
    }
}

struct Conv {
    id: String,
    ord: u64,
    playbook: u16,
    rev: u64,
    state: ConvState,
    transcript: Transcript,
    /// The deadline queued for each timer kind (index [`rank`]).
    timers: [Option<Instant>; 3],
    /// Lines the store keeps apart from the row (see [`TAIL_LINES`]).
    flushed: u64,
    /// For its `Start` step: the card ([`Hub::start_at`]) and the variables to start with.
    start_at: Option<StartAt>,
}

/// How a conversation looked: its state, transcript length, timers, revision, lines kept apart.
type Pre = (ConvState, usize, [Option<Instant>; 3], u64, u64);

/// How a conversation looked when a unit first touched it.
struct Before {
    slot: u32,
    /// `None`: the unit started it.
    state: Option<Pre>,
}

struct Unit {
    /// Sealed: its changes were taken; it waits to be kept or rolled back.
    sealed: bool,
    touched: Vec<Before>,
    desk: Desk,
    now: Instant,
    next_ord: u64,
    records: Vec<Stored>,
    /// The analytics counters its steps added.
    stats: crate::stats::Tally,
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

struct PlaybookEntry {
    engine: Arc<Engine>,
    name: String,
    version: i64,
}

/// The one place that runs many conversations: see the module docs for the rules.
pub struct Hub {
    playbooks: Vec<PlaybookEntry>,
    desk: Desk,
    ledger: Ledger,
    memory: RecordMemory,
    sink: Box<dyn RecordSink>,
    index: HashMap<String, u32>,
    slots: Vec<Option<Conv>>,
    free: Vec<u32>,
    /// (deadline, conversation start order, kind rank).
    timers: BTreeSet<(Instant, u64, u8)>,
    by_ord: HashMap<u64, u32>,
    next_ord: u64,
    /// The end of the block of start orders reserved in a shared store, if it is one.
    ord_end: Option<u64>,
    turn_limit: Option<u32>,
    /// Whether steps add to the analytics counters ([`Hub::set_analytics`]).
    analytics: bool,
    /// Units of work not yet stored, oldest first; only the last may be open.
    units: Vec<Unit>,
    now: Instant,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("playbooks", &self.playbooks.len())
            .field("conversations", &self.index.len())
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
        let mut hub = Self::empty(desk, RecordMemory::Keep);
        hub.add_playbook(engine);
        hub
    }

    /// A hub with no playbook yet (a server adds its versions with
    /// [`Hub::add_named_playbook`]), keeping no ledger ([`RecordMemory::Emit`]).
    pub fn durable(desk: Desk) -> Self {
        Self::empty(desk, RecordMemory::Emit)
    }

    fn empty(desk: Desk, memory: RecordMemory) -> Self {
        Hub {
            playbooks: Vec::new(),
            desk,
            ledger: Ledger::new(),
            memory,
            sink: Box::new(NullSink),
            index: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            timers: BTreeSet::new(),
            by_ord: HashMap::new(),
            next_ord: 1,
            ord_end: None,
            turn_limit: None,
            analytics: true,
            units: Vec::new(),
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

    /// Turns the analytics counters off (or on again): for an operator who wants none kept.
    pub fn set_analytics(&mut self, on: bool) {
        self.analytics = on;
    }

    /// Limits accepted visitor inputs per conversation per minute (refused ones do not count).
    pub fn set_turn_limit(&mut self, limit: Option<u32>) {
        self.turn_limit = limit;
    }

    /// Adds another playbook; conversations choose it in [`StartOptions::playbook`].
    pub fn add_playbook(&mut self, engine: impl Into<Arc<Engine>>) -> PlaybookId {
        let engine = engine.into();
        let name = engine.program().playbook().playbook.name.clone();
        let version = 1 + self
            .playbooks
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.version)
            .max()
            .unwrap_or(0);
        self.add_named_playbook(&name, version, engine)
    }

    /// Adds a playbook under a name and version (a server's file stem and version number).
    pub fn add_named_playbook(
        &mut self,
        name: &str,
        version: i64,
        engine: impl Into<Arc<Engine>>,
    ) -> PlaybookId {
        let engine = engine.into();
        let assigns = engine.program().playbook().cards.iter().any(|c| {
            matches!(c, crate::model::Card::LiveChat(l)
                if l.route.assign.is_some_and(|a| a != crate::model::Assignment::Manual))
        });
        if assigns {
            self.desk.note_card_assignment();
        }
        self.playbooks.push(PlaybookEntry {
            engine,
            name: name.to_owned(),
            version,
        });
        PlaybookId((self.playbooks.len() - 1) as u16)
    }

    /// The playbook of this name and version.
    pub fn playbook_id(&self, name: &str, version: i64) -> Option<PlaybookId> {
        self.playbooks
            .iter()
            .position(|p| p.name == name && p.version == version)
            .map(|i| PlaybookId(i as u16))
    }

    /// The newest version of the playbook of this name.
    pub fn latest_playbook(&self, name: &str) -> Option<PlaybookId> {
        self.playbooks
            .iter()
            .enumerate()
            .filter(|(_, p)| p.name == name)
            .max_by_key(|(_, p)| p.version)
            .map(|(i, _)| PlaybookId(i as u16))
    }

    /// The engine of a playbook.
    pub fn engine(&self, id: PlaybookId) -> Option<&Arc<Engine>> {
        self.playbooks.get(id.0 as usize).map(|p| &p.engine)
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

    /// The ledger of records made so far (empty with [`RecordMemory::Emit`]).
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The latest time the hub has seen.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Ids of the conversations held, in start order.
    pub fn conversations(&self) -> Vec<&str> {
        let mut v: Vec<(u64, &str)> = self
            .slots
            .iter()
            .flatten()
            .map(|c| (c.ord, c.id.as_str()))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// How many conversations the hub holds.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the hub holds no conversation.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the hub holds this conversation.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    fn get(&self, id: &str) -> Option<&Conv> {
        self.index
            .get(id)
            .and_then(|&s| self.slots[s as usize].as_ref())
    }

    fn slot(&self, s: u32) -> &Conv {
        self.slots[s as usize]
            .as_ref()
            .expect("the index only names occupied slots")
    }

    fn slot_mut(&mut self, s: u32) -> &mut Conv {
        self.slots[s as usize]
            .as_mut()
            .expect("the index only names occupied slots")
    }

    /// A conversation's session.
    pub fn session(&self, id: &str) -> Option<&Session> {
        self.get(id).map(|c| &c.state.session)
    }

    /// A conversation's transcript.
    pub fn transcript(&self, id: &str) -> Option<&Transcript> {
        self.get(id).map(|c| &c.transcript)
    }

    /// A conversation's state besides its transcript.
    pub fn state(&self, id: &str) -> Option<&ConvState> {
        self.get(id).map(|c| &c.state)
    }

    /// The visitor's secret of a conversation.
    pub fn token(&self, id: &str) -> Option<&str> {
        self.get(id).and_then(|c| c.state.token.as_deref())
    }

    /// Whether `token` is the conversation's visitor secret (compared in constant time).
    pub fn token_matches(&self, id: &str, token: &str) -> bool {
        self.token(id).is_some_and(|t| ct_eq(t, token))
    }

    /// The engine a conversation runs on.
    pub fn engine_of(&self, id: &str) -> Option<&Arc<Engine>> {
        let c = self.get(id)?;
        self.playbooks.get(c.playbook as usize).map(|p| &p.engine)
    }

    /// The name and version of the playbook a conversation runs.
    pub fn playbook_of(&self, id: &str) -> Option<(&str, i64)> {
        let c = self.get(id)?;
        self.playbooks
            .get(c.playbook as usize)
            .map(|p| (p.name.as_str(), p.version))
    }

    /// The earliest pending timer deadline of the whole hub.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timer = self.timers.first().map(|t| t.0);
        match (timer, self.desk.wake_at(self.now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// How many timers are pending, over all conversations.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// A conversation's session and transcript, to store.
    pub fn snapshot(&self, id: &str) -> Option<Snapshot> {
        let c = self.get(id)?;
        Some(Snapshot {
            session: c.state.session.clone(),
            transcript: c.transcript.clone(),
        })
    }

    /// Puts back a stored session and transcript (to replay a step) and re-arms exactly the
    /// timers the session holds. Records already made stay made: replayed captures are
    /// recognised by their keys.
    pub fn restore(&mut self, id: &str, snap: Snapshot) -> Result<(), HubError> {
        let c = self.conv(id)?;
        self.touch(c);
        for k in KINDS {
            self.unqueue(c, k);
        }
        let timers: Vec<Timer> = snap.session.timers().collect();
        let conv = self.slot_mut(c);
        conv.state.session = snap.session;
        conv.transcript = snap.transcript;
        for t in timers {
            self.queue(c, t);
        }
        Ok(())
    }

    /// Puts a stored conversation back (loaded on demand, or at start): its timers are armed
    /// and its desk entry restored. A conversation the hub holds already is left alone.
    pub fn insert(&mut self, loaded: Loaded) -> Result<(), HubError> {
        if self.index.contains_key(&loaded.id) {
            return Ok(());
        }
        if self.playbooks.get(loaded.playbook.0 as usize).is_none() {
            return Err(HubError::UnknownPlaybook(loaded.playbook.0));
        }
        let Loaded {
            id,
            ord,
            playbook,
            rev,
            state,
            lines,
            flushed,
        } = loaded;
        if let Some(entry) = &state.desk {
            self.desk.restore(&id, entry.clone());
        }
        let timers: Vec<Timer> = state.session.timers().collect();
        let transcript = Transcript::from_lines(lines, state.buttons.clone());
        let c = self.occupy(Conv {
            id,
            ord,
            playbook: playbook.0,
            rev,
            state,
            transcript,
            timers: [None; 3],
            flushed,
            start_at: None,
        });
        for t in timers {
            self.queue(c, t);
        }
        // Replicas number starts from blocks of their own: another's conversation says
        // nothing about where this one continues.
        if self.ord_end.is_none() {
            self.next_ord = self.next_ord.max(ord + 1);
        }
        Ok(())
    }

    /// Drops a conversation from memory (it stays in the store): its timers are unarmed and
    /// its desk entry forgotten. Refused while a unit not yet stored touched it.
    pub fn evict(&mut self, id: &str) -> bool {
        let Some(&c) = self.index.get(id) else {
            return false;
        };
        if self
            .units
            .iter()
            .any(|u| u.touched.iter().any(|b| b.slot == c))
        {
            return false;
        }
        self.index.remove(id);
        for k in KINDS {
            self.unqueue(c, k);
        }
        let conv = self.slots[c as usize].take().expect("indexed slot");
        self.by_ord.remove(&conv.ord);
        self.desk.forget(id);
        self.free.push(c);
        true
    }

    /// Whether a conversation is over for good: ended, no timer pending, and not waiting for
    /// or talking with an agent. A durable driver evicts such ones after their commit.
    pub fn is_over(&self, id: &str) -> bool {
        self.get(id).is_some_and(|c| {
            matches!(c.state.session.phase(), Phase::Ended(_) | Phase::Failed)
                && c.timers.iter().all(Option::is_none)
                && !matches!(
                    c.state.desk.as_ref().map(|d| &d.state),
                    Some(crate::desk::ConvState::Unassigned | crate::desk::ConvState::Assigned(_))
                )
        })
    }

    /// Conversations a durable driver may drop from memory now: not touched for `idle` (or
    /// over), and not waiting for or talking with an agent (the desk's queues live in memory).
    /// Their pending timers stay with the driver, which loads them back when one is due.
    pub fn idle(&self, now: Instant, idle: u64) -> Vec<String> {
        self.slots
            .iter()
            .flatten()
            .filter(|c| {
                c.start_at.is_none()
                    && c.state.updated_at.after_ms(idle) <= now
                    && !matches!(
                        c.state.desk.as_ref().map(|d| &d.state),
                        Some(
                            crate::desk::ConvState::Unassigned
                                | crate::desk::ConvState::Assigned(_)
                        )
                    )
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// The earliest pending timer of a conversation, with its start order.
    pub fn next_timer(&self, id: &str) -> Option<(Instant, u64)> {
        let c = self.get(id)?;
        c.timers.iter().flatten().min().map(|at| (*at, c.ord))
    }

    /// Sets where start orders continue (a server: after the highest stored one).
    pub fn set_next_ord(&mut self, next: u64) {
        self.next_ord = self.next_ord.max(next);
    }

    /// Start orders from now on come from `[next, end)`, a block reserved for this process
    /// in a shared store.
    pub fn use_ords(&mut self, next: u64, end: u64) {
        self.next_ord = next;
        self.ord_end = Some(end);
    }

    /// How many start orders are left in the reserved block (`None`: no block).
    pub fn ords_left(&self) -> Option<u64> {
        self.ord_end.map(|end| end.saturating_sub(self.next_ord))
    }

    fn occupy(&mut self, conv: Conv) -> u32 {
        let id = conv.id.clone();
        let ord = conv.ord;
        let c = match self.free.pop() {
            Some(c) => {
                self.slots[c as usize] = Some(conv);
                c
            }
            None => {
                self.slots.push(Some(conv));
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(id, c);
        self.by_ord.insert(ord, c);
        c
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
        self.begin_conv(id, opts, None, now)
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
            Some(card),
            vars.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        self.begin_conv(id, opts, Some(at), now)
    }

    /// What [`Hub::start`] and [`Hub::start_at`] share: a new conversation slot, the start
    /// event, and the slot undone if the engine refuses (so an error changes nothing).
    fn begin_conv(
        &mut self,
        id: &str,
        opts: StartOptions,
        start_at: Option<StartAt>,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        if self.index.contains_key(id) {
            return Err(HubError::ConversationExists(id.to_owned()));
        }
        if self.playbooks.get(opts.playbook.0 as usize).is_none() {
            return Err(HubError::UnknownPlaybook(opts.playbook.0));
        }
        // What the site vouched for is set first, as variables (after a scenario's own).
        let start_at = match (start_at, opts.visitor.vars()) {
            (at, known) if known.is_empty() => at,
            (None, known) => Some((None, known)),
            (Some((card, mut vars)), known) => {
                vars.extend(known);
                Some((card, vars))
            }
        };
        let ord = self.next_ord;
        let c = self.occupy(Conv {
            id: id.to_owned(),
            ord,
            playbook: opts.playbook.0,
            rev: 0,
            state: ConvState {
                session: Session::new(),
                contact_owner: opts.contact_owner.clone(),
                token: opts.token,
                manual: 0,
                records: Vec::new(),
                window: (0, 0),
                updated_at: now,
                desk: None,
                buttons: Vec::new(),
                consent: None,
                live_since: None,
                social: None,
            },
            transcript: Transcript::default(),
            timers: [None; 3],
            flushed: 0,
            start_at,
        });
        let event = Event::Start {
            conversation: id.into(),
            channel: opts.channel,
            page_url: opts.page_url.as_deref().map(Into::into),
            contact_owner: opts.contact_owner.as_deref().map(Into::into),
        };
        // The unit learns the conversation is new before the step could record it as changed.
        if let Some(u) = self.open_unit() {
            u.touched.push(Before {
                slot: c,
                state: None,
            });
        }
        match self.step(c, event, now, None) {
            Ok(out) => {
                self.next_ord = ord + 1;
                Ok(out)
            }
            Err(e) => {
                // Start cannot fail on a new session; undo the slot anyway so errors change
                // nothing.
                if let Some(u) = self.open_unit() {
                    u.touched.retain(|b| b.slot != c);
                }
                self.index.remove(id);
                self.by_ord.remove(&ord);
                self.slots[c as usize] = None;
                self.free.push(c);
                Err(e)
            }
        }
    }

    fn visitor_turn(
        &mut self,
        id: &str,
        event: Event<'_>,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let now = self.now.max(now);
        let minute = now.0 / 60_000;
        if let Some(limit) = self.turn_limit {
            let w = self.slot(c).state.window;
            if w.0 == minute && w.1 >= limit {
                return Err(HubError::RateLimited(limit));
            }
        }
        let out = self.step(c, event, now, None)?;
        // Counted once accepted: refused input never uses up the visitor's allowance.
        let w = &mut self.slot_mut(c).state.window;
        *w = if w.0 == minute {
            (minute, w.1 + 1)
        } else {
            (minute, 1)
        };
        Ok(out)
    }

    /// The visitor typed something.
    pub fn visitor_text(
        &mut self,
        id: &str,
        text: &str,
        channel: Channel,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let event = Event::VisitorText {
            text: text.into(),
            channel,
        };
        self.visitor_turn(id, event, now)
    }

    /// The visitor pressed button `index` (from 0).
    pub fn visitor_choice(
        &mut self,
        id: &str,
        index: usize,
        channel: Channel,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        self.visitor_turn(id, Event::VisitorChoice { index, channel }, now)
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

    /// The visitor moves the conversation to `channel`: linked `contact` there, or (on the
    /// web, no contact) came back. `said` is the linking message, transcribed, not an answer.
    pub fn switch_channel(
        &mut self,
        id: &str,
        channel: Channel,
        contact: Option<&str>,
        said: Option<&str>,
        now: Instant,
    ) -> Result<Outputs, HubError> {
        let c = self.conv(id)?;
        let event = Event::ChannelSwitched {
            channel,
            said: said.map(Into::into),
        };
        let out = self.step(c, event, now, None)?;
        if let Some(contact) = contact {
            self.slot_mut(c).state.social = Some(capture::SocialId {
                channel,
                id: contact.to_owned(),
            });
        }
        Ok(out)
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
        self.touch(c);
        let conv = self.slot_mut(c);
        conv.state.manual += 1;
        conv.state.updated_at = now;
        let ctx = capture::Context {
            key: format!("{id}/#desk-{}", conv.state.manual),
            conversation: id,
            now,
            channel: conv.state.session.channel(),
            live_chat: true,
            agent: Some(agent),
            messages: conv.state.session.messages(),
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
        let presence = matches!(cmd, Command::Presence { .. });
        let mut out = self.apply_one(id, cmd, now)?;
        if presence {
            // An agent back online may take waiting chats (steps give out by themselves).
            out.extend(self.dispatch(now));
        }
        Ok(out)
    }

    /// Automatic assignment: gives waiting chats to available agents with room, oldest chat
    /// first ([`Desk::next_assignment`]), each as that agent's pick-up. Runs after every step
    /// (a chat queued, a close), presence change through [`Hub::apply`] and
    /// [`Hub::advance`]; a driver that loads waiting chats from a shared store calls it too.
    pub fn dispatch(&mut self, now: Instant) -> Outputs {
        let mut out = Outputs::default();
        let mut tried = BTreeSet::new();
        loop {
            self.desk.set_now(self.now.max(now));
            let Some((id, agent)) = self
                .desk
                .next_assignment(&tried)
                .map(|(c, a)| (c.to_owned(), a.to_owned()))
            else {
                break;
            };
            tried.insert(id.clone());
            let Ok(c) = self.conv(&id) else { continue };
            let op: DeskOp<'_> = Box::new(|d: &mut Desk| d.auto_assign(&id, &agent));
            let joined = Event::AgentJoined {
                agent: agent.as_str().into(),
            };
            // A refusal (the session no longer waits) leaves this chat out of the round.
            if let Ok(o) = self.step_one(c, joined, now, Some(op)) {
                out.extend(o);
            }
        }
        out
    }

    fn apply_one(&mut self, id: &str, cmd: Command, now: Instant) -> Result<Outputs, HubError> {
        match cmd {
            Command::Start {
                playbook,
                channel,
                page_url,
                contact_owner,
                token,
                visitor,
            } => {
                let playbook = match playbook {
                    None => PlaybookId(0),
                    Some(name) => self
                        .latest_playbook(&name)
                        .ok_or(HubError::UnknownPlaybookName(name))?,
                };
                let opts = StartOptions {
                    playbook,
                    channel,
                    page_url,
                    contact_owner,
                    token,
                    visitor,
                };
                self.start(id, opts, now)
            }
            Command::VisitorText { text, channel } => self.visitor_text(id, &text, channel, now),
            Command::VisitorChoice { index, channel } => {
                self.visitor_choice(id, index, channel, now)
            }
            Command::Pickup { agent } => self.assign_self(id, &agent, now),
            Command::AgentMessage { agent, text } => self.agent_message(id, &agent, &text, now),
            Command::Reassign { by, to } => self.reassign(id, &by, &to, now),
            Command::Close { agent } => self.close(id, &agent, now),
            Command::SwitchChannel {
                channel,
                contact,
                said,
            } => self.switch_channel(id, channel, contact.as_deref(), said.as_deref(), now),
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
        while let Some(&(at, ord, r)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(&c) = self.by_ord.get(&ord) else {
                continue;
            };
            let kind = KINDS[r as usize];
            self.touch(c);
            self.slot_mut(c).timers[r as usize] = None;
            // A timer the engine no longer holds is ignored by it; a late one re-checks state.
            if let Ok(o) = self.step(c, Event::TimerFired(Timer { kind, at }), at, None) {
                out.extend(o);
            }
        }
        self.now = now;
        // Teams' hours may have opened meanwhile.
        out.extend(self.dispatch(now));
        out
    }

    fn queue(&mut self, c: u32, t: Timer) {
        let r = rank(t.kind);
        self.unqueue(c, t.kind);
        let conv = self.slot_mut(c);
        conv.timers[r as usize] = Some(t.at);
        let ord = conv.ord;
        self.timers.insert((t.at, ord, r));
    }

    fn unqueue(&mut self, c: u32, kind: TimerKind) {
        let r = rank(kind);
        let conv = self.slot_mut(c);
        let ord = conv.ord;
        if let Some(at) = conv.timers[r as usize].take() {
            self.timers.remove(&(at, ord, r));
        }
    }

    /// [`Hub::step_one`], then automatic assignment of what the step queued or freed.
    fn step(
        &mut self,
        c: u32,
        event: Event<'_>,
        now: Instant,
        desk_op: Option<DeskOp<'_>>,
    ) -> Result<Outputs, HubError> {
        let mut out = self.step_one(c, event, now, desk_op)?;
        let given = self.dispatch(now);
        // A chat given out in the step that queued it never waited: agents hear only whose
        // it is, not that it waits in Unassigned.
        let assigned: Vec<&str> = given
            .notifications
            .iter()
            .filter_map(|n| match n {
                Notification::AssignedToYou {
                    conversation,
                    by: None,
                    ..
                } => Some(conversation.as_str()),
                _ => None,
            })
            .collect();
        out.notifications.retain(|n| {
            !matches!(n, Notification::EnteredUnassigned { conversation, .. }
                if assigned.contains(&conversation.as_str()))
        });
        out.extend(given);
        Ok(out)
    }

    /// One engine step for conversation `c`, with the desk change of an agent action applied
    /// between the engine's acceptance and the session's update.
    fn step_one(
        &mut self,
        c: u32,
        event: Event<'_>,
        now: Instant,
        desk_op: Option<DeskOp<'_>>,
    ) -> Result<Outputs, HubError> {
        // The clock only moves on success: a refused call changes nothing.
        let now = self.now.max(now);
        // Teams' hours are read at the step's time (virtual in tests).
        self.desk.set_now(now);
        let engine = Arc::clone(&self.playbooks[self.slot(c).playbook as usize].engine);
        let mut effects = Vec::new();
        let mut next = self.slot(c).state.session.clone();
        let before = (next.phase(), next.card());
        let start_at = self.slot_mut(c).start_at.take();
        match start_at {
            Some((card, vars)) => {
                let vars: Vec<(&str, &str)> =
                    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                engine.start_at(
                    &mut next,
                    event.clone(),
                    card,
                    &vars,
                    now,
                    &self.desk,
                    &mut effects,
                )?;
            }
            None => engine.step(&mut next, event.clone(), now, &self.desk, &mut effects)?,
        }
        self.touch(c);
        if let Some(op) = desk_op {
            op(&mut self.desk)?;
        }
        self.now = now;
        let conv = self.slot_mut(c);
        conv.state.session = next;
        conv.state.updated_at = now;
        let first = conv.transcript.lines.len();
        conv.transcript.record(&event, now, &effects);
        let mut out = Outputs::default();
        for e in &effects {
            self.route(c, e, &mut out);
        }
        let entry = self.desk.conversation(&self.slot(c).id).cloned();
        let conv = self.slot_mut(c);
        conv.state.desk = entry;
        conv.state.buttons = conv.transcript.buttons().to_vec();
        self.count(c, &engine, &event, before, &effects, now);
        let conv = self.slot(c);
        out.updates.push(ConvUpdate {
            conversation: conv.id.clone(),
            first_seq: first as u64 + 1,
            lines: conv.transcript.lines[first..].to_vec(),
            phase: conv.state.session.phase(),
            agent: conv.state.session.handler().map(str::to_owned),
        });
        let id = &conv.id;
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

    /// Adds one to an analytics counter of conversation `c`'s playbook version, when a unit
    /// is open (the counters are stored with the unit's commit; without a store nothing
    /// keeps them).
    fn tally(&mut self, c: u32, at: Instant, key: &crate::stats::Key) {
        if !self.analytics {
            return;
        }
        let conv = self.slots[c as usize]
            .as_ref()
            .expect("counted slots are occupied");
        let p = &self.playbooks[conv.playbook as usize];
        if let Some(u) = self.units.last_mut().filter(|u| !u.sealed) {
            u.stats.add(&p.name, p.version, at, key);
        }
    }

    /// The analytics counters of one step: a start, the cards entered and links followed,
    /// where it ended, and the live chat's course (requested, no agent, queued, picked up
    /// with its wait, timed out, closed with its length, who handled it).
    fn count(
        &mut self,
        c: u32,
        engine: &Engine,
        event: &Event<'_>,
        (phase, card): (Phase, crate::CardIx),
        effects: &[Effect<'_>],
        now: Instant,
    ) {
        use crate::stats::{Key, bucket, link_name};
        if !self.analytics || self.open_unit().is_none() {
            return;
        }
        let program = engine.program();
        let mut keys = Vec::new();
        if matches!(event, Event::Start { .. }) {
            let channel = self.slot(c).state.session.channel().name();
            keys.push(Key::Started(channel.into()));
        }
        let queued = effects
            .iter()
            .any(|e| matches!(e, Effect::EnterUnassigned { .. }));
        let mut last: Option<&str> = None;
        for e in effects {
            match e {
                Effect::Entered { card, via } => {
                    keys.push(Key::Entered(card.to_string()));
                    if let Some(v) = via {
                        keys.push(Key::Link(v.from.to_string(), link_name(v.link)));
                    }
                    let live = program.lookup(card).is_some_and(|ix| {
                        matches!(program.card(ix), crate::model::Card::LiveChat(_))
                    });
                    if live {
                        keys.push(Key::LiveRequested);
                        if !queued {
                            keys.push(Key::LiveNoAgent);
                        }
                    }
                    last = Some(card);
                }
                Effect::EnterUnassigned { .. } => keys.push(Key::LiveQueued),
                Effect::LeaveUnassigned => keys.push(Key::LiveTimedOut),
                Effect::End { outcome } => {
                    let at = last.unwrap_or_else(|| program.card(card).id().as_str());
                    keys.push(Key::Ended(at.to_owned(), *outcome));
                    let channel = self.slot(c).state.session.channel().name();
                    keys.push(Key::EndedOn(channel.into(), *outcome));
                }
                _ => {}
            }
        }
        match event {
            Event::AgentJoined { agent } if phase == Phase::Queued => {
                let since = self.slot(c).state.desk.as_ref().map_or(now, |d| d.since);
                keys.push(Key::LivePickedUp);
                keys.push(Key::Handled(agent.to_string()));
                keys.push(Key::PickupS(bucket(now.0.saturating_sub(since.0))));
                self.slot_mut(c).state.live_since = Some(now);
            }
            Event::Reassigned { to } => keys.push(Key::Handled(to.to_string())),
            Event::AgentClosed { .. } => {
                let since = self.slot(c).state.live_since.unwrap_or(now);
                keys.push(Key::LiveClosed);
                keys.push(Key::ChatS(bucket(now.0.saturating_sub(since.0))));
            }
            _ => {}
        }
        for k in &keys {
            self.tally(c, now, k);
        }
    }

    /// Carries out the parts of an effect that concern the hub's own parts.
    fn route(&mut self, c: u32, e: &Effect<'_>, out: &mut Outputs) {
        // Borrow the slot through its field, not `slot()`, so the desk stays free to change.
        let conv = self.slots[c as usize]
            .as_ref()
            .expect("routed slots are occupied");
        match e {
            Effect::SetTimer(t) => self.queue(c, *t),
            Effect::CancelTimer { kind } => self.unqueue(c, *kind),
            // Desk refusals below cannot happen when the desk is only moved through the hub
            // (the checker allows one live chat per path, so a conversation enters once);
            // the engine's state is the truth, so a refusal is not allowed to undo a step.
            Effect::EnterUnassigned { route } => {
                let _ = self.desk.enqueue(
                    &conv.id,
                    route.as_ref(),
                    conv.state.contact_owner.as_deref(),
                );
            }
            Effect::LeaveUnassigned => {
                let _ = self.desk.time_out(&conv.id);
            }
            Effect::RelayToAgent { agent: Some(_), .. } => {
                let _ = self.desk.visitor_message(&conv.id);
            }
            Effect::Capture(r) => self.commit(c, (**r).clone(), out),
            Effect::Consent { given } => {
                self.slot_mut(c).state.consent = given.as_deref().cloned();
            }
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

    fn commit(&mut self, c: u32, mut record: capture::Record, out: &mut Outputs) {
        let conv = self.slot_mut(c);
        if conv.state.records.contains(&record.key) {
            return;
        }
        record.consent.clone_from(&conv.state.consent);
        if let Some(social) = &conv.state.social {
            record.add_social(social);
        }
        conv.state.records.push(record.key.clone());
        let n = (record.messages as usize).min(conv.transcript.lines.len());
        let stored = Stored {
            transcript: conv.transcript.lines[..n].to_vec(),
            record,
        };
        if self.memory == RecordMemory::Keep
            && self
                .ledger
                .commit(stored.record.clone(), &stored.transcript)
                != Commit::New
        {
            return;
        }
        self.desk.note_capture(&stored.record);
        let kind = match &stored.record.data {
            capture::RecordData::Lead(_) => "lead",
            capture::RecordData::Deal(_) => "deal",
            capture::RecordData::Activity(_) => "activity",
        };
        self.tally(
            c,
            stored.record.created_at,
            &crate::stats::Key::Record(kind.into()),
        );
        if let Err(e) = self.sink.put(&stored) {
            out.sink_errors.push(e.to_string());
        }
        if let Some(u) = self.open_unit() {
            u.records.push(stored.clone());
        }
        out.records.push(stored);
    }

    /// Opens a unit of work: from now until it is sealed ([`Hub::seal`]), the hub remembers
    /// how everything it changes looked before. Requires [`RecordMemory::Emit`] (a ledger
    /// cannot be rolled back). Opening one while one is open keeps the open one.
    pub fn begin(&mut self) {
        debug_assert_eq!(
            self.memory,
            RecordMemory::Emit,
            "units need RecordMemory::Emit"
        );
        if self.open_unit().is_none() {
            self.units.push(Unit {
                touched: Vec::new(),
                desk: self.desk.clone(),
                now: self.now,
                next_ord: self.next_ord,
                records: Vec::new(),
                stats: crate::stats::Tally::default(),
                sealed: false,
            });
        }
    }

    fn open_unit(&mut self) -> Option<&mut Unit> {
        self.units.last_mut().filter(|u| !u.sealed)
    }

    /// Remembers how conversation `c` looked before the open unit first changed it.
    fn touch(&mut self, c: u32) {
        let Some(u) = self.units.last().filter(|u| !u.sealed) else {
            return;
        };
        if u.touched.iter().any(|b| b.slot == c) {
            return;
        }
        let conv = self.slot(c);
        let before = Before {
            slot: c,
            state: Some((
                conv.state.clone(),
                conv.transcript.lines.len(),
                conv.timers,
                conv.rev,
                conv.flushed,
            )),
        };
        if let Some(u) = self.open_unit() {
            u.touched.push(before);
        }
    }

    /// Closes the open unit and returns what it changed — the rows to write. Every changed
    /// conversation's revision moves on now, so a next unit builds on it while this one is
    /// being stored. The unit's "before" is kept until [`Hub::keep`] or [`Hub::rollback`].
    pub fn seal(&mut self) -> Changes {
        let Some(u) = self.units.last() else {
            return Changes::default();
        };
        if u.sealed {
            return Changes::default();
        }
        let mut ch = Changes {
            records: u.records.clone(),
            stats: u.stats.clone(),
            ..Changes::default()
        };
        let mut changed = Vec::new();
        for b in &u.touched {
            let Some(conv) = self.slots[b.slot as usize].as_ref() else {
                continue;
            };
            if let Some((state, lines, timers, _, _)) = &b.state
                && *state == conv.state
                && *lines == conv.transcript.lines.len()
                && *timers == conv.timers
            {
                continue;
            }
            let p = &self.playbooks[conv.playbook as usize];
            let unflushed: Vec<(u64, capture::Line)> = conv.transcript.lines
                [conv.flushed as usize..]
                .iter()
                .enumerate()
                .map(|(i, l)| (conv.flushed + i as u64 + 1, l.clone()))
                .collect();
            let over = matches!(conv.state.session.phase(), Phase::Ended(_) | Phase::Failed);
            let (tail, flush) = if over || unflushed.len() > TAIL_LINES {
                (Vec::new(), unflushed)
            } else {
                (unflushed, Vec::new())
            };
            changed.push((b.slot, flush.len() as u64));
            ch.convs.push(ConvChange {
                id: conv.id.clone(),
                ord: conv.ord,
                playbook: (p.name.clone(), p.version),
                rev: conv.rev + 1,
                state: conv.state.clone(),
                tail,
                flush,
                line_count: conv.transcript.lines.len() as u64,
                next_due: conv.timers.iter().flatten().min().copied(),
            });
        }
        let d = self.desk.diff(&u.desk);
        ch.agents = d.agents;
        ch.loads = d.loads;
        ch.pools = d.pools;
        ch.desk_seq = d.seq;
        ch.next_ord = (self.next_ord != u.next_ord).then_some(self.next_ord);
        for (c, flushed) in changed {
            let conv = self.slot_mut(c);
            conv.rev += 1;
            conv.flushed += flushed;
        }
        if let Some(u) = self.units.last_mut() {
            u.sealed = true;
        }
        ch
    }

    /// The oldest sealed unit is stored: forget how things were before it.
    pub fn keep(&mut self) {
        if self.units.first().is_some_and(|u| u.sealed) {
            self.units.remove(0);
        }
    }

    /// Puts back what the newest unit did (only its own rows could not be made).
    pub fn rollback_last(&mut self) {
        if let Some(u) = self.units.pop() {
            self.undo(u);
        }
    }

    /// Puts back everything as it was before the oldest unit still held began (a store
    /// refused a unit, so every unit built on it goes too): conversations started since are
    /// gone, the others have their old state, revision, transcript and timers, the desk and
    /// the clock are as they were.
    pub fn rollback(&mut self) {
        while let Some(u) = self.units.pop() {
            self.undo(u);
        }
    }

    fn undo(&mut self, u: Unit) {
        for b in u.touched.into_iter().rev() {
            match b.state {
                None => {
                    if let Some(conv) = self.slots[b.slot as usize].take() {
                        for (r, at) in conv.timers.iter().enumerate() {
                            if let Some(at) = at {
                                self.timers.remove(&(*at, conv.ord, r as u8));
                            }
                        }
                        self.index.remove(&conv.id);
                        self.by_ord.remove(&conv.ord);
                        self.free.push(b.slot);
                    }
                }
                Some((state, lines, timers, rev, flushed)) => {
                    for k in KINDS {
                        self.unqueue(b.slot, k);
                    }
                    let conv = self.slot_mut(b.slot);
                    conv.state = state;
                    conv.transcript.rewind(lines, conv.state.buttons.clone());
                    conv.rev = rev;
                    conv.flushed = flushed;
                    let ord = conv.ord;
                    for (r, at) in timers.iter().enumerate() {
                        if let Some(at) = at {
                            self.slot_mut(b.slot).timers[r] = Some(*at);
                            self.timers.insert((*at, ord, r as u8));
                        }
                    }
                }
            }
        }
        self.desk = u.desk;
        self.now = u.now;
        // Orders of a reserved block are used up either way: going back could run past the
        // block's end into another replica's.
        if self.ord_end.is_none() {
            self.next_ord = u.next_ord;
        }
    }

    /// Whether a unit is open or waiting to be stored.
    pub fn in_unit(&self) -> bool {
        !self.units.is_empty()
    }
}

/// Constant-time string equality (for equal lengths; lengths are not secret): for tokens.
pub fn ct_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
