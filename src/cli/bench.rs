//! `playbook bench`: the canonical benchmark of `docs/bench/FLOW.md`.
//!
//! The throughput phase runs in this process; the parked-session memory phase runs in a
//! fresh process (this binary again, with the hidden `--park-only` flag) so that its resident
//! set is not inflated by what the throughput phase allocated and freed.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, print_err, print_out, theme};
use crate::bench::{self, Env, Parked, Report, Variant, Workload};
use crate::engine::Engine;
use crate::load::LoadError;

/// The arguments of `playbook bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The benchmark playbook (`playbooks/bench.playbook`).
    pub file: PathBuf,
    /// The workload: texts, scripts and expected replies (`docs/bench/workload.json`).
    #[arg(long)]
    pub workload: PathBuf,
    /// Conversations in the timed region (N).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub conversations: u32,
    /// Sessions parked in the memory phase (P; default N).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub park: Option<u32>,
    /// Session store: kept as values, or serialized to JSON around every event.
    #[arg(long, value_enum, default_value_t = Variant::Memory)]
    pub variant: Variant,
    /// Which workload of the file: `mix` (the canonical one) or `demo`.
    #[arg(long, default_value = "mix")]
    pub mix: String,
    /// Run only the parked phase and print its figures as JSON (used by the benchmark itself).
    #[arg(long, hide = true)]
    pub park_only: bool,
}

fn engine(path: &Path) -> Result<Engine, u8> {
    let e = match crate::load::file(path) {
        Ok(loaded) => return Ok(Engine::new(loaded.program)),
        Err(e) => e,
    };
    let code = match &e {
        LoadError::Io { .. } => EXIT_USAGE,
        LoadError::Invalid(invalid) => {
            for rendered in invalid.source.render(invalid.errors(), &theme()) {
                print_err(&rendered);
                print_err("\n");
            }
            EXIT_ERRORS
        }
    };
    print_err(&format!("error: {e}\n"));
    Err(code)
}

fn workload(path: &Path) -> Result<Workload, u8> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        print_err(&format!("error: cannot read {}: {e}\n", path.display()));
        EXIT_USAGE
    })?;
    Workload::from_json(&text).map_err(|e| {
        print_err(&format!("error: {}: {e}\n", path.display()));
        EXIT_USAGE
    })
}

pub(super) fn run(args: &BenchArgs) -> u8 {
    match run_inner(args) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(args: &BenchArgs) -> Result<u8, u8> {
    let engine = engine(&args.file)?;
    let workload = workload(&args.workload)?;
    let usage = |e: String| {
        print_err(&format!("error: {}: {e}\n", args.workload.display()));
        EXIT_USAGE
    };
    let n = args.conversations as usize;
    let p = args.park.map_or(n, |p| p as usize);
    if args.park_only {
        let parked = bench::park(&engine, &workload, p, args.variant).map_err(usage)?;
        let line = serde_json::to_string(&parked).map_err(|e| usage(e.to_string()))?;
        print_out(&format!("{line}\n"));
        return Ok(if parked.ok() { EXIT_OK } else { EXIT_ERRORS });
    }
    let plan = workload.plan(&args.mix).map_err(usage)?;
    // The parked phase needs the `mix` workload and the park script: fail before timing.
    workload.plan("mix").map_err(usage)?;
    workload.park_plan().map_err(usage)?;

    let run = bench::throughput(&engine, &plan, n, args.variant);
    if let Some(cpu) = run.cpu_seconds {
        // Not part of the JSON line: on a shared machine it says how much of the wall-clock
        // time the benchmark actually ran.
        print_err(&format!(
            "timed region: {:.3} s wall, {cpu:.2} s on CPU\n",
            run.seconds
        ));
    }
    let peak_run = bench::proc_status().map(|s| s.hwm_kb);
    drop(engine);
    let parked = park_in_child(args, p);
    let report = Report::new(args.variant, &run, &parked, peak_run, Env::current());
    print_out(&format!("{}\n", report.to_json_line()));
    if report.ok {
        Ok(EXIT_OK)
    } else {
        for e in &report.errors {
            print_err(&format!("mismatch: {e}\n"));
        }
        Ok(EXIT_ERRORS)
    }
}

/// Runs the parked phase in a fresh process of this binary and reads its JSON line.
fn park_in_child(args: &BenchArgs, p: usize) -> Parked {
    let failed = |why: String| Parked {
        parked_sessions: p,
        stored: 0,
        rss_kb_baseline: None,
        rss_kb_parked: None,
        rss_kb_peak: None,
        reply_mismatches: 0,
        errors: vec![why],
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return failed(format!("cannot find this program to re-run it: {e}")),
    };
    let output = Command::new(exe)
        .arg("bench")
        .arg(&args.file)
        .arg("--workload")
        .arg(&args.workload)
        .args(["--conversations", &args.conversations.to_string()])
        .args(["--park", &p.to_string()])
        .args(["--variant", args.variant.name()])
        .arg("--park-only")
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => return failed(format!("cannot start the parked phase: {e}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.lines().last().map(serde_json::from_str::<Parked>) {
        Some(Ok(parked)) => parked,
        _ => failed(format!(
            "the parked phase printed no figures (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}
