//! Which cards and links one engine step walked, read back from the step's effects.
//!
//! The engine reports what to do, not which link it followed; rather than widen its API for
//! testing, the path is reconstructed here: the waiting card and the event fix the first link
//! (answer `i`, valid input, give-up, closed, timeout…), and the chain of cards that do not
//! wait (messages, branches, captures, offline live chats, implicit consent) is found by a
//! search over [`Card::links`] that must reproduce the effects exactly: one bot message per
//! message card (its literal text must fit the card's template), a capture per capture card,
//! the queue for a live chat, and the card the session stopped at. Branches whose outcomes
//! look identical in every effect are told apart by asking the engine which rule holds.
//! Must not: change anything, or know about desks, ledgers or files.

use std::borrow::Cow;

use crate::CardIx;
use crate::engine::{Effect, Event, Phase, Speaker, TimerKind};
use crate::model::{Card, ConsentMode, IdleAction, InputKind, LinkKind, Next, Part, Template};
use crate::program::Program;

/// What a step walked: cards entered and links followed, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Cards entered.
    pub cards: Vec<CardIx>,
    /// Links followed, as (from card, kind).
    pub links: Vec<(CardIx, LinkKind)>,
}

/// An effect reduced to what the path search compares.
#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Say(Cow<'a, str>),
    Ask(Cow<'a, str>),
    Capture(String),
    Queue,
    End,
}

fn tokens<'a>(effects: &'a [Effect<'_>]) -> Vec<Tok<'a>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Say {
                from: Speaker::Bot(_),
                text,
                ..
            } => Some(Tok::Say(Cow::Borrowed(text.as_ref()))),
            Effect::Ask {
                text, retry: false, ..
            } => Some(Tok::Ask(Cow::Borrowed(text.as_ref()))),
            Effect::Capture(r) => {
                let card = r.key.rsplit('/').next().unwrap_or("");
                (!card.starts_with('#')).then(|| Tok::Capture(card.to_owned()))
            }
            Effect::EnterUnassigned { .. } => Some(Tok::Queue),
            Effect::End { .. } => Some(Tok::End),
            _ => None,
        })
        .collect()
}

/// Whether `text` could be a rendering of `t`: its literal parts appear in order, the first
/// at the start and the last at the end.
fn fits(t: &Template, text: &str) -> bool {
    let parts = t.parts();
    let mut rest = text;
    let mut anchored = true;
    for p in parts {
        match p {
            Part::Var(_) => anchored = false,
            Part::Text(s) => {
                if anchored {
                    match rest.strip_prefix(s.as_str()) {
                        Some(r) => rest = r,
                        None => return false,
                    }
                } else {
                    match rest.find(s.as_str()) {
                        Some(i) => rest = &rest[i + s.len()..],
                        None => return false,
                    }
                }
                anchored = true;
            }
        }
    }
    // Ends with a literal: it must be at the very end (a later match may exist; accept if
    // the text ends with it).
    match parts.last() {
        Some(Part::Text(s)) => rest.is_empty() || text.ends_with(s.as_str()),
        _ => true,
    }
}

/// How the visitor's typed text is judged at an `ask` card.
pub fn valid_input(kind: &InputKind, text: &str) -> bool {
    let t = text.trim();
    match kind {
        InputKind::Text => !t.is_empty(),
        InputKind::Email => crate::engine::is_email(t),
        InputKind::Phone => crate::engine::is_phone(t),
        InputKind::Number => crate::engine::parse_number(t).is_some(),
        InputKind::Pattern(p) => p.is_match(t),
    }
}

/// Which button typed text picks, as the engine reads it (a label, any case; or its number).
pub fn pick(labels: &[String], text: &str) -> Option<usize> {
    let t = text.trim();
    if let Some(i) = labels.iter().position(|l| l.eq_ignore_ascii_case(t)) {
        return Some(i);
    }
    match t.parse::<usize>() {
        Ok(n) if n >= 1 && n <= labels.len() => Some(n - 1),
        _ => None,
    }
}

/// The state a step started from.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    /// The card.
    pub card: CardIx,
    /// The phase.
    pub phase: Phase,
    /// Invalid answers in a row so far.
    pub tries: u32,
    /// Where `Start` begins (the playbook's start, or `start at`), and whether a greeting
    /// is said first.
    pub entry: CardIx,
    /// Whether the greeting comes first on `Start`.
    pub greeting: bool,
}

