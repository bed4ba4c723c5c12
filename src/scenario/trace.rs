//! Which cards and links one engine step walked, read from its [`Effect::Entered`] reports:
//! the engine says which card it entered and by which of the previous card's links, so
//! coverage counts exactly what ran instead of reconstructing it from rendered text.
//!
//! Must not: change anything, or know about desks, ledgers or files.

use crate::CardIx;
use crate::engine::Effect;
use crate::model::LinkKind;
use crate::program::Program;

/// What a step walked: cards entered and links followed, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walk {
    /// Cards entered.
    pub cards: Vec<CardIx>,
    /// Links followed, as (from card, kind).
    pub links: Vec<(CardIx, LinkKind)>,
}

/// The walk of one accepted step, from its effects.
pub fn walk(program: &Program, effects: &[Effect<'_>]) -> Walk {
    let mut w = Walk::default();
    for e in effects {
        let Effect::Entered { card, via } = e else {
            continue;
        };
        // The ids come from this program's own cards, so the look-ups cannot miss.
        if let Some(ix) = program.lookup(card) {
            w.cards.push(ix);
        }
        if let Some(v) = via
            && let Some(from) = program.lookup(&v.from)
        {
            w.links.push((from, v.link));
        }
    }
    w
}
