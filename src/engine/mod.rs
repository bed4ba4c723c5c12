//! The interpreter: a pure, deterministic state machine over a checked [`Program`].
//!
//! Like quinn-proto, it takes an [`Event`] and a `now` and hands back [`Effect`]s; sockets,
//! clocks, timers, storage and the agent desk live in the driver. **Must not:** use tokio,
//! read a clock, do I/O, use randomness, or allocate per turn what it can borrow.
//!
//! ```text
//! let engine = Engine::new(program);
//! let mut session = Session::new();
//! let mut out = Vec::new();
//! engine.step(&mut session, Event::Start { .. }, now, &desk, &mut out)?;
//! ```
//!
//! # Rules the engine decides
//!
//! - **Who is online.** The step takes a read-only [`DeskView`]: the engine asks it, in the
//!   middle of a step, whether a live chat's route has an available agent, whether a reassign
//!   target is online and whose turn it is in a distribution pool. The alternative (emit
//!   `RequestAgent`, wait for a `PresenceAnswer` event) would add a half-state to every
//!   session, split one visitor turn into two steps, and open a window in which presence
//!   changes; a borrowed view keeps each step atomic and still pure (same view, same result).
//! - **No agent available** (route with `availability: available` and nobody online, or
//!   `route owner` with no known owner): the card says its `offline` message — the same one
//!   a wait timeout says — and the flow moves to `on_offline` at once. A visitor who asked
//!   for a person is never left without a word (the offline branch should not repeat it).
//! - **Pick-up racing the wait timer.** The wait is the half-open interval
//!   `[entered, deadline)`. `AgentJoined` with `now < deadline` joins; with `now >= deadline`
//!   it is refused ([`EngineError::PickupTooLate`], session unchanged) and the timer, whenever
//!   it is delivered, moves the visitor on. The outcome is the same in either event order.
//! - **While an agent handles the chat** the bot's display name is the agent's; once the
//!   agent closes it, the bot's own again (its closing line is the bot's, not the agent's).
//!   Records made after an agent joined say `Live chat`.
//! - **Timers** are data: at most one per [`TimerKind`]; `SetTimer` replaces the pending one
//!   of its kind. A fired timer that is not the one the session holds (stale, or for a card
//!   left since) is ignored with no effects; one that fires early is an error. Timers after
//!   the end are ignored too (a driver cannot always stop one in flight).
//! - **Idle capture** (`limits.idle_capture`): the deadline restarts at every visitor message;
//!   when it passes and the session holds contact details (a variable named `email` or
//!   `phone`, or saved by an `ask` expecting one) and no lead was captured yet, one
//!   "unfinished conversation" lead is captured — unless the visitor is at an explicit
//!   consent question (not agreed yet) or declined one: consent is honoured for idle leads
//!   too. The conversation itself goes on waiting.
//!   If the visitor comes back and reaches a lead capture card, that card's lead still
//!   happens (it holds what the admin asked for) under its own key, but it names the idle
//!   lead in [`crate::capture::Record::supersedes`]: one person, one lead, updated — the
//!   ledger replaces the idle lead with it and a CRM sink updates instead of inserting.
//!   (Suppressing the idle capture while a capture card "could still run" would rarely
//!   capture at all, since from most cards some capture card is reachable.)
//! - **Visitor and agent texts** longer than [`MAX_TEXT_CHARS`] characters are refused.
//! - **Where the flow goes** is reported, not left to be inferred: every card entered yields
//!   [`Effect::Entered`] with the link of the previous card that led there ([`Via`]), so
//!   coverage and tracing never have to match rendered text against templates.
//! - Texts the engine writes itself (joined/closed notices, the goodbye after declined
//!   consent, default re-prompts) are English.

mod compile;
mod input;
mod session;
mod types;
mod words;

use std::borrow::Cow;
use std::collections::BTreeMap;

pub use input::{is_email, is_phone, parse_number};
pub use session::{Phase, Session, Status, Vars};
pub use types::{Channel, Effect, Event, Failure, Instant, Speaker, Timer, TimerKind, Via};

use compile::{Compiled, Compiler, Go, IdleDo, SysCtx, Tpl, VarRef};
use session::{Deadline, flag, key};
use words::Words;

use crate::CardIx;
use crate::capture::{self, Values};
use crate::model::{Card, InputKind, LinkKind, Outcome, Route, RouteTarget};
use crate::program::Program;

/// The longest visitor or agent message accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The bot's display name when the playbook names none.
pub const DEFAULT_BOT_NAME: &str = "Bot";

/// Said when a visitor declines explicit consent and the card has no `on_decline`.
pub const DECLINE_GOODBYE: &str =
    "No problem. We won't process your data, so we'll end the chat here. Goodbye!";

