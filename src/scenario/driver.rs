//! The scenario runner's handle on one conversation, over the shared [`Hub`] (the same
//! driver `playbook run` and the server use): engine + desk + ledger + transcript lines +
//! the virtual-time timer queue.
//!
//! Adds only what tests need on top: one step at a time with its effects (coverage reads the
//! engine's `Entered` reports from them), and timers fired one deadline at a time. Must not
//! decide product rules or keep its own copy of desk or ledger state.

use std::sync::Arc;

use crate::CardIx;
use crate::capture::{Ledger, ManualDetails, ManualKind, Record};
use crate::desk::{Desk, Notification, Presence};
use crate::engine::{Channel, Effect, Engine, Event, Instant, Session, Timer, TimerKind};
use crate::program::Program;
use crate::runtime::{Hub, HubError, Outputs, StartOptions};

/// What one accepted step did.
pub struct Stepped {
    /// The event (for a timer, the one that was due).
    pub event: Event<'static>,
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

    fn done(&self, event: Event<'static>, r: Result<Outputs, HubError>) -> Result<Stepped, String> {
        let out = r.map_err(words)?;
        Ok(Stepped {
            event,
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

    /// Opens the chat, at the playbook's start or at a card with variables set.
    pub fn start(
        &mut self,
        channel: Channel,
        page: Option<&str>,
        owner: Option<&str>,
        at: Option<(CardIx, &[(&str, &str)])>,
    ) -> Result<Stepped, String> {
        let opts = StartOptions {
            channel,
            page_url: page.map(str::to_owned),
            contact_owner: owner.map(str::to_owned),
            ..StartOptions::default()
        };
        let event = Event::Start {
            conversation: self.id.clone().into(),
            channel,
            page_url: page.map(|p| p.to_owned().into()),
            contact_owner: owner.map(|o| o.to_owned().into()),
        };
        let r = match at {
            None => self.hub.start(&self.id, opts, self.now),
            Some((card, vars)) => self.hub.start_at(&self.id, opts, card, vars, self.now),
        };
        self.done(event, r)
    }

    /// The visitor types.
    pub fn visitor_text(&mut self, text: &str, channel: Channel) -> Result<Stepped, String> {
        let r = self.hub.visitor_text(&self.id, text, channel, self.now);
        let event = Event::VisitorText {
            text: text.to_owned().into(),
            channel,
        };
        self.done(event, r)
    }

    /// The visitor presses button `index` (from 0).
    pub fn visitor_choice(&mut self, index: usize, channel: Channel) -> Result<Stepped, String> {
        let r = self.hub.visitor_choice(&self.id, index, channel, self.now);
        self.done(Event::VisitorChoice { index, channel }, r)
    }

    /// An agent assigns the waiting conversation to themselves.
    pub fn pick_up(&mut self, agent: &str) -> Result<Stepped, String> {
        let r = self.hub.assign_self(&self.id, agent, self.now);
        let event = Event::AgentJoined {
            agent: agent.to_owned().into(),
        };
        self.done(event, r)
    }

    /// The handling agent passes the conversation on.
    pub fn reassign(&mut self, by: &str, to: &str) -> Result<Stepped, String> {
        let r = self.hub.reassign(&self.id, by, to, self.now);
        let event = Event::Reassigned {
            to: to.to_owned().into(),
        };
        self.done(event, r)
    }

    /// The handling agent closes the conversation.
    pub fn close(&mut self, agent: &str) -> Result<Stepped, String> {
        let r = self.hub.close(&self.id, agent, self.now);
        let event = Event::AgentClosed {
            agent: agent.to_owned().into(),
        };
        self.done(event, r)
    }

    /// The handling agent writes.
    pub fn agent_says(&mut self, agent: &str, text: &str) -> Result<Stepped, String> {
        let r = self.hub.agent_message(&self.id, agent, text, self.now);
        let event = Event::AgentMessage {
            agent: agent.to_owned().into(),
            text: text.to_owned().into(),
        };
        self.done(event, r)
    }

    /// An agent's presence changes.
    pub fn set_presence(&mut self, agent: &str, p: Presence) -> Result<(), String> {
        self.hub.set_presence(agent, p).map_err(words)
    }

    /// An agent makes a lead or deal from the conversation.
    pub fn create_record(
        &mut self,
        agent: &str,
        kind: ManualKind,
        details: ManualDetails,
    ) -> Result<Vec<(Record, u32)>, String> {
        let out = self
            .hub
            .create_record(&self.id, agent, kind, details, self.now)
            .map_err(words)?;
        Ok(out
            .records
            .into_iter()
            .map(|s| {
                let n = s.transcript.len() as u32;
                (s.record, n)
            })
            .collect())
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
                && let Ok(s) = self.done(Event::TimerFired(t), Ok(o))
            {
                out.push(s);
            }
        }
        self.now = self.now.max(until);
        out
    }
}
