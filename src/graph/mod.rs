//! The playbook as a directed graph (petgraph), with the path queries the checks need and
//! pictures of it (Mermaid, Graphviz DOT).
//!
//! The graph is built from an *unchecked* playbook, because the checks run on it: a duplicated
//! id keeps its first card, and a link to an id that does not exist is left out (the `targets`
//! check reports it). This module only describes the flow; it never judges it (no diagnostics
//! here) and never reads text or spans.

mod export;

pub use export::Overlay;

use std::collections::{HashMap, VecDeque};

use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, EdgeIndex, NodeIndex};
use petgraph::visit::EdgeRef;

use crate::model::{Card, Condition, Field, LinkKind, Playbook};

/// The most cards [`FlowGraph::describe_path`] names.
pub const MAX_SHOWN_PATH: usize = 12;

/// How many first cards of a long path [`FlowGraph::describe_path`] shows before the `…`.
pub const SHOWN_HEAD: usize = MAX_SHOWN_PATH / 3;

/// One link of the flow: why it is followed, how to show it, and whether the engine waits
/// before following it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Why the flow follows the link.
    pub kind: LinkKind,
    /// A short human label: the answer's text, the rule's condition, `else`, `on closed`…
    /// Empty for a card's single plain way on.
    pub label: String,
    /// Whether the engine waits for the visitor (or an agent, or a timer) first.
    pub waits: bool,
    /// Where the link's target is written inside its card (`/answers/1/to`).
    pub field: Field,
}

/// The flow of a playbook: one node per card (the node's weight is the card's index in
/// `playbook.cards`), one edge per link whose target exists.
#[derive(Debug, Clone)]
pub struct FlowGraph {
    graph: DiGraph<usize, Edge>,
    by_id: HashMap<String, NodeIndex>,
    by_card: Vec<Option<NodeIndex>>,
    start: Option<NodeIndex>,
}

impl FlowGraph {
    /// Builds the graph. Never fails: duplicated ids keep their first card, unknown targets
    /// are skipped.
    pub fn new(playbook: &Playbook) -> Self {
        let cards = &playbook.cards;
        let mut graph = DiGraph::with_capacity(cards.len(), cards.len() * 2);
        let mut by_id = HashMap::with_capacity(cards.len());
        let mut by_card = Vec::with_capacity(cards.len());
        for (i, card) in cards.iter().enumerate() {
            let id = card.id().as_str();
            if by_id.contains_key(id) {
                by_card.push(None);
            } else {
                let n = graph.add_node(i);
                by_id.insert(id.to_owned(), n);
                by_card.push(Some(n));
            }
        }
        for (i, card) in cards.iter().enumerate() {
            let Some(from) = by_card[i] else { continue };
            for link in card.links() {
                if let Some(&to) = by_id.get(link.to.as_str()) {
                    let edge = Edge {
                        kind: link.kind,
                        label: link_label(card, link.kind),
                        waits: link.waits,
                        field: link.field,
                    };
                    graph.add_edge(from, to, edge);
                }
            }
        }
        let start = by_id.get(playbook.playbook.start.as_str()).copied();
        Self {
            graph,
            by_id,
            by_card,
            start,
        }
    }

    /// The petgraph graph itself (node weight: card index).
    pub fn graph(&self) -> &DiGraph<usize, Edge> {
        &self.graph
    }

    /// How many nodes (distinct card ids) the graph has.
    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The start card's node, if the start card exists.
    pub fn start(&self) -> Option<NodeIndex> {
        self.start
    }

    /// The node of a card id.
    pub fn node_by_id(&self, id: &str) -> Option<NodeIndex> {
        self.by_id.get(id).copied()
    }

    /// The node of the card at index `card` in `playbook.cards`; `None` for a card whose id
    /// an earlier card already took (or an index out of range).
    pub fn node(&self, card: usize) -> Option<NodeIndex> {
        self.by_card.get(card).copied().flatten()
    }

    /// The index in `playbook.cards` of a node's card.
    pub fn card(&self, node: NodeIndex) -> usize {
        self.graph[node]
    }

