//! The cards a playbook is made of.

use std::num::NonZeroU32;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CardId, Duration, RecordSpec, Template, VarName};

/// One step of a conversation. `kind` selects the variant in JSON.
// Cards live once in a `Vec` and are never moved around in bulk, so boxing the big variants
// would cost an indirection on every access for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Card {
    /// The bot says something, then goes on or ends.
    Message(Message),
    /// The bot asks a question with answer buttons.
    Question(Question),
    /// The bot asks for typed input and validates it.
    Ask(Ask),
    /// The flow branches on variables, without a message.
    Branch(Branch),
    /// The visitor is handed to a human agent.
    #[serde(rename = "livechat")]
    LiveChat(LiveChat),
    /// A CRM record (lead, deal or activity) is made from what the visitor said.
    Capture(Capture),
    /// The visitor is asked for (or told about) consent to data processing.
    Consent(Consent),
    /// The conversation ends with an outcome.
    End(End),
}

impl Card {
    /// The card's id.
    pub fn id(&self) -> &CardId {
        match self {
            Card::Message(c) => &c.id,
            Card::Question(c) => &c.id,
            Card::Ask(c) => &c.id,
            Card::Branch(c) => &c.id,
            Card::LiveChat(c) => &c.id,
            Card::Capture(c) => &c.id,
            Card::Consent(c) => &c.id,
            Card::End(c) => &c.id,
        }
    }

    /// The keyword of the card's kind, as written in the DSL and in JSON's `kind`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Card::Message(_) => "message",
            Card::Question(_) => "question",
            Card::Ask(_) => "ask",
            Card::Branch(_) => "branch",
            Card::LiveChat(_) => "livechat",
            Card::Capture(_) => "capture",
            Card::Consent(_) => "consent",
            Card::End(_) => "end",
        }
    }

    /// Whether reaching this card makes the engine wait for the visitor (or an agent).
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Card::Question(_) | Card::Ask(_) | Card::LiveChat(_) | Card::Consent(_)
        )
    }
}

/// How a conversation ended, as reported to the CRM and to analytics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The visitor is a sales lead worth following up.
    Qualified,
    /// The visitor is not a fit.
    Disqualified,
    /// Neither (support, browsing…).
    #[default]
    None,
}

/// Where a card goes when it is done: another card, or the end of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Next {
    /// Go on to this card.
    Goto(CardId),
    /// End the conversation with this outcome.
    End(Outcome),
}

/// `message`: say a text, then go on or end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// The card's id.
    pub id: CardId,
    /// What the bot says.
    pub text: Template,
    /// Where to go next.
    pub then: Next,
}

/// `question`: a text with answer buttons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Question {
    /// The card's id.
    pub id: CardId,
    /// The question.
    pub text: Template,
    /// Save the chosen label (or accepted free text) to this variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save: Option<VarName>,
    /// The buttons, in the order shown.
    pub answers: Vec<Answer>,
    /// Accept typed text that matches no button and go here with it; without this, such text
    /// re-asks the question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_text: Option<CardId>,
    /// What happens when the visitor does not answer for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
}

/// One answer button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The text on the button (also what is saved).
    pub label: String,
    /// Where choosing it leads.
    pub to: CardId,
}

/// `ask`: typed input, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ask {
    /// The card's id.
    pub id: CardId,
    /// The prompt.
    pub text: Template,
    /// What kind of input is valid.
    pub expect: InputKind,
    /// Save the (trimmed) valid input to this variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save: Option<VarName>,
    /// Said after invalid input; a default that names the expected kind is used without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprompt: Option<Template>,
    /// After this many invalid answers in a row, go elsewhere; without it, re-prompt forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up: Option<GiveUp>,
    /// What happens when the visitor does not answer for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<Idle>,
    /// Where valid input leads.
    pub then: CardId,
}

/// The kinds of typed input an `ask` card validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// Any non-empty text.
    Text,
    /// An email address (`name@domain.tld`).
    Email,
    /// A phone number: digits with optional `+`, spaces, dots, dashes and parentheses.
    Phone,
    /// A decimal number.
    Number,
    /// Text matching a regular expression (the whole input must match).
    Pattern(Pattern),
}

