//! The `playbook` binary end to end: exit codes, output formats, and files left untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn playbook(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_playbook"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs")
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "playbook" || e == "json")
        })
        .collect();
    files.sort();
    files
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_example_checks_clean() {
    let files = examples();
    assert!(files.len() >= 4);
    let args: Vec<&str> = std::iter::once("check")
        .chain(files.iter().map(|p| p.to_str().unwrap()))
        .chain(["--deny-warnings"])
        .collect();
    let out = playbook(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn every_example_is_formatted() {
    for file in examples() {
        let out = playbook(&["fmt", "--check", file.to_str().unwrap()]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            file.display(),
            stderr(&out)
        );
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let out = playbook(&["check", "no/such/file.playbook"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read no/such/file.playbook"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(playbook(&["check"]).status.code(), Some(2));
    assert_eq!(playbook(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn errors_exit_1_with_position_and_code() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.playbook");
    std::fs::write(
        &path,
        "playbook \"x\" { start a }\nmessage a \"hi\" -> nowhere\n",
    )
    .unwrap();
    let out = playbook(&["check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("E011"), "{err}");
    assert!(err.contains("broken.playbook:2:"), "{err}");
}

#[test]
fn json_output_for_editors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.playbook");
    std::fs::write(
        &path,
        "playbook \"x\" { start a }\nmessage a \"hi\" -> nowhere\n",
    )
    .unwrap();
    let out = playbook(&["check", "--format", "json", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let diag = &doc["files"][0]["diagnostics"][0];
    assert_eq!(diag["code"], "E011");
    assert_eq!(diag["severity"], "error");
    assert_eq!(diag["labels"][0]["start"]["line"], 2);
}

#[test]
fn check_against_a_config_warns_of_unknown_teams_agents_and_pools() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("playbook.toml");
    // Team Sales exists (ana is in it); pool `Inbound SDRs` does not. The webhook's secret
    // comes from a variable that is not set: `check` reads no secrets.
    std::fs::write(
        &config,
        "[[agents]]\nname = \"ana\"\ntoken = \"ana-token-0123456789\"\nteams = [\"Sales\"]\n\
         [webhook]\nurl = \"https://crm.example/hook\"\nheader = \"Authorization\"\n\
         header_value_env = \"PLAYBOOK_TEST_UNSET_VARIABLE\"\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let out = playbook(&["check", "playbooks/demo.playbook", "--config", c]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("warning[W004]").count(), 2, "{err}");
    assert!(err.contains("playbooks/demo.playbook:49:9"), "{err}");
    assert!(err.contains("the pool `Inbound SDRs`"), "{err}");
    assert!(!err.contains("team `Sales`"), "{err}");
    let denied = playbook(&[
        "check",
        "--deny-warnings",
        "playbooks/demo.playbook",
        "--config",
        c,
    ]);
    assert_eq!(denied.status.code(), Some(1));
    // Without --config, no W004.
    assert!(!stderr(&playbook(&["check", "playbooks/demo.playbook"])).contains("W004"));
    let missing = playbook(&["check", "playbooks/demo.playbook", "--config", "nope.toml"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn warnings_pass_unless_denied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warn.playbook");
    std::fs::write(
        &path,
        "playbook \"x\" { start a }\nmessage a \"hi\" end\nmessage b \"never\" end\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = playbook(&["check", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("W001"));
    assert_eq!(
        playbook(&["check", "--deny-warnings", p]).status.code(),
        Some(1)
    );
}

#[test]
fn fmt_never_writes_a_file_with_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.playbook");
    let text = "playbook \"x\" { start a }\nmessage a \"hi\" ->\n";
    std::fs::write(&path, text).unwrap();
    let out = playbook(&["fmt", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[test]
fn invalid_utf8_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bytes.playbook");
    std::fs::write(&bad, b"playbook \"x\xff\" { start a }\n").unwrap();
    let out = playbook(&["check", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not valid UTF-8"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("bytes.playbook:1:12"),
        "{}",
        stderr(&out)
    );

    let big = dir.path().join("big.playbook");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(playbook::cli::MAX_FILE_BYTES + 1).unwrap();
    let out = playbook(&["check", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("E007"), "{}", stderr(&out));

    // A file whose metadata says 0 bytes but that never ends is bounded too.
    #[cfg(unix)]
    if Path::new("/dev/zero").exists() {
        let zero = dir.path().join("zero.playbook");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let out = playbook(&["check", zero.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("E007"), "{}", stderr(&out));
    }
}

#[test]
fn converts_dsl_to_json_and_back_losslessly() {
    let dir = tempfile::tempdir().unwrap();
    for file in examples() {
        let name = file.file_name().unwrap();
        let copy = dir.path().join(name);
        std::fs::copy(&file, &copy).unwrap();
        let other = match playbook::cli::FileFormat::of(&copy) {
            playbook::cli::FileFormat::Dsl => "json",
            playbook::cli::FileFormat::Json => "dsl",
        };
        let out = playbook(&["fmt", "--to", other, copy.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let converted = copy.with_extension(if other == "json" { "json" } else { "playbook" });
        let a = playbook::syntax::read(
            copy.to_str().unwrap(),
            &std::fs::read_to_string(&copy).unwrap(),
        )
        .unwrap()
        .0;
        let b = playbook::syntax::read(
            converted.to_str().unwrap(),
            &std::fs::read_to_string(&converted).unwrap(),
        )
        .unwrap()
        .0;
        assert_eq!(a, b, "{}", file.display());
    }
}

#[test]
fn schema_is_json() {
    let out = playbook(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(schema["$defs"]["Card"].is_object());
}

#[test]
fn a_folder_stands_for_its_playbooks() {
    let out = playbook(&["check", "playbooks"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    for file in examples() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(stderr(&out).contains(&name), "{name} not checked");
    }
}

/// `playbook check` on each fixture of `tests/invalid/` fails (exit 1) and names the code in
/// the fixture's name; warning-only fixtures pass unless warnings are denied.
#[test]
fn every_invalid_fixture_fails_with_its_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() > 20);
    for path in fixtures {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let code = name.split('_').next().unwrap();
        let out = playbook(&["check", "--deny-warnings", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        if code.starts_with('E') || code.starts_with('W') {
            assert!(
                stderr(&out).contains(&format!("[{code}]")),
                "{name}: {}",
                stderr(&out)
            );
        }
        if code.starts_with('W') {
            let out = playbook(&["check", path.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        }
    }
}

/// The literal command: `playbook check playbooks/*`, scenario files included.
#[test]
fn check_on_everything_in_playbooks_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    let mut all: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .collect();
    all.sort();
    let args: Vec<&str> = std::iter::once("check")
        .chain(all.iter().map(String::as_str))
        .collect();
    let out = playbook(&args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("skipped (a scenario"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn fmt_to_does_not_replace_an_unrelated_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.playbook");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.playbook"),
        &src,
    )
    .unwrap();
    let json = dir.path().join("a.json");
    let unrelated = "{\"name\": \"my package\"}\n";
    std::fs::write(&json, unrelated).unwrap();
    let out = playbook(&["fmt", "--to", "json", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&json).unwrap(), unrelated);

    // Binary content is "something else" too.
    std::fs::write(&json, b"\xff\xfe").unwrap();
    let out = playbook(&["fmt", "--to", "json", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(std::fs::read(&json).unwrap(), b"\xff\xfe");

    // --force replaces it; after that the conversion holds the same playbook, so running
    // again (or on an unformatted copy of it) is allowed without --force.
    let out = playbook(&["fmt", "--force", "--to", "json", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let converted = std::fs::read_to_string(&json).unwrap();
    let compact: serde_json::Value = serde_json::from_str(&converted).unwrap();
    std::fs::write(&json, compact.to_string()).unwrap();
    let out = playbook(&["fmt", "--to", "json", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&json).unwrap(), converted);
}

#[cfg(unix)]
#[test]
fn fmt_follows_symlinks_and_keeps_the_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).unwrap();
    let real = real_dir.join("a.playbook");
    std::fs::write(&real, "playbook \"x\" {   start a }\nend a\n").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("link.playbook");
    std::os::unix::fs::symlink(&real, &link).unwrap();

    let out = playbook(&["fmt", link.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    let formatted = std::fs::read_to_string(&real).unwrap();
    assert!(formatted.starts_with("playbook \"x\" {\n"), "{formatted}");
    let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    // No temporary file left behind in either folder.
    assert_eq!(std::fs::read_dir(&real_dir).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

/// `fmt` formats a playbook that parses but fails `check` (useful while editing), and never
/// writes one that does not parse (see `fmt_never_writes_a_file_with_errors`).
#[test]
fn fmt_formats_a_playbook_with_check_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("editing.playbook");
    std::fs::write(
        &path,
        "playbook \"x\" {   start a }\nmessage a \"hi\" -> nowhere\n",
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = playbook(&["check", p]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("[E011]"), "{}", stderr(&out));
    let out = playbook(&["fmt", p]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("playbook \"x\" {\n"), "{text}");
    assert!(text.contains("-> nowhere"), "{text}");
    assert_eq!(playbook(&["fmt", "--check", p]).status.code(), Some(0));
}

/// A folder walk does not follow symlinked folders (a loop would never end) and skips hidden
/// folders, `target` and `node_modules`, whose JSON files are not playbooks.
#[cfg(unix)]
#[test]
fn folder_walk_skips_links_build_output_and_hidden_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.playbook"),
        root.join("demo.playbook"),
    )
    .unwrap();
    for folder in ["target/debug", "node_modules/x", ".git", "sub"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    for junk in [
        "target/debug/a.json",
        "node_modules/x/package.json",
        ".git/b.json",
    ] {
        std::fs::write(root.join(junk), "{\"not\": \"a playbook\"}").unwrap();
    }
    std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
    std::fs::write(
        root.join("sub/demo.scenario"),
        "playbook \"../demo.playbook\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink(root.join("sub"), root.join("sub2")).unwrap();

    let out = playbook(&["check", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("demo.playbook"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("a.json"), "{}", stderr(&out));

    // `playbook test` finds the one scenario once, not through the loop or the link.
    let out = Command::new(env!("CARGO_BIN_EXE_playbook"))
        .args(["test", "--accept", "--snapshots"])
        .arg(root.join("snaps"))
        .arg(root)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("1 scenarios: 1 passed"),
        "{report}{}",
        stderr(&out)
    );
}

#[test]
fn load_exits_non_zero_when_requests_fail() {
    // Nothing listens on port 1: every start fails.
    let o = playbook(&[
        "load",
        "--addr",
        "127.0.0.1:1",
        "--conversations",
        "3",
        "--concurrency",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("errors: 3"), "{out}");
    assert!(out.contains("turn latency ms: none"), "{out}");
    assert!(stderr(&o).contains("3 requests failed"), "{}", stderr(&o));
}

/// Issue 11: `demo.json --to dsl` replaced the commented `demo.playbook` (it holds the same
/// playbook) and every comment was gone. Now it is refused unless `--force`.
#[test]
fn fmt_to_dsl_does_not_drop_comments() {
    let dir = tempfile::tempdir().unwrap();
    let dsl = dir.path().join("demo.playbook");
    let original = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.playbook"),
    )
    .unwrap();
    assert!(original.contains('#'), "the demo has comments");
    std::fs::write(&dsl, &original).unwrap();
    let out = playbook(&["fmt", "--to", "json", dsl.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = dir.path().join("demo.json");

    let out = playbook(&["fmt", "--to", "dsl", json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("comment") && stderr(&out).contains("--force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&dsl).unwrap(), original);

    let out = playbook(&["fmt", "--force", "--to", "dsl", json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!std::fs::read_to_string(&dsl).unwrap().contains('#'));
}

/// `playbook stats` reads a data folder's counters with the playbook version it stored: a
/// table, JSON with exact numbers, CSV; a bad range exits 2, an unknown playbook 1.
#[test]
fn stats_reads_a_data_folder() {
    use playbook::persist::{Commit, SqliteOptions, Storage, VersionRow};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/demo.playbook"),
    )
    .unwrap();
    {
        let (store, _) = playbook::persist::SqliteStore::open(
            &data.join("playbook.sqlite"),
            SqliteOptions::default(),
        )
        .unwrap();
        let day = playbook::stats::parse_day("2026-03-02").unwrap();
        let row = |key: &str, n: i64| ("demo".to_owned(), 1, day, key.to_owned(), n);
        store
            .commit(&Commit {
                versions: vec![VersionRow {
                    name: "demo".into(),
                    version: 1,
                    file: "demo.playbook".into(),
                    source,
                }],
                stats: vec![
                    row("started\tweb", 10),
                    row("entered\twelcome", 10),
                    row("link\twelcome\tanswer:2", 4),
                    row("entered\tbye", 4),
                    row("ended\tbye\tnone", 4),
                ],
                ..Default::default()
            })
            .unwrap();
    }
    let data = data.to_str().unwrap();
    let range = ["--from", "2026-03-01", "--to", "2026-03-31"];
    let o = playbook(&[&["stats", "demo", "--data", data][..], &range[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("10 started"), "{table}");
    assert!(table.contains("answer \"Just browsing\""), "{table}");
    let o = playbook(
        &[
            &["stats", "demo", "--data", data, "--format", "json"][..],
            &range[..],
        ]
        .concat(),
    );
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["started"], 10);
    assert_eq!(r["outcomes"]["none"], 4);
    let welcome = &r["cards"][0];
    assert_eq!(
        (welcome["entered"].as_i64(), welcome["stopped"].as_i64()),
        (Some(10), Some(6))
    );
    let o = playbook(
        &[
            &["stats", "demo", "--data", data, "--format", "csv"][..],
            &range[..],
        ]
        .concat(),
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("section,card,link,to,count,share\n"));
    let o = playbook(&["stats", "demo", "--data", data, "--from", "March"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`from` is not a date"),
        "{}",
        stderr(&o)
    );
    let o = playbook(&["stats", "nope", "--data", data]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no playbook named `nope`"),
        "{}",
        stderr(&o)
    );
    let o = playbook(&["stats", "demo", "--data", "/nonexistent"]);
    assert_eq!(o.status.code(), Some(1));
}
