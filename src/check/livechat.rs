//! E014: no path from the start meets two live-chat cards (or one twice, through a loop).
//!
//! Linear, instead of a search from every live chat: one backward breadth-first search from
//! all live-chat cards at once gives each card its nearest live chat ahead and the next step
//! towards it; one forward search from the start gives the way to each live chat. A live chat
//! the start reaches, with a live chat ahead of one of its links, is a problem; the two
//! searches together spell out the whole path.

use std::collections::VecDeque;

use petgraph::graph::NodeIndex;

use super::{Ctx, card_ptr};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::Card;

pub(super) fn check(cx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let g = &cx.graph;
    let cards = &cx.playbook.cards;
    let Some(start) = g.start() else { return };
    let is_chat = |v: NodeIndex| matches!(cards[g.card(v)], Card::LiveChat(_));
    let chats: Vec<NodeIndex> = g.nodes().filter(|&v| is_chat(v)).collect();
    if chats.is_empty() {
        return;
    }

    // dist[v]: links from v to the nearest live chat (0 for a live chat); next[v]: the step.
    let n = g.node_count();
    let mut dist: Vec<Option<u32>> = vec![None; n];
    let mut next: Vec<Option<NodeIndex>> = vec![None; n];
    let mut queue: VecDeque<NodeIndex> = chats.iter().copied().collect();
    for &c in &chats {
        dist[c.index()] = Some(0);
    }
    while let Some(v) = queue.pop_front() {
        let d = dist[v.index()].unwrap_or(0);
        for p in g.predecessors(v) {
            if dist[p.index()].is_none() {
                dist[p.index()] = Some(d + 1);
                next[p.index()] = Some(v);
                queue.push_back(p);
            }
        }
    }

    let from_start = g.paths_from(start);
    for &first in &chats {
        if !cx.reachable[first.index()] {
            continue;
        }
        // The link of this live chat that leads soonest to a live chat (first written wins).
        let mut best: Option<(u32, NodeIndex)> = None;
        for (_, to, _) in g.out_edges(first) {
            if let Some(d) = dist[to.index()]
                && best.is_none_or(|(bd, _)| d < bd)
            {
                best = Some((d, to));
            }
        }
        let Some((_, mut v)) = best else { continue };
        let Some(mut path) = from_start.to(first) else {
            continue;
        };
        path.push(v);
        while let Some(w) = next[v.index()] {
            path.push(w);
            v = w;
        }
        let second = v;
        let (i, j) = (g.card(first), g.card(second));
        let (a, b) = (cards[i].id(), cards[j].id());
        let shown = g.describe_path(cx.playbook, &path);
        let mut d = if first == second {
            Diagnostic::new(
                Code::TwoLiveChats,
                format!("a path from the start meets the live chat `{a}` twice: {shown}"),
            )
            .at(
                format!("{}/id", card_ptr(i)),
                "this live chat is reached again through a loop",
            )
        } else {
            Diagnostic::new(
                Code::TwoLiveChats,
                format!("a path from the start meets two live chats, `{a}` and `{b}`: {shown}"),
            )
            .at(format!("{}/id", card_ptr(i)), "first live chat on the path")
            .at(
                format!("{}/id", card_ptr(j)),
                "second live chat on the path",
            )
        };
        d = d.with_help(
            "a conversation is handed to an agent at most once: lead the live chat's `on_closed`, `on_offline` and `on_timeout` branches to cards that never reach a live chat",
        );
        out.push(d);
    }
}
