//! The canonical benchmark (`docs/bench/FLOW.md`): many interleaved scripted conversations
//! through the engine, each session loaded from and stored to a [`SessionStore`] around every
//! event, every reply and lead checked; and the parked-session memory phase.
//!
//! This module owns the driver, the checks and the figures; `cli::bench` owns the process
//! (re-running itself for the memory phase) and printing. **Must not:** decide anything the
//! engine decides (replies come only from [`Engine::step`]), or read a clock inside the
//! engine: the wall clock is read here around the timed region only, and the engine gets a
//! fixed virtual `now`.

mod report;
mod workload;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use report::{Env, Report, cpu_seconds, proc_status};
pub use workload::{LeadKey, Message, ParkSpec, Plan, PlanScript, Script, Workload};

use crate::capture::{Record, RecordData};
use crate::engine::{Channel, Effect, Engine, Event, Instant, NoDesk};
use crate::store::{MemoryStore, SerializedStore, SessionStore};

/// The virtual time every event is given (2026-01-01T00:00:00Z): the benchmark playbook has
/// no timers, so time never matters to it, and a constant keeps runs identical.
pub const EPOCH: Instant = Instant(1_767_225_600_000);

/// Warm-up conversations before the timed region: `min(WARM_UP, N)`.
pub const WARM_UP: usize = 1000;

/// Warm-up conversations of the parked phase before its baseline.
pub const PARK_WARM_UP: usize = 200;

/// How many problems are kept word for word (the rest are only counted).
const KEEP_ERRORS: usize = 10;

/// Which session store the run goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// [`MemoryStore`]: sessions kept as values, never serialized.
    Memory,
    /// [`SerializedStore`]: each session serialized to JSON on put, deserialized on get.
    Serialized,
}

impl Variant {
    /// The name printed in the report.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Memory => "memory",
            Variant::Serialized => "serialized",
        }
    }
}

/// What one pass of the driver saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Visitor inputs sent.
    pub turns: u64,
    /// Start events sent.
    pub start_events: u64,
    /// Events whose replies differed from the expected ones (or that failed).
    pub reply_mismatches: u64,
    /// The first few problems, for people.
    pub errors: Vec<String>,
    /// Every record captured, in order: the lead list of FLOW.md §4.
    pub records: Vec<Box<Record>>,
}

impl Tally {
    fn problem(&mut self, f: impl FnOnce() -> String) {
        self.reply_mismatches += 1;
        if self.errors.len() < KEEP_ERRORS {
            self.errors.push(f());
        }
    }
}

/// Runs scripted conversations through the engine and a store, one event at a time.
pub struct Driver<'e, S> {
    engine: &'e Engine,
    /// The store sessions go through.
    pub store: S,
    out: Vec<Effect<'e>>,
    id: String,
}

impl<'e, S: SessionStore> Driver<'e, S> {
    /// A driver over `store`.
    pub fn new(engine: &'e Engine, store: S) -> Self {
        Driver {
            engine,
            store,
            out: Vec::with_capacity(16),
            id: String::with_capacity(32),
        }
    }

    /// Runs conversations `<prefix>0 .. <prefix>(n-1)` of `plan`, round-robin: round 0 sends
    /// every start event, round `k` the `k`-th input of every conversation whose script has
    /// one, each event processed to completion (load, step, check, store) before the next.
    pub fn run(&mut self, plan: &Plan, prefix: &str, n: usize, tally: &mut Tally) {
        for round in 0..=plan.max_inputs() {
            for i in 0..n {
                let script = plan.script(i);
                let event = if round == 0 {
                    None
                } else {
                    match script.inputs.get(round - 1) {
                        Some(text) => Some(text.as_str()),
                        None => continue,
                    }
                };
                conversation_id(&mut self.id, prefix, i);
                self.event(script, round, event, tally);
            }
        }
    }

    /// One event of the conversation named `self.id`: `None` is its start event. A turn
    /// changes the stored session in place ([`SessionStore::update`]: load, step, store);
    /// a start event makes a session and `put`s it.
    fn event(&mut self, script: &PlanScript, step: usize, input: Option<&str>, tally: &mut Tally) {
        let id = self.id.as_str();
        let engine = self.engine;
        let out = &mut self.out;
        let turned = self.store.update(id, |stored| match (stored, input) {
            (Some(session), Some(text)) => {
                tally.turns += 1;
                let event = Event::VisitorText {
                    text: Cow::Borrowed(text),
                    channel: Channel::Web,
                };
                out.clear();
                match engine.step(session, event, EPOCH, &NoDesk, out) {
                    Ok(()) => check(out, script, step, id, tally),
                    Err(e) => tally.problem(|| format!("{id} step {step}: {e}")),
                }
                true
            }
            (Some(_), None) => {
                tally.problem(|| format!("{id}: started twice (already stored)"));
                true
            }
            (None, Some(_)) => {
                tally.problem(|| format!("{id}: no stored session for step {step}"));
                true
            }
            (None, None) => false,
        });
        match turned {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => return tally.problem(|| e.to_string()),
        }
        tally.start_events += 1;
        let event = Event::Start {
            conversation: Cow::Borrowed(id),
            channel: Channel::Web,
            page_url: None,
            contact_owner: None,
            said: None,
        };
        let mut session = crate::engine::Session::new();
        out.clear();
        if let Err(e) = engine.step(&mut session, event, EPOCH, &NoDesk, out) {
            return tally.problem(|| format!("{id} step {step}: {e}"));
        }
        check(out, script, step, id, tally);
        if let Err(e) = self.store.put(id, session) {
            tally.problem(|| e.to_string());
        }
    }
}

