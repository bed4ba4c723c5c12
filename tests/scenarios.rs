//! Every scenario in `playbooks/` runs through insta, under the same snapshot names
//! `playbook test` uses (`snapshots/scenarios@<file>.scenario.snap`), so `cargo test`,
//! `cargo insta review` and `playbook test` agree. Plus the CLI end to end: a changed message
//! fails with a diff naming the line, `--accept` makes it pass, broken scenarios are reported
//! with file:line and do not stop the others, and coverage is printed.

use std::path::Path;
use std::process::{Command, Output};

use playbook::scenario::{self, Playbooks};

#[test]
fn scenarios() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        insta::glob!("../playbooks", "*.scenario", |path| {
            let mut books = Playbooks::new();
            let run = scenario::run_file(path, &mut books).unwrap_or_else(|e| panic!("{e}"));
            let failed: Vec<String> = run.failures.iter().map(|f| f.to_string()).collect();
            assert!(failed.is_empty(), "{}", failed.join("\n"));
            let transcript = run.text;
            insta::assert_snapshot!(transcript);
        });
    });
}

fn playbook_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_playbook"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_repository_passes_with_full_coverage() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = playbook_in(root, &["test", "--min-coverage", "100"]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(" failed") && text.contains(", 0 failed"),
        "{text}"
    );
    let total = text
        .lines()
        .find(|l| l.starts_with("total"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(total.ends_with("100.0%"), "{total}");
    assert!(!text.contains("never walked"), "{text}");
}

fn copy_example(tmp: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(tmp.join("playbooks")).unwrap();
    std::fs::create_dir_all(tmp.join("snapshots")).unwrap();
    for f in ["demo.playbook", "demo.book-demo.scenario"] {
        std::fs::copy(
            root.join("playbooks").join(f),
            tmp.join("playbooks").join(f),
        )
        .unwrap();
    }
    let snap = "scenarios@demo.book-demo.scenario.snap";
    std::fs::copy(
        root.join("snapshots").join(snap),
        tmp.join("snapshots").join(snap),
    )
    .unwrap();
}

#[test]
fn a_changed_message_fails_with_a_diff_then_accept_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_example(dir);
    assert_eq!(playbook_in(dir, &["test"]).status.code(), Some(0));

    let pb = dir.join("playbooks/demo.playbook");
    let text = std::fs::read_to_string(&pb).unwrap();
    let changed = text.replace(
        "How many people work at your company?",
        "How big is your team?",
    );
    assert_ne!(text, changed);
    std::fs::write(&pb, changed).unwrap();

    let out = playbook_in(dir, &["test"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("FAIL  demo.book-demo"), "{report}");
    // The diff names the line of the snapshot file, old and new.
    let snap =
        std::fs::read_to_string(dir.join("snapshots/scenarios@demo.book-demo.scenario.snap"))
            .unwrap();
    let line = snap
        .lines()
        .position(|l| l.contains("How many people work at your company?"))
        .unwrap()
        + 1;
    assert!(
        report.contains(&format!(
            "- {line:>4} | +00:00   web       Ava: How many people work at your company?"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "+ {line:>4} | +00:00   web       Ava: How big is your team?"
        )),
        "{report}"
    );
    // The inline expectation on that message fails too, naming the scenario line.
    assert!(
        report.contains(
            "playbooks/demo.book-demo.scenario:8:1: expected the bot to say \"How many people\""
        ),
        "{report}"
    );

    // Accepting writes the snapshot; the expectation still fails until the scenario changes.
    let out = playbook_in(dir, &["test", "--accept"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 snapshots written"),
        "{}",
        stdout(&out)
    );
    let sc = dir.join("playbooks/demo.book-demo.scenario");
    let s = std::fs::read_to_string(&sc).unwrap();
    std::fs::write(
        &sc,
        s.replace("expect bot \"How many people\"", "expect bot \"How big\""),
    )
    .unwrap();
    let out = playbook_in(dir, &["test"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let snap =
        std::fs::read_to_string(dir.join("snapshots/scenarios@demo.book-demo.scenario.snap"))
            .unwrap();
    assert!(
        snap.starts_with("---\nsource: tests/scenarios.rs\nexpression: transcript\n"),
        "{snap}"
    );
    assert!(snap.contains("Ava: How big is your team?"));
}

#[test]
fn broken_scenarios_name_file_and_line_and_do_not_stop_the_others() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_example(dir);
    let p = dir.join("playbooks");
    let write = |name: &str, text: &str| std::fs::write(p.join(name), text).unwrap();
    write(
        "demo.a-no-answer.scenario",
        "playbook \"demo.playbook\"\nvisitor \"Book a call\"\n",
    );
    write(
        "demo.b-no-card.scenario",
        "playbook \"demo.playbook\"\nstart at nowhere\n",
    );
    write(
        "demo.c-no-agent.scenario",
        "playbook \"demo.playbook\"\nagent ana online\nteam Sales: ana\nvisitor 2\nzed picks up\n",
    );
    write(
        "demo.d-syntax.scenario",
        "playbook \"demo.playbook\"\nwait 3x\n",
    );
    write(
        "demo.e-no-playbook.scenario",
        "playbook \"missing.playbook\"\n",
    );
    write(
        "demo.f-bad-button.scenario",
        "playbook \"demo.playbook\"\nvisitor 4\n",
    );
    write(
        "broken.playbook",
        "playbook \"B\" { start a }\nmessage a \"hi\" -> nowhere\n",
    );
    write(
        "demo.g-broken-playbook.scenario",
        "playbook \"broken.playbook\"\n",
    );
    let out = playbook_in(dir, &["test"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    for want in [
        "playbooks/demo.a-no-answer.scenario:2:1: `welcome` has no answer \"Book a call\"; its answers are \"Book a demo\", \"Talk to sales\", \"Just browsing\"",
        "playbooks/demo.b-no-card.scenario:2:1: the playbook has no card `nowhere`",
        "playbooks/demo.c-no-agent.scenario:5:1: no agent `zed`; the scenario declares ana",
        "playbooks/demo.d-syntax.scenario:2:6: `3x` is not a duration",
        "playbooks/demo.e-no-playbook.scenario:1:10: cannot read",
        "playbooks/demo.f-bad-button.scenario:2:1: `welcome` has 3 answers; there is no button 4",
        "playbooks/demo.g-broken-playbook.scenario:1:10: the playbook `playbooks/broken.playbook` has errors",
        "ok    demo.book-demo",
        "8 scenarios: 1 passed, 7 failed",
    ] {
        assert!(report.contains(want), "missing {want:?} in\n{report}");
    }
}

#[test]
fn min_coverage_fails_below_the_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_example(dir);
    let out = playbook_in(dir, &["test", "--min-coverage", "90"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("is below the minimum of 90%"), "{report}");
    assert!(
        report.contains("never walked in playbooks/demo.playbook:"),
        "{report}"
    );
    assert!(
        report.contains("playbooks/demo.playbook:44:17: `sales` on timeout (nobody picked up in time) -> ask_name"),
        "{report}"
    );
    assert_eq!(
        playbook_in(dir, &["test", "--min-coverage", "30"])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn transcripts_render_as_json_too() {
    let mut books = Playbooks::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.sales-timeout.scenario");
    let run = scenario::run_file(&path, &mut books).unwrap();
    let json = run.transcript.to_json();
    let entries = json["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["type"] == "timer" && e["at_ms"] == 120_000)
    );
    let rec = entries.iter().find(|e| e["type"] == "record").unwrap();
    assert_eq!(rec["record"]["data"]["title"], "Sales request from Dana");
    assert_eq!(rec["record"]["channel"], "whatsapp");
}

/// A file that reports no length (`/dev/zero`) is still read only up to the size limit, as a
/// scenario and as the playbook a scenario names.
#[cfg(unix)]
#[test]
fn endless_files_are_refused_not_read_forever() {
    if !Path::new("/dev/zero").exists() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.playbook")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.scenario")).unwrap();
    std::fs::write(dir.join("a.scenario"), "playbook \"zero.playbook\"\n").unwrap();
    let out = playbook_in(dir, &["test", "a.scenario", "zero.scenario"]);
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report.matches("larger than").count(), 2, "{report}");
}

/// Two scenarios with the same file name in different folders would overwrite each other's
/// snapshot: `playbook test` refuses them, naming both, and writes nothing.
#[test]
fn scenarios_sharing_a_snapshot_name_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    copy_example(dir);
    std::fs::create_dir_all(dir.join("playbooks/more")).unwrap();
    std::fs::write(
        dir.join("playbooks/more/demo.book-demo.scenario"),
        "playbook \"../demo.playbook\"\n",
    )
    .unwrap();
    let snap = dir.join("snapshots/scenarios@demo.book-demo.scenario.snap");
    let before = std::fs::read_to_string(&snap).unwrap();
    let out = playbook_in(dir, &["test", "--accept"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}{}", stdout(&out));
    assert!(
        err.contains("playbooks/demo.book-demo.scenario")
            && err.contains("playbooks/more/demo.book-demo.scenario"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&snap).unwrap(), before);
}

#[test]
fn coverage_counts_what_the_engine_reports_entering() {
    use playbook::model::LinkKind;
    let mut books = Playbooks::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.book-demo.scenario");
    let run = scenario::run_file(&path, &mut books).unwrap();
    let program = run.playbook.engine.program();
    let ix = |id: &str| program.lookup(id).unwrap();
    let walked: Vec<&str> = run
        .cards
        .iter()
        .map(|&c| program.card(c).id().as_str())
        .collect();
    let mut want = vec![
        "welcome",
        "size",
        "name",
        "email",
        "route_lead",
        "demo_lead",
        "thanks",
    ];
    want.sort_by_key(|id| ix(id));
    assert_eq!(walked, want);
    let links: Vec<(String, LinkKind)> = run
        .links
        .iter()
        .map(|&(c, k)| (program.card(c).id().to_string(), k))
        .collect();
    for link in [
        ("welcome", LinkKind::Answer(0)),
        ("size", LinkKind::Answer(1)),
        ("name", LinkKind::Valid),
        ("email", LinkKind::Valid),
        ("route_lead", LinkKind::Rule(0)),
        ("demo_lead", LinkKind::Next),
    ] {
        assert!(
            links.contains(&(link.0.to_owned(), link.1)),
            "{link:?} not in {links:?}"
        );
    }
    assert_eq!(links.len(), 6, "{links:?}");
}
