//! W001: every card can be reached from the start.

use super::{Ctx, card_ptr};
use crate::diagnostic::{Code, Diagnostic};

pub(super) fn check(cx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    // Without a start card everything is unreachable; E012 already says what matters.
    if cx.graph.start().is_none() {
        return;
    }
    for node in cx.graph.nodes() {
        if cx.reachable[node.index()] {
            continue;
        }
        let i = cx.graph.card(node);
        let id = cx.playbook.cards[i].id();
        out.push(
            Diagnostic::new(
                Code::Unreachable,
                format!("no path from the start reaches card `{id}`"),
            )
            .at(format!("{}/id", card_ptr(i)), "never reached")
            .with_help(format!(
                "lead to `{id}` from a card the conversation reaches, or remove it"
            )),
        );
    }
}