/// What the engine may ask the live-chat desk, read-only, during a step.
pub trait DeskView {
    /// Whether an agent the route names is available right now (`contact_owner` is the
    /// visitor's CRM owner, for `route owner`).
    fn available(&self, route: &Route, contact_owner: Option<&str>) -> bool;
    /// Whether this agent is online (reassign targets must be).
    fn is_online(&self, agent: &str) -> bool;
    /// The member of this distribution pool whose turn it is, without advancing the pool.
    fn pool_owner(&self, pool: &str) -> Option<&str>;
}

/// A desk with nobody on it: every live chat goes offline at once, pools are empty.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDesk;

impl DeskView for NoDesk {
    fn available(&self, _: &Route, _: Option<&str>) -> bool {
        false
    }
    fn is_online(&self, _: &str) -> bool {
        false
    }
    fn pool_owner(&self, _: &str) -> Option<&str> {
        None
    }
}

/// An event that makes no sense in the session's state. The session is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Anything but `Start` before the conversation started.
    #[error("the conversation has not started")]
    NotStarted,
    /// `Start` twice.
    #[error("the conversation has already started")]
    AlreadyStarted,
    /// Any visitor or agent event after the end.
    #[error("the conversation is over")]
    Ended,
    /// A message longer than [`MAX_TEXT_CHARS`].
    #[error("the message is {chars} characters long; the limit is {max}")]
    TextTooLong {
        /// Its length.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A button press while no question with buttons is asked.
    #[error("no question with buttons is being asked")]
    NothingToChoose,
    /// A button index past the last button.
    #[error("there is no button {index} (the question has {count})")]
    NoSuchChoice {
        /// The index pressed.
        index: usize,
        /// How many buttons there are.
        count: usize,
    },
    /// A pick-up while the conversation is not waiting in Unassigned.
    #[error("the conversation is not waiting for an agent")]
    NotWaitingForAgent,
    /// A pick-up at or after the wait deadline: the timeout won.
    #[error("too late to pick up: the wait ended at {deadline}")]
    PickupTooLate {
        /// When the wait ended.
        deadline: Instant,
    },
    /// An agent message, close or reassign while no agent handles the conversation.
    #[error("no agent handles this conversation")]
    NoAgent,
    /// An agent acting on a conversation another agent handles.
    #[error("`{agent}` does not handle this conversation (`{handler}` does)")]
    WrongAgent {
        /// Who acted.
        agent: String,
        /// Who handles it.
        handler: String,
    },
    /// A reassign to an agent who is not online.
    #[error("`{0}` is not online")]
    AgentOffline(String),
    /// A reassign to the agent who already handles it.
    #[error("`{0}` already handles this conversation")]
    SameAgent(String),
    /// A channel switch to the channel the conversation is already on.
    #[error("the conversation is already on {0}")]
    SameChannel(&'static str),
    /// A timer delivered before its deadline.
    #[error("timer for {at} delivered early at {now}")]
    TimerEarly {
        /// Its deadline.
        at: Instant,
        /// When it was delivered.
        now: Instant,
    },
}

/// The compiled program and the step function. Build once, share between sessions.
pub struct Engine {
    program: Program,
    cards: Box<[Compiled]>,
    /// Playbook variable names; key `k` is `vars[k - FIRST_USER_KEY]`.
    vars: Box<[String]>,
    index: std::collections::HashMap<String, u32>,
    bot: Box<str>,
    /// The chat's own notices, in the playbook's language.
    words: Words,
    greeting: Option<Tpl>,
    start: CardIx,
    max_steps: u32,
    idle_capture_ms: Option<u64>,
    /// Keys of variables that hold an email / a phone number.
    email_keys: Box<[u32]>,
    phone_keys: Box<[u32]>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("playbook", &self.program.playbook().playbook.name)
            .field("cards", &self.cards.len())
            .finish_non_exhaustive()
    }
}

struct Ctx<'d> {
    now: Instant,
    desk: &'d dyn DeskView,
}

impl Engine {
    /// Compiles a checked program.
    pub fn new(program: Program) -> Self {
        let mut c = Compiler {
            vars: Vec::new(),
            index: Default::default(),
        };
        let cards: Box<[Compiled]> = program
            .cards()
            .iter()
            .map(|k| c.card(&program, k))
            .collect();
        let header = &program.playbook().playbook;
        let greeting = header.greeting.as_ref().map(|t| c.tpl(t));
        let (mut email_keys, mut phone_keys) = (Vec::new(), Vec::new());
        for card in program.cards() {
            if let Card::Ask(a) = card
                && let Some(v) = &a.save
                && let Some(&k) = c.index.get(v.as_str())
            {
                match a.expect {
                    InputKind::Email => email_keys.push(k),
                    InputKind::Phone => phone_keys.push(k),
                    _ => {}
                }
            }
        }
        for (name, list) in [("email", &mut email_keys), ("phone", &mut phone_keys)] {
            if let Some(&k) = c.index.get(name)
                && !list.contains(&k)
            {
                list.push(k);
            }
        }
        Engine {
            bot: header.bot.as_deref().unwrap_or(DEFAULT_BOT_NAME).into(),
            words: Words::for_language(header.language.as_deref()),
            start: program.start(),
            max_steps: header.limits.max_steps(),
            idle_capture_ms: header.limits.idle_capture.map(|d| d.as_millis()),
            greeting,
            cards,
            vars: c.vars.into_boxed_slice(),
            index: c.index,
            email_keys: email_keys.into(),
            phone_keys: phone_keys.into(),
            program,
        }
    }

