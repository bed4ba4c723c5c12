//! E006 for names that must show something: the playbook's name, the bot's name and every
//! answer button's label may not be empty or only spaces (a visitor would see a nameless bot
//! or a blank button). One pass for both formats, since the DSL and JSON both allow `""`.

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Card, Playbook};

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    let blank = |s: &str| s.trim().is_empty();
    let header = &playbook.playbook;
    if blank(&header.name) {
        out.push(
            Diagnostic::new(Code::InvalidValue, "the playbook's name is empty")
                .at("/playbook/name", "an empty name")
                .with_help("name the playbook as admins should see it, e.g. `playbook \"Website demo requests\"`"),
        );
    }
    if header.bot.as_deref().is_some_and(blank) {
        out.push(
            Diagnostic::new(Code::InvalidValue, "the bot's name is empty")
                .at("/playbook/bot", "an empty name")
                .with_help("give the bot a name visitors see (`bot \"Ava\"`), or leave `bot` out"),
        );
    }
    for (i, card) in playbook.cards.iter().enumerate() {
        let Card::Question(q) = card else { continue };
        for (j, a) in q.answers.iter().enumerate() {
            if blank(&a.label) {
                out.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("the question `{}` has an answer with an empty label", q.id),
                    )
                    .at(
                        format!("{}/answers/{j}/label", card_ptr(i)),
                        "a blank button",
                    )
                    .with_help("write the text the visitor clicks or types"),
                );
            }
        }
    }
}
