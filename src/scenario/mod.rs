//! Scripted conversations ("scenarios") → transcripts, expectations and coverage.
//!
//! A scenario file (`*.scenario`, see `grammar/scenario.pest` and the README's "Testing your
//! flows") names its playbook, sets up the desk, and scripts the visitor, the agents and
//! virtual time. [`run_file`] plays it through the [`driver`] (engine + desk + ledger +
//! timers) and returns a [`Transcript`], the inline expectations that failed, and the cards
//! and links it walked ([`coverage`]). [`snapshot`] reads and writes insta-compatible `.snap`
//! files so that `playbook test` and `cargo test` agree.
//!
//! Must not: read a clock (time is virtual, starting at [`START`]), print, or exit; the CLI
//! (`cli::test`) does the reporting.

pub mod coverage;
pub mod driver;
pub mod parse;
pub mod snapshot;
pub mod trace;
pub mod transcript;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::CardIx;
use crate::capture::{ManualDetails, Person, Record, RecordData};
use crate::desk::{Notification, Presence};
use crate::engine::{Channel, Effect, Engine, Instant, Phase, Speaker, Status, TimerKind};
use crate::load::{LoadError, Stage};
use crate::model::{LinkKind, Route, RouteTarget};
use crate::runtime::Command;
use crate::source::{SourceFile, SourceMap};

use driver::Cause;

pub use coverage::Coverage;
pub use parse::{Action, Expect, Pos, Scenario, Step, VisitorInput, parse};
pub use transcript::{Entry, Transcript, What};

/// The virtual moment every scenario starts at: 2026-01-05T09:00:00Z (a Monday morning).
pub const START: Instant = Instant(1_767_603_600_000);

/// The extension of scenario files.
pub const EXTENSION: &str = "scenario";

/// A problem in a scenario, at a place in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ScenarioError {
    /// The scenario file as given.
    pub file: String,
    /// Line, from 1 (0 when the problem is the whole file).
    pub line: usize,
    /// Column, from 1.
    pub col: usize,
    /// What is wrong, in words.
    pub message: String,
}

/// A checked playbook ready to run, with what is needed to point into its file.
pub struct LoadedPlaybook {
    /// The path it was read from.
    pub path: PathBuf,
    /// The engine over its checked program.
    pub engine: Arc<Engine>,
    /// Where each part was written.
    pub map: SourceMap,
    /// The file, for line numbers.
    pub file: SourceFile,
}

/// Playbooks read so far, by path: each is read and checked once however many scenarios
/// use it.
#[derive(Default)]
pub struct Playbooks {
    loaded: HashMap<PathBuf, Result<Rc<LoadedPlaybook>, String>>,
    order: Vec<PathBuf>,
}

impl Playbooks {
    /// No playbooks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads and checks the playbook at `path` (once). `Err` says why it cannot run.
    pub fn get(&mut self, path: &Path) -> Result<Rc<LoadedPlaybook>, String> {
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if let Some(r) = self.loaded.get(&key) {
            return r.clone();
        }
        let r = load(path).map(Rc::new);
        self.loaded.insert(key.clone(), r.clone());
        self.order.push(key);
        r
    }

    /// Every playbook that loaded, in the order first asked for.
    pub fn all(&self) -> impl Iterator<Item = &Rc<LoadedPlaybook>> {
        self.order
            .iter()
            .filter_map(|k| self.loaded.get(k).and_then(|r| r.as_ref().ok()))
    }
}

/// Loads a playbook a scenario names; `Err` is the scenario error's text.
fn load(path: &Path) -> Result<LoadedPlaybook, String> {
    let name = path.display().to_string();
    let theme = miette::GraphicalTheme::unicode_nocolor();
    let loaded = crate::load::file(path).map_err(|e| match e {
        LoadError::Io { source, .. } => format!("cannot read `{name}`: {source}"),
        LoadError::Invalid(invalid) => match invalid.stage {
            Stage::Parse => format!(
                "the playbook `{name}` cannot be read:\n{}",
                invalid
                    .source
                    .render(invalid.diagnostics.first(), &theme)
                    .concat()
            ),
            Stage::Check => format!(
                "the playbook `{name}` has errors; fix them first (`playbook check {name}`):\n{}",
                invalid.source.render(invalid.errors(), &theme).join("\n")
            ),
        },
    })?;
    Ok(LoadedPlaybook {
        path: path.to_path_buf(),
        engine: Arc::new(Engine::new(loaded.program)),
        map: loaded.source.map,
        file: loaded.source.file,
    })
}

