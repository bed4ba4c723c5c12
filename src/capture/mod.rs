//! CRM capture: lead, deal and activity records, made from a capture card's templates (by
//! the engine), from an idle conversation, or by an agent on the desk; the ledger that stores
//! them once per idempotency key; and the transcript attached to them.
//!
//! Owns the record format (serde, stable field order) and its defaults: source `Chatbot`, or
//! `Live chat` once an agent joined; status `New` (leads) / `Open` (deals); owner a named user,
//! the member of a distribution pool whose turn it is, or the agent who handled the chat.
//! Must not: do I/O (sinks that write files live in the runtime), read a clock (times come in),
//! or advance a pool by itself — the driver calls the desk's `note_capture` for each record
//! the ledger accepted as new, so replays never move the round robin.

pub mod money;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::engine::{Channel, DeskView, Effect, Event, Instant, Speaker};
use crate::model::{ActivityType, Owner, Part, PersonSpec, RecordSpec, Template};

pub use money::Money;

/// Source of records made by the bot alone.
pub const SOURCE_CHATBOT: &str = "Chatbot";
/// Source of records made in a conversation an agent joined.
pub const SOURCE_LIVE_CHAT: &str = "Live chat";

/// A CRM record, ready for a sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The idempotency key: `<conversation>/<card>` (`/#idle` for the unfinished-conversation
    /// lead, `/#desk-<n>` for agent-made records). A sink stores one record per key.
    pub key: String,
    /// The conversation it came from.
    pub conversation: String,
    /// When it was made.
    pub created_at: Instant,
    /// The channel the visitor used last.
    pub channel: Channel,
    /// The owner's user name, when one could be resolved.
    pub owner: Option<String>,
    /// The distribution pool the owner was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The record itself.
    pub data: RecordData,
    /// How many transcript lines of the conversation precede it: the ledger attaches those.
    pub messages: u32,
    /// The key of an earlier record of this conversation that this one replaces: a capture
    /// card's lead made after the idle "unfinished conversation" lead supersedes it (a CRM
    /// updates that lead instead of creating a second one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supersedes: Option<String>,
    /// The visitor's consent when the record was made, if they gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<Consent>,
}

/// Consent to data processing as the visitor gave it: how, to which notice, when. Kept on the
/// conversation and copied onto every record made after it (a CRM's GDPR field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    /// Explicit (they pressed the agree button) or implicit (they were shown the notice and
    /// went on).
    pub mode: ConsentMode,
    /// The notice as they saw it.
    pub notice: String,
    /// When they agreed, or were shown it.
    pub at: Instant,
}

/// How consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The visitor agreed to the notice.
    Explicit,
    /// The visitor was told and went on.
    Implicit,
}

/// The three kinds of record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordData {
    /// A lead.
    Lead(Lead),
    /// A deal.
    Deal(Deal),
    /// An activity.
    Activity(Activity),
}

/// A contact person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// The social contact the visitor linked (or wrote from), added by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub social: Option<SocialId>,
}

/// A visitor's id on a social channel: a WhatsApp number, a page-scoped Messenger or
/// Instagram id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialId {
    /// Which channel.
    pub channel: Channel,
    /// Their id there.
    pub id: String,
}

impl Record {
    /// Adds the visitor's social id to the record's person (a lead's or deal's) where the
    /// playbook left it out; a WhatsApp id is a phone number in international form, so it
    /// also fills a missing phone.
    pub fn add_social(&mut self, social: &SocialId) {
        let person = match &mut self.data {
            RecordData::Lead(l) => &mut l.person,
            RecordData::Deal(d) => &mut d.person,
            RecordData::Activity(_) => return,
        };
        if person.social.is_none() {
            person.social = Some(social.clone());
        }
        if social.channel == Channel::WhatsApp && person.phone.is_none() {
            let digits = social.id.trim_start_matches('+');
            person.phone = Some(format!("+{digits}"));
        }
    }
}

