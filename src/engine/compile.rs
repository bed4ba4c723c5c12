//! The program compiled once for running: targets resolved to indices, variables to keys,
//! labels lowered, templates split into constant text and variable keys.

use std::borrow::Cow;
use std::collections::HashMap;

use super::session::{Session, key};
use crate::CardIx;
use crate::model::{
    self, Card, CardId, Comparison, Condition, ConsentMode, IdleAction, InputKind, Next, Outcome,
    Part, Pattern, Route, Template,
};
use crate::program::Program;

/// A reference to a value a template or condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarRef {
    /// Stored in the session's vars under this key.
    Key(u32),
    /// `{channel}`.
    Channel,
    /// `{started_at}`.
    StartedAt,
    /// `{bot}`: the bot's display name (the agent's while one handles the chat).
    Bot,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(Box<str>),
    Var(VarRef),
}

/// A compiled template: constant ones render without allocating.
#[derive(Debug, Clone)]
pub(crate) struct Tpl {
    constant: Option<Box<str>>,
    pieces: Box<[Piece]>,
}

/// Where to go next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Go {
    Card(CardIx),
    End(Outcome),
}

#[derive(Debug, Clone)]
pub(crate) enum IdleDo {
    Nudge(Tpl),
    Goto(CardIx),
}

#[derive(Debug, Clone)]
pub(crate) struct IdleC {
    pub after_ms: u64,
    pub then: IdleDo,
}

#[derive(Debug, Clone)]
pub(crate) enum Expect {
    Text,
    Email,
    Phone,
    Number,
    Pattern(Pattern),
}

#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Equals(VarRef, String),
    OneOf(VarRef, Vec<String>),
    IsSet(VarRef),
    NotSet(VarRef),
    Compare(VarRef, Comparison, f64),
}

/// Buttons: what is shown and the trimmed lowercase form matched against.
#[derive(Debug, Clone)]
pub(crate) struct Buttons {
    pub labels: Box<[String]>,
    pub lower: Box<[String]>,
}

impl Buttons {
    fn new(labels: impl IntoIterator<Item = String>) -> Self {
        let labels: Box<[String]> = labels.into_iter().collect();
        let lower = labels
            .iter()
            .map(|l| l.trim().to_ascii_lowercase())
            .collect();
        Buttons { labels, lower }
    }

