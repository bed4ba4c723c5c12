//! E015, W002 and W003: variables are set before they are read, and an activity's linked
//! lead or deal is made before it.
//!
//! A forward *must* dataflow analysis over the flow graph: a variable is surely set on
//! entering a card when every path from the start to it sets it (intersection over the
//! incoming links, iterated to a fixpoint). A question's `save` sets its variable on its
//! answer and free-text links (not on idle); an ask's on its valid-input link; a branch rule
//! that can only hold when the variable has a value (`is set`, `is "x"`, a comparison) sets it
//! on that rule's link. A capture of a lead or deal "sets" a pseudo-variable on its links, which
//! is how W003 rides on the same analysis. Sets are bitsets, one row per card, over only the
//! variables that some card both saves and reads, so the cost is (cards + links) × rows / 64.
//!
//! E015: a variable no card saves (system variables are always set). W002: some path reaches
//! the read without setting it (`is set` / `is not set` tests are meant for exactly that, so
//! they only count for E015).

use std::collections::{HashMap, HashSet, VecDeque};

use petgraph::Direction;
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;

use super::suggest::Names;
use super::{Ctx, card_ptr};
use crate::diagnostic::{Code, Diagnostic};
use crate::graph::{MAX_SHOWN_PATH, SHOWN_HEAD};
use crate::model::{
    Card, Condition, IdleAction, LinkKind, LinkTo, Playbook, RecordSpec, Template, VarName,
};
use crate::source::pointer_segment;

/// Bit of the pseudo-variable "a lead was captured".
const LEAD: usize = 0;
/// Bit of the pseudo-variable "a deal was captured".
const DEAL: usize = 1;
/// Index of the first real variable.
const FIRST_VAR: usize = 2;
/// How many variables W002 names a path for (one search of the graph each); later ones say
/// "some path".
const MAX_SEARCHES: usize = 32;

/// One place that reads a variable.
struct Read<'a> {
    /// The card that reads it; `None` for the header's greeting (said before any card).
    card: Option<usize>,
    pointer: String,
    var: &'a VarName,
    /// An `is set` / `is not set` test: fine on paths that leave the variable unset.
    test_only: bool,
}

