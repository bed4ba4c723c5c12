//! The one place that drives a conversation for a scenario: engine + desk + ledger +
//! transcript lines + virtual-time timers, kept in step.
//!
//! This is a small adapter so that it can be swapped for the shared `runtime::Hub` (which
//! `playbook run` and the server use) without touching the scenario runner. Must not decide
//! product rules: the engine and the desk do; this only applies a desk change first and the
//! matching engine event after it, rolling the desk back if the engine refuses.

use crate::capture::{self, Commit, Ledger, ManualDetails, ManualKind, Record};
use crate::desk::{Desk, Notification, Presence, Stamp};
use crate::engine::{Channel, Effect, Engine, Event, Instant, Phase, Session, Timer};
use crate::program::Program;

/// What one accepted engine step did.
pub struct Stepped<'e> {
    /// The event, for the transcript.
    pub event: Event<'static>,
    /// Card, phase and tries before the step.
    pub before: (crate::CardIx, Phase, u32),
    /// The effects, in order.
    pub effects: Vec<Effect<'e>>,
    /// Desk notifications caused by it.
    pub notifications: Vec<Notification>,
    /// Records the ledger stored as new, with how many lines were attached.
    pub records: Vec<(Record, u32)>,
    /// When.
    pub at: Instant,
}

/// One conversation and its surroundings.
pub struct Driver<'e> {
    engine: &'e Engine,
    /// The session.
    pub session: Session,
    /// The desk.
    pub desk: Desk,
    /// Stored records.
    pub ledger: Ledger,
    /// Transcript lines (attached to records).
    pub lines: capture::Transcript,
    /// Virtual now.
    pub now: Instant,
    conversation: String,
    contact_owner: Option<String>,
}

impl<'e> Driver<'e> {
    /// A conversation on `desk`, not started, at `now`.
    pub fn new(engine: &'e Engine, desk: Desk, conversation: &str, now: Instant) -> Self {
        Driver {
            engine,
            session: Session::new(),
            desk,
            ledger: Ledger::new(),
            lines: capture::Transcript::default(),
            now,
            conversation: conversation.to_owned(),
            contact_owner: None,
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

    /// Opens the chat, at the playbook's start or at `at` with variables set.
    pub fn start(
        &mut self,
        channel: Channel,
        page: Option<&str>,
        owner: Option<&str>,
        at: Option<(crate::CardIx, &[(&str, &str)])>,
    ) -> Result<Stepped<'e>, String> {
        self.contact_owner = owner.map(str::to_owned);
        let event = Event::Start {
            conversation: self.conversation.clone().into(),
            channel,
            page_url: page.map(|p| p.to_owned().into()),
            contact_owner: owner.map(|o| o.to_owned().into()),
        };
        match at {
            None => self.step(event),
            Some((card, vars)) => {
                let before = self.before();
                let mut effects = Vec::new();
                self.engine
                    .start_at(
                        &mut self.session,
                        event.clone(),
                        card,
                        vars,
                        self.now,
                        &self.desk,
                        &mut effects,
                    )
                    .map_err(|e| e.to_string())?;
                Ok(self.apply(event, before, effects))
            }
        }
    }

    fn before(&self) -> (crate::CardIx, Phase, u32) {
        (self.session.card(), self.session.phase(), self.session.tries)
    }

    /// Feeds one event at `now`.
    pub fn step(&mut self, event: Event<'static>) -> Result<Stepped<'e>, String> {
        let before = self.before();
        let effects = self
            .engine
            .step_vec(&mut self.session, event.clone(), self.now, &self.desk)
            .map_err(|e| e.to_string())?;
        Ok(self.apply(event, before, effects))
    }

    /// Keeps desk, ledger and transcript lines in step with an accepted event's effects.
    fn apply(
        &mut self,
        event: Event<'static>,
        before: (crate::CardIx, Phase, u32),
        effects: Vec<Effect<'e>>,
    ) -> Stepped<'e> {
        self.lines.record(&event, self.now, &effects);
        let mut records = Vec::new();
        for e in &effects {
            match e {
                Effect::EnterUnassigned { route } => {
                    let owner = self.contact_owner.clone();
                    // A conversation enters the desk once: the engine allows one live chat
                    // per path, so a second enqueue can only be a desk bug; keep going.
                    let _ = self.desk.enqueue(&self.conversation, route, owner.as_deref());
                }
                Effect::LeaveUnassigned => {
                    let _ = self.desk.time_out(&self.conversation);
                }
                Effect::RelayToAgent { agent: Some(_), .. } => {
                    let _ = self.desk.visitor_message(&self.conversation);
                }
                Effect::Capture(r) => {
                    if self.ledger.commit((**r).clone(), &self.lines.lines) == Commit::New {
                        self.desk.note_capture(r);
                        let n = (r.messages as usize).min(self.lines.lines.len()) as u32;
                        records.push(((**r).clone(), n));
                    }
                }
                _ => {}
            }
        }
        Stepped {
            event,
            before,
            effects,
            notifications: self.desk.take_notifications(),
            records,
            at: self.now,
        }
    }

    /// Runs a desk change, then the engine event; undoes the desk change if the engine
    /// refuses.
    fn desk_then(
        &mut self,
        change: impl FnOnce(&mut Desk, &str) -> Result<(), crate::desk::DeskError>,
        event: Event<'static>,
    ) -> Result<Stepped<'e>, String> {
        let saved = self.desk.clone();
        change(&mut self.desk, &self.conversation).map_err(|e| e.to_string())?;
        self.step(event).inspect_err(|_| self.desk = saved)
    }

