//! The JSON line of FLOW.md §9 and what it says about the machine: resident set from
//! `/proc/self/status`, the compiler and crate versions, CPU count and date.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Parked, Throughput, Variant};

/// Memory figures of this process, from `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStatus {
    /// `VmRSS`: resident set now, in KiB.
    pub rss_kb: u64,
    /// `VmHWM`: peak resident set, in KiB.
    pub hwm_kb: u64,
}

/// Reads `VmRSS` and `VmHWM` of this process (Linux); `None` elsewhere.
pub fn proc_status() -> Option<ProcStatus> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some(ProcStatus {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

/// CPU time this process has used (user + system), from `/proc/self/stat` (Linux; 10 ms
/// resolution). On a shared machine it tells how much of a wall-clock interval the process
/// actually ran.
pub fn cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (`state`);
    // utime and stime are fields 14 and 15, in clock ticks of 1/100 s on Linux.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Where and with what the benchmark ran.
#[derive(Debug, Clone, Serialize)]
pub struct Env {
    /// E.g. `rust 1.95.0 (release)`.
    pub runtime: String,
    /// Versions of this crate and the crates on the measured path.
    pub libs: BTreeMap<String, String>,
    /// CPUs available to the process.
    pub host_cpus: usize,
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
}

impl Env {
    /// Describes this build and machine; the date comes from the system clock.
    pub fn current() -> Env {
        let rustc = option_env!("PLAYBOOK_RUSTC_VERSION").unwrap_or("rustc (unknown version)");
        let version = rustc
            .strip_prefix("rustc ")
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("unknown");
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let mut libs = BTreeMap::new();
        libs.insert("playbook".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
        for name in ["serde", "serde_json"] {
            if let Some(v) = locked_version(name) {
                libs.insert(name.to_owned(), v.to_owned());
            }
        }
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let date = crate::engine::Instant(ms).to_rfc3339();
        Env {
            runtime: format!("rust {version} ({profile})"),
            libs,
            host_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            date: date.get(..10).unwrap_or(&date).to_owned(),
        }
    }
}

/// The version `Cargo.lock` pins for a dependency (the lock file is compiled in).
fn locked_version(name: &str) -> Option<&'static str> {
    const LOCK: &str = include_str!("../../Cargo.lock");
    let want = format!("name = \"{name}\"");
    let mut lines = LOCK.lines();
    while let Some(line) = lines.next() {
        if line.trim() == want {
            return lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"');
        }
    }
    None
}

/// The JSON line of FLOW.md §9, fields in its order (plus `variant` and `errors`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Always `playbook`.
    pub peer: &'static str,
    /// `memory` or `serialized`: which session store.
    pub variant: &'static str,
    /// N.
    pub conversations: usize,
    /// Visitor turns timed.
    pub turns: u64,
    /// Seconds of the timed region.
    pub seconds: f64,
    /// `turns / seconds`.
    pub turns_per_sec: u64,
    /// Leads captured.
    pub leads: u64,
    /// Resident set with P sessions parked, MiB.
    pub rss_mb_parked: Option<f64>,
    /// Every check passed.
    pub ok: bool,
    /// The workload's name.
    pub workload: String,
    /// Leads expected.
    pub leads_expected: u64,
    /// Start events timed.
    pub start_events: u64,
    /// `(turns + start_events) / seconds`.
    pub events_per_sec: u64,
    /// Events whose replies differed from the expected ones (both phases).
    pub reply_mismatches: u64,
    /// P.
    pub parked_sessions: usize,
    /// Resident set after the parked phase's warm-up, MiB.
    pub rss_mb_baseline: Option<f64>,
    /// `(parked - baseline) / P`, bytes.
    pub bytes_per_parked_session: Option<f64>,
    /// Peak resident set of the parked phase's process, MiB.
    pub rss_mb_peak_park: Option<f64>,
    /// Peak resident set of the throughput process, MiB.
    pub rss_mb_peak_run: Option<f64>,
    /// Compiler and profile.
    pub runtime: String,
    /// Crate versions.
    pub libs: BTreeMap<String, String>,
    /// CPUs of the host.
    pub host_cpus: usize,
    /// UTC date of the run.
    pub date: String,
    /// The first problems found (only when not ok).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

fn mb(kb: Option<u64>) -> Option<f64> {
    kb.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

fn per_sec(count: u64, seconds: f64) -> u64 {
    if seconds > 0.0 {
        (count as f64 / seconds).round() as u64
    } else {
        0
    }
}

impl Report {
    /// Puts the two phases' figures together.
    pub fn new(
        variant: Variant,
        run: &Throughput,
        parked: &Parked,
        rss_kb_peak_run: Option<u64>,
        env: Env,
    ) -> Report {
        let mut errors = run.errors.clone();
        errors.extend(parked.errors.iter().map(|e| format!("parked phase: {e}")));
        if parked.stored < parked.parked_sessions {
            errors.push(format!(
                "parked phase: the store holds {} sessions, fewer than {}",
                parked.stored, parked.parked_sessions
            ));
        }
        Report {
            peer: "playbook",
            variant: variant.name(),
            conversations: run.conversations,
            turns: run.turns,
            seconds: (run.seconds * 1e6).round() / 1e6,
            turns_per_sec: per_sec(run.turns, run.seconds),
            leads: run.leads,
            rss_mb_parked: mb(parked.rss_kb_parked),
            ok: run.ok() && parked.ok(),
            workload: run.workload.clone(),
            leads_expected: run.leads_expected,
            start_events: run.start_events,
            events_per_sec: per_sec(run.turns + run.start_events, run.seconds),
            reply_mismatches: run.reply_mismatches + parked.reply_mismatches,
            parked_sessions: parked.parked_sessions,
            rss_mb_baseline: mb(parked.rss_kb_baseline),
            bytes_per_parked_session: parked.bytes_per_session().map(|b| b.round()),
            rss_mb_peak_park: mb(parked.rss_kb_peak),
            rss_mb_peak_run: mb(rss_kb_peak_run),
            runtime: env.runtime,
            libs: env.libs,
            host_cpus: env.host_cpus,
            date: env.date,
            errors,
        }
    }

    /// The report as one JSON line (no newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!("{{\"ok\":false,\"error\":\"{e}\"}}"))
    }
}