/// A lead.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    /// Title.
    pub title: String,
    /// Contact person.
    pub person: Person,
    /// Organization name.
    pub organization: Option<String>,
    /// Expected value, an exact decimal (absent when the template did not render to one).
    pub value: Option<Money>,
    /// Currency of the value.
    pub currency: Option<String>,
    /// Status (`New` by default).
    pub status: String,
    /// Source (`Chatbot` or `Live chat` by default).
    pub source: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Custom fields.
    pub fields: BTreeMap<String, String>,
    /// A note (agent-made records).
    pub note: Option<String>,
}

/// A deal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Deal {
    /// Title.
    pub title: String,
    /// Contact person.
    pub person: Person,
    /// Organization name.
    pub organization: Option<String>,
    /// Value, an exact decimal.
    pub value: Option<Money>,
    /// Currency.
    pub currency: Option<String>,
    /// Pipeline.
    pub pipeline: Option<String>,
    /// Stage.
    pub stage: Option<String>,
    /// Status (`Open` by default).
    pub status: String,
    /// Source (`Chatbot` or `Live chat`).
    pub source: String,
    /// Labels.
    pub labels: Vec<String>,
    /// Custom fields.
    pub fields: BTreeMap<String, String>,
    /// A note (agent-made records).
    pub note: Option<String>,
}

/// A follow-up activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    /// Kind.
    pub activity: ActivityType,
    /// Subject line.
    pub subject: String,
    /// When it is due.
    pub due: Option<Instant>,
    /// A note.
    pub note: Option<String>,
    /// The key of the lead or deal of this conversation it belongs to.
    pub link: Option<String>,
}

/// The values templates read (the engine implements it over a session).
pub trait Values {
    /// The value of a variable (playbook or system), if set.
    fn value(&self, name: &str) -> Option<Cow<'_, str>>;
}

/// Renders a template over [`Values`]; unset variables render empty.
pub fn render(t: &Template, values: &dyn Values) -> String {
    let parts = t.parts();
    if let [Part::Text(s)] = parts {
        // Constant text: one allocation of the exact size.
        return s.clone();
    }
    // Room for the text and a short value per variable, so most renders never regrow.
    let room: usize = parts
        .iter()
        .map(|p| match p {
            Part::Text(s) => s.len(),
            Part::Var(_) => 24,
        })
        .sum();
    let mut out = String::with_capacity(room);
    for p in parts {
        match p {
            Part::Text(s) => out.push_str(s),
            Part::Var(v) => {
                if let Some(x) = values.value(v.as_str()) {
                    out.push_str(&x);
                }
            }
        }
    }
    out
}

/// What a record needs besides its spec.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The idempotency key.
    pub key: String,
    /// The conversation id.
    pub conversation: &'a str,
    /// Now.
    pub now: Instant,
    /// The visitor's last channel.
    pub channel: Channel,
    /// Whether an agent joined the conversation.
    pub live_chat: bool,
    /// The agent who handled the chat.
    pub agent: Option<&'a str>,
    /// Transcript lines so far.
    pub messages: u32,
    /// The key of this conversation's lead, if one was made.
    pub lead: Option<String>,
    /// The key of this conversation's deal, if one was made.
    pub deal: Option<String>,
}

impl Context<'_> {
    fn source(&self) -> String {
        if self.live_chat {
            SOURCE_LIVE_CHAT
        } else {
            SOURCE_CHATBOT
        }
        .to_owned()
    }

    fn record(&self, owner: (Option<String>, Option<String>), data: RecordData) -> Record {
        Record {
            key: self.key.clone(),
            conversation: self.conversation.to_owned(),
            created_at: self.now,
            channel: self.channel,
            owner: owner.0,
            pool: owner.1,
            data,
            messages: self.messages,
            supersedes: None,
            // The conversation's, set where records are committed (the hub).
            consent: None,
        }
    }
}

/// Resolves an owner to (user, pool). No owner given means the handling agent, if any.
pub fn resolve_owner(
    owner: Option<&Owner>,
    agent: Option<&str>,
    desk: &dyn DeskView,
) -> (Option<String>, Option<String>) {
    match owner {
        Some(Owner::User(u)) => (Some(u.clone()), None),
        Some(Owner::Pool(p)) => (desk.pool_owner(p).map(str::to_owned), Some(p.clone())),
        Some(Owner::Agent) | None => (agent.map(str::to_owned), None),
    }
}