    /// Every node in card order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph.node_indices()
    }

    /// A node's outgoing edges, in the order its card writes them.
    pub fn out_edges(
        &self,
        node: NodeIndex,
    ) -> impl DoubleEndedIterator<Item = (EdgeIndex, NodeIndex, &Edge)> + ExactSizeIterator {
        // petgraph lists a node's edges newest first; the order written is the reverse.
        let mut edges: Vec<_> = self
            .graph
            .edges_directed(node, Direction::Outgoing)
            .map(|e| (e.id(), e.target(), e.weight()))
            .collect();
        edges.reverse();
        edges.into_iter()
    }

    /// The nodes with an edge into `node` (with repeats for parallel edges).
    pub fn predecessors(&self, node: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.graph.neighbors_directed(node, Direction::Incoming)
    }

    /// Which nodes a path from the start reaches (indexed by node index); all `false` when
    /// the start card does not exist.
    pub fn reachable_from_start(&self) -> Vec<bool> {
        match self.start {
            Some(s) => self.paths_from(s).reached(),
            None => vec![false; self.node_count()],
        }
    }

    /// Breadth-first search from `from`: shortest paths to every node it reaches.
    pub fn paths_from(&self, from: NodeIndex) -> Paths {
        let mut parent = vec![None; self.node_count()];
        let mut seen = vec![false; self.node_count()];
        let mut queue = VecDeque::from([from]);
        seen[from.index()] = true;
        while let Some(n) = queue.pop_front() {
            for m in self.graph.neighbors_directed(n, Direction::Outgoing) {
                if !seen[m.index()] {
                    seen[m.index()] = true;
                    parent[m.index()] = Some(n);
                    queue.push_back(m);
                }
            }
        }
        Paths { from, parent, seen }
    }

    /// A shortest path from `from` to `to` (both included), if there is one.
    pub fn shortest_path(&self, from: NodeIndex, to: NodeIndex) -> Option<Vec<NodeIndex>> {
        self.paths_from(from).to(to)
    }

    /// Strongly connected components (iterative, so deep graphs do not overflow the stack),
    /// each sorted by card order, in reverse topological order.
    pub fn sccs(&self) -> Vec<Vec<NodeIndex>> {
        let mut sccs = kosaraju_scc(&self.graph);
        for s in &mut sccs {
            s.sort_unstable();
        }
        sccs
    }

    /// The card ids along a path, joined by ` → ` (for messages). A path longer than
    /// [`MAX_SHOWN_PATH`] cards shows its first and last cards around a `…`, so that a
    /// message stays readable (and the cost of many messages stays linear).
    pub fn describe_path(&self, playbook: &Playbook, path: &[NodeIndex]) -> String {
        if path.len() <= MAX_SHOWN_PATH {
            return self.describe_cut(playbook, path, &[]);
        }
        let (head, tail) = (SHOWN_HEAD, MAX_SHOWN_PATH - SHOWN_HEAD - 1);
        self.describe_cut(playbook, &path[..head], &path[path.len() - tail..])
    }

    /// Like [`describe_path`](Self::describe_path) for a long path known only by its first
    /// and last cards (`head`, `tail`): they are joined around a `…` (no `…` when `tail` is
    /// empty). Callers that walk a search tree use it to avoid walking the whole path.
    pub fn describe_cut(
        &self,
        playbook: &Playbook,
        head: &[NodeIndex],
        tail: &[NodeIndex],
    ) -> String {
        let id = |n: &NodeIndex| playbook.cards[self.card(*n)].id().as_str();
        let mut parts: Vec<&str> = head.iter().map(id).collect();
        if !tail.is_empty() {
            parts.push("…");
            parts.extend(tail.iter().map(id));
        }
        parts.join(" → ")
    }

    /// The playbook as a Mermaid flowchart (`flowchart TD`).
    pub fn to_mermaid(&self, playbook: &Playbook) -> String {
        export::mermaid(self, playbook)
    }

    /// The playbook as a Mermaid flowchart with numbers drawn over it (the analytics page).
    pub fn to_mermaid_with(&self, playbook: &Playbook, overlay: &Overlay) -> String {
        export::mermaid_with(self, playbook, Some(overlay))
    }

    /// The playbook as a Graphviz DOT digraph.
    pub fn to_dot(&self, playbook: &Playbook) -> String {
        export::dot(self, playbook)
    }
}

