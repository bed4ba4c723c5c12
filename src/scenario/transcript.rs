//! A scenario's transcript: who said what on which channel at which virtual time, the buttons
//! offered, re-prompts, desk events, timers, and every captured record in full. Rendered as
//! text (made to review well as a snapshot diff) and as JSON.
//!
//! Must not run anything: the runner fills it in. Rendering is deterministic (fixed field
//! order, times relative to the start, no trailing spaces).

use std::fmt::Write as _;

use serde::Serialize;

use crate::capture::{Record, RecordData};
use crate::engine::{Channel, Instant};
use crate::model::Outcome;

/// One conversation as it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The scenario's name (its file name without `.scenario`).
    pub scenario: String,
    /// The playbook's name (its header).
    pub playbook: String,
    /// The playbook file as the scenario names it.
    pub playbook_file: String,
    /// Where the conversation started, when it started mid-flow (`start at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_at: Option<String>,
    /// The desk as set up: agents with presence, teams, pools.
    pub desk: Vec<String>,
    /// What happened, in order.
    pub entries: Vec<Entry>,
}

/// Something that happened at a moment (milliseconds after the start).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// Milliseconds since the conversation started.
    pub at_ms: u64,
    /// What.
    #[serde(flatten)]
    pub what: What,
}

/// The kinds of transcript entries.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum What {
    /// The visitor opened the chat.
    Opened {
        /// Channel.
        channel: Channel,
        /// The page, if the scenario names one.
        #[serde(skip_serializing_if = "Option::is_none")]
        page: Option<String>,
    },
    /// The visitor wrote or pressed a button.
    Visitor {
        /// Channel.
        channel: Channel,
        /// The text (a pressed button shows its label).
        text: String,
        /// Whether it was a button press.
        button: bool,
    },
    /// The bot said or asked something (under the agent's name once one joined).
    Bot {
        /// Display name.
        name: String,
        /// Channel.
        channel: Channel,
        /// Text.
        text: String,
        /// Buttons offered, if it is a question.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<String>,
        /// Whether it asks for input (a question or an ask card).
        asks: bool,
        /// Whether it repeats a question after an answer that did not fit.
        retry: bool,
    },
    /// A human agent wrote.
    Agent {
        /// Agent.
        name: String,
        /// Channel.
        channel: Channel,
        /// Text.
        text: String,
    },
    /// A chat notice ("ana joined the conversation").
    System {
        /// Channel.
        channel: Channel,
        /// Text.
        text: String,
    },
    /// A desk event: queues, pick-ups, reassigning, presence, notifications.
    Desk {
        /// What, in words.
        text: String,
    },
    /// A timer fired.
    Timer {
        /// Which, in words.
        text: String,
    },
    /// A record was captured (or made by an agent) and stored.
    Record {
        /// The record.
        record: Box<Record>,
        /// How many transcript lines were attached to it.
        attached: u32,
    },
    /// The conversation ended.
    Ended {
        /// How.
        outcome: Outcome,
    },
    /// The conversation stopped with an error.
    Failed {
        /// Why.
        message: String,
    },
}

/// `+mm:ss`, or `+h:mm:ss` from one hour on.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("+{}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
    } else {
        format!("+{:02}:{:02}", s / 60, s % 60)
    }
}

/// The outcome as a word.
pub fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Qualified => "qualified",
        Outcome::Disqualified => "disqualified",
        Outcome::None => "none",
    }
}

/// Lines under an entry start where its text does (time 8, space, tag 9, space).
const INDENT: &str = "                   ";

