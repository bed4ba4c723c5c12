//! E021: no straight run of cards that do not wait is longer than the playbook's `max steps`
//! (the engine would stop every conversation that takes it).
//!
//! A run starts where the engine starts counting: at the start card and at every card a
//! waiting link leads to (an answer, a timeout, a pick-up…). It follows links that do not
//! wait and counts every card entered, the last one included. Linear: a topological order of
//! the graph restricted to links that do not wait, then the longest path by dynamic
//! programming. When that graph has a cycle, E019 reports it and this pass says nothing.
//! Branch conditions are not evaluated: a long run behind a branch counts.

use petgraph::graph::NodeIndex;

use super::{Ctx, card_ptr};
use crate::diagnostic::{Code, Diagnostic};

pub(super) fn check(cx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let g = &cx.graph;
    let n = g.node_count();
    let limit = cx.playbook.playbook.limits.max_steps() as usize;
    if n <= limit {
        return;
    }
    let Some(order) = instant_topological_order(cx) else {
        return;
    };
    // longest[v]: cards entered in the longest run that enters v first; next[v]: where it goes.
    let mut longest = vec![1usize; n];
    let mut next: Vec<Option<NodeIndex>> = vec![None; n];
    for &v in order.iter().rev() {
        for (_, to, e) in g.out_edges(v) {
            if !e.waits && longest[to.index()] + 1 > longest[v.index()] {
                longest[v.index()] = longest[to.index()] + 1;
                next[v.index()] = Some(to);
            }
        }
    }
    let mut entries: Vec<NodeIndex> = g.start().into_iter().collect();
    for v in g.nodes().filter(|v| cx.reachable[v.index()]) {
        entries.extend(
            g.out_edges(v)
                .filter(|(_, _, e)| e.waits)
                .map(|(_, to, _)| to),
        );
    }
    entries.sort_by_key(|&v| g.card(v));
    entries.dedup();
    // A run that is the tail of one already reported is not reported again.
    let mut on_reported = vec![false; n];
    let cards = &cx.playbook.cards;
    for entry in entries {
        if longest[entry.index()] <= limit || on_reported[entry.index()] {
            continue;
        }
        let mut path = vec![entry];
        let mut v = entry;
        while let Some(w) = next[v.index()] {
            path.push(w);
            v = w;
        }
        for p in &path {
            on_reported[p.index()] = true;
        }
        let id = |v: NodeIndex| cards[g.card(v)].id().as_str();
        let (first, last) = (path[0], path[path.len() - 1]);
        let over = path[limit];
        out.push(
            Diagnostic::new(
                Code::TooManySteps,
                format!(
                    "{} cards run from `{}` to `{}` without waiting for the visitor; the engine stops a conversation after {limit} (`max steps`), at `{}`",
                    path.len(),
                    id(first),
                    id(last),
                    id(over)
                ),
            )
            .at(card_ptr(g.card(first)), format!("a run of {} cards starts here", path.len()))
            .at(
                card_ptr(g.card(over)),
                format!("card {} of the run: the engine stops here", limit + 1),
            )
            .with_help(format!(
                "put a card that waits for the visitor (a question, an ask, an explicit consent) into the run, or raise `max steps` to at least {}",
                path.len()
            )),
        );
    }
}

/// The nodes in an order where every link that does not wait goes forward (Kahn's
/// algorithm), or `None` when those links form a cycle.
fn instant_topological_order(cx: &Ctx<'_>) -> Option<Vec<NodeIndex>> {
    let g = &cx.graph;
    let mut indegree = vec![0usize; g.node_count()];
    for v in g.nodes() {
        for (_, to, e) in g.out_edges(v) {
            if !e.waits {
                indegree[to.index()] += 1;
            }
        }
    }
    let mut ready: Vec<NodeIndex> = g.nodes().filter(|v| indegree[v.index()] == 0).collect();
    let mut order = Vec::with_capacity(g.node_count());
    while let Some(v) = ready.pop() {
        order.push(v);
        for (_, to, e) in g.out_edges(v) {
            if !e.waits {
                indegree[to.index()] -= 1;
                if indegree[to.index()] == 0 {
                    ready.push(to);
                }
            }
        }
    }
    (order.len() == g.node_count()).then_some(order)
}
