//! The scenario runner's handle on one conversation, over the shared [`Hub`] (the same
//! driver `playbook run` and the server use): engine + desk + ledger + transcript lines +
//! the virtual-time timer queue.
//!
//! Adds only what tests need on top: one step at a time with its effects (coverage reads the
//! engine's `Entered` reports from them), and timers fired one deadline at a time. Must not
//! decide product rules or keep its own copy of desk or ledger state.

use std::sync::Arc;

use crate::CardIx;
use crate::capture::{Ledger, Record};
use crate::desk::{Desk, Notification};
use crate::engine::{Channel, Effect, Engine, Instant, Session, Timer, TimerKind};
use crate::program::Program;
use crate::runtime::{Command, Hub, HubError, Outputs, StartOptions};

/// What made a step happen: an input (the same [`Command`] every driver sends the hub) or
/// a timer falling due.
#[derive(Debug, Clone, PartialEq)]
// A command carries an agent's record details (money is an exact decimal string now):
// causes are few and short-lived, so boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum Cause {
    /// A command to the conversation or the desk.
    Command(Command),
    /// A timer that was due.
    Timer(Timer),
}

/// What one accepted step did.
pub struct Stepped {
    /// What caused it.
    pub cause: Cause,
    /// The effects, in order.
    pub effects: Vec<Effect<'static>>,
    /// Desk notifications it caused.
    pub notifications: Vec<Notification>,
    /// Records the ledger stored as new, with how many transcript lines were attached.
    pub records: Vec<(Record, u32)>,
}

/// One conversation on its own hub.
pub struct Driver<'e> {
    engine: &'e Engine,
    hub: Hub,
    id: String,
    now: Instant,
    idle: Session,
}

fn words(e: HubError) -> String {
    e.to_string()
}

impl<'e> Driver<'e> {
    /// A conversation `id` that has not started, on a hub with an empty desk, at `now`.
    pub fn new(engine: &'e Arc<Engine>, id: &str, now: Instant) -> Self {
        Driver {
            engine,
            hub: Hub::new(Arc::clone(engine), Desk::new()),
            id: id.to_owned(),
            now,
            idle: Session::new(),
        }
    }

    /// The program.
    pub fn program(&self) -> &'e Program {
        self.engine.program()
    }

    /// The engine.
    pub fn engine(&self) -> &'e Engine {
        self.engine
    }

    /// The session (a new one before the start).
    pub fn session(&self) -> &Session {
        self.hub.session(&self.id).unwrap_or(&self.idle)
    }

    /// The desk, to set up agents, teams and pools before the start.
    pub fn desk_mut(&mut self) -> &mut Desk {
        self.hub.desk_mut()
    }

    /// Records stored so far.
    pub fn ledger(&self) -> &Ledger {
        self.hub.ledger()
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    fn done(&self, cause: Cause, r: Result<Outputs, HubError>) -> Result<Stepped, String> {
        let out = r.map_err(words)?;
        Ok(Stepped {
            cause,
            effects: out.effects.into_iter().map(|e| e.effect).collect(),
            notifications: out.notifications,
            records: out
                .records
                .into_iter()
                .map(|s| {
                    let n = s.transcript.len() as u32;
                    (s.record, n)
                })
                .collect(),
        })
    }

    /// Opens the chat at the playbook's start (through [`Hub::apply`], like any command), or
    /// at a card with variables set (a test-only way in: [`Hub::start_at`]).
    pub fn start(
        &mut self,
        channel: Channel,
        page: Option<&str>,
        owner: Option<&str>,
        at: Option<(CardIx, &[(&str, &str)])>,
    ) -> Result<Stepped, String> {
        let cmd = Command::Start {
            playbook: None,
            channel,
            page_url: page.map(str::to_owned),
            contact_owner: owner.map(str::to_owned),
            token: None,
            visitor: Default::default(),
            said: None,
        };
        let r = match at {
            None => self.hub.apply(&self.id, cmd.clone(), self.now),
            Some((card, vars)) => {
                let opts = StartOptions {
                    channel,
                    page_url: page.map(str::to_owned),
                    contact_owner: owner.map(str::to_owned),
                    ..StartOptions::default()
                };
                self.hub.start_at(&self.id, opts, card, vars, self.now)
            }
        };
        self.done(Cause::Command(cmd), r)
    }

    /// A visitor, agent or desk input, through [`Hub::apply`] as in production.
    pub fn apply(&mut self, cmd: Command) -> Result<Stepped, String> {
        let r = self.hub.apply(&self.id, cmd.clone(), self.now);
        self.done(Cause::Command(cmd), r)
    }

    /// Virtual time passes until `until`: due timers fire one deadline at a time, in order.
    pub fn advance(&mut self, until: Instant) -> Vec<Stepped> {
        let mut out = Vec::new();
        while let Some(at) = self.hub.next_deadline().filter(|&at| at <= until) {
            // The timer the session holds for this deadline (wait, idle, then idle capture
            // at equal deadlines, as the hub fires them).
            let rank = |k: TimerKind| match k {
                TimerKind::Wait => 0,
                TimerKind::Idle => 1,
                TimerKind::IdleCapture => 2,
            };
            let timer: Option<Timer> = self
                .session()
                .timers()
                .filter(|t| t.at == at)
                .min_by_key(|t| rank(t.kind));
            self.now = self.now.max(at);
            let o = self.hub.advance(at);
            if let Some(t) = timer
                && let Ok(s) = self.done(Cause::Timer(t), Ok(o))
            {
                out.push(s);
            }
        }
        self.now = self.now.max(until);
        out
    }
}
