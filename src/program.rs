//! A checked playbook, ready to run.

use std::collections::HashMap;

use crate::model::{Card, CardId, Playbook};

/// The index of a card in [`Program::cards`].
pub type CardIx = u32;

/// A playbook that passed `check` with no errors: card ids are unique, every target exists,
/// the start card exists. Only [`crate::check::check`] makes one, so the engine may rely on it.
#[derive(Debug, Clone)]
pub struct Program {
    playbook: Playbook,
    index: HashMap<CardId, CardIx>,
}

impl Program {
    /// Wraps a playbook whose ids are unique and whose targets all exist.
    pub(crate) fn new_unchecked(playbook: Playbook) -> Self {
        let index = playbook
            .cards
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id().clone(), i as CardIx))
            .collect();
        Self { playbook, index }
    }

    /// The playbook.
    pub fn playbook(&self) -> &Playbook {
        &self.playbook
    }

    /// The cards, in the order written.
    pub fn cards(&self) -> &[Card] {
        &self.playbook.cards
    }

    /// The card at an index.
    pub fn card(&self, ix: CardIx) -> &Card {
        &self.playbook.cards[ix as usize]
    }

    /// The index of a card id, if the id exists.
    pub fn lookup(&self, id: &str) -> Option<CardIx> {
        self.index.get(id).copied()
    }

    /// The index of a card id that `check` has proven to exist.
    pub fn ix(&self, id: &CardId) -> CardIx {
        self.index[id.as_str()]
    }

    /// The start card's index.
    pub fn start(&self) -> CardIx {
        self.ix(&self.playbook.playbook.start)
    }
}
