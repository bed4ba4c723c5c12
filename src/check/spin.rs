//! E019: no loop of cards runs without waiting for the visitor (it would spin until the
//! engine's step limit stops the conversation).
//!
//! Linear: the strongly connected components of the graph restricted to links that do not
//! wait; any component with a cycle is a spinning loop, and one cycle through it is shown.

use std::collections::VecDeque;

use petgraph::algo::kosaraju_scc;
use petgraph::graph::{EdgeIndex, NodeIndex};
use petgraph::visit::EdgeFiltered;

use super::{Ctx, card_ptr};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::LinkKind;

pub(super) fn check(cx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let g = &cx.graph;
    let cards = &cx.playbook.cards;
    let instant = EdgeFiltered::from_fn(g.graph(), |e| !e.weight().waits);
    let mut comp = vec![usize::MAX; g.node_count()];
    let mut loops = Vec::new();
    for (c, scc) in kosaraju_scc(&instant).into_iter().enumerate() {
        for v in &scc {
            comp[v.index()] = c;
        }
        let first = scc.iter().copied().min();
        if let Some(first) = first {
            let self_loop =
                scc.len() == 1 && g.out_edges(first).any(|(_, to, e)| to == first && !e.waits);
            if scc.len() > 1 || self_loop {
                loops.push((c, first));
            }
        }
    }
    loops.sort_by_key(|&(_, first)| g.card(first));

    for (c, first) in loops {
        let cycle = cycle_through(cx, first, |v| comp[v.index()] == c);
        let mut ids: Vec<&str> = vec![cards[g.card(first)].id().as_str()];
        let mut d = Diagnostic::new(Code::SpinningLoop, String::new());
        let mut implicit_consent = false;
        for &e in &cycle {
            let (from, to) = g.graph().edge_endpoints(e).unwrap_or((first, first));
            let edge = &g.graph()[e];
            let to_id = cards[g.card(to)].id().as_str();
            ids.push(to_id);
            implicit_consent |= edge.kind == LinkKind::Agreed;
            d = d.at(
                format!("{}{}", card_ptr(g.card(from)), edge.field),
                format!("goes on to `{to_id}` without waiting"),
            );
        }
        d.message = format!(
            "the loop {} never waits for the visitor; the engine would stop it after {} cards",
            ids.join(" → "),
            cx.playbook.playbook.limits.max_steps()
        );
        let mut help = "make the loop pass a card that waits for the visitor (a question, an ask, a live chat or an explicit consent), or give it a way out".to_owned();
        if implicit_consent {
            help.push_str("; an implicit consent does not wait: its notice is shown and the flow goes on at once");
        }
        out.push(d.with_help(help));
    }
}

/// The edges of one shortest cycle from `first` back to itself, staying inside the
/// component and on links that do not wait.
fn cycle_through(
    cx: &Ctx<'_>,
    first: NodeIndex,
    inside: impl Fn(NodeIndex) -> bool,
) -> Vec<EdgeIndex> {
    let g = &cx.graph;
    let mut via: Vec<Option<EdgeIndex>> = vec![None; g.node_count()];
    let mut seen = vec![false; g.node_count()];
    let mut queue = VecDeque::from([first]);
    while let Some(v) = queue.pop_front() {
        for (e, to, edge) in g.out_edges(v) {
            if edge.waits || !inside(to) {
                continue;
            }
            if to == first {
                let mut cycle = vec![e];
                let mut w = v;
                while w != first {
                    let Some(pe) = via[w.index()] else { break };
                    cycle.push(pe);
                    w = g.graph().edge_endpoints(pe).map_or(first, |(s, _)| s);
                }
                cycle.reverse();
                return cycle;
            }
            if !seen[to.index()] {
                seen[to.index()] = true;
                via[to.index()] = Some(e);
                queue.push_back(to);
            }
        }
    }
    Vec::new()
}
