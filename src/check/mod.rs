//! Static checks: every rule a playbook must follow before a visitor meets it.
//!
//! One pass per file; every pass runs and every diagnostic is kept (a user fixes ten problems
//! in one go, not one per run). Passes read the model and its [`FlowGraph`] and speak in JSON
//! pointers; they never see text or spans. Every pass is linear (or near-linear) in cards and
//! links, so a playbook of 10,000 cards checks in milliseconds. Only [`check`] makes a
//! [`Program`].

mod answers;
mod blank;
mod capture;
mod dead_ends;
mod ids;
mod livechat;
mod reach;
mod routes;
mod spin;
mod steps;
mod suggest;
mod system_vars;
mod targets;
mod variables;

use crate::diagnostic::{Diagnostic, Location};
use crate::graph::FlowGraph;
use crate::model::{DeskRef, Playbook};
use crate::program::Program;

/// The result of checking a playbook: its diagnostics, and the program when there were no
/// errors.
#[derive(Debug)]
pub struct Checked {
    /// Every problem found, errors and warnings, in a stable order.
    pub diagnostics: Vec<Diagnostic>,
    /// The runnable program, present only when no diagnostic is an error.
    pub program: Option<Program>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The program, or the diagnostics when there were errors.
    pub fn into_result(self) -> Result<Program, Vec<Diagnostic>> {
        self.program.ok_or(self.diagnostics)
    }
}

/// What the graph-based passes share, computed once.
pub(crate) struct Ctx<'a> {
    /// The playbook being checked.
    pub playbook: &'a Playbook,
    /// Its flow graph (built even when targets are missing).
    pub graph: FlowGraph,
    /// Which nodes a path from the start reaches, by node index.
    pub reachable: Vec<bool>,
}

/// Runs every check over a playbook.
pub fn check(playbook: Playbook) -> Checked {
    let mut diagnostics = diagnose(&playbook);
    let program = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(Program::new_unchecked(playbook))
    };
    diagnostics.shrink_to_fit();
    Checked {
        diagnostics,
        program,
    }
}

/// Every diagnostic of a playbook, sorted by the place its first label points at (header
/// first, then card order), then by code; passes keep their own order within that.
pub fn diagnose(playbook: &Playbook) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    ids::check(playbook, &mut out);
    targets::check(playbook, &mut out);
    answers::check(playbook, &mut out);
    blank::check(playbook, &mut out);
    capture::check(playbook, &mut out);
    routes::check(playbook, &mut out);
    system_vars::check(playbook, &mut out);

    let graph = FlowGraph::new(playbook);
    let reachable = graph.reachable_from_start();
    let cx = Ctx {
        playbook,
        graph,
        reachable,
    };
    reach::check(&cx, &mut out);
    dead_ends::check(&cx, &mut out);
    livechat::check(&cx, &mut out);
    spin::check(&cx, &mut out);
    steps::check(&cx, &mut out);
    variables::check(&cx, &mut out);

    out.sort_by_key(|d| (place(d), d.code));
    out
}

/// Where a diagnostic sorts: the header, a card (by index), or nowhere in particular.
fn place(d: &Diagnostic) -> (u8, usize) {
    match d.labels.first().map(|l| &l.at) {
        Some(Location::Pointer(p)) => match p.strip_prefix("/cards/") {
            Some(rest) => {
                let i = rest.split('/').next().and_then(|s| s.parse().ok());
                (1, i.unwrap_or(usize::MAX))
            }
            None => (0, 0),
        },
        Some(Location::Span(s)) => (0, s.start),
        None => (2, 0),
    }
}

/// W004: what a playbook names on the desk that `has` (a server's config) does not have.
/// Not part of [`diagnose`]: a playbook is checked on its own, and against a config when
/// one is given.
pub fn desk_names(playbook: &Playbook, has: impl Fn(&DeskRef<'_>) -> bool) -> Vec<Diagnostic> {
    use crate::diagnostic::Code;
    playbook
        .desk_refs()
        .into_iter()
        .filter(|(_, r)| !has(r))
        .map(|(i, r)| {
            let id = playbook.cards[i].id();
            let (what, name, pointer, help) = match r {
                DeskRef::Team(t) => (
                    "team",
                    t,
                    "route/to/team",
                    "no agent of the config is in it, so its visitors always get the offline branch",
                ),
                DeskRef::Agent(a) => (
                    "agent",
                    a,
                    "route/to/agents",
                    "nobody of that name can pick the chat up",
                ),
                DeskRef::Pool(p) => (
                    "pool",
                    p,
                    "record",
                    "the record gets no owner through it",
                ),
            };
            Diagnostic::new(
                Code::UnknownDeskName,
                format!("card `{id}` names the {what} `{name}`, which the config does not have"),
            )
            .at(format!("{}/{pointer}", card_ptr(i)), format!("unknown {what}"))
            .with_help(format!("{help}; add it to the config, or fix the name"))
        })
        .collect()
}

/// The JSON pointer of card `i`.
pub(crate) fn card_ptr(i: usize) -> String {
    format!("/cards/{i}")
}

/// `a`, `a` and `b`, `a`, `b` and `c`: card ids for a message, each in backticks.
pub(crate) fn list_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let ids: Vec<String> = ids.into_iter().map(|i| format!("`{i}`")).collect();
    match ids.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}