    /// The button a typed text picks: its label (trimmed, ASCII case ignored) or its
    /// 1-based number.
    pub fn pick(&self, text: &str) -> Option<usize> {
        let t = text.trim();
        if let Some(i) = self.lower.iter().position(|l| l.eq_ignore_ascii_case(t)) {
            return Some(i);
        }
        match t.parse::<usize>() {
            Ok(n) if n >= 1 && n <= self.labels.len() => Some(n - 1),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Compiled {
    Message {
        text: Tpl,
        then: Go,
    },
    Question {
        text: Tpl,
        save: Option<u32>,
        buttons: Buttons,
        targets: Box<[CardIx]>,
        free_text: Option<CardIx>,
        idle: Option<IdleC>,
    },
    Ask {
        text: Tpl,
        expect: Expect,
        save: Option<u32>,
        reprompt: Tpl,
        give_up: Option<(u32, CardIx)>,
        idle: Option<IdleC>,
        then: CardIx,
    },
    Branch {
        rules: Box<[(Cond, CardIx)]>,
        otherwise: CardIx,
    },
    LiveChat {
        online: Tpl,
        wait_ms: u64,
        offline: Tpl,
        route: Route,
        on_closed: CardIx,
        on_offline: CardIx,
        on_timeout: CardIx,
    },
    Capture {
        then: Go,
        /// Every variable the record's templates read, resolved once here so that a capture
        /// finds values by a short scan instead of hashing names.
        vars: Box<[(Box<str>, VarRef)]>,
    },
    Consent {
        notice: Tpl,
        explicit: bool,
        buttons: Buttons,
        then: CardIx,
        on_decline: Option<CardIx>,
    },
    End {
        outcome: Outcome,
    },
}

/// Values a template reads that are not stored in the session.
pub(crate) struct SysCtx<'e> {
    pub bot: &'e str,
}

impl Tpl {
    pub fn render<'e>(&'e self, s: &Session, sys: &SysCtx<'e>) -> Cow<'e, str> {
        if let Some(c) = &self.constant {
            return Cow::Borrowed(c);
        }
        let mut out = String::new();
        for p in self.pieces.iter() {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(r) => match lookup(*r, s, sys) {
                    Some(Cow::Borrowed(v)) => out.push_str(v),
                    Some(Cow::Owned(v)) => out.push_str(&v),
                    None => {}
                },
            }
        }
        Cow::Owned(out)
    }
}

/// The value of a reference in a session.
pub(crate) fn lookup<'s>(r: VarRef, s: &'s Session, sys: &SysCtx<'s>) -> Option<Cow<'s, str>> {
    match r {
        VarRef::Key(k) => s.vars.get(k).map(Cow::Borrowed),
        VarRef::Channel => Some(Cow::Borrowed(s.channel.name())),
        VarRef::StartedAt => Some(Cow::Owned(s.started_at.to_rfc3339())),
        VarRef::Bot => Some(Cow::Borrowed(bot_name(s, sys.bot))),
    }
}

/// The bot's display name: the agent's once one joined.
pub(crate) fn bot_name<'s>(s: &'s Session, bot: &'s str) -> &'s str {
    s.handler().unwrap_or(bot)
}

impl Cond {
    pub fn holds(&self, s: &Session, sys: &SysCtx<'_>) -> bool {
        let get = |r: &VarRef| lookup(*r, s, sys);
        match self {
            Cond::Equals(r, v) => get(r).is_some_and(|x| x.trim().eq_ignore_ascii_case(v)),
            Cond::OneOf(r, vs) => {
                get(r).is_some_and(|x| vs.iter().any(|v| x.trim().eq_ignore_ascii_case(v)))
            }
            Cond::IsSet(r) => get(r).is_some_and(|x| !x.trim().is_empty()),
            Cond::NotSet(r) => get(r).is_none_or(|x| x.trim().is_empty()),
            Cond::Compare(r, cmp, n) => get(r)
                .and_then(|x| super::input::parse_number(&x))
                .is_some_and(|x| cmp.holds(x, *n)),
        }
    }
}

/// Everything compiled, plus the variable table.
pub(crate) struct Compiler {
    pub vars: Vec<String>,
    pub index: HashMap<String, u32>,
}

impl Compiler {
    fn var(&mut self, name: &str) -> VarRef {
        match name {
            "conversation_id" => VarRef::Key(key::CONVERSATION),
            "page_url" => VarRef::Key(key::PAGE_URL),
            "agent" => VarRef::Key(key::AGENT),
            "channel" => VarRef::Channel,
            "started_at" => VarRef::StartedAt,
            "bot" => VarRef::Bot,
            _ => VarRef::Key(self.user_key(name)),
        }
    }

    /// The key of a playbook variable; saves to system names get a private key (check
    /// rejects them, and a run must never overwrite the conversation id).
    fn user_key(&mut self, name: &str) -> u32 {
        if let Some(&k) = self.index.get(name) {
            return k;
        }
        let k = key::FIRST_USER_KEY + self.vars.len() as u32;
        self.vars.push(name.to_owned());
        self.index.insert(name.to_owned(), k);
        k
    }

    pub fn tpl(&mut self, t: &Template) -> Tpl {
        let pieces: Box<[Piece]> = t
            .parts()
            .iter()
            .map(|p| match p {
                Part::Text(s) => Piece::Text(s.as_str().into()),
                Part::Var(v) => Piece::Var(self.var(v.as_str())),
            })
            .collect();
        let constant = if pieces.iter().all(|p| matches!(p, Piece::Text(_))) {
            Some(t.render(|_| None).into_boxed_str())
        } else {
            None
        };
        Tpl { constant, pieces }
    }

    fn text(&mut self, s: &str) -> Tpl {
        Tpl {
            constant: Some(s.into()),
            pieces: Box::new([]),
        }
    }

    fn idle(&mut self, p: &Program, idle: &Option<model::Idle>) -> Option<IdleC> {
        idle.as_ref().map(|i| IdleC {
            after_ms: i.after.as_millis(),
            then: match &i.then {
                IdleAction::Nudge(t) => IdleDo::Nudge(self.tpl(t)),
                IdleAction::Goto(id) => IdleDo::Goto(p.ix(id)),
            },
        })
    }