    /// An agent assigns the waiting conversation to themselves.
    pub fn pick_up(&mut self, agent: &str) -> Result<Stepped<'e>, String> {
        self.desk_then(
            |d, c| d.assign_self(c, agent),
            Event::AgentJoined {
                agent: agent.to_owned().into(),
            },
        )
    }

    /// The handling agent passes the conversation on.
    pub fn reassign(&mut self, by: &str, to: &str) -> Result<Stepped<'e>, String> {
        self.desk_then(
            |d, c| d.reassign(c, by, to),
            Event::Reassigned {
                to: to.to_owned().into(),
            },
        )
    }

    /// The handling agent closes the conversation.
    pub fn close(&mut self, agent: &str) -> Result<Stepped<'e>, String> {
        self.desk_then(
            |d, c| d.close(c, agent),
            Event::AgentClosed {
                agent: agent.to_owned().into(),
            },
        )
    }

    /// The handling agent writes.
    pub fn agent_says(&mut self, agent: &str, text: &str) -> Result<Stepped<'e>, String> {
        self.step(Event::AgentMessage {
            agent: agent.to_owned().into(),
            text: text.to_owned().into(),
        })
    }

    /// An agent's presence changes.
    pub fn set_presence(&mut self, agent: &str, p: Presence) -> Result<(), String> {
        self.desk.set_presence(agent, p).map_err(|e| e.to_string())
    }

    /// An agent makes a lead or deal from the conversation.
    pub fn create_record(
        &mut self,
        agent: &str,
        kind: ManualKind,
        details: ManualDetails,
    ) -> Result<Option<(Record, u32)>, String> {
        let stamp = Stamp {
            now: self.now,
            channel: self.session.channel(),
            messages: self.session.messages(),
        };
        let r = self
            .desk
            .create_record(&self.conversation, agent, kind, details, stamp)
            .map_err(|e| e.to_string())?;
        let n = (r.messages as usize).min(self.lines.lines.len()) as u32;
        Ok((self.ledger.commit(r.clone(), &self.lines.lines) == Commit::New).then_some((r, n)))
    }

    /// The earliest pending timer due at or before `until`.
    fn due(&self, until: Instant) -> Option<Timer> {
        self.session
            .timers()
            .filter(|t| t.at <= until)
            .min_by_key(|t| t.at)
    }

    /// Virtual time passes until `until`: due timers fire in order, each at its own time.
    pub fn advance(&mut self, until: Instant) -> Vec<Result<Stepped<'e>, String>> {
        let mut out = Vec::new();
        while let Some(t) = self.due(until) {
            self.now = self.now.max(t.at);
            let r = self.step(Event::TimerFired(t));
            let stop = r.is_err();
            out.push(r);
            if stop {
                break;
            }
        }
        self.now = self.now.max(until);
        out
    }
}
