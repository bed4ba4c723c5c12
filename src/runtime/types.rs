//! Owned values that leave the hub: what one hub call produced (effects made owned with
//! [`Effect::into_owned`], so they can cross channels) and the commands a driver sends for a
//! conversation.

use serde::{Deserialize, Serialize};

use crate::capture::{ManualDetails, ManualKind, Stored};
use crate::desk::{Notification, Presence};
use crate::engine::{Channel, Effect};

/// One effect of one conversation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Emitted {
    /// The conversation.
    pub conversation: String,
    /// What to do.
    #[serde(flatten)]
    pub effect: Effect<'static>,
}

/// The new lines of one conversation after one step, and its phase after them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConvUpdate {
    /// The conversation.
    pub conversation: String,
    /// The sequence number (from 1) of the first line in `lines`.
    pub first_seq: u64,
    /// The lines the step added (possibly none).
    pub lines: Vec<crate::capture::Line>,
    /// Where the conversation is after the step.
    pub phase: crate::engine::Phase,
    /// The agent handling it after the step, if one is (the name the visitor's chat shows).
    pub agent: Option<String>,
}

/// Everything one hub call produced, in order of happening.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Outputs {
    /// Effects, per conversation, in the order the engine gave them (timers fired by
    /// [`super::Hub::advance`] in deadline order).
    pub effects: Vec<Emitted>,
    /// Desk notifications for agents.
    pub notifications: Vec<Notification>,
    /// Records the ledger accepted as new (duplicates of a replayed step are not here), with
    /// their transcripts; each was also handed to the sink.
    pub records: Vec<Stored>,
    /// Sink failures (the record is in the ledger; the sink did not take it).
    pub sink_errors: Vec<String>,
    /// Per step: the conversation's new transcript lines, numbered, and its phase.
    pub updates: Vec<ConvUpdate>,
}

impl Outputs {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.effects.is_empty()
            && self.notifications.is_empty()
            && self.records.is_empty()
            && self.sink_errors.is_empty()
            && self.updates.iter().all(|u| u.lines.is_empty())
    }

    /// Appends another call's outputs.
    pub fn extend(&mut self, other: Outputs) {
        self.effects.extend(other.effects);
        self.notifications.extend(other.notifications);
        self.records.extend(other.records);
        self.sink_errors.extend(other.sink_errors);
        self.updates.extend(other.updates);
    }

    /// The effects of one conversation.
    pub fn of<'a>(
        &'a self,
        conversation: &'a str,
    ) -> impl Iterator<Item = &'a Effect<'static>> + 'a {
        self.effects
            .iter()
            .filter(move |e| e.conversation == conversation)
            .map(|e| &e.effect)
    }
}

/// The one input vocabulary: something done to a conversation or to the desk, as every
/// driver (the server, `playbook run`, scenarios, the tokio driver) sends it to
/// [`super::Hub::apply`]. The serde form is tagged by `event`
/// (`{"event":"pickup","agent":"ana"}`). Every field is resolved: a driver that offers
/// defaults ("the first online agent") fills them in before building the command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Command {
    /// The visitor opened the chat.
    Start {
        /// The playbook, by name (its newest version); the hub's first one when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        playbook: Option<String>,
        /// Where.
        #[serde(default)]
        channel: Channel,
        /// The page the chat started on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        page_url: Option<String>,
        /// The visitor's CRM owner, if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact_owner: Option<String>,
        /// The visitor's secret, when a server hands one out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Who the visitor is, as the embedding site vouched (a signed identity).
        #[serde(default, skip_serializing_if = "Visitor::is_empty")]
        visitor: Visitor,
    },
    /// The visitor typed something.
    VisitorText {
        /// What.
        text: String,
        /// Where.
        #[serde(default)]
        channel: Channel,
    },
    /// The visitor pressed a button (counted from 0).
    VisitorChoice {
        /// Which button.
        index: usize,
        /// Where.
        #[serde(default)]
        channel: Channel,
    },
    /// An agent assigns the waiting conversation to themselves.
    Pickup {
        /// Who.
        agent: String,
    },
    /// The handling agent writes to the visitor.
    AgentMessage {
        /// Who.
        agent: String,
        /// What.
        text: String,
    },
    /// The handling agent passes the conversation to another online agent.
    Reassign {
        /// The handling agent.
        by: String,
        /// The new one.
        to: String,
    },
    /// The handling agent closes the conversation.
    Close {
        /// Who.
        agent: String,
    },
    /// The visitor continues the conversation on another channel: a social contact linked
    /// to it (`contact`, with the message that made the link as `said`), or back on the web
    /// (no contact). Replies follow from here; the flow does not move.
    SwitchChannel {
        /// Where it continues.
        channel: Channel,
        /// The visitor's id there (a WhatsApp number, a page-scoped id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contact: Option<String>,
        /// What they wrote to link it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        said: Option<String>,
    },
    /// An agent's presence changes. It concerns the whole desk, not one conversation:
    /// [`super::Hub::apply`] ignores the conversation id for it.
    Presence {
        /// Who.
        agent: String,
        /// Online, away or offline.
        presence: Presence,
    },
    /// An agent makes a lead or deal from the conversation (open or closed).
    CreateRecord {
        /// Who.
        agent: String,
        /// Lead or deal.
        kind: ManualKind,
        /// What they filled in.
        #[serde(default)]
        details: ManualDetails,
    },
}

/// What the embedding site vouched for about the visitor (a signed identity): set at the
/// start as the playbook's `email` and `name` variables, where the playbook has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visitor {
    /// Their email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Their name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Visitor {
    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.email.is_none() && self.name.is_none()
    }

    /// As playbook variables: `(name, value)`.
    pub fn vars(&self) -> Vec<(String, String)> {
        [("email", &self.email), ("name", &self.name)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_owned(), v.clone())))
            .collect()
    }
}