fn opt(t: &Option<Template>, v: &dyn Values) -> Option<String> {
    t.as_ref().map(|t| render(t, v)).filter(|s| !s.is_empty())
}

fn person(p: &Option<PersonSpec>, v: &dyn Values) -> Person {
    p.as_ref().map_or_else(Person::default, |p| Person {
        name: opt(&p.name, v),
        email: opt(&p.email, v),
        phone: opt(&p.phone, v),
        social: None,
    })
}

fn number(t: &Option<Template>, v: &dyn Values) -> Option<Money> {
    opt(t, v).and_then(|s| Money::parse(&s))
}

fn fields(f: &BTreeMap<String, Template>, v: &dyn Values) -> BTreeMap<String, String> {
    f.iter().map(|(k, t)| (k.clone(), render(t, v))).collect()
}

/// Builds the record a capture card describes.
pub fn build(spec: &RecordSpec, ctx: &Context<'_>, v: &dyn Values, desk: &dyn DeskView) -> Record {
    match spec {
        RecordSpec::Lead(l) => {
            let owner = resolve_owner(l.owner.as_ref(), ctx.agent, desk);
            ctx.record(
                owner,
                RecordData::Lead(Lead {
                    title: opt(&l.title, v).unwrap_or_else(|| "Chatbot lead".to_owned()),
                    person: person(&l.person, v),
                    organization: opt(&l.organization, v),
                    value: number(&l.value, v),
                    currency: l.currency.clone(),
                    status: opt(&l.status, v).unwrap_or_else(|| "New".to_owned()),
                    source: opt(&l.source, v).unwrap_or_else(|| ctx.source()),
                    labels: l.labels.clone(),
                    fields: fields(&l.fields, v),
                    note: None,
                }),
            )
        }
        RecordSpec::Deal(d) => {
            let owner = resolve_owner(d.owner.as_ref(), ctx.agent, desk);
            ctx.record(
                owner,
                RecordData::Deal(Deal {
                    title: opt(&d.title, v).unwrap_or_else(|| "Chatbot deal".to_owned()),
                    person: person(&d.person, v),
                    organization: opt(&d.organization, v),
                    value: number(&d.value, v),
                    currency: d.currency.clone(),
                    pipeline: d.pipeline.clone(),
                    stage: d.stage.clone(),
                    status: opt(&d.status, v).unwrap_or_else(|| "Open".to_owned()),
                    source: ctx.source(),
                    labels: d.labels.clone(),
                    fields: fields(&d.fields, v),
                    note: None,
                }),
            )
        }
        RecordSpec::Activity(a) => {
            let owner = resolve_owner(a.owner.as_ref(), ctx.agent, desk);
            let link = match a.link {
                Some(crate::model::LinkTo::Lead) => ctx.lead.clone(),
                Some(crate::model::LinkTo::Deal) => ctx.deal.clone(),
                None => None,
            };
            ctx.record(
                owner,
                RecordData::Activity(Activity {
                    activity: a.activity,
                    subject: opt(&a.subject, v)
                        .unwrap_or_else(|| format!("Chatbot {}", a.activity.name())),
                    due: a.due.map(|d| ctx.now.after_ms(d.as_millis())),
                    note: opt(&a.note, v),
                    link,
                }),
            )
        }
    }
}

/// The "unfinished conversation" lead of an idle conversation that holds contact details:
/// every variable goes into `fields` so nothing the visitor said is lost.
pub fn unfinished(ctx: &Context<'_>, person: Person, fields: BTreeMap<String, String>) -> Record {
    ctx.record(
        (ctx.agent.map(str::to_owned), None),
        RecordData::Lead(Lead {
            title: "Unfinished conversation".to_owned(),
            person,
            status: "New".to_owned(),
            source: ctx.source(),
            fields,
            ..Lead::default()
        }),
    )
}

/// Whether an agent makes a lead or a deal from a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManualKind {
    /// A lead.
    Lead,
    /// A deal.
    Deal,
}

