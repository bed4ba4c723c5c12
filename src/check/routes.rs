//! E006 on live-chat routes: a route to named agents names at least one.

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Card, Playbook, RouteTarget};

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    for (i, card) in playbook.cards.iter().enumerate() {
        let Card::LiveChat(c) = card else { continue };
        if matches!(&c.route.to, RouteTarget::Agents(a) if a.is_empty()) {
            out.push(
                Diagnostic::new(
                    Code::InvalidValue,
                    format!(
                        "the live chat `{}` is routed to a list of agents that is empty",
                        c.id
                    ),
                )
                .at(format!("{}/route/to/agents", card_ptr(i)), "no agents")
                .with_help(
                    "name at least one agent, or route to `anyone`, a team or the contact's owner",
                ),
            );
        }
    }
}
