//! The engine's vocabulary: time, channels, timers, events in, effects out.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::capture::Record;
use crate::model::{LinkKind, Outcome, Route};

/// A moment in virtual time: milliseconds since the Unix epoch. The engine never reads a
/// clock; every event comes with the driver's `now`.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Instant(pub u64);

impl Instant {
    /// `ms` milliseconds later (saturating: the far future stays the far future).
    pub fn after_ms(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }

    /// The moment as RFC 3339 UTC text, e.g. `2026-11-03T09:30:00Z` (what `{started_at}`
    /// renders to).
    pub fn to_rfc3339(self) -> String {
        let secs = self.0 / 1000;
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days as i64);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Where a message travels. A conversation may move between channels; replies go out on the
/// one the visitor used last. The list is closed on purpose (one byte in the session); add a
/// variant when a new channel is wired up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The website chat widget.
    #[default]
    Web,
    /// WhatsApp.
    #[serde(rename = "whatsapp")]
    WhatsApp,
    /// Facebook Messenger.
    Messenger,
    /// Instagram direct messages.
    Instagram,
    /// Telegram.
    Telegram,
    /// Text messages.
    Sms,
    /// Email.
    Email,
    /// A terminal (`playbook run`).
    Terminal,
    /// A program talking to the JSON API.
    Api,
}

impl Channel {
    /// The channel's name, as in JSON and in `{channel}`.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::WhatsApp => "whatsapp",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Telegram => "telegram",
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Terminal => "terminal",
            Channel::Api => "api",
        }
    }

    /// The channel's name as people write it ("WhatsApp").
    pub fn label(self) -> &'static str {
        match self {
            Channel::Web => "the web chat",
            Channel::WhatsApp => "WhatsApp",
            Channel::Messenger => "Messenger",
            Channel::Instagram => "Instagram",
            Channel::Telegram => "Telegram",
            Channel::Sms => "SMS",
            Channel::Email => "email",
            Channel::Terminal => "the terminal",
            Channel::Api => "the API",
        }
    }
}

/// The three timers a session can have pending (at most one of each kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerKind {
    /// The idle timeout of the question, ask or consent card the visitor is at.
    Idle,
    /// The live-chat wait: how long an agent has to pick the conversation up.
    Wait,
    /// The playbook's `idle_capture` limit: capture an unfinished conversation.
    IdleCapture,
}

/// A deadline the driver must turn into a [`Event::TimerFired`] when it passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timer {
    /// Which timer.
    pub kind: TimerKind,
    /// When it fires.
    pub at: Instant,
}

/// What happens to a conversation. Text fields borrow where they can so that feeding an
/// event does not have to allocate; `Cow` also lets serde borrow from a JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The visitor opened the chat. Must come first, exactly once.
    Start {
        /// The conversation's id (also the first half of every idempotency key).
        #[serde(borrow)]
        conversation: Cow<'a, str>,
        /// Where the visitor is.
        #[serde(default)]
        channel: Channel,
        /// The page the chat started on (`{page_url}`).
        #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
        page_url: Option<Cow<'a, str>>,
        /// The CRM owner of the visitor's contact, when the site knows the visitor (used by
        /// `route owner`).
        #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
        contact_owner: Option<Cow<'a, str>>,
    },
    /// The visitor typed something.
    VisitorText {
        /// What they typed (at most [`super::MAX_TEXT_CHARS`] characters).
        #[serde(borrow)]
        text: Cow<'a, str>,
        /// Where they typed it.
        #[serde(default)]
        channel: Channel,
    },
    /// The visitor pressed a button of the question they were asked.
    VisitorChoice {
        /// The button's index, counted from 0 (typed text counts from 1: `"1"` is index 0).
        index: usize,
        /// Where they pressed it.
        #[serde(default)]
        channel: Channel,
    },
    /// An agent assigned the waiting conversation to themselves.
    AgentJoined {
        /// The agent's name.
        #[serde(borrow)]
        agent: Cow<'a, str>,
    },
    /// The agent handling the conversation wrote to the visitor.
    AgentMessage {
        /// The agent's name (must be the one handling it).
        #[serde(borrow)]
        agent: Cow<'a, str>,
        /// What they wrote.
        #[serde(borrow)]
        text: Cow<'a, str>,
    },
    /// The agent handling the conversation closed it.
    AgentClosed {
        /// The agent's name (must be the one handling it).
        #[serde(borrow)]
        agent: Cow<'a, str>,
    },
    /// The conversation was reassigned to another (online) agent.
    Reassigned {
        /// The new agent.
        #[serde(borrow)]
        to: Cow<'a, str>,
    },
    /// The visitor moved the conversation to another channel: linked a social contact to it
    /// from the widget, or went back to the web. Replies go to `channel` from here; a notice
    /// says so on both sides. The flow does not move: `said` (the message that made the link,
    /// such as a link code) is shown in the transcript but is no answer.
    ChannelSwitched {
        /// Where the conversation continues.
        #[serde(default)]
        channel: Channel,
        /// What the visitor wrote to make the link, if anything.
        #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
        said: Option<Cow<'a, str>>,
    },
    /// A timer the engine asked for has passed.
    TimerFired(Timer),
}

