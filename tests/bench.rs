//! `playbook bench` (docs/bench/FLOW.md) on a small N: every check passes on the canonical
//! workload, the counts are FLOW.md §6's, and a wrong expectation is caught.

use std::path::Path;
use std::process::Command;

use playbook::bench::{self, Env, Report, Variant, Workload};
use playbook::engine::Engine;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn engine() -> Engine {
    let text = std::fs::read_to_string(Path::new(ROOT).join("playbooks/bench.playbook")).unwrap();
    let (playbook, _) = playbook::syntax::parse(&text).expect("bench.playbook parses");
    let checked = playbook::check::check(playbook);
    Engine::new(checked.program.expect("bench.playbook passes check"))
}

fn workload_text() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("docs/bench/workload.json")).unwrap()
}

fn workload() -> Workload {
    Workload::from_json(&workload_text()).expect("workload.json reads")
}

const VARIANTS: [Variant; 2] = [Variant::Memory, Variant::Serialized];

#[test]
fn both_variants_pass_with_flow_counts() {
    let engine = engine();
    let wl = workload();
    let n = 50;
    for variant in VARIANTS {
        for (mix, turns, leads) in [("mix", 130, 30), ("demo", 200, 50)] {
            let plan = wl.plan(mix).unwrap();
            let run = bench::throughput(&engine, &plan, n, variant);
            assert!(run.ok(), "{variant:?} {mix}: {:?}", run.errors);
            assert_eq!(run.reply_mismatches, 0);
            assert_eq!(
                (run.turns, run.leads, run.leads_expected),
                (turns, leads, leads)
            );
            assert_eq!(run.start_events, n as u64);
            let parked = bench::park(&engine, &wl, n, variant).unwrap();
            assert!(parked.ok(), "{variant:?}: {:?}", parked.errors);
            assert_eq!(parked.stored, bench::PARK_WARM_UP + n);
            let report = Report::new(variant, &run, &parked, None, Env::current());
            assert!(report.ok);
            let line: serde_json::Value = serde_json::from_str(&report.to_json_line()).unwrap();
            assert_eq!(line["peer"], "playbook");
            assert_eq!(line["variant"], variant.name());
            assert_eq!(line["turns"], turns);
            assert_eq!(line["parked_sessions"], n);
        }
    }
    // FLOW.md §6 for N = 5: 13 turns and 3 leads per 5 conversations.
    let plan = wl.plan("mix").unwrap();
    assert_eq!(plan.turns(100_000), 260_000);
    assert_eq!(plan.leads(100_000).values().sum::<u64>(), 60_000);
}

#[test]
fn a_wrong_expected_reply_or_lead_is_reported() {
    let engine = engine();
    for variant in VARIANTS {
        let mut wl = workload();
        wl.messages.get_mut("END").unwrap().text = "Thanks, we'll be in touch!".into();
        let run = bench::throughput(&engine, &wl.plan("mix").unwrap(), 50, variant);
        assert!(!run.ok());
        // 3 of the 5 scripts end with END: 30 of 50 conversations, and 30 of the 50 warm-up.
        assert_eq!(run.reply_mismatches, 60);
        assert!(
            run.errors[0].contains("Thanks, we'll be in touch."),
            "{:?}",
            run.errors
        );

        let mut wl = workload();
        wl.scripts
            .get_mut("demo_large")
            .unwrap()
            .lead
            .as_mut()
            .unwrap()
            .email = "x@y.z".into();
        let run = bench::throughput(&engine, &wl.plan("mix").unwrap(), 50, variant);
        assert_eq!(run.reply_mismatches, 0);
        assert!(!run.leads_ok && !run.ok());

        // The parked phase checks its replies too.
        let mut wl = workload();
        wl.messages.get_mut("SIZE_Q").unwrap().buttons.pop();
        let parked = bench::park(&engine, &wl, 20, variant).unwrap();
        assert!(!parked.ok());
        assert!(parked.reply_mismatches >= 20);
    }
}

#[test]
fn playbook_texts_are_the_workload_texts() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("playbooks/bench.playbook")).unwrap();
    let (playbook, _) = playbook::syntax::parse(&text).unwrap();
    let json = serde_json::to_value(&playbook).unwrap();
    let mut strings = Vec::new();
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&json, &mut strings);
    let wl = workload();
    for (name, m) in &wl.messages {
        assert!(strings.contains(&m.text.as_str()), "{name}: {:?}", m.text);
        for b in &m.buttons {
            assert!(strings.contains(&b.as_str()), "{name}: button {b:?}");
        }
    }
    // Every script input that picks a button is a label of the playbook.
    let question_labels: Vec<&str> = wl
        .messages
        .values()
        .flat_map(|m| &m.buttons)
        .map(String::as_str)
        .collect();
    assert_eq!(question_labels.len(), 6);
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_playbook"))
        .current_dir(ROOT)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn cli_prints_one_json_line_and_fails_on_a_mismatch() {
    let (code, out, err) = cli(&[
        "bench",
        "playbooks/bench.playbook",
        "--workload",
        "docs/bench/workload.json",
        "--conversations",
        "50",
        "--variant",
        "serialized",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["ok"], true);
    assert_eq!(line["variant"], "serialized");
    assert_eq!(line["parked_sessions"], 50);
    assert_eq!(line["leads"], 30);
    // The parked phase ran in a child process and reported its memory.
    if Path::new("/proc/self/status").exists() {
        assert!(line["rss_mb_baseline"].as_f64().unwrap() > 0.0, "{line}");
        assert!(line["rss_mb_peak_park"].as_f64().unwrap() > 0.0, "{line}");
    }
    for key in [
        "peer",
        "conversations",
        "turns",
        "seconds",
        "turns_per_sec",
        "leads",
        "rss_mb_parked",
        "ok",
        "workload",
        "leads_expected",
        "start_events",
        "events_per_sec",
        "reply_mismatches",
        "parked_sessions",
        "rss_mb_baseline",
        "bytes_per_parked_session",
        "rss_mb_peak_park",
        "rss_mb_peak_run",
        "runtime",
        "libs",
        "host_cpus",
        "date",
    ] {
        assert!(line.get(key).is_some(), "missing {key}");
    }

    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("workload.json");
    std::fs::write(
        &wrong,
        workload_text().replace("Please enter a valid email", "Please enter a valid e-mail"),
    )
    .unwrap();
    let (code, out, err) = cli(&[
        "bench",
        "playbooks/bench.playbook",
        "--workload",
        wrong.to_str().unwrap(),
        "--conversations",
        "10",
    ]);
    assert_eq!(code, 1);
    let line: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["ok"], false);
    assert!(line["reply_mismatches"].as_u64().unwrap() > 0);
    assert!(err.contains("mismatch"), "{err}");
}