/// What an agent fills in to make a lead or deal from a conversation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManualDetails {
    /// Title.
    pub title: String,
    /// Value, an exact decimal (a JSON string or number).
    pub value: Option<Money>,
    /// Currency.
    pub currency: Option<String>,
    /// Contact person.
    pub person: Person,
    /// Organization name.
    pub organization: Option<String>,
    /// A note.
    pub note: Option<String>,
}

/// A record an agent made from a conversation (source `Live chat`, owner the agent).
pub fn manual(kind: ManualKind, details: ManualDetails, ctx: &Context<'_>) -> Record {
    let owner = (ctx.agent.map(str::to_owned), None);
    let data = match kind {
        ManualKind::Lead => RecordData::Lead(Lead {
            title: details.title,
            person: details.person,
            organization: details.organization,
            value: details.value,
            currency: details.currency,
            status: "New".to_owned(),
            source: SOURCE_LIVE_CHAT.to_owned(),
            note: details.note,
            ..Lead::default()
        }),
        ManualKind::Deal => RecordData::Deal(Deal {
            title: details.title,
            person: details.person,
            organization: details.organization,
            value: details.value,
            currency: details.currency,
            status: "Open".to_owned(),
            source: SOURCE_LIVE_CHAT.to_owned(),
            note: details.note,
            ..Deal::default()
        }),
    };
    ctx.record(owner, data)
}

/// Who wrote a transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", content = "name", rename_all = "snake_case")]
pub enum Who {
    /// The visitor.
    Visitor,
    /// The bot, under its display name.
    Bot(String),
    /// A human agent.
    Agent(String),
    /// The chat itself.
    System,
}

/// What a transcript line is, decided where the line is made (from the event or effect),
/// so nobody downstream has to guess it from the text or the speaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineKind {
    /// The visitor wrote or pressed a button.
    Visitor,
    /// A message from the bot or an agent ([`Effect::Say`]).
    Say,
    /// A question waiting for an answer ([`Effect::Ask`]).
    Ask,
    /// A question asked again after an answer that did not fit (`Ask` with `retry`).
    Reprompt,
    /// A notice from the chat itself ("ana joined the conversation": `Say` from
    /// [`Speaker::System`]).
    Notice,
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredLine")]
pub struct Line {
    /// When.
    pub at: Instant,
    /// Who.
    pub from: Who,
    /// What kind of line it is.
    pub kind: LineKind,
    /// On which channel.
    pub channel: Channel,
    /// What.
    pub text: String,
    /// Buttons offered with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<String>,
}

/// [`Line`] as read back: lines stored before kinds were recorded have none, so it is
/// inferred from the speaker (the best the old data allows: a visitor line is `visitor`,
/// anything else `say`, as the server showed them).
#[derive(Deserialize)]
struct StoredLine {
    at: Instant,
    from: Who,
    #[serde(default)]
    kind: Option<LineKind>,
    channel: Channel,
    text: String,
    #[serde(default)]
    buttons: Vec<String>,
}

impl From<StoredLine> for Line {
    fn from(l: StoredLine) -> Self {
        let kind = l.kind.unwrap_or(match l.from {
            Who::Visitor => LineKind::Visitor,
            _ => LineKind::Say,
        });
        Line {
            at: l.at,
            from: l.from,
            kind,
            channel: l.channel,
            text: l.text,
            buttons: l.buttons,
        }
    }
}

/// A conversation's transcript, built by the driver from accepted events and their effects.
/// Its length matches the session's message counter, so a record's `messages` cursor picks
/// "the transcript so far".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// The lines, oldest first.
    pub lines: Vec<Line>,
    last_buttons: Vec<String>,
}

impl Transcript {
    /// A transcript of stored lines, with the buttons of the last question.
    pub fn from_lines(lines: Vec<Line>, last_buttons: Vec<String>) -> Self {
        Transcript {
            lines,
            last_buttons,
        }
    }

    /// Goes back to its first `len` lines, with these buttons as the last question's (a unit
    /// of work that was not stored is undone).
    pub fn rewind(&mut self, len: usize, last_buttons: Vec<String>) {
        self.lines.truncate(len);
        self.last_buttons = last_buttons;
    }