    /// The program it runs.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The playbook variables of a session by name, in key order (system values left out).
    pub fn variables<'s>(&self, s: &'s Session) -> BTreeMap<&str, &'s str> {
        s.vars
            .iter()
            .filter_map(|(k, v)| {
                let i = k.checked_sub(key::FIRST_USER_KEY)? as usize;
                let name = self.vars.get(i)?;
                (!name.starts_with('#')).then_some((name.as_str(), v))
            })
            .collect()
    }

    /// The id of the session's current card.
    pub fn card_id(&self, s: &Session) -> &str {
        self.program
            .cards()
            .get(s.card as usize)
            .map_or("", |c| c.id().as_str())
    }

    /// Feeds one event to a session, appending what to do to `out`.
    ///
    /// On error the session is unchanged and nothing is appended.
    pub fn step<'e>(
        &'e self,
        session: &mut Session,
        event: Event<'_>,
        now: Instant,
        desk: &dyn DeskView,
        out: &mut Vec<Effect<'e>>,
    ) -> Result<(), EngineError> {
        self.validate(session, &event, now, desk)?;
        let cx = Ctx { now, desk };
        self.apply(session, event, &cx, out);
        Ok(())
    }

    /// Starts a conversation with `vars` set first (names the playbook does not use are
    /// skipped: see [`Engine::has_variable`]). With a `card`, there instead of the playbook's
    /// start and without the greeting (scenario tests test a long flow's tail on its own);
    /// without, as [`Engine::step`] starts it (a server passing what it knows of the visitor).
    /// `event` must be [`Event::Start`].
    #[allow(clippy::too_many_arguments)]
    pub fn start_at<'e>(
        &'e self,
        session: &mut Session,
        event: Event<'_>,
        card: Option<CardIx>,
        vars: &[(&str, &str)],
        now: Instant,
        desk: &dyn DeskView,
        out: &mut Vec<Effect<'e>>,
    ) -> Result<(), EngineError> {
        self.validate(session, &event, now, desk)?;
        let Event::Start { .. } = &event else {
            return Err(EngineError::AlreadyStarted);
        };
        let last = self.program.cards().len().saturating_sub(1) as CardIx;
        let card = card.map(|c| c.min(last));
        for (name, value) in vars {
            if let Some(&k) = self.index.get(*name) {
                session.vars.set(k, value);
            }
        }
        let cx = Ctx { now, desk };
        self.begin(session, event, card, &cx, out);
        Ok(())
    }

    /// Whether the playbook uses a variable of this name (saves, reads or templates it).
    pub fn has_variable(&self, name: &str) -> bool {
        self.index.contains_key(name) && !name.starts_with('#')
    }

    /// [`Engine::step`] returning a fresh vector.
    pub fn step_vec<'e>(
        &'e self,
        session: &mut Session,
        event: Event<'_>,
        now: Instant,
        desk: &dyn DeskView,
    ) -> Result<Vec<Effect<'e>>, EngineError> {
        let mut out = Vec::new();
        self.step(session, event, now, desk, &mut out)?;
        Ok(out)
    }

    /// Every check that can refuse an event, before anything changes.
    fn validate(
        &self,
        s: &Session,
        event: &Event<'_>,
        now: Instant,
        desk: &dyn DeskView,
    ) -> Result<(), EngineError> {
        let text_ok = |t: &str| {
            // Bytes bound characters from above: only count when it could matter.
            if t.len() > MAX_TEXT_CHARS {
                let chars = t.chars().count();
                if chars > MAX_TEXT_CHARS {
                    return Err(EngineError::TextTooLong {
                        chars,
                        max: MAX_TEXT_CHARS,
                    });
                }
            }
            Ok(())
        };
        match (event, s.phase) {
            (Event::Start { said, .. }, Phase::New) => {
                return said.as_deref().map_or(Ok(()), text_ok);
            }
            (Event::Start { .. }, _) => return Err(EngineError::AlreadyStarted),
            (_, Phase::New) => return Err(EngineError::NotStarted),
            (Event::TimerFired(t), _) if t.at > now => {
                return Err(EngineError::TimerEarly { at: t.at, now });
            }
            (Event::TimerFired(_), _) => return Ok(()),
            (_, Phase::Ended(_) | Phase::Failed) => return Err(EngineError::Ended),
            _ => {}
        }
        let handler = || s.vars.get(key::AGENT).unwrap_or("");
        let is_handler = |agent: &str| {
            if s.phase != Phase::Live {
                Err(EngineError::NoAgent)
            } else if agent != handler() {
                Err(EngineError::WrongAgent {
                    agent: agent.to_owned(),
                    handler: handler().to_owned(),
                })
            } else {
                Ok(())
            }
        };
        match event {
            Event::VisitorText { text, .. } => text_ok(text),
            Event::VisitorChoice { index, .. } => {
                let count = match (&self.cards[s.card as usize], s.phase) {
                    (Compiled::Question { buttons, .. }, Phase::Asking) => buttons.labels.len(),
                    (Compiled::Consent { buttons, .. }, Phase::Asking) => buttons.labels.len(),
                    _ => return Err(EngineError::NothingToChoose),
                };
                if *index >= count {
                    return Err(EngineError::NoSuchChoice {
                        index: *index,
                        count,
                    });
                }
                Ok(())
            }
            Event::AgentJoined { .. } => {
                if s.phase != Phase::Queued {
                    return Err(EngineError::NotWaitingForAgent);
                }
                match s.card_timer.get() {
                    Some(deadline) if now >= deadline => {
                        Err(EngineError::PickupTooLate { deadline })
                    }
                    _ => Ok(()),
                }
            }
            Event::AgentMessage { agent, text } => {
                is_handler(agent)?;
                text_ok(text)
            }
            Event::AgentClosed { agent } => is_handler(agent),
            Event::ChannelSwitched { channel, said } => {
                if *channel == s.channel && said.is_none() {
                    return Err(EngineError::SameChannel(channel.name()));
                }
                said.as_deref().map_or(Ok(()), text_ok)
            }
            Event::Reassigned { to } => {
                if s.phase != Phase::Live {
                    return Err(EngineError::NoAgent);
                }
                if to.as_ref() == handler() {
                    return Err(EngineError::SameAgent(to.to_string()));
                }
                if !desk.is_online(to) {
                    return Err(EngineError::AgentOffline(to.to_string()));
                }
                Ok(())
            }
            Event::Start { .. } | Event::TimerFired(_) => Ok(()),
        }
    }

    fn sys(&self) -> SysCtx<'_> {
        SysCtx { bot: &self.bot }
    }

    /// The bot as speaker: borrowed unless an agent took over.
    fn bot_speaker<'e>(&'e self, s: &Session) -> Speaker<'e> {
        match s.handler() {
            Some(a) => Speaker::Bot(Cow::Owned(a.to_owned())),
            None => Speaker::Bot(Cow::Borrowed(&self.bot)),
        }
    }

    fn say<'e>(&'e self, s: &mut Session, text: Cow<'e, str>, out: &mut Vec<Effect<'e>>) {
        s.messages = s.messages.saturating_add(1);
        out.push(Effect::Say {
            from: self.bot_speaker(s),
            text,
            channel: s.channel,
        });
    }

    fn notice<'e>(&'e self, s: &mut Session, text: String, out: &mut Vec<Effect<'e>>) {
        s.messages = s.messages.saturating_add(1);
        out.push(Effect::Say {
            from: Speaker::System,
            text: Cow::Owned(text),
            channel: s.channel,
        });
    }

    fn ask<'e>(
        &'e self,
        s: &mut Session,
        text: Cow<'e, str>,
        buttons: &'e [String],
        retry: bool,
        out: &mut Vec<Effect<'e>>,
    ) {
        s.messages = s.messages.saturating_add(1);
        out.push(Effect::Ask {
            from: self.bot_speaker(s),
            text,
            buttons: Cow::Borrowed(buttons),
            channel: s.channel,
            retry,
        });
    }

    fn visitor_heard(
        &self,
        s: &mut Session,
        channel: Channel,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'_>>,
    ) {
        s.messages = s.messages.saturating_add(1);
        s.channel = channel;
        self.arm_idle_capture(s, cx, out);
    }

    fn arm_idle_capture(&self, s: &mut Session, cx: &Ctx<'_>, out: &mut Vec<Effect<'_>>) {
        if let Some(ms) = self.idle_capture_ms
            && !s.has(flag::IDLE_CAPTURED | flag::LEAD)
        {
            let at = cx.now.after_ms(ms);
            s.capture_timer = Deadline::set(at);
            out.push(Effect::SetTimer(Timer {
                kind: TimerKind::IdleCapture,
                at,
            }));
        }
    }

    /// Leaves the current waiting card: its timer no longer applies.
    fn leave(&self, s: &mut Session, out: &mut Vec<Effect<'_>>) {
        if s.card_timer.get().is_some() {
            let kind = if s.phase == Phase::Queued {
                TimerKind::Wait
            } else {
                TimerKind::Idle
            };
            s.card_timer = Deadline::NONE;
            out.push(Effect::CancelTimer { kind });
        }
        s.tries = 0;
    }

    fn apply<'e>(
        &'e self,
        s: &mut Session,
        event: Event<'_>,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'e>>,
    ) {
        match event {
            event @ Event::Start { .. } => self.begin(s, event, None, cx, out),
            Event::VisitorText { text, channel } => {
                self.visitor_heard(s, channel, cx, out);
                self.visitor_text(s, &text, cx, out);
            }
            Event::VisitorChoice { index, channel } => {
                self.visitor_heard(s, channel, cx, out);
                self.choose(s, index, cx, out);
            }
            Event::AgentJoined { agent } => {
                self.leave(s, out);
                s.vars.set(key::AGENT, &agent);
                s.flags |= flag::HANDOFF;
                s.phase = Phase::Live;
                self.notice(s, self.words.joined(&agent), out);
            }
            Event::AgentMessage { agent, text } => {
                s.messages = s.messages.saturating_add(1);
                out.push(Effect::Say {
                    from: Speaker::Agent(Cow::Owned(agent.into_owned())),
                    text: Cow::Owned(text.into_owned()),
                    channel: s.channel,
                });
            }
            Event::AgentClosed { agent } => {
                self.notice(s, self.words.closed(&agent), out);
                let Compiled::LiveChat { on_closed, .. } = &self.cards[s.card as usize] else {
                    return;
                };
                // Nobody handles the chat any more: the bot speaks as itself from here (the
                // card the flow stops at sets the phase it waits in).
                s.phase = Phase::Asking;
                self.run(s, Go::Card(*on_closed), Some(LinkKind::Closed), cx, out);
            }
            Event::Reassigned { to } => {
                s.vars.set(key::AGENT, &to);
                self.notice(s, self.words.joined(&to), out);
            }
            Event::ChannelSwitched { channel, said } => {
                if said.is_some() {
                    // The linking message is a transcript line, not an answer.
                    s.messages = s.messages.saturating_add(1);
                }
                s.channel = channel;
                self.notice(s, self.words.continues(channel), out);
            }
            Event::TimerFired(t) => self.timer(s, t, cx, out),
        }
    }

    /// `Start`: from the playbook's start with its greeting, or (`start_at`) from `at`
    /// without it.
    fn begin<'e>(
        &'e self,
        s: &mut Session,
        event: Event<'_>,
        at: Option<CardIx>,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'e>>,
    ) {
        let Event::Start {
            conversation,
            channel,
            page_url,
            contact_owner,
            said,
        } = event
        else {
            return;
        };
        if said.is_some() {
            // The opening message is a transcript line.
            s.messages = s.messages.saturating_add(1);
        }
        s.vars.set(key::CONVERSATION, &conversation);
        if let Some(u) = page_url {
            s.vars.set(key::PAGE_URL, &u);
        }
        if let Some(o) = contact_owner {
            s.vars.set(key::CONTACT_OWNER, &o);
        }
        s.channel = channel;
        s.started_at = cx.now;
        self.arm_idle_capture(s, cx, out);
        if at.is_none()
            && let Some(g) = &self.greeting
        {
            let text = g.render(s, &self.sys());
            self.say(s, text, out);
        }
        self.run(s, Go::Card(at.unwrap_or(self.start)), None, cx, out);
    }

    fn visitor_text<'e>(
        &'e self,
        s: &mut Session,
        text: &str,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'e>>,
    ) {
        match (&self.cards[s.card as usize], s.phase) {
            (
                Compiled::Question {
                    buttons,
                    save,
                    free_text,
                    text: q,
                    ..
                },
                Phase::Asking,
            ) => {
                if let Some(i) = buttons.pick(text) {
                    return self.choose(s, i, cx, out);
                }
                if let Some(to) = free_text {
                    if let Some(k) = save {
                        s.vars.set(*k, text.trim());
                    }
                    self.leave(s, out);
                    return self.run(s, Go::Card(*to), Some(LinkKind::FreeText), cx, out);
                }
                let q = q.render(s, &self.sys());
                self.ask(s, q, &buttons.labels, true, out);
            }
            (
                Compiled::Consent {
                    buttons, notice, ..
                },
                Phase::Asking,
            ) => {
                if let Some(i) = buttons.pick(text) {
                    return self.choose(s, i, cx, out);
                }
                let n = notice.render(s, &self.sys());
                self.ask(s, n, &buttons.labels, true, out);
            }
            (
                Compiled::Ask {
                    expect,
                    save,
                    reprompt,
                    give_up,
                    then,
                    ..
                },
                Phase::Asking,
            ) => {
                let t = text.trim();
                if input::valid(expect, t) {
                    if let Some(k) = save {
                        s.vars.set(*k, t);
                    }
                    self.leave(s, out);
                    return self.run(s, Go::Card(*then), Some(LinkKind::Valid), cx, out);
                }
                s.tries = s.tries.saturating_add(1);
                if let Some((after, to)) = give_up
                    && s.tries >= *after
                {
                    self.leave(s, out);
                    return self.run(s, Go::Card(*to), Some(LinkKind::GiveUp), cx, out);
                }
                let r = reprompt.render(s, &self.sys());
                self.ask(s, r, &[], true, out);
            }
            (_, Phase::Queued) => out.push(Effect::RelayToAgent {
                agent: None,
                text: Cow::Owned(text.to_owned()),
                channel: s.channel,
            }),
            (_, Phase::Live) => out.push(Effect::RelayToAgent {
                agent: s.vars.get(key::AGENT).map(|a| Cow::Owned(a.to_owned())),
                text: Cow::Owned(text.to_owned()),
                channel: s.channel,
            }),
            // Validation admits visitor text only in the phases above.
            _ => {}
        }
    }

    fn choose<'e>(
        &'e self,
        s: &mut Session,
        index: usize,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'e>>,
    ) {
        match &self.cards[s.card as usize] {
            Compiled::Question {
                buttons,
                save,
                targets,
                ..
            } => {
                let (Some(label), Some(&to)) = (buttons.labels.get(index), targets.get(index))
                else {
                    return;
                };
                if let Some(k) = save {
                    s.vars.set(*k, label);
                }
                self.leave(s, out);
                self.run(s, Go::Card(to), Some(LinkKind::Answer(index)), cx, out);
            }
            Compiled::Consent {
                then,
                on_decline,
                notice,
                ..
            } => {
                self.leave(s, out);
                if index == 0 {
                    s.flags = (s.flags | flag::CONSENTED) & !flag::DECLINED;
                    out.push(Effect::Consent {
                        given: Some(Box::new(capture::Consent {
                            mode: capture::ConsentMode::Explicit,
                            notice: notice.render(s, &self.sys()).into_owned(),
                            at: cx.now,
                        })),
                    });
                    self.run(s, Go::Card(*then), Some(LinkKind::Agreed), cx, out);
                } else if let Some(to) = on_decline {
                    s.flags |= flag::DECLINED;
                    out.push(Effect::Consent { given: None });
                    self.run(s, Go::Card(*to), Some(LinkKind::Declined), cx, out);
                } else {
                    self.say(s, Cow::Borrowed(DECLINE_GOODBYE), out);
                    self.finish(s, Outcome::None, out);
                }
            }
            _ => {}
        }
    }

    fn timer<'e>(&'e self, s: &mut Session, t: Timer, cx: &Ctx<'_>, out: &mut Vec<Effect<'e>>) {
        match t.kind {
            TimerKind::IdleCapture => {
                if s.capture_timer.get() != Some(t.at) || !matches!(s.status(), Status::Waiting) {
                    return;
                }
                s.capture_timer = Deadline::NONE;
                self.idle_capture(s, cx, out);
            }
            TimerKind::Idle => {
                if s.phase != Phase::Asking || s.card_timer.get() != Some(t.at) {
                    return;
                }
                let idle = match &self.cards[s.card as usize] {
                    Compiled::Question { idle, .. } | Compiled::Ask { idle, .. } => idle,
                    _ => return,
                };
                let Some(idle) = idle else { return };
                s.card_timer = Deadline::NONE;
                match &idle.then {
                    IdleDo::Nudge(text) => {
                        let text = text.render(s, &self.sys());
                        self.say(s, text, out);
                    }
                    IdleDo::Goto(to) => {
                        s.tries = 0;
                        self.run(s, Go::Card(*to), Some(LinkKind::Idle), cx, out);
                    }
                }
            }
            TimerKind::Wait => {
                if s.phase != Phase::Queued || s.card_timer.get() != Some(t.at) {
                    return;
                }
                let Compiled::LiveChat {
                    offline,
                    on_timeout,
                    ..
                } = &self.cards[s.card as usize]
                else {
                    return;
                };
                s.card_timer = Deadline::NONE;
                out.push(Effect::LeaveUnassigned);
                let text = offline.render(s, &self.sys());
                self.say(s, text, out);
                self.run(s, Go::Card(*on_timeout), Some(LinkKind::Timeout), cx, out);
            }
        }
    }

    fn arm_card_timer(
        &self,
        s: &mut Session,
        kind: TimerKind,
        ms: u64,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'_>>,
    ) {
        let at = cx.now.after_ms(ms);
        s.card_timer = Deadline::set(at);
        out.push(Effect::SetTimer(Timer { kind, at }));
    }

    /// Runs cards from `go` until one waits or the conversation ends. `via` is the link of
    /// the current card that leads to `go` (`None` when the conversation starts); every card
    /// entered is reported with [`Effect::Entered`] and the link that led to it.
    fn run<'e>(
        &'e self,
        s: &mut Session,
        mut go: Go,
        mut via: Option<LinkKind>,
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'e>>,
    ) {
        let mut steps = 0u32;
        loop {
            let ix = match go {
                Go::End(o) => return self.finish(s, o, out),
                Go::Card(ix) => ix,
            };
            if steps >= self.max_steps {
                let card = self.program.card(ix).id().to_string();
                self.stop_timers(s, out);
                s.phase = Phase::Failed;
                out.push(Effect::Failed(Failure::StepLimit {
                    limit: self.max_steps,
                    card,
                }));
                return;
            }
            steps += 1;
            out.push(Effect::Entered {
                card: Cow::Borrowed(self.program.card(ix).id().as_str()),
                via: via.map(|link| Via {
                    from: Cow::Borrowed(self.program.card(s.card).id().as_str()),
                    link,
                }),
            });
            s.card = ix;
            s.tries = 0;
            match &self.cards[ix as usize] {
                Compiled::Message { text, then } => {
                    let text = text.render(s, &self.sys());
                    self.say(s, text, out);
                    go = *then;
                    via = Some(LinkKind::Next);
                }
                Compiled::Question {
                    text,
                    buttons,
                    idle,
                    ..
                } => {
                    s.phase = Phase::Asking;
                    let text = text.render(s, &self.sys());
                    self.ask(s, text, &buttons.labels, false, out);
                    if let Some(i) = idle {
                        self.arm_card_timer(s, TimerKind::Idle, i.after_ms, cx, out);
                    }
                    return;
                }
                Compiled::Ask { text, idle, .. } => {
                    s.phase = Phase::Asking;
                    let text = text.render(s, &self.sys());
                    self.ask(s, text, &[], false, out);
                    if let Some(i) = idle {
                        self.arm_card_timer(s, TimerKind::Idle, i.after_ms, cx, out);
                    }
                    return;
                }
                Compiled::Branch { rules, otherwise } => {
                    let sys = self.sys();
                    let (to, link) = match rules.iter().position(|(c, _)| c.holds(s, &sys)) {
                        Some(i) => (rules[i].1, LinkKind::Rule(i)),
                        None => (*otherwise, LinkKind::Otherwise),
                    };
                    go = Go::Card(to);
                    via = Some(link);
                }
                Compiled::LiveChat {
                    online,
                    wait_ms,
                    offline,
                    route,
                    on_offline,
                    ..
                } => {
                    let needs_online = route.availability == crate::model::Availability::Available;
                    let nobody =
                        needs_online && !cx.desk.available(route, s.vars.get(key::CONTACT_OWNER));
                    // `route owner` with no known owner can never be picked up.
                    let no_owner =
                        route.to == RouteTarget::Owner && s.vars.get(key::CONTACT_OWNER).is_none();
                    if nobody || no_owner {
                        // The visitor asked for a person: they are told nobody can come
                        // before the flow goes on without one.
                        let text = offline.render(s, &self.sys());
                        if !text.trim().is_empty() {
                            self.say(s, text, out);
                        }
                        go = Go::Card(*on_offline);
                        via = Some(LinkKind::Offline);
                        continue;
                    }
                    let text = online.render(s, &self.sys());
                    self.say(s, text, out);
                    out.push(Effect::EnterUnassigned {
                        route: Cow::Borrowed(route),
                    });
                    s.phase = Phase::Queued;
                    self.arm_card_timer(s, TimerKind::Wait, *wait_ms, cx, out);
                    return;
                }
                Compiled::Capture { then, vars } => {
                    self.capture(s, ix, vars, cx, out);
                    go = *then;
                    via = Some(LinkKind::Next);
                }
                Compiled::Consent {
                    notice,
                    explicit,
                    buttons,
                    then,
                    ..
                } => {
                    let text = notice.render(s, &self.sys());
                    if *explicit {
                        s.phase = Phase::Asking;
                        self.ask(s, text, &buttons.labels, false, out);
                        return;
                    }
                    // Told and going on: implicit consent, unless explicit consent is held.
                    if !s.has(flag::CONSENTED) {
                        out.push(Effect::Consent {
                            given: Some(Box::new(capture::Consent {
                                mode: capture::ConsentMode::Implicit,
                                notice: text.clone().into_owned(),
                                at: cx.now,
                            })),
                        });
                    }
                    self.say(s, text, out);
                    go = Go::Card(*then);
                    via = Some(LinkKind::Agreed);
                }
                Compiled::End { outcome } => return self.finish(s, *outcome, out),
            }
        }
    }

    fn stop_timers(&self, s: &mut Session, out: &mut Vec<Effect<'_>>) {
        self.leave(s, out);
        if s.capture_timer.get().is_some() {
            s.capture_timer = Deadline::NONE;
            out.push(Effect::CancelTimer {
                kind: TimerKind::IdleCapture,
            });
        }
    }

    fn finish(&self, s: &mut Session, outcome: Outcome, out: &mut Vec<Effect<'_>>) {
        self.stop_timers(s, out);
        s.phase = Phase::Ended(outcome);
        out.push(Effect::End { outcome });
    }

    fn record_context<'s>(
        &self,
        s: &'s Session,
        key: String,
        cx: &Ctx<'_>,
    ) -> capture::Context<'s> {
        let key_of = |want_lead: bool| {
            s.captured
                .iter()
                .rev()
                .find_map(|&c| match self.program.card(c) {
                    Card::Capture(k) => {
                        let is = matches!(
                            (&k.record, want_lead),
                            (crate::model::RecordSpec::Lead(_), true)
                                | (crate::model::RecordSpec::Deal(_), false)
                        );
                        is.then(|| format!("{}/{}", s.conversation(), k.id))
                    }
                    _ => None,
                })
        };
        let lead = key_of(true).or_else(|| {
            s.has(flag::IDLE_CAPTURED)
                .then(|| format!("{}/#idle", s.conversation()))
        });
        capture::Context {
            key,
            conversation: s.conversation(),
            now: cx.now,
            channel: s.channel,
            live_chat: s.has(flag::HANDOFF),
            agent: s.vars.get(key::AGENT),
            messages: s.messages,
            lead,
            deal: key_of(false),
        }
    }

    fn capture(
        &self,
        s: &mut Session,
        ix: CardIx,
        vars: &[(Box<str>, VarRef)],
        cx: &Ctx<'_>,
        out: &mut Vec<Effect<'_>>,
    ) {
        if s.captured.contains(&ix) {
            return;
        }
        let Card::Capture(card) = self.program.card(ix) else {
            return;
        };
        // `<conversation>/<card>`, written at its exact size; the context gets an empty key
        // (which `build` copies for free) and the record takes this one by move.
        let (conv, id) = (s.conversation(), card.id.as_str());
        let mut key = String::with_capacity(conv.len() + 1 + id.len());
        key.push_str(conv);
        key.push('/');
        key.push_str(id);
        let ctx = self.record_context(s, String::new(), cx);
        let values = SessionValues {
            engine: self,
            s,
            vars,
        };
        let mut record = capture::build(&card.record, &ctx, &values, cx.desk);
        record.key = key;
        if matches!(card.record, crate::model::RecordSpec::Lead(_))
            && s.has(flag::IDLE_CAPTURED)
            && !s.has(flag::LEAD)
        {
            // The visitor came back after the unfinished-conversation lead: this lead is the
            // same person's, now complete. It replaces that one rather than adding a second.
            record.supersedes = Some(format!("{}/#idle", s.conversation()));
        }
        let mut captured = Vec::with_capacity(s.captured.len() + 1);
        captured.extend_from_slice(&s.captured);
        captured.push(ix);
        s.captured = captured.into_boxed_slice();
        if matches!(card.record, crate::model::RecordSpec::Lead(_)) {
            s.flags |= flag::LEAD;
            if s.capture_timer.get().is_some() {
                s.capture_timer = Deadline::NONE;
                out.push(Effect::CancelTimer {
                    kind: TimerKind::IdleCapture,
                });
            }
        }
        out.push(Effect::Capture(Box::new(record)));
    }

    fn idle_capture(&self, s: &mut Session, cx: &Ctx<'_>, out: &mut Vec<Effect<'_>>) {
        if s.has(flag::IDLE_CAPTURED | flag::LEAD) {
            return;
        }
        // Consent is the visitor's: one who left at an explicit consent question has not
        // agreed, one who declined has said no. (A later answer re-arms the timer.)
        let at_consent = s.phase == Phase::Asking
            && matches!(self.cards[s.card as usize], Compiled::Consent { .. });
        if at_consent || s.has(flag::DECLINED) {
            return;
        }
        let first = |keys: &[u32]| keys.iter().find_map(|&k| s.vars.get(k)).map(str::to_owned);
        let person = capture::Person {
            name: self
                .index
                .get("name")
                .and_then(|&k| s.vars.get(k))
                .map(str::to_owned),
            email: first(&self.email_keys),
            phone: first(&self.phone_keys),
            social: None,
        };
        if person.email.is_none() && person.phone.is_none() {
            return;
        }
        let fields = self
            .variables(s)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let key = format!("{}/#idle", s.conversation());
        let ctx = self.record_context(s, key, cx);
        let record = capture::unfinished(&ctx, person, fields);
        s.flags |= flag::IDLE_CAPTURED;
        out.push(Effect::Capture(Box::new(record)));
    }
}

/// A session's values by name, for record templates.
struct SessionValues<'a> {
    engine: &'a Engine,
    s: &'a Session,
    /// The capture card's variables, resolved at compile time (tried first).
    vars: &'a [(Box<str>, VarRef)],
}

impl Values for SessionValues<'_> {
    fn value(&self, name: &str) -> Option<Cow<'_, str>> {
        if let Some((_, r)) = self.vars.iter().find(|(n, _)| &**n == name) {
            return compile::lookup(*r, self.s, &self.engine.sys());
        }
        let r = match name {
            "conversation_id" => VarRef::Key(key::CONVERSATION),
            "page_url" => VarRef::Key(key::PAGE_URL),
            "agent" => VarRef::Key(key::AGENT),
            "channel" => VarRef::Channel,
            "started_at" => VarRef::StartedAt,
            "bot" => VarRef::Bot,
            _ => VarRef::Key(*self.engine.index.get(name)?),
        };
        compile::lookup(r, self.s, &self.engine.sys())
    }
}
