//! Round trips: DSL → model → DSL and JSON → model → JSON give the same model, for every
//! example playbook in `playbooks/` and for random valid models; formatting is stable; and no
//! input (random or mutated) makes the readers or the formatter panic.

#[path = "common/arbitrary.rs"]
mod arbitrary;

use std::time::Instant;

use playbook::model::{self, Playbook};
use playbook::syntax;
use proptest::prelude::*;

fn check_round_trip(p: &Playbook) {
    let dsl = syntax::to_dsl(p);
    match syntax::parse(&dsl) {
        Ok((again, _)) => assert_eq!(&again, p, "DSL round trip changed the model:\n{dsl}"),
        Err(e) => panic!("the formatter wrote text the parser rejects: {e:?}\n{dsl}"),
    }
    let json = model::to_json(p);
    match syntax::parse_json(&json) {
        Ok((again, _)) => assert_eq!(&again, p, "JSON round trip changed the model"),
        Err(e) => panic!("to_json wrote text parse_json rejects: {e:?}\n{json}"),
    }
    assert_eq!(syntax::format(&dsl).ok().as_deref(), Some(dsl.as_str()));
}

#[test]
fn example_playbooks_round_trip() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/playbooks");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // no examples yet
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.display().to_string();
        if !(name.ends_with(".playbook") || name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("readable example");
        // JSON files beside playbooks may be scenarios or other data; only playbooks count.
        if name.ends_with(".json") && !text.contains("\"cards\"") {
            continue;
        }
        let (p, _) = syntax::read(&name, &text).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        check_round_trip(&p);
        if name.ends_with(".playbook") {
            let once = syntax::format(&text).expect("formats");
            assert_eq!(
                syntax::format(&once).expect("formats again"),
                once,
                "{name}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_models_round_trip(p in arbitrary::playbook(12)) {
        check_round_trip(&p);
    }

    #[test]
    fn comments_survive_and_formatting_is_stable(
        p in arbitrary::playbook(6),
        marks in proptest::collection::vec(0u8..3, 0..200),
    ) {
        let dsl = syntax::to_dsl(&p);
        let mut text = String::new();
        let mut expected = Vec::new();
        for (i, line) in dsl.lines().enumerate() {
            match marks.get(i).copied().unwrap_or(0) {
                1 => {
                    text.push_str(&format!("# own{i}\n"));
                    expected.push(format!("# own{i}"));
                }
                2 => {
                    text.push_str(line);
                    text.push_str(&format!(" # end{i}\n"));
                    expected.push(format!("# end{i}"));
                    continue;
                }
                _ => {}
            }
            text.push_str(line);
            text.push('\n');
        }
        let once = syntax::format(&text).expect("formats");
        for c in &expected {
            prop_assert!(once.contains(c.as_str()), "lost {} in\n{}", c, once);
        }
        let twice = syntax::format(&once).expect("formats again");
        prop_assert_eq!(&twice, &once);
        prop_assert_eq!(syntax::parse(&once).expect("parses").0, p);
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        let _ = syntax::parse(&s);
        let _ = syntax::parse_json(&s);
        let _ = syntax::format(&s);
    }

    #[test]
    fn mutated_files_never_panic(
        p in arbitrary::playbook(5),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, "[ -~\u{e9}\n{}\"\\\\#]{0,3}"), 1..5),
    ) {
        for mut text in [syntax::to_dsl(&p), model::to_json(&p)] {
            for (at, op, s) in &edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                match op {
                    0 => text.insert_str(i, s),
                    1 => {
                        let mut j = (i + s.len() + 1).min(text.len());
                        while !text.is_char_boundary(j) {
                            j -= 1;
                        }
                        text.replace_range(i..j, "");
                    }
                    _ => {
                        let mut j = (i + 1).min(text.len());
                        while !text.is_char_boundary(j) {
                            j += 1;
                        }
                        text.replace_range(i..j, s);
                    }
                }
            }
            let _ = syntax::parse(&text);
            let _ = syntax::parse_json(&text);
            let _ = syntax::format(&text);
        }
    }
}

#[test]
fn a_large_playbook_parses_quickly() {
    let mut text = String::from("playbook \"Big\" { start c0 }\n");
    for i in 0..10_000 {
        match i % 4 {
            0 => text.push_str(&format!(
                "message c{i} \"Hello {{name}} #{i}\" -> c{}\n",
                i + 1
            )),
            1 => text.push_str(&format!(
                "question c{i} \"Pick\" save v{i} {{\n  \"A\" -> c{}\n  \"B\" -> c0\n}}\n",
                i + 1
            )),
            2 => text.push_str(&format!(
                "ask c{i} \"Email?\" expect email save email -> c{} {{ idle 5m nudge \"?\" }}\n",
                i + 1
            )),
            _ => text.push_str(&format!(
                "capture lead c{i} {{ title \"L {{email}}\" person email \"{{email}}\" }} -> c{}\n",
                i + 1
            )),
        }
    }
    text.push_str("end c10000 qualified\n");
    let t = Instant::now();
    let (p, map) = syntax::parse(&text).expect("parses");
    let parse_time = t.elapsed();
    assert_eq!(p.cards.len(), 10_001);
    assert!(map.exact("/cards/9999/then/goto").is_some());
    let t = Instant::now();
    let formatted = syntax::format(&text).expect("formats");
    let format_time = t.elapsed();
    assert!(formatted.len() > text.len() / 2);
    eprintln!("10k cards: parse {parse_time:?}, format {format_time:?}");
    // Generous for unoptimised test builds on a shared machine; release is far below a
    // second (see docs/language.md).
    assert!(parse_time.as_secs() < 10, "parse took {parse_time:?}");
    assert!(format_time.as_secs() < 20, "format took {format_time:?}");
}