/// A regular expression, checked to compile when the playbook is loaded.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    source: String,
    #[serde(skip)]
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles a pattern; the whole input must match it, so it is anchored.
    pub fn new(source: impl Into<String>) -> Result<Self, regex::Error> {
        let source = source.into();
        // Compile the source on its own first: `[0-9]+)|(.*` is not a regex, but wrapped as
        // `^(?:[0-9]+)|(.*)$` it would be one that matches anything.
        regex::Regex::new(&source)?;
        let regex = regex::Regex::new(&format!("^(?:{source})$"))?;
        Ok(Self { source, regex })
    }

    /// The pattern as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the whole `input` matches.
    pub fn is_match(&self, input: &str) -> bool {
        self.regex.is_match(input)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl TryFrom<String> for Pattern {
    type Error = regex::Error;
    fn try_from(s: String) -> Result<Self, regex::Error> {
        Self::new(s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.source
    }
}

/// Where an `ask` card goes after too many invalid answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GiveUp {
    /// How many invalid answers in a row are allowed before giving up.
    pub after: NonZeroU32,
    /// Where to go then.
    pub to: CardId,
}

/// What a waiting card does when the visitor says nothing for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Idle {
    /// How long to wait for an answer.
    pub after: Duration,
    /// What to do then.
    pub then: IdleAction,
}

/// The two things an idle timeout can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdleAction {
    /// Say this once and keep waiting.
    Nudge(Template),
    /// Leave the card and go here (for example to capture what is known).
    Goto(CardId),
}

/// `branch`: choose the next card from variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    /// The card's id.
    pub id: CardId,
    /// Tried in order; the first rule whose condition holds wins.
    pub rules: Vec<Rule>,
    /// Where to go when no rule holds.
    pub otherwise: CardId,
}

/// One rule of a branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The condition.
    pub when: Condition,
    /// Where to go when it holds.
    pub to: CardId,
}

/// A test of one variable. `op` selects the variant in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The value equals this text (trimmed, ignoring ASCII case).
    Equals {
        /// The variable tested.
        var: VarName,
        /// The text compared.
        value: String,
    },
    /// The value equals one of these texts (trimmed, ignoring ASCII case).
    OneOf {
        /// The variable tested.
        var: VarName,
        /// The texts compared.
        values: Vec<String>,
    },
    /// The variable has a non-empty value.
    IsSet {
        /// The variable tested.
        var: VarName,
    },
    /// The variable has no value or an empty one.
    NotSet {
        /// The variable tested.
        var: VarName,
    },
    /// The value is a number and this comparison holds.
    Compare {
        /// The variable tested.
        var: VarName,
        /// The comparison.
        cmp: Comparison,
        /// The number compared with.
        value: f64,
    },
}

impl Condition {
    /// The variable the condition reads.
    pub fn var(&self) -> &VarName {
        match self {
            Condition::Equals { var, .. }
            | Condition::OneOf { var, .. }
            | Condition::IsSet { var }
            | Condition::NotSet { var }
            | Condition::Compare { var, .. } => var,
        }
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Comparison {
    /// `<`
    #[serde(rename = "<")]
    Lt,
    /// `<=`
    #[serde(rename = "<=")]
    Le,
    /// `>`
    #[serde(rename = ">")]
    Gt,
    /// `>=`
    #[serde(rename = ">=")]
    Ge,
}

impl Comparison {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Lt => "<",
            Comparison::Le => "<=",
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
        }
    }

    /// Applies the comparison.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Comparison::Lt => left < right,
            Comparison::Le => left <= right,
            Comparison::Gt => left > right,
            Comparison::Ge => left >= right,
        }
    }
}

