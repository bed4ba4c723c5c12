//! Pictures of the flow: Mermaid flowcharts and Graphviz DOT.
//!
//! Output is deterministic (cards in the order written, links in the order their card writes
//! them) so that it can be snapshot-tested and diffed. Node ids are generated (`n3`), never
//! taken from the playbook, so no card id can break the syntax; every label is escaped. In DOT,
//! bold edges are links the engine follows without waiting (a loop of them would spin).

use std::fmt::Write;

use super::FlowGraph;
use crate::model::{Card, ConsentMode, Next, Outcome, Playbook, RecordSpec, RouteTarget};

/// The longest card text shown in a node, in characters.
const MAX_TEXT: usize = 48;

/// How a card looks, independent of the output format.
enum Shape {
    Message,
    Question,
    Ask,
    Branch,
    LiveChat,
    Capture,
    Consent,
    End,
}

fn shape(card: &Card) -> Shape {
    match card {
        Card::Message(_) => Shape::Message,
        Card::Question(_) => Shape::Question,
        Card::Ask(_) => Shape::Ask,
        Card::Branch(_) => Shape::Branch,
        Card::LiveChat(_) => Shape::LiveChat,
        Card::Capture(_) => Shape::Capture,
        Card::Consent(_) => Shape::Consent,
        Card::End(_) => Shape::End,
    }
}

/// The second line of a node: what the card says or does.
fn summary(card: &Card) -> String {
    let text = match card {
        Card::Message(c) => c.text.source().to_owned(),
        Card::Question(c) => c.text.source().to_owned(),
        Card::Ask(c) => c.text.source().to_owned(),
        Card::Branch(_) => "branch".to_owned(),
        Card::LiveChat(c) => match &c.route.to {
            RouteTarget::Anyone => "live chat".to_owned(),
            RouteTarget::Agents(a) => format!("live chat: {}", a.join(", ")),
            RouteTarget::Team(t) => format!("live chat: team {t}"),
            RouteTarget::Owner => "live chat: owner".to_owned(),
        },
        Card::Capture(c) => {
            let title = match &c.record {
                RecordSpec::Lead(l) => l.title.as_ref(),
                RecordSpec::Deal(d) => d.title.as_ref(),
                RecordSpec::Activity(a) => a.subject.as_ref(),
            };
            match title {
                Some(t) => format!("{}: {}", c.record.type_name(), t.source()),
                None => c.record.type_name().to_owned(),
            }
        }
        Card::Consent(c) => match c.mode {
            ConsentMode::Explicit => "consent (explicit)".to_owned(),
            ConsentMode::Implicit => "consent (implicit)".to_owned(),
        },
        Card::End(c) => end_text(c.outcome),
    };
    shorten(&text)
}

fn end_text(outcome: Outcome) -> String {
    match outcome {
        Outcome::Qualified => "end: qualified".to_owned(),
        Outcome::Disqualified => "end: disqualified".to_owned(),
        Outcome::None => "end".to_owned(),
    }
}

fn shorten(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX_TEXT {
        one_line
    } else {
        let mut s: String = one_line.chars().take(MAX_TEXT - 1).collect();
        s.push('…');
        s
    }
}

/// The end a card reaches by itself (a message/capture `end`, an explicit consent declined
/// without `on_decline`), with the label of the link to it.
fn own_end(card: &Card) -> Option<(&'static str, Outcome)> {
    match card {
        Card::Message(c) => match c.then {
            Next::End(o) => Some(("", o)),
            Next::Goto(_) => None,
        },
        Card::Capture(c) => match c.then {
            Next::End(o) => Some(("", o)),
            Next::Goto(_) => None,
        },
        Card::Consent(c) if c.mode == ConsentMode::Explicit && c.on_decline.is_none() => {
            Some(("declined", Outcome::None))
        }
        _ => None,
    }
}

/// Escapes text for a double-quoted Mermaid label: entity codes for the characters Mermaid
/// would read as syntax.
fn mermaid_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            // Braces and bars are safe inside quotes in current Mermaid, but older renderers
            // trip on them; entity codes show the same text everywhere.
            '{' => out.push_str("#123;"),
            '}' => out.push_str("#125;"),
            '|' => out.push_str("#124;"),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn mermaid(g: &FlowGraph, playbook: &Playbook) -> String {
    mermaid_with(g, playbook, None)
}

/// Numbers drawn over the graph (the analytics page): a line under each card's label and a
/// class per card, a text appended to each link's label. Indexed by card index, and by card
/// index and link kind.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    /// Per card: an extra label line (`entered 120 · 8% stop here`) and a class name.
    pub cards: Vec<(String, &'static str)>,
    /// Per link: its extra text (`64 · 53%`).
    pub links: std::collections::HashMap<(usize, crate::model::LinkKind), String>,
    /// Class definitions (`name`, Mermaid style) to declare.
    pub classes: Vec<(&'static str, &'static str)>,
}