/// Shortest paths from one node, found by [`FlowGraph::paths_from`].
#[derive(Debug, Clone)]
pub struct Paths {
    from: NodeIndex,
    parent: Vec<Option<NodeIndex>>,
    seen: Vec<bool>,
}

impl Paths {
    /// Whether `to` is reached.
    pub fn reaches(&self, to: NodeIndex) -> bool {
        self.seen.get(to.index()).copied().unwrap_or(false)
    }

    /// Reached nodes, indexed by node index.
    pub fn reached(self) -> Vec<bool> {
        self.seen
    }

    /// A shortest path from the origin to `to` (both included).
    pub fn to(&self, to: NodeIndex) -> Option<Vec<NodeIndex>> {
        if !self.reaches(to) {
            return None;
        }
        let mut path = vec![to];
        let mut n = to;
        while n != self.from {
            n = self.parent[n.index()]?;
            path.push(n);
        }
        path.reverse();
        Some(path)
    }
}

/// The label shown on a link.
fn link_label(card: &Card, kind: LinkKind) -> String {
    match (card, kind) {
        (Card::Question(q), LinkKind::Answer(i)) => q
            .answers
            .get(i)
            .map(|a| a.label.clone())
            .unwrap_or_default(),
        (Card::Branch(b), LinkKind::Rule(i)) => b
            .rules
            .get(i)
            .map(|r| condition_text(&r.when))
            .unwrap_or_default(),
        (Card::Consent(c), LinkKind::Agreed) if c.mode == crate::model::ConsentMode::Implicit => {
            "shown".to_owned()
        }
        (_, kind) => match kind {
            LinkKind::Next | LinkKind::Valid | LinkKind::Answer(_) | LinkKind::Rule(_) => "",
            LinkKind::FreeText => "free text",
            LinkKind::GiveUp => "give up",
            LinkKind::Idle => "idle",
            LinkKind::Otherwise => "else",
            LinkKind::Closed => "on closed",
            LinkKind::Offline => "on offline",
            LinkKind::Timeout => "on timeout",
            LinkKind::Agreed => "agreed",
            LinkKind::Declined => "declined",
        }
        .to_owned(),
    }
}

/// A branch condition as an admin would read it: `size is "200+"`, `email is set`.
pub fn condition_text(c: &Condition) -> String {
    match c {
        Condition::Equals { var, value } => format!("{var} is {}", quote(value)),
        Condition::OneOf { var, values } => {
            let vs: Vec<String> = values.iter().map(|v| quote(v)).collect();
            format!("{var} is one of {}", vs.join(", "))
        }
        Condition::IsSet { var } => format!("{var} is set"),
        Condition::NotSet { var } => format!("{var} is not set"),
        Condition::Compare { var, cmp, value } => format!("{var} {} {value}", cmp.symbol()),
    }
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playbook(cards: serde_json::Value) -> Playbook {
        serde_json::from_value(serde_json::json!({
            "playbook": {"name": "t", "start": "a"},
            "cards": cards,
        }))
        .unwrap()
    }

    #[test]
    fn skips_unknown_targets_and_duplicates() {
        let p = playbook(serde_json::json!([
            {"kind": "question", "id": "a", "text": "?", "answers": [
                {"label": "x", "to": "b"}, {"label": "y", "to": "nope"}, {"label": "z", "to": "a"}]},
            {"kind": "message", "id": "b", "text": "hi", "then": {"end": "none"}},
            {"kind": "message", "id": "a", "text": "dup", "then": {"goto": "b"}},
        ]));
        let g = FlowGraph::new(&p);
        assert_eq!(g.node_count(), 2);
        assert_eq!(g.node(2), None);
        let a = g.node_by_id("a").unwrap();
        let labels: Vec<_> = g.out_edges(a).map(|(_, _, e)| e.label.clone()).collect();
        assert_eq!(labels, ["x", "z"]);
        let b = g.node_by_id("b").unwrap();
        assert_eq!(g.shortest_path(a, b), Some(vec![a, b]));
        assert_eq!(g.shortest_path(b, a), None);
        assert_eq!(g.reachable_from_start(), vec![true, true]);
        assert_eq!(g.describe_path(&p, &[a, b]), "a → b");
        let sccs = g.sccs();
        assert!(sccs.contains(&vec![a]) && sccs.contains(&vec![b]));
    }
}
