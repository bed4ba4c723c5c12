//! Every check code has a minimal broken playbook in `tests/invalid/`, named after the code
//! it triggers (`E014_two_livechats.json`); its rendered diagnostics are a snapshot. Plus the
//! tricky passes' edge cases, a valid playbook with every kind of card, and a big generated
//! playbook.

use std::collections::BTreeSet;
use std::path::Path;

use playbook::check::check;
use playbook::diagnostic::{Code, Diagnostic, Location};
use playbook::model::Playbook;
use playbook::source::{SourceFile, SourceMap};

/// Codes without a fixture here, with the reason.
/// `TooLarge` needs a 10 MiB file; `UnknownDeskName` needs a server config (`check --config`).
/// `tests/cli.rs` covers both instead.
const READER_CODES: &[Code] = &[Code::TooLarge, Code::UnknownDeskName];

/// Reads and checks a fixture exactly as `playbook check` does (reader chosen by extension).
fn diagnose(path: &Path) -> (SourceFile, SourceMap, Vec<Diagnostic>) {
    let text = std::fs::read_to_string(path).expect("fixture is readable");
    let name = path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let file = SourceFile::new(format!("invalid/{name}"), text);
    let (diagnostics, map) = match playbook::syntax::read(file.name(), file.text()) {
        Ok((p, map)) => (check(p).diagnostics, map),
        Err(diags) => (diags, SourceMap::new()),
    };
    (file, map, diagnostics)
}

/// The diagnostics as a user sees them; a label the source map cannot place (there should be
/// none) is listed by its pointer so that it is not silently lost.
fn render(file: &SourceFile, map: &SourceMap, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diagnostics {
        out.push_str(&d.render(file, map));
        for l in &d.labels {
            if let Location::Pointer(p) = &l.at
                && map.find(p).is_none()
            {
                out.push_str(&format!("    (unplaced) at {p}: {}\n", l.text));
            }
        }
        out.push('\n');
    }
    out
}

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

#[test]
fn invalid_playbooks() {
    settings().bind(|| {
        insta::glob!("invalid/*.{json,playbook}", |path| {
            let (file, map, diagnostics) = diagnose(path);
            assert!(
                !diagnostics.is_empty(),
                "{} has no diagnostics",
                path.display()
            );
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let named = stem.split('_').next().unwrap_or_default();
            if let Some(code) = Code::ALL.iter().find(|c| c.as_str() == named) {
                assert!(
                    diagnostics.iter().any(|d| d.code == *code),
                    "{} does not report {code}",
                    path.display()
                );
            }
            insta::assert_snapshot!(render(&file, &map, &diagnostics));
        });
    });
}

#[test]
fn every_code_has_a_fixture() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let named: BTreeSet<String> = std::fs::read_dir(dir)
        .expect("tests/invalid exists")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split('_').next().map(str::to_owned)
        })
        .collect();
    for code in Code::ALL {
        if READER_CODES.contains(code) {
            continue;
        }
        assert!(
            named.contains(code.as_str()),
            "no fixture in tests/invalid/ for {code}: add `{code}_<what>.playbook`"
        );
    }
}

fn playbook(start: &str, cards: serde_json::Value) -> Playbook {
    serde_json::from_value(serde_json::json!({
        "playbook": {"name": "t", "start": start},
        "cards": cards,
    }))
    .expect("test playbook is well-formed")
}

/// `(code, first label's pointer)` of each diagnostic.
fn found(p: Playbook) -> Vec<(Code, String)> {
    check(p)
        .diagnostics
        .into_iter()
        .map(|d| {
            let at = match d.labels.first().map(|l| &l.at) {
                Some(Location::Pointer(p)) => p.clone(),
                _ => String::new(),
            };
            (d.code, at)
        })
        .collect()
}

fn message(p: Playbook, code: Code) -> String {
    check(p)
        .diagnostics
        .into_iter()
        .find(|d| d.code == code)
        .map(|d| d.message)
        .unwrap_or_default()
}

#[test]
fn valid_playbook_with_every_card_kind_is_clean() {
    let text = include_str!("graph_demo.json");
    let p: Playbook = serde_json::from_str(text).expect("demo parses");
    let kinds: BTreeSet<&str> = p.cards.iter().map(|c| c.kind_name()).collect();
    assert_eq!(
        kinds.len(),
        8,
        "the demo should use every kind of card: {kinds:?}"
    );
    let checked = check(p);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    assert!(checked.program.is_some());
}

