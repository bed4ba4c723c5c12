//! E010: card ids are unique.

use std::collections::HashMap;

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::Playbook;

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, card) in playbook.cards.iter().enumerate() {
        let id = card.id().as_str();
        if let Some(&j) = first.get(id) {
            out.push(
                Diagnostic::new(
                    Code::DuplicateCard,
                    format!("the card id `{id}` is used twice"),
                )
                .at(format!("{}/id", card_ptr(i)), "second card with this id")
                .at(format!("{}/id", card_ptr(j)), "first used here")
                .with_help("give each card its own id; links name cards by id"),
            );
        } else {
            first.insert(id, i);
        }
    }
}
