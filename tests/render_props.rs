//! Every diagnostic of a random, possibly broken, playbook renders without panicking, as text
//! and as JSON, from DSL and from JSON input — also when a line is pushed past column 65,535,
//! which made miette panic (issue 11).

#[path = "common/arbitrary.rs"]
mod arbitrary;

use playbook::model;
use playbook::source::{SourceFile, SourceMap};
use playbook::syntax;
use proptest::prelude::*;

/// What is done to the printed playbook before it is read back.
#[derive(Debug, Clone)]
enum Damage {
    /// Nothing: only the model's own faults (unknown targets, unset variables…).
    None,
    /// Line `n` (modulo the line count) gets this many spaces in front.
    Indent(usize, usize),
    /// `text` goes in at this fraction of the length (a syntax error, most often).
    Insert(f64, String),
    /// The text is cut at this fraction of its length.
    Cut(f64),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        1 => Just(Damage::None),
        2 => (0usize..64, prop_oneof![Just(65_536usize), Just(70_001), 1usize..300])
            .prop_map(|(n, k)| Damage::Indent(n, k)),
        2 => (0.0f64..1.0, "[a-z\"{}#\n\t\r\u{e9}\u{1F600} -]{1,6}")
            .prop_map(|(at, s)| Damage::Insert(at, s)),
        1 => (0.0f64..1.0).prop_map(Damage::Cut),
    ]
}

/// The byte offset at `fraction` of `text`, moved back to a character boundary.
fn at(text: &str, fraction: f64) -> usize {
    let mut i = ((text.len() as f64) * fraction) as usize;
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(text: &str, damage: &Damage) -> String {
    match damage {
        Damage::None => text.to_owned(),
        Damage::Indent(n, k) => {
            let lines: Vec<&str> = text.split('\n').collect();
            let n = n % lines.len();
            let pad = " ".repeat(*k);
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    if i == n {
                        format!("{pad}{l}")
                    } else {
                        (*l).to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        Damage::Insert(f, s) => {
            let i = at(text, *f);
            format!("{}{s}{}", &text[..i], &text[i..])
        }
        Damage::Cut(f) => text[..at(text, *f)].to_owned(),
    }
}

/// Reads, checks and renders every diagnostic the way `playbook check` does.
fn render_all(name: &str, text: String) {
    let file = SourceFile::new(name, text);
    let (diagnostics, map) = match syntax::read(file.name(), file.text()) {
        Ok((p, map)) => (playbook::check::check(p).diagnostics, map),
        Err(diags) => (diags, SourceMap::new()),
    };
    for d in &diagnostics {
        let out = d.render(&file, &map);
        assert!(out.starts_with(name), "{out}");
        assert!(out.contains(d.code.as_str()), "{out}");
        let json = d.to_json(&file, &map);
        assert_eq!(json["code"], d.code.as_str());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn every_diagnostic_renders(p in arbitrary::playbook(10), dsl_damage in damage(), json_damage in damage()) {
        render_all("random.playbook", apply(&syntax::to_dsl(&p), &dsl_damage));
        render_all("random.json", apply(&model::to_json(&p), &json_damage));
    }
}
