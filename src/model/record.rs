//! What a capture card writes: lead, deal and activity specifications.
//!
//! Every text field is a [`Template`] over the conversation's variables; the `capture` module
//! turns a spec into a concrete record when the card runs.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Duration, Template};

/// The record a capture card makes. `type` selects the variant in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordSpec {
    /// A lead: a potential deal not yet qualified by sales.
    Lead(LeadSpec),
    /// A deal in a pipeline.
    Deal(DealSpec),
    /// A follow-up activity (call, meeting, task…).
    Activity(ActivitySpec),
}

impl RecordSpec {
    /// Who owns the record, if the card says.
    pub fn owner(&self) -> Option<&Owner> {
        match self {
            RecordSpec::Lead(l) => l.owner.as_ref(),
            RecordSpec::Deal(d) => d.owner.as_ref(),
            RecordSpec::Activity(a) => a.owner.as_ref(),
        }
    }

    /// `lead`, `deal` or `activity`.
    pub fn type_name(&self) -> &'static str {
        match self {
            RecordSpec::Lead(_) => "lead",
            RecordSpec::Deal(_) => "deal",
            RecordSpec::Activity(_) => "activity",
        }
    }

    /// Every template of the record, with the JSON field path it sits at (relative to the
    /// record), so that checks can point at the one that reads an unset variable.
    pub fn templates<'a>(&'a self) -> Vec<(String, &'a Template)> {
        let mut out: Vec<(String, &Template)> = Vec::new();
        fn opt<'a>(out: &mut Vec<(String, &'a Template)>, path: &str, t: &'a Option<Template>) {
            if let Some(t) = t {
                out.push((path.to_owned(), t));
            }
        }
        let push = |out: &mut Vec<(String, &'a Template)>, path: &str, t: &'a Option<Template>| {
            opt(out, path, t)
        };
        match self {
            RecordSpec::Lead(l) => {
                push(&mut out, "title", &l.title);
                push(&mut out, "organization", &l.organization);
                push(&mut out, "value", &l.value);
                push(&mut out, "status", &l.status);
                push(&mut out, "source", &l.source);
                push_person(&mut out, &l.person);
                push_fields(&mut out, &l.fields);
            }
            RecordSpec::Deal(d) => {
                push(&mut out, "title", &d.title);
                push(&mut out, "organization", &d.organization);
                push(&mut out, "value", &d.value);
                push(&mut out, "status", &d.status);
                push_person(&mut out, &d.person);
                push_fields(&mut out, &d.fields);
            }
            RecordSpec::Activity(a) => {
                push(&mut out, "subject", &a.subject);
                push(&mut out, "note", &a.note);
            }
        }
        out
    }
}

fn push_person<'a>(out: &mut Vec<(String, &'a Template)>, person: &'a Option<PersonSpec>) {
    if let Some(p) = person {
        for (name, t) in [("name", &p.name), ("email", &p.email), ("phone", &p.phone)] {
            if let Some(t) = t {
                out.push((format!("person/{name}"), t));
            }
        }
    }
}

fn push_fields<'a>(out: &mut Vec<(String, &'a Template)>, fields: &'a BTreeMap<String, Template>) {
    for (k, t) in fields {
        out.push((format!("fields/{k}"), t));
    }
}

/// A lead (Pipedrive's Leads Inbox, Zendesk Sell's leads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeadSpec {
    /// The lead's title, e.g. `"Demo request ({size})"`. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Template>,
    /// The contact person. A lead needs a person or an organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonSpec>,
    /// The organization's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Template>,
    /// The expected value, a number after templating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Template>,
    /// The value's currency (ISO 4217, e.g. `EUR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Who owns the lead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The lead status; `New` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Template>,
    /// Where the lead came from; `Chatbot` (or `Live chat` after a handoff) without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Template>,
    /// Labels attached to the lead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Custom fields, mapped from answers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Template>,
}

/// A deal in a pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DealSpec {
    /// The deal's title. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<Template>,
    /// The deal's value, a number after templating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Template>,
    /// The value's currency (ISO 4217).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The pipeline the deal goes in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    /// The pipeline stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The contact person. A deal needs a person or an organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonSpec>,
    /// The organization's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<Template>,
    /// Who owns the deal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// The deal status; `Open` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Template>,
    /// Labels attached to the deal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Custom fields, mapped from answers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Template>,
}

/// A follow-up activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivitySpec {
    /// What kind of activity.
    pub activity: ActivityType,
    /// The subject line. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Template>,
    /// When it is due, counted from the moment the card runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<Duration>,
    /// A note for whoever does it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<Template>,
    /// Who does it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// Link it to the lead or deal made earlier in the same conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkTo>,
}

/// Kinds of activity, as in Pipedrive's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityType {
    /// A phone call.
    Call,
    /// A meeting.
    Meeting,
    /// A task.
    Task,
    /// An email to send.
    Email,
    /// A deadline.
    Deadline,
    /// A lunch.
    Lunch,
}

impl ActivityType {
    /// The keyword.
    pub fn name(self) -> &'static str {
        match self {
            ActivityType::Call => "call",
            ActivityType::Meeting => "meeting",
            ActivityType::Task => "task",
            ActivityType::Email => "email",
            ActivityType::Deadline => "deadline",
            ActivityType::Lunch => "lunch",
        }
    }
}

/// Which earlier record an activity links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkTo {
    /// The lead made earlier in this conversation.
    Lead,
    /// The deal made earlier in this conversation.
    Deal,
}

/// The contact person of a lead or deal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonSpec {
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Template>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Template>,
    /// Phone number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<Template>,
}

/// Who owns a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Owner {
    /// A named CRM user.
    User(String),
    /// A distribution pool: its members take turns (round robin).
    Pool(String),
    /// The agent who handled the live chat (or the pool's default when nobody did).
    Agent,
}
