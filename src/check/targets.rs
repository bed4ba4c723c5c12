//! E011 and E012: every link and the start name a card that exists.

use std::collections::HashSet;

use super::card_ptr;
use super::suggest::Names;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::Playbook;

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    let ids: HashSet<&str> = playbook.cards.iter().map(|c| c.id().as_str()).collect();
    let names = Names::new(&ids);
    let start = &playbook.playbook.start;
    if !ids.contains(start.as_str()) {
        out.push(
            Diagnostic::new(
                Code::MissingStart,
                format!("the start card `{start}` does not exist"),
            )
            .at("/playbook/start", "no card has this id")
            .with_help(names.suggest(start.as_str()).map_or_else(
                || "set `start` to the id of the card the conversation begins with".to_owned(),
                |s| format!("did you mean `{s}`?"),
            )),
        );
    }
    for (i, card) in playbook.cards.iter().enumerate() {
        for link in card.links() {
            if !ids.contains(link.to.as_str()) {
                out.push(
                    Diagnostic::new(
                        Code::UnknownTarget,
                        format!(
                            "card `{}` leads to `{}`, which does not exist",
                            card.id(),
                            link.to
                        ),
                    )
                    .at(format!("{}{}", card_ptr(i), link.field), "unknown card")
                    .with_help(names.suggest(link.to.as_str()).map_or_else(
                        || {
                            format!(
                                "add a card with the id `{}`, or point to an existing card",
                                link.to
                            )
                        },
                        |s| format!("did you mean `{s}`?"),
                    )),
                );
            }
        }
    }
}