pub(super) fn check(cx: &Ctx<'_>, out: &mut Vec<Diagnostic>) {
    let playbook = cx.playbook;
    let reads = collect_reads(playbook);
    let saved: HashSet<&str> = playbook
        .cards
        .iter()
        .filter_map(save_of)
        .filter(|v| !v.is_system())
        .map(VarName::as_str)
        .collect();

    // E015, and the variables worth tracking for W002.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let names = Names::new(&saved);
    // The spelling suggestion of each never-saved name, computed once per name.
    let mut suggestions: HashMap<&str, Option<&str>> = HashMap::new();
    for r in &reads {
        let name = r.var.as_str();
        if r.var.is_system() {
            continue;
        }
        if !saved.contains(name) {
            let s = *suggestions
                .entry(name)
                .or_insert_with(|| names.suggest(name));
            out.push(never_set(cx, r, s));
        } else if !r.test_only {
            let next = FIRST_VAR + index.len();
            index.entry(name).or_insert(next);
        }
    }
    let activities: Vec<(usize, LinkTo)> = playbook
        .cards
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match c {
            Card::Capture(c) => match &c.record {
                RecordSpec::Activity(a) => a.link.map(|l| (i, l)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if index.is_empty() && activities.is_empty() {
        return;
    }

    let flow = Flow::solve(cx, &index);
    let mut warned: Vec<(usize, &Read)> = Vec::new();
    for r in reads.iter().filter(|r| !r.test_only) {
        let Some(&bit) = index.get(r.var.as_str()) else {
            continue;
        };
        match r.card {
            None => warned.push((bit, r)),
            Some(i) => {
                if let Some(v) = cx.graph.node(i)
                    && cx.reachable[v.index()]
                    && !flow.has(v, bit)
                {
                    warned.push((bit, r));
                }
            }
        }
    }
    // One search per variable warned about (not per read) finds the paths that leave it unset.
    let mut unset_paths: HashMap<usize, Witness> = HashMap::new();
    for (bit, r) in warned {
        let d = match r.card {
            None => Diagnostic::new(
                Code::MaybeUnset,
                format!(
                    "the greeting reads `{}`, but the greeting is said before any card runs, so it is always empty there",
                    r.var
                ),
            )
            .at(&r.pointer, format!("`{}` is never set yet", r.var))
            .with_help(format!("move `{{{}}}` to a card after the one that saves it", r.var)),
            Some(i) => {
                // Each search costs the whole graph, so only the first variables get one; a
                // playbook with thousands of maybe-unset variables still checks in linear time.
                let path = if unset_paths.len() < MAX_SEARCHES || unset_paths.contains_key(&bit) {
                    let w = unset_paths
                        .entry(bit)
                        .or_insert_with(|| flow.unset_search(cx, bit));
                    format!("the path {}", path_to(cx, w, i))
                } else {
                    "some path from the start".to_owned()
                };
                let id = playbook.cards[i].id();
                Diagnostic::new(
                    Code::MaybeUnset,
                    format!(
                        "`{}` may be unset when card `{id}` runs: {path} never sets it",
                        r.var
                    ),
                )
                .at(&r.pointer, format!("reads `{}`", r.var))
                .with_help(format!(
                    "save `{0}` on every path to `{id}`, or check it first with a branch `when {0} is set`",
                    r.var
                ))
            }
        };
        out.push(d);
    }

    let makes = |kind: LinkTo| {
        playbook.cards.iter().any(|c| match (c, kind) {
            (Card::Capture(c), LinkTo::Lead) => matches!(c.record, RecordSpec::Lead(_)),
            (Card::Capture(c), LinkTo::Deal) => matches!(c.record, RecordSpec::Deal(_)),
            _ => false,
        })
    };
    for (i, kind) in activities {
        let Some(v) = cx.graph.node(i) else { continue };
        let (bit, name) = match kind {
            LinkTo::Lead => (LEAD, "lead"),
            LinkTo::Deal => (DEAL, "deal"),
        };
        let id = playbook.cards[i].id();
        let pointer = format!("{}/record/link", card_ptr(i));
        if !makes(kind) {
            out.push(
                Diagnostic::new(
                    Code::UnlinkedActivity,
                    format!(
                        "the activity of `{id}` links to a {name}, but no card captures a {name}"
                    ),
                )
                .at(pointer, format!("no {name} to link to"))
                .with_help(format!(
                    "capture a {name} before this card, or remove the link"
                )),
            );
        } else if cx.reachable[v.index()] && !flow.has(v, bit) {
            let parents = unset_paths
                .entry(bit)
                .or_insert_with(|| flow.unset_search(cx, bit));
            let path = path_to(cx, parents, i);
            out.push(
                Diagnostic::new(
                    Code::UnlinkedActivity,
                    format!(
                        "the activity of `{id}` links to a {name}, but the path {path} captures no {name} before it"
                    ),
                )
                .at(pointer, format!("no {name} on some paths"))
                .with_help(format!(
                    "capture a {name} on every path to `{id}`, or remove the link"
                )),
            );
        }
    }
}

fn never_set(cx: &Ctx<'_>, r: &Read<'_>, suggestion: Option<&str>) -> Diagnostic {
    let var = r.var;
    let help = match suggestion {
        Some(s) => format!("did you mean `{s}`?"),
        None => {
            format!("save it with `save {var}` on a question or ask card, or stop reading it here")
        }
    };
    let whose = match r.card {
        Some(i) => format!("card `{}`", cx.playbook.cards[i].id()),
        None => "the greeting".to_owned(),
    };
    Diagnostic::new(
        Code::UnsetVariable,
        format!("{whose} reads `{var}`, but no card saves it"),
    )
    .at(&r.pointer, "never set")
    .with_help(help)
}

fn save_of(card: &Card) -> Option<&VarName> {
    match card {
        Card::Question(q) => q.save.as_ref(),
        Card::Ask(a) => a.save.as_ref(),
        _ => None,
    }
}

/// Every read of a variable, in card order (the greeting first).
fn collect_reads(playbook: &Playbook) -> Vec<Read<'_>> {
    let mut reads = Vec::new();
    fn push<'a>(reads: &mut Vec<Read<'a>>, card: Option<usize>, pointer: String, t: &'a Template) {
        for var in t.vars() {
            reads.push(Read {
                card,
                pointer: pointer.clone(),
                var,
                test_only: false,
            });
        }
    }
    if let Some(g) = &playbook.playbook.greeting {
        push(&mut reads, None, "/playbook/greeting".to_owned(), g);
    }
    for (i, card) in playbook.cards.iter().enumerate() {
        let at = |field: &str| format!("{}/{field}", card_ptr(i));
        let c = Some(i);
        match card {
            Card::Message(m) => push(&mut reads, c, at("text"), &m.text),
            Card::Question(q) => {
                push(&mut reads, c, at("text"), &q.text);
                if let Some(IdleAction::Nudge(t)) = q.idle.as_ref().map(|i| &i.then) {
                    push(&mut reads, c, at("idle/then/nudge"), t);
                }
            }
            Card::Ask(a) => {
                push(&mut reads, c, at("text"), &a.text);
                if let Some(t) = &a.reprompt {
                    push(&mut reads, c, at("reprompt"), t);
                }
                if let Some(IdleAction::Nudge(t)) = a.idle.as_ref().map(|i| &i.then) {
                    push(&mut reads, c, at("idle/then/nudge"), t);
                }
            }
            Card::Branch(b) => {
                for (j, rule) in b.rules.iter().enumerate() {
                    reads.push(Read {
                        card: c,
                        pointer: at(&format!("rules/{j}/when")),
                        var: rule.when.var(),
                        test_only: matches!(
                            rule.when,
                            Condition::IsSet { .. } | Condition::NotSet { .. }
                        ),
                    });
                }
            }
            Card::LiveChat(l) => {
                push(&mut reads, c, at("online"), &l.online);
                push(&mut reads, c, at("offline"), &l.offline);
            }
            Card::Capture(cap) => {
                for (path, t) in cap.record.templates() {
                    let path = match path.strip_prefix("fields/") {
                        Some(key) => format!("fields/{}", pointer_segment(key)),
                        None => path,
                    };
                    push(&mut reads, c, at(&format!("record/{path}")), t);
                }
            }
            Card::Consent(k) => push(&mut reads, c, at("notice"), &k.notice),
            Card::End(_) => {}
        }
    }
    reads
}

/// The solved analysis: for each card, the variables (bits) surely set on entering it.
struct Flow {
    words: usize,
    sets: Vec<u64>,
    /// For each edge (by index), the bit its link sets, if any.
    gen_bits: Vec<Option<usize>>,
}

impl Flow {
    fn solve(cx: &Ctx<'_>, index: &HashMap<&str, usize>) -> Flow {
        let g = &cx.graph;
        let cards = &cx.playbook.cards;
        let n = g.node_count();
        let words = (FIRST_VAR + index.len()).div_ceil(64);
        let bit_of = |v: &VarName| index.get(v.as_str()).copied();

        let mut gen_bits = vec![None; g.graph().edge_count()];
        for e in g.graph().edge_references() {
            let card = &cards[g.card(e.source())];
            let kind = e.weight().kind;
            gen_bits[e.id().index()] = match card {
                Card::Question(q) if matches!(kind, LinkKind::Answer(_) | LinkKind::FreeText) => {
                    q.save.as_ref().and_then(bit_of)
                }
                Card::Ask(a) if kind == LinkKind::Valid => a.save.as_ref().and_then(bit_of),
                Card::Branch(b) => match kind {
                    LinkKind::Rule(j) => b.rules.get(j).and_then(|r| match &r.when {
                        Condition::IsSet { var } | Condition::Compare { var, .. } => bit_of(var),
                        Condition::Equals { var, value } if !value.trim().is_empty() => bit_of(var),
                        Condition::OneOf { var, values }
                            if !values.is_empty()
                                && values.iter().all(|v| !v.trim().is_empty()) =>
                        {
                            bit_of(var)
                        }
                        _ => None,
                    }),
                    _ => None,
                },
                Card::Capture(c) => match c.record {
                    RecordSpec::Lead(_) => Some(LEAD),
                    RecordSpec::Deal(_) => Some(DEAL),
                    RecordSpec::Activity(_) => None,
                },
                _ => None,
            };
        }

        // Everything starts as "all set" (the top of the lattice) and only shrinks; cards the
        // start does not reach keep that and are never asked about.
        let mut sets = vec![!0u64; n * words];
        let mut flow = Flow {
            words,
            sets: Vec::new(),
            gen_bits,
        };
        let Some(start) = g.start() else {
            flow.sets = sets;
            return flow;
        };
        let order = reverse_postorder(cx, start);
        let mut queued = vec![false; n];
        let mut queue: VecDeque<NodeIndex> = order.into_iter().collect();
        for v in &queue {
            queued[v.index()] = true;
        }
        let mut acc = vec![0u64; words];
        while let Some(v) = queue.pop_front() {
            queued[v.index()] = false;
            if v == start {
                acc.fill(0);
            } else {
                acc.fill(!0);
                for e in g.graph().edges_directed(v, Direction::Incoming) {
                    let p = e.source();
                    if !cx.reachable[p.index()] {
                        continue;
                    }
                    let row = &sets[p.index() * words..(p.index() + 1) * words];
                    let genb = flow.gen_bits[e.id().index()];
                    for (w, a) in acc.iter_mut().enumerate() {
                        let mut x = row[w];
                        if let Some(b) = genb
                            && b / 64 == w
                        {
                            x |= 1 << (b % 64);
                        }
                        *a &= x;
                    }
                }
            }
            let row = &mut sets[v.index() * words..(v.index() + 1) * words];
            if row != acc.as_slice() {
                row.copy_from_slice(&acc);
                for s in g.graph().neighbors_directed(v, Direction::Outgoing) {
                    if !queued[s.index()] {
                        queued[s.index()] = true;
                        queue.push_back(s);
                    }
                }
            }
        }
        flow.sets = sets;
        flow
    }

    /// Whether `bit` is surely set on entering `v`.
    fn has(&self, v: NodeIndex, bit: usize) -> bool {
        self.sets[v.index() * self.words + bit / 64] & (1 << (bit % 64)) != 0
    }

    /// Breadth-first search from the start over links that do not set `bit`: a shortest path
    /// that leaves `bit` unset to each card it reaches.
    fn unset_search(&self, cx: &Ctx<'_>, bit: usize) -> Witness {
        let g = &cx.graph;
        let n = g.node_count();
        let mut w = Witness {
            parent: vec![None; n],
            depth: vec![0; n],
            anchor: (0..n).map(NodeIndex::new).collect(),
        };
        let Some(start) = g.start() else {
            return w;
        };
        let mut seen = vec![false; n];
        seen[start.index()] = true;
        let mut queue = VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for e in g.graph().edges_directed(v, Direction::Outgoing) {
                let to = e.target();
                if self.gen_bits[e.id().index()] == Some(bit) || seen[to.index()] {
                    continue;
                }
                seen[to.index()] = true;
                w.parent[to.index()] = Some(v);
                w.depth[to.index()] = w.depth[v.index()] + 1;
                if w.depth[to.index()] >= SHOWN_HEAD {
                    w.anchor[to.index()] = w.anchor[v.index()];
                }
                queue.push_back(to);
            }
        }
        w
    }
}

