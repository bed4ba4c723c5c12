//! A tiny test driver: feeds events to the engine, keeps the desk, ledger and transcript in
//! step, and renders effects as one readable line each.

#![allow(dead_code)]

use std::borrow::Cow;

use playbook::capture::{Commit, Ledger, RecordData, Transcript};
use playbook::desk::Desk;
use playbook::engine::{
    Channel, Effect, Engine, EngineError, Event, Instant, Session, Speaker, Timer,
};

/// Builds an engine from playbook JSON, which must pass `check`.
pub fn engine(json: &str) -> Engine {
    let pb: playbook::model::Playbook = serde_json::from_str(json).expect("playbook JSON");
    let program = playbook::check::check(pb)
        .into_result()
        .unwrap_or_else(|d| panic!("check failed: {d:?}"));
    Engine::new(program)
}

/// Renders one effect.
pub fn line(e: &Effect<'_>) -> String {
    let who = |s: &Speaker<'_>| match s {
        Speaker::Bot(n) => n.to_string(),
        Speaker::Agent(n) => format!("agent {n}"),
        Speaker::System => "*".to_owned(),
    };
    match e {
        Effect::Say {
            from,
            text,
            channel,
        } => format!("[{}] {}: {text}", channel.name(), who(from)),
        Effect::Ask {
            from,
            text,
            buttons,
            channel,
            retry,
        } => format!(
            "[{}] {}{} {text}{}",
            channel.name(),
            who(from),
            if *retry { " (again)?" } else { "?" },
            if buttons.is_empty() {
                String::new()
            } else {
                format!(" [{}]", buttons.join(" | "))
            }
        ),
        Effect::RelayToAgent {
            agent,
            text,
            channel,
        } => format!(
            "relay to {} from [{}]: {text}",
            agent.as_deref().unwrap_or("Unassigned"),
            channel.name()
        ),
        Effect::EnterUnassigned { route } => format!("enter Unassigned ({:?})", route.to),
        Effect::Consent { given: Some(c) } => format!("consent {:?} at {}", c.mode, c.at.0),
        Effect::Consent { given: None } => "consent declined".to_owned(),
        Effect::LeaveUnassigned => "leave Unassigned".to_owned(),
        Effect::SetTimer(t) => format!("set timer {:?} at {}", t.kind, t.at.0),
        Effect::CancelTimer { kind } => format!("cancel timer {kind:?}"),
        Effect::Capture(r) => {
            let what = match &r.data {
                RecordData::Lead(l) => format!(
                    "lead {:?} email={:?} source={} status={}",
                    l.title, l.person.email, l.source, l.status
                ),
                RecordData::Deal(d) => format!("deal {:?} value={:?}", d.title, d.value),
                RecordData::Activity(a) => format!(
                    "activity {:?} {:?} due={:?} link={:?}",
                    a.activity, a.subject, a.due, a.link
                ),
            };
            format!("capture {} owner={:?}: {what}", r.key, r.owner)
        }
        Effect::End { outcome } => format!("end {outcome:?}"),
        Effect::Failed(f) => format!("failed: {f}"),
        Effect::Entered { card, via } => match via {
            Some(v) => format!("entered {card} from {} via {:?}", v.from, v.link),
            None => format!("entered {card}"),
        },
    }
}

/// A conversation with its surroundings.
pub struct Chat<'e> {
    pub engine: &'e Engine,
    pub session: Session,
    pub desk: Desk,
    pub ledger: Ledger,
    pub transcript: Transcript,
    pub now: Instant,
    /// Every line so far, with the input that caused it.
    pub log: Vec<String>,
}

impl<'e> Chat<'e> {
    pub fn new(engine: &'e Engine, desk: Desk) -> Self {
        Chat {
            engine,
            session: Session::new(),
            desk,
            ledger: Ledger::new(),
            transcript: Transcript::default(),
            now: Instant(1_700_000_000_000),
            log: Vec::new(),
        }
    }

    /// Feeds an event at the current time; returns the effect lines.
    pub fn send(&mut self, event: Event<'_>) -> Result<Vec<String>, EngineError> {
        let before = self.session.clone();
        let effects = self
            .engine
            .step_vec(&mut self.session, event.clone(), self.now, &self.desk);
        let effects = match effects {
            Ok(e) => e,
            Err(err) => {
                assert_eq!(self.session, before, "an error left the session changed");
                self.log
                    .push(format!("> {} => error: {err}", describe(&event)));
                return Err(err);
            }
        };
        self.transcript.record(&event, self.now, &effects);
        assert_eq!(
            self.transcript.lines.len() as u32,
            self.session.messages(),
            "transcript and session disagree on the message count"
        );
        for e in &effects {
            if let Effect::Capture(r) = e
                && self.ledger.commit((**r).clone(), &self.transcript.lines) == Commit::New
            {
                self.desk.note_capture(r);
            }
        }
        self.log.push(format!("> {}", describe(&event)));
        self.log
            .extend(effects.iter().map(|e| format!("  {}", line(e))));
        // Assertions read what people see and what the driver must do; where the flow went
        // is pinned by the log (and the snapshots).
        Ok(effects
            .iter()
            .filter(|e| !matches!(e, Effect::Entered { .. }))
            .map(line)
            .collect())
    }

    pub fn start(&mut self) -> Vec<String> {
        self.send(Event::Start {
            conversation: "conv-1".into(),
            channel: Channel::Web,
            page_url: Some("https://example.com/pricing".into()),
            contact_owner: None,
        })
        .expect("start")
    }

    pub fn say(&mut self, text: &str) -> Vec<String> {
        self.send(Event::VisitorText {
            text: text.into(),
            channel: self.session.channel(),
        })
        .expect("visitor text")
    }

    pub fn at(&mut self, ms_from_start: u64) -> &mut Self {
        self.now = Instant(1_700_000_000_000 + ms_from_start);
        self
    }

    pub fn fire(&mut self, t: Timer) -> Result<Vec<String>, EngineError> {
        self.now = self.now.max(t.at);
        self.send(Event::TimerFired(t))
    }

    /// The pending timer of a kind.
    pub fn timer(&self, kind: playbook::engine::TimerKind) -> Timer {
        self.session
            .timers()
            .find(|t| t.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} timer pending"))
    }

    pub fn log(&self) -> String {
        self.log.join("\n")
    }
}

fn describe(e: &Event<'_>) -> String {
    match e {
        Event::Start { conversation, .. } => format!("start {conversation}"),
        Event::VisitorText { text, channel } => format!("visitor [{}]: {text}", channel.name()),
        Event::VisitorChoice { index, .. } => format!("visitor presses button {index}"),
        Event::AgentJoined { agent } => format!("{agent} picks up"),
        Event::AgentMessage { agent, text } => format!("{agent}: {text}"),
        Event::AgentClosed { agent } => format!("{agent} closes"),
        Event::Reassigned { to } => format!("reassigned to {to}"),
        Event::ChannelSwitched { channel, .. } => format!("continues on {}", channel.name()),
        Event::TimerFired(t) => format!("timer {:?} fires", t.kind),
    }
}

pub fn cow(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}