#[test]
fn livechat_reached_twice_through_a_loop() {
    // chat -> offline -> ask -> (valid) -> chat: the same live chat twice on one path.
    let p = playbook(
        "hi",
        serde_json::json!([
            {"kind": "message", "id": "hi", "text": "Hi", "then": {"goto": "chat"}},
            {"kind": "livechat", "id": "chat", "online": "o", "wait": "1m", "offline": "f",
             "on_closed": "bye", "on_offline": "mail"},
            {"kind": "ask", "id": "mail", "text": "Email?", "expect": "email", "then": "chat"},
            {"kind": "end", "id": "bye"}
        ]),
    );
    let msg = message(p.clone(), Code::TwoLiveChats);
    assert!(msg.contains("hi → chat → mail → chat"), "{msg}");
    assert_eq!(found(p), [(Code::TwoLiveChats, "/cards/1/id".to_owned())]);
}

#[test]
fn livechats_on_separate_paths_are_fine() {
    let p = playbook(
        "q",
        serde_json::json!([
            {"kind": "question", "id": "q", "text": "?", "answers": [
                {"label": "a", "to": "c1"}, {"label": "b", "to": "c2"}]},
            {"kind": "livechat", "id": "c1", "online": "o", "wait": "1m", "offline": "f",
             "on_closed": "bye", "on_offline": "bye"},
            {"kind": "livechat", "id": "c2", "online": "o", "wait": "1m", "offline": "f",
             "on_closed": "bye", "on_offline": "bye"},
            {"kind": "end", "id": "bye"}
        ]),
    );
    assert_eq!(found(p), []);
}

#[test]
fn maybe_unset_versus_never_set() {
    let p = playbook(
        "q",
        serde_json::json!([
            {"kind": "question", "id": "q", "text": "Email?", "answers": [
                {"label": "yes", "to": "ask"}, {"label": "no", "to": "done"}]},
            {"kind": "ask", "id": "ask", "text": "Email?", "expect": "email", "save": "email",
             "then": "done", "idle": {"after": "1m", "then": {"goto": "done"}}},
            {"kind": "message", "id": "done", "text": "{email} {typo} {channel}", "then": {"end": "none"}}
        ]),
    );
    // `email` is set on one path only (idle leaves it unset too): W002. `typo` is never
    // saved: E015. `channel` is a system variable: fine.
    assert_eq!(
        found(p),
        [
            (Code::UnsetVariable, "/cards/2/text".to_owned()),
            (Code::MaybeUnset, "/cards/2/text".to_owned()),
        ]
    );
}

#[test]
fn set_on_every_path_and_guarded_reads_are_fine() {
    let p = playbook(
        "q",
        serde_json::json!([
            {"kind": "question", "id": "q", "text": "Size?", "save": "size", "answers": [
                {"label": "small", "to": "b"}, {"label": "big", "to": "b"}],
             "free_text": "b"},
            {"kind": "branch", "id": "b", "rules": [
                {"when": {"op": "is_set", "var": "mail"}, "to": "known"},
                {"when": {"op": "equals", "var": "size", "value": "big"}, "to": "ask"}],
             "otherwise": "ask"},
            {"kind": "ask", "id": "ask", "text": "Mail ({size})?", "expect": "email", "save": "mail", "then": "known"},
            {"kind": "message", "id": "known", "text": "{mail} {size}", "then": {"end": "none"}}
        ]),
    );
    assert_eq!(found(p), []);
}

#[test]
fn unset_variable_in_a_loop_reaches_a_fixpoint() {
    // The loop back to `menu` comes from a path that saved `x`, but the first visit did not.
    let p = playbook(
        "menu",
        serde_json::json!([
            {"kind": "question", "id": "menu", "text": "Last: {x}", "answers": [
                {"label": "go", "to": "ask"}, {"label": "stop", "to": "end"}]},
            {"kind": "ask", "id": "ask", "text": "x?", "expect": "text", "save": "x", "then": "menu"},
            {"kind": "end", "id": "end"}
        ]),
    );
    assert_eq!(found(p), [(Code::MaybeUnset, "/cards/0/text".to_owned())]);
}

#[test]
fn spinning_loop_through_branches() {
    let p = playbook(
        "a",
        serde_json::json!([
            {"kind": "ask", "id": "a", "text": "n?", "expect": "number", "save": "n", "then": "b1"},
            {"kind": "branch", "id": "b1", "rules": [
                {"when": {"op": "compare", "var": "n", "cmp": ">", "value": 5}, "to": "b2"}],
             "otherwise": "done"},
            {"kind": "branch", "id": "b2", "rules": [
                {"when": {"op": "compare", "var": "n", "cmp": ">", "value": 10}, "to": "b1"}],
             "otherwise": "done"},
            {"kind": "end", "id": "done"}
        ]),
    );
    let msg = message(p.clone(), Code::SpinningLoop);
    assert!(msg.contains("b1 → b2 → b1"), "{msg}");
    assert_eq!(
        found(p),
        [(Code::SpinningLoop, "/cards/1/rules/0/to".to_owned())]
    );
}

