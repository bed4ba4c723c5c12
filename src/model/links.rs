//! Where a card can lead: the single list of outgoing links that the graph, the checks and
//! coverage all read, so that no two of them disagree about a card's ways on.

use super::{Card, CardId, IdleAction, Next};

/// Why the flow follows a link. Within one card a kind (with its index) names one link
/// exactly. Its serde form is `"next"`, `{"answer":1}`, `{"rule":0}`, `"otherwise"`…
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A message or capture going on.
    Next,
    /// The answer button with this index was chosen.
    Answer(usize),
    /// Free text on a question that accepts it.
    FreeText,
    /// Valid typed input on an `ask` card.
    Valid,
    /// Too many invalid answers on an `ask` card.
    GiveUp,
    /// The idle timeout of a waiting card.
    Idle,
    /// The branch rule with this index held.
    Rule(usize),
    /// No branch rule held.
    Otherwise,
    /// The agent closed the live chat.
    Closed,
    /// No agent was online for the live chat.
    Offline,
    /// Nobody picked the live chat up in time.
    Timeout,
    /// Consent was given (or, when implicit, shown).
    Agreed,
    /// Consent was declined.
    Declined,
}

impl LinkKind {
    /// Whether following this link means the visitor (or an agent, or time) acted first: the
    /// engine waited before taking it. Links that are not waits chain within one step.
    pub fn waits(self) -> bool {
        !matches!(
            self,
            LinkKind::Next | LinkKind::Rule(_) | LinkKind::Otherwise | LinkKind::Offline
        )
    }
}

/// One outgoing link of a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link<'a> {
    /// Why it is followed.
    pub kind: LinkKind,
    /// Where it leads.
    pub to: &'a CardId,
    /// The JSON pointer of the target, relative to the card (`/answers/1/to`).
    pub field: Field,
    /// Whether the engine waits for the visitor (or an agent, or a timer) before following
    /// this link. Links that do not wait chain within one step, so a cycle of them spins.
    pub waits: bool,
}

/// The place of a link's target inside its card, as a JSON pointer suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// A fixed field path such as `/then/goto`.
    Static(&'static str),
    /// `/{list}/{index}/to`, for answers and rules.
    Indexed(&'static str, usize),
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::Static(s) => f.write_str(s),
            Field::Indexed(list, i) => write!(f, "/{list}/{i}/to"),
        }
    }
}

impl Card {
    /// Every way on from this card, in the order written.
    pub fn links(&self) -> Vec<Link<'_>> {
        let mut out = Vec::new();
        let implicit_consent =
            matches!(self, Card::Consent(c) if c.mode == super::ConsentMode::Implicit);
        let mut push = |kind, to, field| {
            let waits = match kind {
                LinkKind::Next | LinkKind::Rule(_) | LinkKind::Otherwise | LinkKind::Offline => {
                    false
                }
                LinkKind::Agreed => !implicit_consent,
                _ => true,
            };
            out.push(Link {
                kind,
                to,
                field,
                waits,
            })
        };
        fn next(n: &Next) -> Option<&CardId> {
            match n {
                Next::Goto(id) => Some(id),
                Next::End(_) => None,
            }
        }
        match self {
            Card::Message(c) => {
                if let Some(to) = next(&c.then) {
                    push(LinkKind::Next, to, Field::Static("/then/goto"));
                }
            }
            Card::Question(c) => {
                for (i, a) in c.answers.iter().enumerate() {
                    push(LinkKind::Answer(i), &a.to, Field::Indexed("answers", i));
                }
                if let Some(to) = &c.free_text {
                    push(LinkKind::FreeText, to, Field::Static("/free_text"));
                }
                if let Some(IdleAction::Goto(to)) = c.idle.as_ref().map(|i| &i.then) {
                    push(LinkKind::Idle, to, Field::Static("/idle/then/goto"));
                }
            }
            Card::Ask(c) => {
                push(LinkKind::Valid, &c.then, Field::Static("/then"));
                if let Some(g) = &c.give_up {
                    push(LinkKind::GiveUp, &g.to, Field::Static("/give_up/to"));
                }
                if let Some(IdleAction::Goto(to)) = c.idle.as_ref().map(|i| &i.then) {
                    push(LinkKind::Idle, to, Field::Static("/idle/then/goto"));
                }
            }
            Card::Branch(c) => {
                for (i, r) in c.rules.iter().enumerate() {
                    push(LinkKind::Rule(i), &r.to, Field::Indexed("rules", i));
                }
                push(
                    LinkKind::Otherwise,
                    &c.otherwise,
                    Field::Static("/otherwise"),
                );
            }
            Card::LiveChat(c) => {
                push(LinkKind::Closed, &c.on_closed, Field::Static("/on_closed"));
                push(
                    LinkKind::Offline,
                    &c.on_offline,
                    Field::Static("/on_offline"),
                );
                let timeout_field = if c.on_timeout.is_some() {
                    Field::Static("/on_timeout")
                } else {
                    Field::Static("/on_offline")
                };
                push(LinkKind::Timeout, c.timeout_target(), timeout_field);
            }
            Card::Capture(c) => {
                if let Some(to) = next(&c.then) {
                    push(LinkKind::Next, to, Field::Static("/then/goto"));
                }
            }
            Card::Consent(c) => {
                push(LinkKind::Agreed, &c.then, Field::Static("/then"));
                if let Some(to) = &c.on_decline {
                    push(LinkKind::Declined, to, Field::Static("/on_decline"));
                }
            }
            Card::End(_) => {}
        }
        out
    }

    /// Whether the card can end the conversation itself (an `end` card, a message or capture
    /// with `end`, or an explicit consent without `on_decline`).
    pub fn can_end(&self) -> bool {
        match self {
            Card::End(_) => true,
            Card::Message(c) => matches!(c.then, Next::End(_)),
            Card::Capture(c) => matches!(c.then, Next::End(_)),
            Card::Consent(c) => c.mode == super::ConsentMode::Explicit && c.on_decline.is_none(),
            _ => false,
        }
    }
}

impl Card {
    /// A link in words: `answer "Book a demo"`, `rule 1`, `on timeout`…
    pub fn describe_link(&self, kind: LinkKind) -> String {
        let card = self;
        match kind {
            LinkKind::Next => "next".to_owned(),
            LinkKind::Answer(i) => match card {
                Card::Question(q) => q.answers.get(i).map_or(format!("answer {}", i + 1), |a| {
                    format!("answer {:?}", a.label)
                }),
                _ => format!("answer {}", i + 1),
            },
            LinkKind::FreeText => "free text".to_owned(),
            LinkKind::Valid => "valid answer".to_owned(),
            LinkKind::GiveUp => "give up (too many invalid answers)".to_owned(),
            LinkKind::Idle => "idle timeout".to_owned(),
            LinkKind::Rule(i) => format!("rule {}", i + 1),
            LinkKind::Otherwise => "else".to_owned(),
            LinkKind::Closed => "on closed (agent closed the chat)".to_owned(),
            LinkKind::Offline => "on offline (no agent online)".to_owned(),
            LinkKind::Timeout => "on timeout (nobody picked up in time)".to_owned(),
            LinkKind::Agreed => "agreed".to_owned(),
            LinkKind::Declined => "declined".to_owned(),
        }
    }
}