/// Compares one event's replies with the script's, then moves its records to the tally.
fn check(out: &mut Vec<Effect<'_>>, script: &PlanScript, step: usize, id: &str, tally: &mut Tally) {
    let expect = &script.expect[step];
    let mut seen = 0;
    let mut same = true;
    for effect in out.iter() {
        match effect {
            Effect::Say { text, .. } => {
                same &= expect
                    .get(seen)
                    .is_some_and(|m| m.text == *text && m.buttons.is_empty());
                seen += 1;
            }
            Effect::Ask { text, buttons, .. } => {
                same &= expect
                    .get(seen)
                    .is_some_and(|m| m.text == *text && m.buttons[..] == buttons[..]);
                seen += 1;
            }
            _ => {}
        }
    }
    if !same || seen != expect.len() {
        // Cold path: describe the difference.
        let got = replies(out);
        tally.problem(|| {
            format!(
                "{id} ({}) step {step}: expected {:?}, got {got:?}",
                script.name,
                expect.iter().map(|m| m.text.as_str()).collect::<Vec<_>>()
            )
        });
    }
    for effect in out.drain(..) {
        if let Effect::Capture(record) = effect {
            tally.records.push(record);
        }
    }
}

/// Writes `<prefix><i>` into `buf` (by hand: `format!` machinery costs more than the
/// engine's step for a button press).
fn conversation_id(buf: &mut String, prefix: &str, mut i: usize) {
    buf.clear();
    buf.push_str(prefix);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (i % 10) as u8;
        i /= 10;
        if i == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        buf.push(char::from(d));
    }
}

/// The reply texts (with buttons) of one event's effects, for a mismatch message.
fn replies(effects: &[Effect<'_>]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Say { text, .. } => Some(text.to_string()),
            Effect::Ask { text, buttons, .. } => Some(format!("{text} {buttons:?}")),
            _ => None,
        })
        .collect()
}

/// Counts records per lead key; anything that is not a lead is reported.
fn lead_counts(records: &[Box<Record>]) -> (BTreeMap<LeadKey, u64>, u64) {
    let mut counts = BTreeMap::new();
    let mut others = 0;
    for r in records {
        match &r.data {
            RecordData::Lead(l) => {
                let key = LeadKey {
                    title: l.title.clone(),
                    email: l.person.email.clone().unwrap_or_default(),
                    source: l.source.clone(),
                    status: l.status.clone(),
                };
                *counts.entry(key).or_insert(0) += 1;
            }
            _ => others += 1,
        }
    }
    (counts, others)
}

/// The throughput phase's figures and checks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// The workload's name.
    pub workload: String,
    /// Conversations timed (N).
    pub conversations: usize,
    /// Visitor turns timed.
    pub turns: u64,
    /// Start events timed (not turns).
    pub start_events: u64,
    /// Wall-clock seconds of the timed region.
    pub seconds: f64,
    /// CPU seconds the process used in the timed region (10 ms resolution), where known.
    pub cpu_seconds: Option<f64>,
    /// Leads captured in the timed region.
    pub leads: u64,
    /// Leads the scripts expect.
    pub leads_expected: u64,
    /// Events (warm-up included) whose replies differed from the expected ones.
    pub reply_mismatches: u64,
    /// Whether the lead list equals the expected one, count per title/email/source/status.
    pub leads_ok: bool,
    /// The first few problems.
    pub errors: Vec<String>,
}

impl Throughput {
    /// Whether every check passed.
    pub fn ok(&self) -> bool {
        self.reply_mismatches == 0 && self.leads_ok
    }
}

/// Runs the throughput phase: warm-up, then the timed rounds over `n` conversations.
pub fn throughput(engine: &Engine, plan: &Plan, n: usize, variant: Variant) -> Throughput {
    match variant {
        Variant::Memory => throughput_with(engine, plan, n, MemoryStore::new()),
        Variant::Serialized => throughput_with(engine, plan, n, SerializedStore::new()),
    }
}