    /// The buttons of the last question asked.
    pub fn buttons(&self) -> &[String] {
        &self.last_buttons
    }

    /// Adds what one successful step showed: the visitor's message (a pressed button is
    /// written as its label), then every message among the effects, each with its
    /// [`LineKind`].
    pub fn record(&mut self, event: &Event<'_>, now: Instant, effects: &[Effect<'_>]) {
        match event {
            Event::VisitorText { text, channel } => self.push(
                now,
                Who::Visitor,
                LineKind::Visitor,
                *channel,
                text,
                Vec::new(),
            ),
            Event::VisitorChoice { index, channel } => {
                let label = self.last_buttons.get(*index).cloned().unwrap_or_default();
                self.push(
                    now,
                    Who::Visitor,
                    LineKind::Visitor,
                    *channel,
                    &label,
                    Vec::new(),
                );
            }
            Event::ChannelSwitched {
                channel,
                said: Some(text),
            } => self.push(
                now,
                Who::Visitor,
                LineKind::Visitor,
                *channel,
                text,
                Vec::new(),
            ),
            _ => {}
        }
        for e in effects {
            match e {
                Effect::Say {
                    from,
                    text,
                    channel,
                } => {
                    let kind = match from {
                        Speaker::System => LineKind::Notice,
                        _ => LineKind::Say,
                    };
                    self.push(now, who(from), kind, *channel, text, Vec::new());
                }
                Effect::Ask {
                    from,
                    text,
                    buttons,
                    channel,
                    retry,
                } => {
                    let kind = if *retry {
                        LineKind::Reprompt
                    } else {
                        LineKind::Ask
                    };
                    self.last_buttons = buttons.to_vec();
                    self.push(now, who(from), kind, *channel, text, buttons.to_vec());
                }
                _ => {}
            }
        }
    }

    fn push(
        &mut self,
        at: Instant,
        from: Who,
        kind: LineKind,
        channel: Channel,
        text: &str,
        buttons: Vec<String>,
    ) {
        self.lines.push(Line {
            at,
            from,
            kind,
            channel,
            text: text.to_owned(),
            buttons,
        });
    }
}

fn who(s: &Speaker<'_>) -> Who {
    match s {
        Speaker::Bot(n) => Who::Bot(n.to_string()),
        Speaker::Agent(n) => Who::Agent(n.to_string()),
        Speaker::System => Who::System,
    }
}

/// A record as stored, with its transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// The record.
    pub record: Record,
    /// The conversation up to the record.
    pub transcript: Vec<Line>,
}

/// What [`Ledger::commit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// The record is new and was stored.
    New,
    /// A record with this key exists; nothing changed.
    Duplicate,
}

/// An in-memory record sink that stores each idempotency key once.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    records: Vec<Stored>,
    keys: HashMap<String, usize>,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a record unless its key is known; attaches the first `record.messages` lines
    /// of `transcript`. A record that [supersedes](Record::supersedes) a stored one takes its
    /// place (both keys then name it), so the ledger holds one lead per conversation.
    pub fn commit(&mut self, record: Record, transcript: &[Line]) -> Commit {
        if self.keys.contains_key(&record.key) {
            return Commit::Duplicate;
        }
        let n = (record.messages as usize).min(transcript.len());
        let stored = Stored {
            transcript: transcript[..n].to_vec(),
            record,
        };
        let replaced = stored
            .record
            .supersedes
            .as_ref()
            .and_then(|k| self.keys.get(k).copied());
        match replaced {
            Some(i) => {
                self.keys.insert(stored.record.key.clone(), i);
                self.records[i] = stored;
            }
            None => {
                self.keys
                    .insert(stored.record.key.clone(), self.records.len());
                self.records.push(stored);
            }
        }
        Commit::New
    }

    /// Every stored record, in the order committed.
    pub fn records(&self) -> &[Stored] {
        &self.records
    }

    /// The record with this key.
    pub fn get(&self, key: &str) -> Option<&Stored> {
        self.keys.get(key).map(|&i| &self.records[i])
    }

    /// How many records are stored.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether none is stored.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}