/// A scenario that ran to its end.
pub struct Run {
    /// The scenario's name: its file name without `.scenario`.
    pub name: String,
    /// The scenario file as given.
    pub file: String,
    /// What happened.
    pub transcript: Transcript,
    /// The transcript as text (what the snapshot holds).
    pub text: String,
    /// Expectations that did not hold (the run went on after each).
    pub failures: Vec<ScenarioError>,
    /// The playbook it ran.
    pub playbook: Rc<LoadedPlaybook>,
    /// Cards entered.
    pub cards: BTreeSet<CardIx>,
    /// Links followed.
    pub links: BTreeSet<(CardIx, LinkKind)>,
}

/// The scenario's name for a path: its file name without the `.scenario` extension.
pub fn name_of(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.strip_suffix(".scenario").unwrap_or(&file).to_owned()
}

/// Reads, parses and runs one scenario file.
pub fn run_file(path: &Path, books: &mut Playbooks) -> Result<Run, ScenarioError> {
    let file = path.display().to_string();
    let text = crate::syntax::read_text(path).map_err(|e| ScenarioError {
        file: file.clone(),
        line: 0,
        col: 0,
        message: format!("cannot read the scenario: {e}"),
    })?;
    let sc = parse(&file, &text)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    run(&sc, &name_of(path), dir, books)
}

/// Runs a parsed scenario; its playbook path is relative to `dir`.
pub fn run(
    sc: &Scenario,
    name: &str,
    dir: &Path,
    books: &mut Playbooks,
) -> Result<Run, ScenarioError> {
    let err = |pos: Pos, message: String| ScenarioError {
        file: sc.file.clone(),
        line: pos.line,
        col: pos.col,
        message,
    };
    let Some((pb_path, pb_pos)) = &sc.playbook else {
        return Err(err(
            Pos { line: 1, col: 1 },
            "the scenario names no playbook; start it with `playbook \"name.playbook\"`".into(),
        ));
    };
    let book = books.get(&dir.join(pb_path)).map_err(|m| err(*pb_pos, m))?;
    let mut r = Runner::new(sc, name, &book, pb_path);
    let result = r.run_steps();
    let Runner {
        transcript,
        failures,
        cards,
        links,
        ..
    } = r;
    result?;
    let text = transcript.to_text(START);
    Ok(Run {
        name: name.to_owned(),
        file: sc.file.clone(),
        transcript,
        text,
        failures,
        playbook: book.clone(),
        cards,
        links,
    })
}

fn route_words(r: &Route) -> String {
    match &r.to {
        RouteTarget::Anyone => "any agent".to_owned(),
        RouteTarget::Agents(a) => format!("agents {}", a.join(", ")),
        RouteTarget::Team(t) => format!("team {t:?}"),
        RouteTarget::Owner => "the contact's owner".to_owned(),
    }
}

struct Runner<'a> {
    sc: &'a Scenario,
    d: driver::Driver<'a>,
    transcript: Transcript,
    failures: Vec<ScenarioError>,
    cards: BTreeSet<CardIx>,
    links: BTreeSet<(CardIx, LinkKind)>,
    started: bool,
    agents: BTreeSet<String>,
    buttons: Vec<String>,
    turn: usize,
}

impl<'a> Runner<'a> {
    fn new(sc: &'a Scenario, name: &str, book: &'a LoadedPlaybook, pb_path: &str) -> Self {
        let program = book.engine.program();
        Runner {
            sc,
            d: driver::Driver::new(&book.engine, name, START),
            transcript: Transcript {
                scenario: name.to_owned(),
                playbook: program.playbook().playbook.name.clone(),
                playbook_file: pb_path.to_owned(),
                start_at: sc.start_at.as_ref().map(|s| s.card.clone()),
                desk: Vec::new(),
                entries: Vec::new(),
            },
            failures: Vec::new(),
            cards: BTreeSet::new(),
            links: BTreeSet::new(),
            started: false,
            agents: BTreeSet::new(),
            buttons: Vec::new(),
            turn: 0,
        }
    }