fn throughput_with<S: SessionStore>(
    engine: &Engine,
    plan: &Plan,
    n: usize,
    store: S,
) -> Throughput {
    let mut driver = Driver::new(engine, store);
    let mut warm = Tally::default();
    let warm_n = n.min(WARM_UP);
    driver.run(plan, "warm-", warm_n, &mut warm);
    let (warm_leads, warm_others) = lead_counts(&warm.records);
    let mut errors = warm.errors;
    let warm_leads_ok = warm_others == 0 && warm_leads == plan.leads(warm_n);
    if !warm_leads_ok {
        errors.push("warm-up: the lead list differs from the expected one".into());
    }
    // Warm-up leads are discarded.
    drop(warm.records);

    // The lead list is the driver's bookkeeping, not the system measured: sized up front so
    // that growing it (copying tens of thousands of pointers) stays out of the timed region.
    let mut t = Tally {
        records: Vec::with_capacity(plan.leads(n).values().sum::<u64>() as usize),
        ..Tally::default()
    };
    let cpu_before = cpu_seconds();
    let started = std::time::Instant::now();
    driver.run(plan, "conv-", n, &mut t);
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_before.zip(cpu_seconds()).map(|(a, b)| b - a);

    let expected = plan.leads(n);
    let (got, others) = lead_counts(&t.records);
    let mut leads_ok = warm_leads_ok && others == 0 && got == expected;
    if got != expected || others != 0 {
        errors.push(format!(
            "lead list differs: expected {expected:?}, got {got:?} and {others} other records"
        ));
    }
    if t.turns != plan.turns(n) || t.start_events != n as u64 {
        leads_ok = false;
        errors.push(format!(
            "sent {} turns and {} start events; expected {} and {n}",
            t.turns,
            t.start_events,
            plan.turns(n)
        ));
    }
    errors.extend(t.errors);
    Throughput {
        workload: plan.name.clone(),
        conversations: n,
        turns: t.turns,
        start_events: t.start_events,
        seconds,
        cpu_seconds: cpu,
        leads: got.values().sum(),
        leads_expected: expected.values().sum(),
        reply_mismatches: warm.reply_mismatches + t.reply_mismatches,
        leads_ok,
        errors,
    }
}

/// The parked phase's figures and checks (FLOW.md §8). Memory is read from
/// `/proc/self/status` (`None` where that does not exist).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Parked {
    /// Sessions parked at the email question (P).
    pub parked_sessions: usize,
    /// Sessions the store holds at the end (warm-up included).
    pub stored: usize,
    /// Resident set after the warm-up, in KiB.
    pub rss_kb_baseline: Option<u64>,
    /// Resident set with P sessions parked, in KiB.
    pub rss_kb_parked: Option<u64>,
    /// Peak resident set of the process, in KiB.
    pub rss_kb_peak: Option<u64>,
    /// Events whose replies differed from the expected ones.
    pub reply_mismatches: u64,
    /// The first few problems.
    pub errors: Vec<String>,
}

impl Parked {
    /// Whether every check passed: expected replies, no records, and at least P sessions held.
    pub fn ok(&self) -> bool {
        self.reply_mismatches == 0 && self.errors.is_empty() && self.stored >= self.parked_sessions
    }

    /// `(parked - baseline) / P`, in bytes.
    pub fn bytes_per_session(&self) -> Option<f64> {
        let (b, p) = (self.rss_kb_baseline?, self.rss_kb_parked?);
        (self.parked_sessions > 0)
            .then(|| (p as f64 - b as f64) * 1024.0 / self.parked_sessions as f64)
    }
}

/// Runs the parked phase in this process: 200 warm-up conversations of the `mix` workload,
/// the baseline, then `p` sessions parked at the email question, the resident set again.
///
/// FLOW.md asks to force a garbage collection before each reading; Rust has no collector
/// (memory is freed when its owner goes out of scope), so there is nothing to force.
/// Run it in a fresh process: the resident set of a process that already ran the
/// throughput phase says little.
pub fn park(
    engine: &Engine,
    workload: &Workload,
    p: usize,
    variant: Variant,
) -> Result<Parked, String> {
    let mix = workload.plan("mix")?;
    let park = workload.park_plan()?;
    Ok(match variant {
        Variant::Memory => park_with(engine, &mix, &park, p, MemoryStore::new()),
        Variant::Serialized => park_with(engine, &mix, &park, p, SerializedStore::new()),
    })
}

fn park_with<S: SessionStore>(
    engine: &Engine,
    mix: &Plan,
    park: &Plan,
    p: usize,
    store: S,
) -> Parked {
    let mut driver = Driver::new(engine, store);
    let mut t = Tally::default();
    driver.run(mix, "warm-", PARK_WARM_UP, &mut t);
    // The warm-up's leads are discarded before the baseline.
    t.records = Vec::new();
    let baseline = proc_status();
    driver.run(park, "conv-", p, &mut t);
    if !t.records.is_empty() {
        t.errors.push(format!(
            "{} records captured while parking",
            t.records.len()
        ));
    }
    let parked = proc_status();
    Parked {
        parked_sessions: p,
        stored: driver.store.len(),
        rss_kb_baseline: baseline.map(|s| s.rss_kb),
        rss_kb_parked: parked.map(|s| s.rss_kb),
        rss_kb_peak: parked.map(|s| s.hwm_kb),
        reply_mismatches: t.reply_mismatches,
        errors: t.errors,
    }
}