/// Reconstructs the walk of one accepted step.
pub fn walk(
    program: &Program,
    before: Before,
    event: &Event<'_>,
    effects: &[Effect<'_>],
    after: CardIx,
    labels: &[String],
    branch: &dyn Fn(CardIx) -> Option<usize>,
) -> Walk {
    let mut toks = tokens(effects);
    let mut w = Walk::default();
    let c0 = before.card;
    let card = program.cards().get(c0 as usize);
    let mut hop = |kind: LinkKind| -> Option<CardIx> {
        let card = card?;
        let link = card.links().into_iter().find(|l| l.kind == kind)?;
        w.links.push((c0, kind));
        program.lookup(link.to.as_str())
    };
    let entry: Option<CardIx> = match (event, before.phase, card) {
        (Event::Start { .. }, Phase::New, _) => {
            if before.greeting && matches!(toks.first(), Some(Tok::Say(_))) {
                toks.remove(0);
            }
            Some(before.entry)
        }
        (Event::VisitorChoice { index, .. }, Phase::Asking, Some(Card::Question(_))) => {
            hop(LinkKind::Answer(*index))
        }
        (Event::VisitorChoice { index, .. }, Phase::Asking, Some(Card::Consent(_))) => {
            if *index == 0 {
                hop(LinkKind::Agreed)
            } else {
                hop(LinkKind::Declined)
            }
        }
        (Event::VisitorText { text, .. }, Phase::Asking, Some(Card::Question(q))) => {
            match pick(labels, text) {
                Some(i) => hop(LinkKind::Answer(i)),
                None if q.free_text.is_some() => hop(LinkKind::FreeText),
                None => None,
            }
        }
        (Event::VisitorText { text, .. }, Phase::Asking, Some(Card::Consent(_))) => {
            match pick(labels, text) {
                Some(0) => hop(LinkKind::Agreed),
                Some(_) => hop(LinkKind::Declined),
                None => None,
            }
        }
        (Event::VisitorText { text, .. }, Phase::Asking, Some(Card::Ask(a))) => {
            if valid_input(&a.expect, text) {
                hop(LinkKind::Valid)
            } else if a
                .give_up
                .as_ref()
                .is_some_and(|g| before.tries + 1 >= g.after.get())
            {
                hop(LinkKind::GiveUp)
            } else {
                None
            }
        }
        (Event::AgentClosed { .. }, Phase::Live, Some(Card::LiveChat(_))) => hop(LinkKind::Closed),
        (Event::TimerFired(t), Phase::Queued, Some(Card::LiveChat(_)))
            if t.kind == TimerKind::Wait
                && effects.iter().any(|e| matches!(e, Effect::LeaveUnassigned)) =>
        {
            // The offline message is the card's own, not a message card's.
            if matches!(toks.first(), Some(Tok::Say(_))) {
                toks.remove(0);
            }
            hop(LinkKind::Timeout)
        }
        (Event::TimerFired(t), Phase::Asking, Some(c))
            if t.kind == TimerKind::Idle && !effects.is_empty() =>
        {
            let goto = match c {
                Card::Question(q) => q.idle.as_ref().map(|i| &i.then),
                Card::Ask(a) => a.idle.as_ref().map(|i| &i.then),
                _ => None,
            };
            match goto {
                Some(IdleAction::Goto(_)) => hop(LinkKind::Idle),
                _ => None,
            }
        }
        _ => None,
    };
    let Some(entry) = entry else {
        return w;
    };
    let mut path = Path {
        cards: Vec::new(),
        links: Vec::new(),
        branch,
    };
    if search(program, entry, &toks, after, &mut path, 0) {
        w.cards.extend(path.cards);
        w.links.extend(path.links);
    } else {
        // Effects the search cannot explain (a failed step): count the entry card only.
        w.cards.push(entry);
    }
    w
}

struct Path<'b> {
    cards: Vec<CardIx>,
    links: Vec<(CardIx, LinkKind)>,
    branch: &'b dyn Fn(CardIx) -> Option<usize>,
}

const MAX_DEPTH: usize = 10_000;

/// Depth-first search for the chain of cards from `at` that produces exactly `toks` and
/// stops at `stop`.
fn search(
    program: &Program,
    at: CardIx,
    toks: &[Tok<'_>],
    stop: CardIx,
    path: &mut Path<'_>,
    depth: usize,
) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let Some(card) = program.cards().get(at as usize) else {
        return false;
    };
    let mark = (path.cards.len(), path.links.len());
    path.cards.push(at);
    let ok = step(program, at, card, toks, stop, path, depth);
    if !ok {
        path.cards.truncate(mark.0);
        path.links.truncate(mark.1);
    }
    ok
}

