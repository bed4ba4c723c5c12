//! E013: from every card the conversation reaches, some path leads to an end.
//!
//! Linear: one backward search from every card that can end, then the strongly connected
//! components of the graph. The cards that cannot reach an end are closed under "leads to",
//! so the real culprits are the *bottom* components among them (a card with no way on, or a
//! loop with no way out); every other such card just leads into one of those, and reporting
//! it too would only repeat the same problem.

use std::collections::VecDeque;

use super::{Ctx, card_ptr, list_ids};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::Card;

pub(super) fn check(cx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let g = &cx.graph;
    let cards = &cx.playbook.cards;
    let n = g.node_count();
    // Cards that end the conversation by themselves, and cards with a link to a missing card:
    // E011 reports those, and guessing where the link was meant to go would only add noise.
    let mut can_end = vec![false; n];
    let mut queue = VecDeque::new();
    for node in g.nodes() {
        let card = &cards[g.card(node)];
        let broken = card.links().len() != g.out_edges(node).count();
        if card.can_end() || broken {
            can_end[node.index()] = true;
            queue.push_back(node);
        }
    }
    while let Some(v) = queue.pop_front() {
        for p in g.predecessors(v) {
            if !can_end[p.index()] {
                can_end[p.index()] = true;
                queue.push_back(p);
            }
        }
    }
    let dead = |i: usize| cx.reachable[i] && !can_end[i];
    if !(0..n).any(dead) {
        return;
    }

    let sccs = g.sccs();
    let mut comp = vec![0usize; n];
    for (c, scc) in sccs.iter().enumerate() {
        for v in scc {
            comp[v.index()] = c;
        }
    }
    let mut bottoms: Vec<&Vec<_>> = sccs
        .iter()
        .enumerate()
        .filter(|(c, scc)| {
            dead(scc[0].index())
                && scc
                    .iter()
                    .all(|&v| g.out_edges(v).all(|(_, to, _)| comp[to.index()] == *c))
        })
        .map(|(_, scc)| scc)
        .collect();
    bottoms.sort_by_key(|scc| g.card(scc[0]));

    for scc in bottoms {
        let first = scc[0];
        let i = g.card(first);
        let id = cards[i].id();
        let looping = scc.len() > 1 || g.out_edges(first).next().is_some();
        if !looping {
            let help = match &cards[i] {
                Card::Question(_) => {
                    "give the question an answer (or `free_text`) that leads on".to_owned()
                }
                _ => format!("give `{id}` a way on, or make it end the conversation"),
            };
            out.push(
                Diagnostic::new(
                    Code::DeadEnd,
                    format!("card `{id}` is a dead end: it has no way on and does not end the conversation"),
                )
                .at(format!("{}/id", card_ptr(i)), "conversations get stuck here")
                .with_help(help),
            );
            continue;
        }
        let names = list_ids(scc.iter().map(|&v| cards[g.card(v)].id().as_str()));
        let mut d = Diagnostic::new(
            Code::DeadEnd,
            format!("cards {names} form a loop with no way out: no end can be reached from them"),
        )
        .at(
            format!("{}/id", card_ptr(i)),
            "no end is reachable from here",
        );
        for &v in &scc[1..] {
            d = d.at(format!("{}/id", card_ptr(g.card(v))), "part of the loop");
        }
        out.push(d.with_help(
            "give one of these cards a way on that leads to an end (an `end` card, or `end` on a message or capture)",
        ));
    }
}