    fn cond(&mut self, c: &Condition) -> Cond {
        let r = self.var(c.var().as_str());
        match c {
            Condition::Equals { value, .. } => Cond::Equals(r, value.trim().to_owned()),
            Condition::OneOf { values, .. } => {
                Cond::OneOf(r, values.iter().map(|v| v.trim().to_owned()).collect())
            }
            Condition::IsSet { .. } => Cond::IsSet(r),
            Condition::NotSet { .. } => Cond::NotSet(r),
            Condition::Compare { cmp, value, .. } => Cond::Compare(r, *cmp, *value),
        }
    }

    fn save(&mut self, v: &Option<model::VarName>) -> Option<u32> {
        v.as_ref().map(|v| {
            if v.is_system() {
                self.user_key(&format!("#{v}"))
            } else {
                self.user_key(v.as_str())
            }
        })
    }

    pub fn card(&mut self, p: &Program, card: &Card) -> Compiled {
        let go = |n: &Next| match n {
            Next::Goto(id) => Go::Card(p.ix(id)),
            Next::End(o) => Go::End(*o),
        };
        let ix = |id: &CardId| p.ix(id);
        match card {
            Card::Message(c) => Compiled::Message {
                text: self.tpl(&c.text),
                then: go(&c.then),
            },
            Card::Question(c) => Compiled::Question {
                text: self.tpl(&c.text),
                save: self.save(&c.save),
                buttons: Buttons::new(c.answers.iter().map(|a| a.label.clone())),
                targets: c.answers.iter().map(|a| ix(&a.to)).collect(),
                free_text: c.free_text.as_ref().map(ix),
                idle: self.idle(p, &c.idle),
            },
            Card::Ask(c) => {
                let expect = match &c.expect {
                    InputKind::Text => Expect::Text,
                    InputKind::Email => Expect::Email,
                    InputKind::Phone => Expect::Phone,
                    InputKind::Number => Expect::Number,
                    InputKind::Pattern(p) => Expect::Pattern(p.clone()),
                };
                let reprompt = match &c.reprompt {
                    Some(t) => self.tpl(t),
                    None => self.text(super::input::default_reprompt(&expect)),
                };
                Compiled::Ask {
                    text: self.tpl(&c.text),
                    expect,
                    save: self.save(&c.save),
                    reprompt,
                    give_up: c.give_up.as_ref().map(|g| (g.after.get(), ix(&g.to))),
                    idle: self.idle(p, &c.idle),
                    then: ix(&c.then),
                }
            }
            Card::Branch(c) => Compiled::Branch {
                rules: c
                    .rules
                    .iter()
                    .map(|r| (self.cond(&r.when), ix(&r.to)))
                    .collect(),
                otherwise: ix(&c.otherwise),
            },
            Card::LiveChat(c) => Compiled::LiveChat {
                online: self.tpl(&c.online),
                wait_ms: c.wait.as_millis(),
                offline: self.tpl(&c.offline),
                route: c.route.clone(),
                on_closed: ix(&c.on_closed),
                on_offline: ix(&c.on_offline),
                on_timeout: ix(c.timeout_target()),
            },
            Card::Capture(c) => {
                // Register the record's variables so that captures can find them by name.
                let mut vars: Vec<(Box<str>, VarRef)> = Vec::new();
                for (_, t) in c.record.templates() {
                    for v in t.vars() {
                        let r = self.var(v.as_str());
                        if !vars.iter().any(|(n, _)| &**n == v.as_str()) {
                            vars.push((v.as_str().into(), r));
                        }
                    }
                }
                Compiled::Capture {
                    then: go(&c.then),
                    vars: vars.into(),
                }
            }
            Card::Consent(c) => Compiled::Consent {
                notice: self.tpl(&c.notice),
                explicit: c.mode == ConsentMode::Explicit,
                buttons: Buttons::new([c.agree_label().to_owned(), c.decline_label().to_owned()]),
                then: ix(&c.then),
                on_decline: c.on_decline.as_ref().map(ix),
            },
            Card::End(c) => Compiled::End { outcome: c.outcome },
        }
    }
}