    fn err(&self, pos: Pos, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.sc.file.clone(),
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    fn push(&mut self, what: What) {
        self.transcript.entries.push(Entry {
            at_ms: self.d.now().0.saturating_sub(START.0),
            what,
        });
    }

    fn card_id(&self) -> String {
        self.d.engine().card_id(self.d.session()).to_owned()
    }

    fn known_agent(&self, pos: Pos, name: &str) -> Result<(), ScenarioError> {
        if self.agents.contains(name) {
            return Ok(());
        }
        let known: Vec<&str> = self.agents.iter().map(String::as_str).collect();
        Err(self.err(
            pos,
            if known.is_empty() {
                format!("no agent `{name}`: the scenario declares none; add `agent {name} online` before the conversation starts")
            } else {
                format!(
                    "no agent `{name}`; the scenario declares {}; add `agent {name} online` before the conversation starts",
                    known.join(", ")
                )
            },
        ))
    }

    fn run_steps(&mut self) -> Result<(), ScenarioError> {
        for step in &self.sc.steps {
            let pos = step.pos;
            let setup = matches!(
                step.action,
                Action::Agent(..) | Action::Team(..) | Action::Pool(..)
            );
            if !self.started && !setup {
                self.start()?;
            }
            if !matches!(step.action, Action::Expect(_)) {
                self.turn = self.transcript.entries.len();
            }
            self.step(pos, &step.action)?;
        }
        if !self.started {
            self.start()?;
        }
        Ok(())
    }

    fn start(&mut self) -> Result<(), ScenarioError> {
        self.started = true;
        let sc = self.sc;
        let program = self.d.program();
        let mut at = None;
        let mut vars: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = &sc.start_at {
            let Some(ix) = program.lookup(&s.card) else {
                let ids: Vec<&str> = program.cards().iter().map(|c| c.id().as_str()).collect();
                return Err(self.err(
                    s.pos,
                    format!(
                        "the playbook has no card `{}`; its cards are {}",
                        s.card,
                        ids.join(", ")
                    ),
                ));
            };
            for (k, v) in &s.vars {
                if !self.d.engine().has_variable(k) {
                    return Err(self.err(
                        s.pos,
                        format!("the playbook has no variable `{k}` (no card saves or reads it)"),
                    ));
                }
                vars.push((k.as_str(), v.as_str()));
            }
            at = Some(ix);
        }
        self.push(What::Opened {
            channel: sc.channel,
            page: sc.page.clone(),
        });
        let r = self.d.start(
            sc.channel,
            sc.page.as_deref(),
            sc.contact_owner.as_deref(),
            at.map(|ix| (ix, vars.as_slice())),
        );
        let pos = sc
            .start_at
            .as_ref()
            .map_or(Pos { line: 1, col: 1 }, |s| s.pos);
        let s = r.map_err(|e| self.err(pos, format!("the conversation could not start: {e}")))?;
        self.record(s);
        Ok(())
    }

    /// Adds one accepted step to the transcript and the coverage.
    fn record(&mut self, s: driver::Stepped) {
        let walk = trace::walk(self.d.program(), &s.effects);
        self.cards.extend(walk.cards);
        self.links.extend(walk.links);
        match &s.cause {
            Cause::Command(Command::VisitorText { text, channel }) => self.push(What::Visitor {
                channel: *channel,
                text: text.clone(),
                button: false,
            }),
            Cause::Command(Command::VisitorChoice { index, channel }) => {
                let text = self.buttons.get(*index).cloned().unwrap_or_default();
                self.push(What::Visitor {
                    channel: *channel,
                    text,
                    button: true,
                })
            }
            Cause::Timer(t) => self.push(What::Timer {
                text: match t.kind {
                    TimerKind::Wait => "the live-chat wait is over".to_owned(),
                    TimerKind::Idle => "the visitor has been idle".to_owned(),
                    TimerKind::IdleCapture => {
                        "idle capture: the conversation went quiet".to_owned()
                    }
                },
            }),
            _ => {}
        }
        for e in &s.effects {
            let what = match e {
                Effect::Say {
                    from,
                    text,
                    channel,
                } => match from {
                    Speaker::Bot(n) => What::Bot {
                        name: n.to_string(),
                        channel: *channel,
                        text: text.to_string(),
                        buttons: Vec::new(),
                        asks: false,
                        retry: false,
                    },
                    Speaker::Agent(n) => What::Agent {
                        name: n.to_string(),
                        channel: *channel,
                        text: text.to_string(),
                    },
                    Speaker::System => What::System {
                        channel: *channel,
                        text: text.to_string(),
                    },
                },
                Effect::Ask {
                    from,
                    text,
                    buttons,
                    channel,
                    retry,
                } => {
                    self.buttons = buttons.to_vec();
                    What::Bot {
                        name: from.name().to_owned(),
                        channel: *channel,
                        text: text.to_string(),
                        buttons: buttons.to_vec(),
                        asks: true,
                        retry: *retry,
                    }
                }
                Effect::RelayToAgent { agent, .. } => What::Desk {
                    text: match agent {
                        Some(a) => format!("message relayed to {a}"),
                        None => "message waits in Unassigned".to_owned(),
                    },
                },
                Effect::EnterUnassigned { route } => What::Desk {
                    text: format!("entered Unassigned (routed to {})", route_words(route)),
                },
                Effect::LeaveUnassigned => What::Desk {
                    text: "left Unassigned: nobody picked up in time".to_owned(),
                },
                Effect::Capture(r) => match s.records.iter().find(|(x, _)| x.key == r.key) {
                    Some((rec, n)) => What::Record {
                        record: Box::new(rec.clone()),
                        attached: *n,
                    },
                    None => What::Desk {
                        text: format!("record {} already stored; duplicate ignored", r.key),
                    },
                },
                Effect::End { outcome } => What::Ended { outcome: *outcome },
                Effect::Failed(f) => What::Failed {
                    message: f.to_string(),
                },
                // Consent shows on the records made after it.
                Effect::SetTimer(_)
                | Effect::CancelTimer { .. }
                | Effect::Entered { .. }
                | Effect::Consent { .. } => {
                    continue;
                }
            };
            self.push(what);
        }
        for n in s.notifications {
            let text = match n {
                Notification::EnteredUnassigned { agent, .. } => {
                    format!("notify {agent}: a chat is waiting in Unassigned")
                }
                Notification::MessageArrived { agent, .. } => {
                    format!("notify {agent}: new message from the visitor")
                }
                Notification::AssignedToYou { agent, .. } => {
                    format!("notify {agent}: a chat was assigned to you")
                }
            };
            self.push(What::Desk { text });
        }
    }

    fn step(&mut self, pos: Pos, action: &Action) -> Result<(), ScenarioError> {
        match action {
            Action::Agent(name, p, capacity) => {
                if self.started {
                    if capacity.is_some() {
                        return Err(self.err(
                            pos,
                            format!("give `{name}` a capacity where the agent is declared, before the conversation starts"),
                        ));
                    }
                    self.presence(pos, name, *p)?;
                } else {
                    if !self.agents.insert(name.clone()) {
                        return Err(self.err(pos, format!("agent `{name}` is declared twice; to change presence later, write `{name} goes away`")));
                    }
                    self.d.desk_mut().add_agent(name, *p);
                    let mut line = format!("{name} {}", presence_word(*p));
                    if let Some(c) = capacity {
                        // The agent was just added.
                        let _ = self.d.desk_mut().set_capacity(name, Some(*c));
                        line.push_str(&format!(" (capacity {c})"));
                    }
                    self.transcript.desk.push(line);
                }
            }
            Action::Team(name, members, _) | Action::Pool(name, members) => {
                let team = matches!(action, Action::Team(..));
                let what = if team { "team" } else { "pool" };
                if self.started {
                    return Err(self.err(
                        pos,
                        format!("declare the {what} before the conversation starts (before the first visitor, agent action, wait or expect)"),
                    ));
                }
                let m: Vec<&str> = members.iter().map(String::as_str).collect();
                if team {
                    for a in &m {
                        self.known_agent(pos, a)?;
                    }
                    self.d
                        .desk_mut()
                        .add_team(name, &m)
                        .map_err(|e| self.err(pos, e.to_string()))?;
                } else {
                    self.d.desk_mut().add_pool(name, &m);
                }
                let mut line = format!("{what} {name}: {}", m.join(", "));
                if let Action::Team(_, _, Some(a)) = action {
                    self.d.desk_mut().set_assignment(Some(name), *a);
                    line.push_str(&format!(" (assign {})", a.name()));
                }
                self.transcript.desk.push(line);
            }
            Action::Goes(name, p) => self.presence(pos, name, *p)?,
            Action::Visitor(ch, input) => self.visitor(pos, *ch, input)?,
            Action::Wait(d) => {
                let until = self.d.now().after_ms(d.as_millis());
                for s in self.d.advance(until) {
                    self.record(s);
                }
            }
            Action::PicksUp(a) => {
                self.known_agent(pos, a)?;
                self.push(What::Desk {
                    text: format!("{a} picks up the chat"),
                });
                let s = self
                    .d
                    .apply(Command::Pickup { agent: a.clone() })
                    .map_err(|e| self.err(pos, format!("`{a}` cannot pick up: {e}")))?;
                self.record(s);
            }
            Action::Says(a, text) => {
                self.known_agent(pos, a)?;
                let cmd = Command::AgentMessage {
                    agent: a.clone(),
                    text: text.clone(),
                };
                let s = self
                    .d
                    .apply(cmd)
                    .map_err(|e| self.err(pos, format!("`{a}` cannot write: {e}")))?;
                self.record(s);
            }
            Action::Reassigns(a, to) => {
                self.known_agent(pos, a)?;
                self.known_agent(pos, to)?;
                self.push(What::Desk {
                    text: format!("{a} reassigns the chat to {to}"),
                });
                let cmd = Command::Reassign {
                    by: a.clone(),
                    to: to.clone(),
                };
                let s = self
                    .d
                    .apply(cmd)
                    .map_err(|e| self.err(pos, format!("`{a}` cannot reassign to `{to}`: {e}")))?;
                self.record(s);
            }
            Action::Closes(a) => {
                self.known_agent(pos, a)?;
                self.push(What::Desk {
                    text: format!("{a} closes the chat"),
                });
                let s = self
                    .d
                    .apply(Command::Close { agent: a.clone() })
                    .map_err(|e| self.err(pos, format!("`{a}` cannot close: {e}")))?;
                self.record(s);
            }
            Action::Creates(a, kind, fields) => {
                self.known_agent(pos, a)?;
                let details = manual_details(fields).map_err(|m| self.err(pos, m))?;
                let cmd = Command::CreateRecord {
                    agent: a.clone(),
                    kind: *kind,
                    details,
                };
                let made = self
                    .d
                    .apply(cmd)
                    .map_err(|e| self.err(pos, format!("`{a}` cannot create a record: {e}")))?;
                self.push(What::Desk {
                    text: format!("{a} creates a record from the chat"),
                });
                for (record, attached) in made.records {
                    self.push(What::Record {
                        record: Box::new(record),
                        attached,
                    });
                }
            }
            Action::Expect(e) => self.expect(pos, e)?,
        }
        Ok(())
    }

    /// An agent's presence changes mid-conversation: a desk command like any other.
    fn presence(&mut self, pos: Pos, name: &str, p: Presence) -> Result<(), ScenarioError> {
        self.known_agent(pos, name)?;
        let cmd = Command::Presence {
            agent: name.to_owned(),
            presence: p,
        };
        let s = self.d.apply(cmd).map_err(|e| self.err(pos, e))?;
        self.push(What::Desk {
            text: format!("{name} is now {}", presence_word(p)),
        });
        self.record(s);
        Ok(())
    }

    fn visitor(
        &mut self,
        pos: Pos,
        ch: Option<Channel>,
        input: &VisitorInput,
    ) -> Result<(), ScenarioError> {
        let channel = ch.unwrap_or_else(|| self.d.session().channel());
        let phase = self.d.session().phase();
        if let Phase::Ended(o) = phase {
            return Err(self.err(
                pos,
                format!(
                    "the conversation is over (it ended {} at `{}`); the visitor cannot act any more",
                    transcript::outcome_word(o),
                    self.card_id()
                ),
            ));
        }
        let asking_buttons = phase == Phase::Asking && !self.buttons.is_empty();
        let card = self.card_id();
        let cmd = match input {
            VisitorInput::Button(n) => {
                if !asking_buttons {
                    return Err(self.err(
                        pos,
                        format!("the visitor cannot press button {n}: the conversation at `{card}` offers no buttons"),
                    ));
                }
                if *n > self.buttons.len() {
                    return Err(self.err(
                        pos,
                        format!(
                            "`{card}` has {} answers; there is no button {n}",
                            self.buttons.len()
                        ),
                    ));
                }
                Command::VisitorChoice {
                    index: n - 1,
                    channel,
                }
            }
            VisitorInput::Say(text) => {
                let hit = self
                    .buttons
                    .iter()
                    .position(|b| b.trim().eq_ignore_ascii_case(text.trim()));
                match hit {
                    Some(i) if asking_buttons => Command::VisitorChoice { index: i, channel },
                    _ if asking_buttons && !self.free_text_here() => {
                        let labels: Vec<String> =
                            self.buttons.iter().map(|b| format!("{b:?}")).collect();
                        return Err(self.err(
                            pos,
                            format!(
                                "`{card}` has no answer {text:?}; its answers are {}. To test a typed reply that fits no answer, write `visitor types {text:?}`",
                                labels.join(", ")
                            ),
                        ));
                    }
                    _ => Command::VisitorText {
                        text: text.clone(),
                        channel,
                    },
                }
            }
            VisitorInput::Type(text) => Command::VisitorText {
                text: text.clone(),
                channel,
            },
        };
        let s = self
            .d
            .apply(cmd)
            .map_err(|e| self.err(pos, format!("the visitor cannot act at `{card}`: {e}")))?;
        self.record(s);
        Ok(())
    }

    fn free_text_here(&self) -> bool {
        let ix = self.d.session().card();
        matches!(
            self.d.program().cards().get(ix as usize),
            Some(crate::model::Card::Question(q)) if q.free_text.is_some()
        )
    }

    fn expect(&mut self, pos: Pos, e: &Expect) -> Result<(), ScenarioError> {
        let fail = match e {
            Expect::Bot(want) => {
                let said: Vec<&str> = self.transcript.entries[self.turn..]
                    .iter()
                    .filter_map(|e| match &e.what {
                        What::Bot { text, .. } | What::System { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                if said.iter().any(|s| s.contains(want.as_str())) {
                    None
                } else if said.is_empty() {
                    Some(format!(
                        "expected the bot to say {want:?}, but it said nothing after the previous action"
                    ))
                } else {
                    let q: Vec<String> = said.iter().map(|s| format!("{s:?}")).collect();
                    Some(format!(
                        "expected the bot to say {want:?} after the previous action; it said {}",
                        q.join(", ")
                    ))
                }
            }
            Expect::Buttons(want) => {
                let asking = self.d.session().phase() == Phase::Asking;
                let have: &[String] = if asking { &self.buttons } else { &[] };
                (have != want.as_slice()).then(|| {
                    format!(
                        "expected the buttons {want:?}; the conversation at `{}` offers {have:?}",
                        self.card_id()
                    )
                })
            }
            Expect::Records(n) => {
                let have = self.d.ledger().len();
                (have != *n).then(|| format!("expected {n} records; {have} were stored"))
            }
            Expect::Outcome(o) => match self.d.session().status() {
                Status::Ended(x) if x == *o => None,
                Status::Ended(x) => Some(format!(
                    "expected the outcome {}; the conversation ended {}",
                    transcript::outcome_word(*o),
                    transcript::outcome_word(x)
                )),
                _ => Some(format!(
                    "expected the outcome {}; the conversation has not ended (it waits at `{}`)",
                    transcript::outcome_word(*o),
                    self.card_id()
                )),
            },
            Expect::Ended => match self.d.session().status() {
                Status::Ended(_) | Status::Failed => None,
                _ => Some(format!(
                    "expected the conversation to have ended; it waits at `{}`",
                    self.card_id()
                )),
            },
            Expect::At(card) => {
                if self.d.program().lookup(card).is_none() {
                    return Err(self.err(pos, format!("the playbook has no card `{card}`")));
                }
                let here = self.card_id();
                let waiting = matches!(self.d.session().status(), Status::Waiting);
                (here != *card || !waiting).then(|| {
                    if waiting {
                        format!("expected the conversation to wait at `{card}`; it waits at `{here}`")
                    } else {
                        format!("expected the conversation to wait at `{card}`; it is over (last card `{here}`)")
                    }
                })
            }
            Expect::Record(kind, fields) => self.expect_record(pos, kind, fields)?,
        };
        if let Some(m) = fail {
            self.failures.push(self.err(pos, m));
        }
        Ok(())
    }

    fn expect_record(
        &self,
        pos: Pos,
        kind: &str,
        fields: &[(String, String)],
    ) -> Result<Option<String>, ScenarioError> {
        let of_kind: Vec<&Record> = self
            .d
            .ledger()
            .records()
            .iter()
            .map(|s| &s.record)
            .filter(|r| kind_of(r) == kind)
            .collect();
        let mut rows = Vec::new();
        for r in &of_kind {
            let values = record_values(r);
            let mut differs = Vec::new();
            for (k, want) in fields {
                let Some((_, have)) = values.iter().find(|(n, _)| n == k) else {
                    let names: Vec<&str> = values.iter().map(|(n, _)| n.as_str()).collect();
                    return Err(self.err(
                        pos,
                        format!(
                            "a {kind} has no field `{k}`; its fields are {}",
                            names.join(", ")
                        ),
                    ));
                };
                if have != want {
                    differs.push(format!("{k} is {have:?}"));
                }
            }
            if differs.is_empty() {
                return Ok(None);
            }
            rows.push(format!("{} ({})", r.key, differs.join(", ")));
        }
        Ok(Some(if of_kind.is_empty() {
            format!("expected a {kind} record; none was stored")
        } else {
            format!("no {kind} record matches; closest: {}", rows.join("; "))
        }))
    }
}

fn presence_word(p: Presence) -> &'static str {
    match p {
        Presence::Online => "online",
        Presence::Away => "away",
        Presence::Offline => "offline",
    }
}

fn kind_of(r: &Record) -> &'static str {
    match r.data {
        RecordData::Lead(_) => "lead",
        RecordData::Deal(_) => "deal",
        RecordData::Activity(_) => "activity",
    }
}

fn num(v: &Option<crate::capture::Money>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

/// A record's fields by the names `expect record` uses, values as shown (empty when unset).
pub fn record_values(r: &Record) -> Vec<(String, String)> {
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_owned(), v));
    let person = |put: &mut dyn FnMut(&str, String), p: &Person| {
        put("name", s(&p.name));
        put("email", s(&p.email));
        put("phone", s(&p.phone));
    };
    match &r.data {
        RecordData::Lead(l) => {
            put("title", l.title.clone());
            person(&mut put, &l.person);
            put("organization", s(&l.organization));
            put("value", num(&l.value));
            put("currency", s(&l.currency));
            put("status", l.status.clone());
            put("source", l.source.clone());
            put("labels", l.labels.join(", "));
            put("note", s(&l.note));
            for (k, v) in &l.fields {
                put(&format!("field {k}"), v.clone());
            }
        }
        RecordData::Deal(d) => {
            put("title", d.title.clone());
            person(&mut put, &d.person);
            put("organization", s(&d.organization));
            put("value", num(&d.value));
            put("currency", s(&d.currency));
            put("pipeline", s(&d.pipeline));
            put("stage", s(&d.stage));
            put("status", d.status.clone());
            put("source", d.source.clone());
            put("labels", d.labels.join(", "));
            put("note", s(&d.note));
            for (k, v) in &d.fields {
                put(&format!("field {k}"), v.clone());
            }
        }
        RecordData::Activity(a) => {
            put("type", a.activity.name().to_owned());
            put("subject", a.subject.clone());
            put("note", s(&a.note));
            put("link", s(&a.link));
        }
    }
    out.push(("owner".into(), s(&r.owner)));
    out.push(("pool".into(), s(&r.pool)));
    out.push(("channel".into(), r.channel.name().to_owned()));
    out
}

fn manual_details(fields: &[(String, String)]) -> Result<ManualDetails, String> {
    let mut d = ManualDetails::default();
    for (k, v) in fields {
        match k.as_str() {
            "title" => d.title = v.clone(),
            "value" => {
                d.value = Some(
                    crate::capture::Money::parse(v)
                        .ok_or_else(|| format!("`value` must be a number, not {v:?}"))?,
                )
            }
            "currency" => d.currency = Some(v.clone()),
            "name" => d.person.name = Some(v.clone()),
            "email" => d.person.email = Some(v.clone()),
            "phone" => d.person.phone = Some(v.clone()),
            "organization" => d.organization = Some(v.clone()),
            "note" => d.note = Some(v.clone()),
            _ => {
                return Err(format!(
                    "an agent's record has no field `{k}`; use title, value, currency, name, email, phone, organization, note"
                ));
            }
        }
    }
    if d.title.is_empty() {
        return Err("an agent's record needs a `title`".to_owned());
    }
    Ok(d)
}