impl Transcript {
    /// The text rendering (what snapshots hold). `start` is the virtual start time, used to
    /// show absolute moments (activity due dates) relative to it.
    pub fn to_text(&self, start: Instant) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "scenario: {}", self.scenario);
        let _ = writeln!(out, "playbook: {} ({})", self.playbook, self.playbook_file);
        if let Some(card) = &self.start_at {
            let _ = writeln!(out, "start at: {card}");
        }
        if self.desk.is_empty() {
            let _ = writeln!(out, "desk: no agents");
        } else {
            let _ = writeln!(out, "desk: {}", self.desk.join("; "));
        }
        out.push('\n');
        for e in &self.entries {
            let t = clock(e.at_ms);
            let line = |tag: &str, body: &str| format!("{t:<8} {tag:<9} {body}");
            match &e.what {
                What::Opened { channel, page } => {
                    let on = page.as_ref().map_or(String::new(), |p| format!(" on {p}"));
                    out.push_str(&line(
                        channel.name(),
                        &format!("visitor opens the chat{on}"),
                    ));
                }
                What::Visitor {
                    channel,
                    text,
                    button,
                } => {
                    let how = if *button { " [pressed]" } else { "" };
                    out.push_str(&line(channel.name(), &format!("visitor: {text}{how}")));
                }
                What::Bot {
                    name,
                    channel,
                    text,
                    buttons,
                    asks,
                    retry,
                } => {
                    let mark = match (asks, retry) {
                        (_, true) => " (again)",
                        _ => "",
                    };
                    out.push_str(&line(channel.name(), &format!("{name}{mark}: {text}")));
                    if !buttons.is_empty() {
                        let b: Vec<String> = buttons.iter().map(|b| format!("[{b}]")).collect();
                        let _ = write!(out, "\n{INDENT}{}", b.join(" "));
                    } else if *asks {
                        let _ = write!(out, "\n{INDENT}(typed answer)");
                    }
                }
                What::Agent {
                    name,
                    channel,
                    text,
                } => out.push_str(&line(channel.name(), &format!("{name} (agent): {text}"))),
                What::System { channel, text } => {
                    out.push_str(&line(channel.name(), &format!("* {text}")))
                }
                What::Desk { text } => out.push_str(&line("desk", text)),
                What::Timer { text } => out.push_str(&line("timer", text)),
                What::Record { record, attached } => {
                    render_record(&mut out, &line("record", ""), record, *attached, start)
                }
                What::Ended { outcome } => {
                    out.push_str(&line("end", outcome_word(*outcome)));
                }
                What::Failed { message } => out.push_str(&line("failed", message)),
            }
            // No trailing spaces: they would make the snapshot diff noisy.
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
        }
        out
    }

    /// The JSON rendering: the same entries with times in milliseconds since the start.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn money(v: &Option<crate::capture::Money>, cur: &Option<String>) -> String {
    match (v, cur) {
        (Some(v), Some(c)) => format!("{v} {c}"),
        (Some(v), None) => v.to_string(),
        (None, _) => "-".to_owned(),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(", ")
    }
}

fn render_record(out: &mut String, head: &str, r: &Record, attached: u32, start: Instant) {
    let kind = match &r.data {
        RecordData::Lead(_) => "lead",
        RecordData::Deal(_) => "deal",
        RecordData::Activity(_) => "activity",
    };
    let _ = write!(out, "{head}{kind} {}", r.key);
    let mut field = |k: &str, v: &str| {
        let _ = write!(out, "\n{INDENT}  {k}: {v}");
    };
    let person = |p: &crate::capture::Person| {
        format!(
            "name {}, email {}, phone {}",
            opt(&p.name),
            opt(&p.email),
            opt(&p.phone)
        )
    };
    match &r.data {
        RecordData::Lead(l) => {
            field("title", &l.title);
            field("person", &person(&l.person));
            field("organization", opt(&l.organization));
            field("value", &money(&l.value, &l.currency));
            field("status", &l.status);
            field("source", &l.source);
            field("labels", &list(&l.labels));
            for (k, v) in &l.fields {
                field(&format!("field {k:?}"), v);
            }
            if let Some(n) = &l.note {
                field("note", n);
            }
        }
        RecordData::Deal(d) => {
            field("title", &d.title);
            field("person", &person(&d.person));
            field("organization", opt(&d.organization));
            field("value", &money(&d.value, &d.currency));
            field("pipeline", opt(&d.pipeline));
            field("stage", opt(&d.stage));
            field("status", &d.status);
            field("source", &d.source);
            field("labels", &list(&d.labels));
            for (k, v) in &d.fields {
                field(&format!("field {k:?}"), v);
            }
            if let Some(n) = &d.note {
                field("note", n);
            }
        }
        RecordData::Activity(a) => {
            field("type", a.activity.name());
            field("subject", &a.subject);
            let due = a.due.map_or("-".to_owned(), |d| {
                format!(
                    "{} ({})",
                    clock(d.0.saturating_sub(start.0)),
                    d.to_rfc3339()
                )
            });
            field("due", &due);
            field("note", opt(&a.note));
            field("linked to", opt(&a.link));
        }
    }
    let owner = match (&r.owner, &r.pool) {
        (Some(o), Some(p)) => format!("{o} (pool {p:?})"),
        (Some(o), None) => o.clone(),
        (None, Some(p)) => format!("- (pool {p:?} is empty)"),
        (None, None) => "-".to_owned(),
    };
    field("owner", &owner);
    field("channel", r.channel.name());
    field(
        "created",
        &format!(
            "{} ({})",
            clock(r.created_at.0.saturating_sub(start.0)),
            r.created_at.to_rfc3339()
        ),
    );
    field("transcript", &format!("{attached} lines attached"));
    if let Some(c) = &r.consent {
        let mode = match c.mode {
            crate::capture::ConsentMode::Explicit => "explicit",
            crate::capture::ConsentMode::Implicit => "implicit",
        };
        field(
            "consent",
            &format!(
                "{mode} at {} ({:?})",
                clock(c.at.0.saturating_sub(start.0)),
                c.notice
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats() {
        assert_eq!(clock(0), "+00:00");
        assert_eq!(clock(125_000), "+02:05");
        assert_eq!(clock(3_600_000 * 25 + 61_000), "+25:01:01");
    }
}
