//! The playbook as a whole: header and cards.

use std::num::NonZeroU32;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Card, CardId, Duration, Template};

/// The default for [`Limits::max_steps`].
pub const DEFAULT_MAX_STEPS: u32 = 100;

/// A playbook: the header and its cards. This type *is* the JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// Name, bot, language, start card, limits.
    pub playbook: Header,
    /// The cards, in the order written.
    pub cards: Vec<Card>,
}

/// A name on the desk that a card refers to: whoever runs the playbook (a server's config,
/// the terminal's simulated agents) must provide it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskRef<'p> {
    /// `route team "Sales"`.
    Team(&'p str),
    /// `route agents "ana"`.
    Agent(&'p str),
    /// `owner pool "Inbound SDRs"`.
    Pool(&'p str),
}

impl Playbook {
    /// Every desk name a card refers to, with the card's index, in card order.
    pub fn desk_refs(&self) -> Vec<(usize, DeskRef<'_>)> {
        let mut v = Vec::new();
        for (i, card) in self.cards.iter().enumerate() {
            match card {
                Card::LiveChat(l) => match &l.route.to {
                    super::RouteTarget::Team(t) => v.push((i, DeskRef::Team(t.as_str()))),
                    super::RouteTarget::Agents(names) => {
                        v.extend(names.iter().map(|n| (i, DeskRef::Agent(n.as_str()))));
                    }
                    super::RouteTarget::Anyone | super::RouteTarget::Owner => {}
                },
                Card::Capture(c) => {
                    if let Some(super::Owner::Pool(p)) = c.record.owner() {
                        v.push((i, DeskRef::Pool(p.as_str())));
                    }
                }
                _ => {}
            }
        }
        v
    }
}

/// The playbook's header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The playbook's name as admins see it.
    pub name: String,
    /// The bot's display name in the chat (replaced by the agent's when one joins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    /// The language of the texts (a BCP 47 tag such as `en` or `de`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// The first card.
    pub start: CardId,
    /// Said once when a conversation starts, before the first card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<Template>,
    /// Safety limits.
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
}

/// Limits that keep a conversation from spinning or from losing a lead.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Capture a lead from a conversation idle this long that holds contact details
    /// ("unfinished conversation"); never without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_capture: Option<Duration>,
    /// The most cards one step may run without waiting for the visitor; 100 without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<NonZeroU32>,
}

impl Limits {
    fn is_default(&self) -> bool {
        *self == Limits::default()
    }

    /// The step limit in force.
    pub fn max_steps(&self) -> u32 {
        self.max_steps.map_or(DEFAULT_MAX_STEPS, NonZeroU32::get)
    }
}

impl Playbook {
    /// The card with this id (the first one, if ids are duplicated).
    pub fn card(&self, id: &str) -> Option<&Card> {
        self.cards.iter().find(|c| c.id().as_str() == id)
    }
}