#[test]
fn loop_through_a_question_waits() {
    let p = playbook(
        "q",
        serde_json::json!([
            {"kind": "question", "id": "q", "text": "?", "answers": [
                {"label": "again", "to": "m"}, {"label": "stop", "to": "end"}]},
            {"kind": "message", "id": "m", "text": "Again!", "then": {"goto": "q"}},
            {"kind": "end", "id": "end"}
        ]),
    );
    assert_eq!(found(p), []);
}

#[test]
fn dead_end_is_reported_once_at_its_cause() {
    // a -> b -> c, and c has no way on: only c is the problem, not a and b.
    let p = playbook(
        "a",
        serde_json::json!([
            {"kind": "message", "id": "a", "text": "a", "then": {"goto": "b"}},
            {"kind": "message", "id": "b", "text": "b", "then": {"goto": "c"}},
            {"kind": "question", "id": "c", "text": "c", "answers": []}
        ]),
    );
    assert_eq!(
        found(p),
        [
            (Code::DeadEnd, "/cards/2/id".to_owned()),
            (Code::NoAnswers, "/cards/2/answers".to_owned()),
        ]
    );
}

/// A playbook of `n` cards in blocks of ten, each block a question, an ask, a branch, three
/// messages, a capture and three more cards, looping back to earlier blocks through the
/// visitor; one live chat at the end. With `warnings`, every block saves its own variable and
/// reads the next block's, so there are a thousand variables and as many W002 warnings.
fn generated(n: usize, warnings: bool) -> Playbook {
    let blocks = n / 10;
    let mut cards = Vec::with_capacity(n);
    for b in 0..blocks {
        let next = if b + 1 < blocks {
            format!("q{}", b + 1)
        } else {
            "chat".to_owned()
        };
        let back = format!("q{}", b / 2);
        let var = if warnings {
            format!("w{b}")
        } else {
            format!("v{}", b % 64)
        };
        let later = if warnings {
            format!("{{w{}}}", b + 1)
        } else {
            "{v1}".to_owned()
        };
        cards.extend([
            serde_json::json!({"kind": "question", "id": format!("q{b}"), "text": "Pick ({v0})", "save": "v0",
                "answers": [{"label": "on", "to": format!("a{b}")}, {"label": "back", "to": back},
                            {"label": "skip", "to": format!("m{b}")}]}),
            serde_json::json!({"kind": "ask", "id": format!("a{b}"), "text": "Value for {v0}?", "expect": "text",
                "save": var, "then": format!("br{b}")}),
            serde_json::json!({"kind": "branch", "id": format!("br{b}"), "rules": [
                {"when": {"op": "equals", "var": var, "value": "x"}, "to": format!("m{b}")},
                {"when": {"op": "is_set", "var": "v1"}, "to": format!("n{b}")}],
                "otherwise": format!("o{b}")}),
            serde_json::json!({"kind": "message", "id": format!("m{b}"), "text": "m {v0}", "then": {"goto": format!("c{b}")}}),
            serde_json::json!({"kind": "message", "id": format!("n{b}"), "text": format!("n {later}"), "then": {"goto": format!("c{b}")}}),
            serde_json::json!({"kind": "message", "id": format!("o{b}"), "text": "o", "then": {"goto": format!("c{b}")}}),
            serde_json::json!({"kind": "capture", "id": format!("c{b}"), "record": {"type": "lead", "title": "t {v0}",
                "organization": "o"}, "then": {"goto": format!("k{b}")}}),
            serde_json::json!({"kind": "consent", "id": format!("k{b}"), "mode": "explicit", "notice": "ok?",
                "then": format!("e{b}"), "on_decline": format!("x{b}")}),
            serde_json::json!({"kind": "capture", "id": format!("e{b}"), "record": {"type": "activity", "activity": "call",
                "subject": "call", "link": "lead"}, "then": {"goto": next}}),
            serde_json::json!({"kind": "end", "id": format!("x{b}")}),
        ]);
    }
    cards.push(serde_json::json!({"kind": "livechat", "id": "chat", "online": "o", "wait": "1m", "offline": "f",
        "on_closed": "x0", "on_offline": "x0"}));
    playbook("q0", serde_json::Value::Array(cards))
}