/// `livechat`: hand the visitor to a human agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LiveChat {
    /// The card's id.
    pub id: CardId,
    /// Said when at least one agent can take the chat, while the visitor waits.
    pub online: Template,
    /// How long to wait for an agent to pick the chat up.
    pub wait: Duration,
    /// Said when nobody picked the chat up in time.
    pub offline: Template,
    /// Which agents may take the chat.
    #[serde(default)]
    pub route: Route,
    /// Where to go when the agent closes the conversation.
    pub on_closed: CardId,
    /// Where to go when no agent is online for the route.
    pub on_offline: CardId,
    /// Where to go when nobody picked up in time; `on_offline` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_timeout: Option<CardId>,
}

impl LiveChat {
    /// Where the flow goes after the wait timer fires.
    pub fn timeout_target(&self) -> &CardId {
        self.on_timeout.as_ref().unwrap_or(&self.on_offline)
    }
}

/// Which agents a live chat is offered to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Who.
    #[serde(default)]
    pub to: RouteTarget,
    /// Whether only agents who are online count.
    #[serde(default)]
    pub availability: Availability,
    /// How the chat reaches an agent; unset: as the server's config says for the route's
    /// team (or its `[desk]` default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assign: Option<Assignment>,
}

/// How a waiting chat reaches an agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// The chat waits in Unassigned until an agent picks it up.
    #[default]
    Manual,
    /// It goes at once to the available agent with room who was given a chat longest ago.
    RoundRobin,
    /// It goes at once to the available agent with room who has the fewest open chats (ties:
    /// the one given a chat longest ago, then by name).
    LeastBusy,
}

impl Assignment {
    /// The DSL's (and JSON's) word for it.
    pub fn name(self) -> &'static str {
        match self {
            Assignment::Manual => "manual",
            Assignment::RoundRobin => "round_robin",
            Assignment::LeastBusy => "least_busy",
        }
    }
}

/// The agents a route names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteTarget {
    /// Every agent.
    #[default]
    Anyone,
    /// These agents, by name.
    Agents(Vec<String>),
    /// The members of this team.
    Team(String),
    /// The CRM owner of the visitor's contact, when known.
    Owner,
}

/// Whether a live chat needs an online agent right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Availability {
    /// Only agents who are online count: with none online, the chat goes offline at once.
    #[default]
    Available,
    /// The chat waits in Unassigned for the whole wait even when none of the route's agents is
    /// online yet (one may come online).
    Anyone,
}

/// `capture`: make a CRM record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// The card's id (also part of the record's idempotency key).
    pub id: CardId,
    /// The record to make.
    pub record: RecordSpec,
    /// Where to go next.
    pub then: Next,
}

/// `consent`: data-processing consent (GDPR).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    /// The card's id.
    pub id: CardId,
    /// Whether the visitor must agree, or is only told.
    pub mode: ConsentMode,
    /// The notice shown.
    pub notice: Template,
    /// The button that agrees (explicit mode); `I agree` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agree: Option<String>,
    /// The button that declines (explicit mode); `No, thanks` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<String>,
    /// Where to go once consent is given (or, when implicit, shown).
    pub then: CardId,
    /// Where to go when the visitor declines; without it the bot says goodbye and ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_decline: Option<CardId>,
}

impl Consent {
    /// The label of the agree button.
    pub fn agree_label(&self) -> &str {
        self.agree.as_deref().unwrap_or("I agree")
    }

    /// The label of the decline button.
    pub fn decline_label(&self) -> &str {
        self.decline.as_deref().unwrap_or("No, thanks")
    }
}

/// The two kinds of consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentMode {
    /// The visitor must press agree before the conversation goes on.
    Explicit,
    /// The notice is shown; going on counts as consent.
    Implicit,
}

/// `end`: the conversation is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct End {
    /// The card's id.
    pub id: CardId,
    /// How it ended.
    #[serde(default)]
    pub outcome: Outcome,
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn a_pattern_cannot_escape_its_anchors() {
        assert!(Pattern::new("[0-9]+)|(.*").is_err());
        assert!(Pattern::new("a)|(b").is_err());
        let p = Pattern::new("[0-9]+|x").unwrap();
        assert!(p.is_match("42") && p.is_match("x"));
        assert!(!p.is_match("42x") && !p.is_match("hello"));
    }
}
