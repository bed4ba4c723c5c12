//! E020: no card saves to a variable the engine provides.

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Card, Playbook, SYSTEM_VARIABLES};

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    for (i, card) in playbook.cards.iter().enumerate() {
        let save = match card {
            Card::Question(q) => q.save.as_ref(),
            Card::Ask(a) => a.save.as_ref(),
            _ => None,
        };
        let Some(var) = save.filter(|v| v.is_system()) else {
            continue;
        };
        out.push(
            Diagnostic::new(
                Code::SystemVariable,
                format!(
                    "card `{}` saves to `{var}`, which the engine provides",
                    card.id()
                ),
            )
            .at(format!("{}/save", card_ptr(i)), "a system variable")
            .with_help(format!(
                "save to a name of your own (for example `visitor_{var}`); the system variables are {}",
                SYSTEM_VARIABLES.join(", ")
            )),
        );
    }
}