#[test]
fn big_generated_playbook_checks() {
    let p = generated(10_000, false);
    assert!(p.cards.len() > 10_000);
    let started = std::time::Instant::now();
    let checked = check(p);
    // Timing is measured by hand in release builds; this only shows it runs and what it finds.
    eprintln!("checked 10,000 cards in {:?}", started.elapsed());
    assert!(
        !checked.has_errors(),
        "{:#?}",
        &checked.diagnostics[..checked.diagnostics.len().min(5)]
    );

    // Three thousand cards keep the debug-build suite fast; 10,000 was measured by hand.
    let p = generated(3_000, true);
    let started = std::time::Instant::now();
    let checked = check(p);
    eprintln!(
        "checked 3,000 cards with {} diagnostics in {:?}",
        checked.diagnostics.len(),
        started.elapsed()
    );
    let mut codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code).collect();
    codes.sort();
    codes.dedup();
    // Every block reads the next block's variable; the last block's is never saved.
    assert_eq!(codes, [Code::UnsetVariable, Code::MaybeUnset]);
    assert!(checked.diagnostics.len() >= 299);
}

/// A straight chain of 150 messages always hits the default step limit of 100: E021 at its
/// first card. The same chain behind a question (the run restarts there) and one of 100
/// cards pass.
#[test]
fn a_chain_longer_than_max_steps_is_reported() {
    let chain = |n: usize, first: serde_json::Value| {
        let mut cards = vec![first];
        for i in 0..n {
            let then = if i + 1 < n {
                serde_json::json!({"goto": format!("m{}", i + 1)})
            } else {
                serde_json::json!({"end": "qualified"})
            };
            cards.push(serde_json::json!({"kind": "message", "id": format!("m{i}"), "text": "hi", "then": then}));
        }
        cards
    };
    let start =
        serde_json::json!({"kind": "message", "id": "s", "text": "start", "then": {"goto": "m0"}});
    let p = playbook("s", serde_json::Value::Array(chain(150, start.clone())));
    assert_eq!(
        found(p.clone()),
        [(Code::TooManySteps, "/cards/0".to_owned())]
    );
    let msg = message(p, Code::TooManySteps);
    assert!(msg.contains("151 cards run from `s` to `m149`"), "{msg}");
    assert!(msg.contains("at `m99`"), "{msg}");

    // 99 messages after the start: 100 cards, exactly the limit.
    let p = playbook("s", serde_json::Value::Array(chain(99, start)));
    assert_eq!(found(p), []);

    // After a question the count starts again, but a run entered by an answer counts too.
    let q = serde_json::json!({"kind": "question", "id": "s", "text": "?", "answers": [
        {"label": "go", "to": "m0"}, {"label": "no", "to": "m140"}]});
    let p = playbook("s", serde_json::Value::Array(chain(150, q)));
    assert_eq!(
        found(p.clone()),
        [(Code::TooManySteps, "/cards/1".to_owned())]
    );
    let msg = message(p, Code::TooManySteps);
    assert!(msg.contains("150 cards run from `m0`"), "{msg}");
}

/// Empty names a visitor or admin would see are E006: the playbook's, the bot's, a button's.
#[test]
fn empty_names_and_labels_are_rejected() {
    let p: Playbook = serde_json::from_value(serde_json::json!({
        "playbook": {"name": " ", "bot": "", "start": "q"},
        "cards": [
            {"kind": "question", "id": "q", "text": "?", "answers": [
                {"label": "", "to": "e"}, {"label": "ok", "to": "e"}]},
            {"kind": "end", "id": "e"}
        ],
    }))
    .unwrap();
    assert_eq!(
        found(p),
        [
            (Code::InvalidValue, "/playbook/name".to_owned()),
            (Code::InvalidValue, "/playbook/bot".to_owned()),
            (Code::InvalidValue, "/cards/0/answers/0/label".to_owned()),
        ]
    );
}

/// miette pads with `{:width$}`, which panicked on a label past column 65,535 (issue 11); the
/// renderer cuts long lines, and the `file:line:col` it prints is still the real one.
#[test]
fn a_diagnostic_far_out_on_a_long_line_renders() {
    let long = "a".repeat(70_000);
    let text = format!("playbook \"x\" {{ start b }}\nmessage b \"{long}\" -> nowhere\n");
    let file = SourceFile::new("w.playbook", text.as_str());
    let (p, map) = playbook::syntax::read(file.name(), file.text()).expect("it parses");
    let diagnostics = check(p).diagnostics;
    let d = diagnostics
        .iter()
        .find(|d| d.code == Code::UnknownTarget)
        .expect("an unknown target");
    let out = d.render(&file, &map);
    let col = "message b \"".len() + long.len() + "\" -> ".len() + 1;
    assert!(
        out.starts_with(&format!("w.playbook:2:{col}: error[E011]")),
        "{out}"
    );
    assert!(out.contains(&format!("[w.playbook:2:{col}]")), "{out}");
    assert!(out.contains("nowhere") && out.len() < 2_000, "{out}");
}