/// Who a message is from, for the transcript and the widget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", content = "name", rename_all = "snake_case")]
pub enum Speaker<'e> {
    /// The bot, under its display name (the handling agent's name once one has joined).
    Bot(Cow<'e, str>),
    /// A human agent writing in person.
    Agent(Cow<'e, str>),
    /// The chat itself ("Ana joined the conversation").
    System,
}

impl Speaker<'_> {
    /// The name shown, `system` for notices.
    pub fn name(&self) -> &str {
        match self {
            Speaker::Bot(n) | Speaker::Agent(n) => n,
            Speaker::System => "system",
        }
    }

    /// The same speaker owning its name, to outlive the engine's borrow.
    pub fn into_owned(self) -> Speaker<'static> {
        match self {
            Speaker::Bot(n) => Speaker::Bot(Cow::Owned(n.into_owned())),
            Speaker::Agent(n) => Speaker::Agent(Cow::Owned(n.into_owned())),
            Speaker::System => Speaker::System,
        }
    }
}

/// Why a conversation stopped with an error instead of an outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum Failure {
    /// One step ran more cards than `limits.max_steps` without waiting for the visitor: the
    /// playbook loops. The session ends instead of spinning.
    StepLimit {
        /// The limit in force.
        limit: u32,
        /// The card that would have run next.
        card: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::StepLimit { limit, card } => write!(
                f,
                "ran {limit} cards without waiting for the visitor (next was `{card}`); raise the playbook's `max steps` or add a card that waits"
            ),
        }
    }
}

