//! Coverage: which cards and links ([`Card::links`]) the scenarios walked, per playbook; a
//! table, and the links never walked with their `file:line:col`.
//!
//! Must not run anything: it only adds up what runs report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::rc::Rc;

use crate::CardIx;
use crate::model::LinkKind;

use super::{LoadedPlaybook, Run};

/// Walked cards and links, per playbook.
#[derive(Default)]
pub struct Coverage {
    books: BTreeMap<PathBuf, Book>,
}

struct Book {
    playbook: Rc<LoadedPlaybook>,
    scenarios: usize,
    cards: BTreeSet<CardIx>,
    links: BTreeSet<(CardIx, LinkKind)>,
}

/// One playbook's numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    /// The playbook file.
    pub playbook: String,
    /// Scenarios that ran it.
    pub scenarios: usize,
    /// Cards entered / all cards.
    pub cards: (usize, usize),
    /// Links walked / all links.
    pub branches: (usize, usize),
    /// Links never walked, described, with their place in the file.
    pub missed: Vec<String>,
    /// Cards never entered, with their place.
    pub unvisited: Vec<String>,
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        100.0
    } else {
        n as f64 * 100.0 / of as f64
    }
}

impl Coverage {
    /// Nothing walked yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds what a run walked.
    pub fn add(&mut self, run: &Run) {
        self.include(&run.playbook);
        let Some(book) = self.books.get_mut(&run.playbook.path) else {
            return;
        };
        book.scenarios += 1;
        book.cards.extend(run.cards.iter().copied());
        book.links.extend(run.links.iter().copied());
    }

    /// Counts a playbook even if no scenario ran it to the end (0 % then).
    pub fn include(&mut self, p: &Rc<LoadedPlaybook>) {
        self.books.entry(p.path.clone()).or_insert_with(|| Book {
            playbook: p.clone(),
            scenarios: 0,
            cards: BTreeSet::new(),
            links: BTreeSet::new(),
        });
    }

    /// One row per playbook, in path order.
    pub fn rows(&self) -> Vec<Row> {
        self.books.values().map(Book::row).collect()
    }

    /// Links walked / all links, over every playbook, in percent (100 with no links).
    pub fn percent(&self) -> f64 {
        let (n, of) = self
            .rows()
            .iter()
            .fold((0, 0), |(n, of), r| (n + r.branches.0, of + r.branches.1));
        pct(n, of)
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }

    /// The table, then what was missed.
    pub fn to_text(&self) -> String {
        let rows = self.rows();
        let width = rows
            .iter()
            .map(|r| r.playbook.len())
            .chain([8])
            .max()
            .unwrap_or(8);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>15}  {:>15}",
            "coverage", "scenarios", "cards", "branches"
        );
        let cell = |(n, of): (usize, usize)| format!("{n}/{of} {:5.1}%", pct(n, of));
        let (mut sc, mut cards, mut links) = (0, (0, 0), (0, 0));
        for r in &rows {
            let _ = writeln!(
                out,
                "{:<width$}  {:>9}  {:>15}  {:>15}",
                r.playbook,
                r.scenarios,
                cell(r.cards),
                cell(r.branches)
            );
            sc += r.scenarios;
            cards = (cards.0 + r.cards.0, cards.1 + r.cards.1);
            links = (links.0 + r.branches.0, links.1 + r.branches.1);
        }
        if rows.len() > 1 {
            let _ = writeln!(
                out,
                "{:<width$}  {:>9}  {:>15}  {:>15}",
                "total",
                sc,
                cell(cards),
                cell(links)
            );
        }
        for r in &rows {
            if r.missed.is_empty() && r.unvisited.is_empty() {
                continue;
            }
            let _ = writeln!(out, "\nnever walked in {}:", r.playbook);
            for m in r.unvisited.iter().chain(&r.missed) {
                let _ = writeln!(out, "  {m}");
            }
        }
        out
    }
}

impl Book {
    fn row(&self) -> Row {
        let p = &self.playbook;
        let cards = p.engine.program().cards();
        let place = |pointer: &str| {
            p.map
                .find(pointer)
                .map_or(p.file.name().to_owned(), |span| {
                    let lc = p.file.line_col(span.start);
                    format!("{}:{}:{}", p.file.name(), lc.line, lc.col)
                })
        };
        let mut all_links = 0;
        let mut missed = Vec::new();
        let mut unvisited = Vec::new();
        for (i, card) in cards.iter().enumerate() {
            let ix = i as CardIx;
            if !self.cards.contains(&ix) {
                unvisited.push(format!(
                    "{}: card `{}` is never reached",
                    place(&format!("/cards/{i}")),
                    card.id()
                ));
            }
            for link in card.links() {
                all_links += 1;
                if !self.links.contains(&(ix, link.kind)) {
                    missed.push(format!(
                        "{}: `{}` {} -> {}",
                        place(&format!("/cards/{i}{}", link.field)),
                        card.id(),
                        card.describe_link(link.kind),
                        link.to
                    ));
                }
            }
        }
        Row {
            playbook: p.file.name().to_owned(),
            scenarios: self.scenarios,
            cards: (cards.len() - unvisited.len(), cards.len()),
            branches: (all_links - missed.len(), all_links),
            missed,
            unvisited,
        }
    }
}