/// Follows `kind` from `at` with `rest` left to explain.
#[allow(clippy::too_many_arguments)]
fn follow(
    program: &Program,
    at: CardIx,
    card: &Card,
    kind: LinkKind,
    rest: &[Tok<'_>],
    stop: CardIx,
    path: &mut Path<'_>,
    depth: usize,
) -> bool {
    let Some(link) = card.links().into_iter().find(|l| l.kind == kind) else {
        return false;
    };
    let Some(to) = program.lookup(link.to.as_str()) else {
        return false;
    };
    path.links.push((at, kind));
    if search(program, to, rest, stop, path, depth + 1) {
        return true;
    }
    path.links.pop();
    false
}

#[allow(clippy::too_many_arguments)]
fn then(
    program: &Program,
    at: CardIx,
    card: &Card,
    next: &Next,
    rest: &[Tok<'_>],
    stop: CardIx,
    path: &mut Path<'_>,
    depth: usize,
) -> bool {
    match next {
        Next::End(_) => rest == [Tok::End] && at == stop,
        Next::Goto(_) => follow(program, at, card, LinkKind::Next, rest, stop, path, depth),
    }
}

fn step(
    program: &Program,
    at: CardIx,
    card: &Card,
    toks: &[Tok<'_>],
    stop: CardIx,
    path: &mut Path<'_>,
    depth: usize,
) -> bool {
    let waits_here = |text: &Template| matches!(toks, [Tok::Ask(t)] if fits(text, t)) && at == stop;
    match card {
        Card::Message(m) => match toks.split_first() {
            Some((Tok::Say(t), rest)) if fits(&m.text, t) => {
                then(program, at, card, &m.then, rest, stop, path, depth)
            }
            _ => false,
        },
        Card::Question(q) => waits_here(&q.text),
        Card::Ask(a) => waits_here(&a.text),
        Card::Consent(c) if c.mode == ConsentMode::Explicit => waits_here(&c.notice),
        Card::Consent(c) => match toks.split_first() {
            Some((Tok::Say(t), rest)) if fits(&c.notice, t) => {
                follow(program, at, card, LinkKind::Agreed, rest, stop, path, depth)
            }
            _ => false,
        },
        Card::Branch(_) => {
            // The variables a chain reads do not change within it (only visitor answers set
            // them), so the rule that holds now is the rule that held then.
            let kind = match (path.branch)(at) {
                Some(i) => LinkKind::Rule(i),
                None => LinkKind::Otherwise,
            };
            follow(program, at, card, kind, toks, stop, path, depth)
        }
        Card::LiveChat(l) => {
            if matches!(toks, [Tok::Say(t), Tok::Queue] if fits(&l.online, t)) && at == stop {
                return true;
            }
            follow(
                program,
                at,
                card,
                LinkKind::Offline,
                toks,
                stop,
                path,
                depth,
            )
        }
        Card::Capture(c) => {
            let id = c.id.as_str();
            match toks.split_first() {
                Some((Tok::Capture(k), rest)) if k == id => {
                    then(program, at, card, &c.then, rest, stop, path, depth)
                }
                // Captured earlier in this conversation: the engine skips it silently.
                _ => then(program, at, card, &c.then, toks, stop, path, depth),
            }
        }
        Card::End(_) => toks == [Tok::End] && at == stop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fit_their_renderings() {
        let t = Template::new("Thanks, {name}! We'll be in touch at {email}.").unwrap();
        assert!(fits(&t, "Thanks, Ann! We'll be in touch at a@b.co."));
        assert!(!fits(&t, "Have a great day!"));
        let t = Template::new("{greeting}").unwrap();
        assert!(fits(&t, "anything"));
        let t = Template::new("Plain").unwrap();
        assert!(fits(&t, "Plain"));
        assert!(!fits(&t, "Plain and more"));
    }

    #[test]
    fn picks_like_the_engine() {
        let l = vec!["Yes".to_owned(), "No".to_owned()];
        assert_eq!(pick(&l, " yes "), Some(0));
        assert_eq!(pick(&l, "2"), Some(1));
        assert_eq!(pick(&l, "3"), None);
        assert_eq!(pick(&l, "maybe"), None);
    }
}