/// The result of [`Flow::unset_search`]: a search tree from the start.
struct Witness {
    /// Each card's parent on its path.
    parent: Vec<Option<NodeIndex>>,
    /// Each card's distance from the start.
    depth: Vec<usize>,
    /// The last card a message names before its `…`: the ancestor at depth `SHOWN_HEAD - 1`
    /// (the card itself when it is nearer the start). It lets a message name a long path's
    /// first cards without walking the path, so many warnings on long paths cost linear time.
    anchor: Vec<NodeIndex>,
}

/// The cards the start reaches, in reverse postorder (a good order for forward analyses).
fn reverse_postorder(cx: &Ctx<'_>, start: NodeIndex) -> Vec<NodeIndex> {
    let g = &cx.graph;
    let mut post = Vec::new();
    let mut seen = vec![false; g.node_count()];
    let mut stack: Vec<(NodeIndex, Vec<NodeIndex>)> = Vec::new();
    seen[start.index()] = true;
    let succ =
        |v: NodeIndex| -> Vec<NodeIndex> { g.out_edges(v).map(|(_, t, _)| t).rev().collect() };
    stack.push((start, succ(start)));
    while let Some((v, rest)) = stack.last_mut() {
        match rest.pop() {
            Some(t) if !seen[t.index()] => {
                seen[t.index()] = true;
                let s = succ(t);
                stack.push((t, s));
            }
            Some(_) => {}
            None => {
                post.push(*v);
                stack.pop();
            }
        }
    }
    post.reverse();
    post
}

/// The card ids from the start to card `i` along a search's parent links (its first and last
/// cards when it is long), walking at most [`MAX_SHOWN_PATH`] links.
fn path_to(cx: &Ctx<'_>, w: &Witness, i: usize) -> String {
    let g = &cx.graph;
    let Some(v) = g.node(i) else {
        return String::new();
    };
    // Up to `n` cards walking up the parents from `v`, nearest the start first.
    let walk = |mut v: NodeIndex, n: usize| {
        let mut path = vec![v];
        while path.len() < n {
            match w.parent[v.index()] {
                Some(p) => {
                    path.push(p);
                    v = p;
                }
                None => break,
            }
        }
        path.reverse();
        path
    };
    if w.depth[v.index()] < MAX_SHOWN_PATH {
        return g.describe_path(cx.playbook, &walk(v, MAX_SHOWN_PATH));
    }
    let head = walk(w.anchor[v.index()], SHOWN_HEAD);
    let tail = walk(v, MAX_SHOWN_PATH - SHOWN_HEAD - 1);
    g.describe_cut(cx.playbook, &head, &tail)
}