pub(super) fn mermaid_with(
    g: &FlowGraph,
    playbook: &Playbook,
    overlay: Option<&Overlay>,
) -> String {
    let mut out = String::from("flowchart TD\n");
    if let Some(s) = g.start() {
        let _ = writeln!(out, "    begin((start)) --> n{}", g.card(s));
    }
    for node in g.nodes() {
        let i = g.card(node);
        let card = &playbook.cards[i];
        let mut label = format!(
            "{}<br/>{}",
            mermaid_escape(card.id().as_str()),
            mermaid_escape(&summary(card))
        );
        let extra = overlay.and_then(|o| o.cards.get(i));
        if let Some((line, _)) = extra {
            let _ = write!(label, "<br/>{}", mermaid_escape(line));
        }
        let (open, close) = match shape(card) {
            Shape::Message => ("[\"", "\"]"),
            Shape::Question => ("{{\"", "\"}}"),
            Shape::Ask => ("[/\"", "\"/]"),
            Shape::Branch => ("{\"", "\"}"),
            Shape::LiveChat => ("[[\"", "\"]]"),
            Shape::Capture => ("[(\"", "\")]"),
            Shape::Consent => (">\"", "\"]"),
            Shape::End => ("(((\"", "\")))"),
        };
        let _ = writeln!(out, "    n{i}{open}{label}{close}");
        if let Some((_, class)) = extra.filter(|(_, c)| !c.is_empty()) {
            let _ = writeln!(out, "    class n{i} {class}");
        }
        for (_, to, edge) in g.out_edges(node) {
            let to = g.card(to);
            let counted = overlay.and_then(|o| o.links.get(&(i, edge.kind)));
            if let Some(n) = counted {
                let text = if edge.label.is_empty() {
                    n.clone()
                } else {
                    format!("{} · {n}", edge.label)
                };
                let _ = writeln!(out, "    n{i} -->|\"{}\"| n{to}", mermaid_escape(&text));
            } else if edge.label.is_empty() {
                let _ = writeln!(out, "    n{i} --> n{to}");
            } else {
                let _ = writeln!(
                    out,
                    "    n{i} -->|\"{}\"| n{to}",
                    mermaid_escape(&edge.label)
                );
            }
        }
        if let Some((label, outcome)) = own_end(card) {
            let _ = writeln!(
                out,
                "    n{i}_out(((\"{}\")))",
                mermaid_escape(&end_text(outcome))
            );
            if label.is_empty() {
                let _ = writeln!(out, "    n{i} --> n{i}_out");
            } else {
                let _ = writeln!(out, "    n{i} -->|\"{label}\"| n{i}_out");
            }
        }
    }
    if let Some(o) = overlay {
        for (name, style) in &o.classes {
            let _ = writeln!(out, "    classDef {name} {style}");
        }
    }
    out
}

/// Escapes text for a double-quoted DOT string.
fn dot_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' | '\r' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn dot(g: &FlowGraph, playbook: &Playbook) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=TB;\n    node [fontname=\"Helvetica\"];\n    edge [fontname=\"Helvetica\"];\n",
        dot_escape(&playbook.playbook.name)
    );
    if let Some(s) = g.start() {
        let _ = writeln!(out, "    begin [shape=point];");
        let _ = writeln!(out, "    begin -> n{};", g.card(s));
    }
    for node in g.nodes() {
        let i = g.card(node);
        let card = &playbook.cards[i];
        let shape = match shape(card) {
            Shape::Message => "box",
            Shape::Question => "hexagon",
            Shape::Ask => "parallelogram",
            Shape::Branch => "diamond",
            Shape::LiveChat => "box3d",
            Shape::Capture => "cylinder",
            Shape::Consent => "note",
            Shape::End => "doublecircle",
        };
        let _ = writeln!(
            out,
            "    n{i} [shape={shape}, label=\"{}\\n{}\"];",
            dot_escape(card.id().as_str()),
            dot_escape(&summary(card))
        );
        for (_, to, edge) in g.out_edges(node) {
            let to = g.card(to);
            let mut attrs = Vec::new();
            if !edge.label.is_empty() {
                attrs.push(format!("label=\"{}\"", dot_escape(&edge.label)));
            }
            if !edge.waits {
                attrs.push("style=bold".to_owned());
            }
            if attrs.is_empty() {
                let _ = writeln!(out, "    n{i} -> n{to};");
            } else {
                let _ = writeln!(out, "    n{i} -> n{to} [{}];", attrs.join(", "));
            }
        }
        if let Some((label, outcome)) = own_end(card) {
            let _ = writeln!(
                out,
                "    n{i}_out [shape=doublecircle, label=\"{}\"];",
                dot_escape(&end_text(outcome))
            );
            if label.is_empty() {
                let _ = writeln!(out, "    n{i} -> n{i}_out;");
            } else {
                let _ = writeln!(out, "    n{i} -> n{i}_out [label=\"{label}\"];");
            }
        }
    }
    out.push_str("}\n");
    out
}