/// What the driver must do after a step, in order.
///
/// `'e` is the engine's lifetime: constant texts, button labels and routes are borrowed from
/// the compiled playbook, so a turn that only shows fixed texts allocates nothing. Drivers
/// that keep or send effects beyond the engine's borrow call [`Effect::into_owned`]: one type
/// for both, so the serde form (`{"effect":"say",…}`) cannot drift between them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect<'e> {
    /// Show a message to the visitor.
    Say {
        /// Who says it.
        from: Speaker<'e>,
        /// The rendered text.
        text: Cow<'e, str>,
        /// The channel it goes out on (the visitor's last).
        channel: Channel,
    },
    /// Show a question (with buttons, or a prompt for typed input) and wait for the answer.
    Ask {
        /// Who asks.
        from: Speaker<'e>,
        /// The rendered question, or the re-prompt after invalid input.
        text: Cow<'e, str>,
        /// The buttons, in order; empty for typed input.
        buttons: Cow<'e, [String]>,
        /// The channel it goes out on.
        channel: Channel,
        /// Whether this repeats a question after an answer that did not fit.
        retry: bool,
    },
    /// A visitor message while a human handles (or is about to handle) the chat: deliver it
    /// to the agent's inbox.
    RelayToAgent {
        /// The handling agent, or `None` while the conversation waits in Unassigned.
        agent: Option<Cow<'e, str>>,
        /// The visitor's text.
        text: Cow<'e, str>,
        /// The channel it came in on.
        channel: Channel,
    },
    /// Put the conversation in the desk's Unassigned queue for this route.
    EnterUnassigned {
        /// Who may take it.
        route: Cow<'e, Route>,
    },
    /// Take the conversation out of Unassigned: nobody picked it up in time.
    LeaveUnassigned,
    /// Arm a timer; it replaces any pending timer of the same kind.
    SetTimer(Timer),
    /// Drop the pending timer of this kind, if any (a late one would be ignored anyway).
    CancelTimer {
        /// Which timer.
        kind: TimerKind,
    },
    /// Store a CRM record (the sink deduplicates by [`Record::key`]).
    Capture(Box<Record>),
    /// The visitor gave consent (`Some`: how, to which notice, when) or declined it (`None`):
    /// the driver keeps it with the conversation and puts it on every record made after.
    Consent {
        /// What they gave; `None` when they declined.
        given: Option<Box<crate::capture::Consent>>,
    },
    /// The conversation is over.
    End {
        /// How it ended.
        outcome: Outcome,
    },
    /// The conversation stopped with an error; it is over.
    Failed(Failure),
    /// The flow entered a card (one per card run, waiting or not, in order). Drivers that
    /// only talk to people ignore it; coverage counts cards and links from it.
    Entered {
        /// The card's id.
        card: Cow<'e, str>,
        /// How the flow got there; `None` for the first card of the conversation.
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Via<'e>>,
    },
}

/// The link a flow followed into a card: which card it left, and which of that card's ways
/// on ([`crate::model::Card::links`] lists them; kind and index name one exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Via<'e> {
    /// The card left.
    pub from: Cow<'e, str>,
    /// Which of its links (`"next"`, `{"answer":1}`, `{"rule":0}`, `"otherwise"`…).
    pub link: LinkKind,
}

impl Effect<'_> {
    /// The same effect owning all its data (texts, buttons, route), so it can outlive the
    /// engine's borrow: be kept, sent over a channel or stored.
    pub fn into_owned(self) -> Effect<'static> {
        let own = |t: Cow<'_, str>| Cow::Owned(t.into_owned());
        match self {
            Effect::Say {
                from,
                text,
                channel,
            } => Effect::Say {
                from: from.into_owned(),
                text: own(text),
                channel,
            },
            Effect::Ask {
                from,
                text,
                buttons,
                channel,
                retry,
            } => Effect::Ask {
                from: from.into_owned(),
                text: own(text),
                buttons: Cow::Owned(buttons.into_owned()),
                channel,
                retry,
            },
            Effect::RelayToAgent {
                agent,
                text,
                channel,
            } => Effect::RelayToAgent {
                agent: agent.map(own),
                text: own(text),
                channel,
            },
            Effect::EnterUnassigned { route } => Effect::EnterUnassigned {
                route: Cow::Owned(route.into_owned()),
            },
            Effect::LeaveUnassigned => Effect::LeaveUnassigned,
            Effect::SetTimer(t) => Effect::SetTimer(t),
            Effect::CancelTimer { kind } => Effect::CancelTimer { kind },
            Effect::Capture(r) => Effect::Capture(r),
            Effect::Consent { given } => Effect::Consent { given },
            Effect::End { outcome } => Effect::End { outcome },
            Effect::Failed(f) => Effect::Failed(f),
            Effect::Entered { card, via } => Effect::Entered {
                card: own(card),
                via: via.map(|v| Via {
                    from: own(v.from),
                    link: v.link,
                }),
            },
        }
    }
}
