//! The whole pipeline on any text, read as DSL and as JSON: read → check → render every
//! diagnostic (text and JSON) → fmt → graph. Nothing may panic, and what `fmt` writes must
//! read back as the same playbook (and keep every comment), as `playbook fmt` promises.

#![no_main]

use libfuzzer_sys::fuzz_target;
use playbook::model::to_json;
use playbook::source::{SourceFile, SourceMap};
use playbook::{check, graph::FlowGraph, syntax};

fuzz_target!(|data: &[u8]| {
    // `playbook` reads files as UTF-8 and refuses others before any of this runs.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    pipeline("fuzz.playbook", text);
    pipeline("fuzz.json", text);
});

fn pipeline(name: &str, text: &str) {
    let file = SourceFile::new(name, text);
    let (playbook, map) = match syntax::read(name, text) {
        Ok(read) => read,
        Err(diagnostics) => {
            for d in &diagnostics {
                let _ = d.render(&file, &SourceMap::new());
                let _ = d.to_json(&file, &SourceMap::new());
            }
            return;
        }
    };
    for d in &check::check(playbook.clone()).diagnostics {
        let _ = d.render(&file, &map);
        let _ = d.to_json(&file, &map);
    }

    // fmt, as `playbook fmt` does it: in place (keeping comments), and both conversions.
    if name.ends_with(".playbook") {
        let formatted = syntax::format(text).expect("a text that reads also formats");
        let (again, _) = syntax::parse(&formatted).expect("formatted text parses");
        assert_eq!(
            again, playbook,
            "formatting changed the playbook:\n{formatted}"
        );
        let lost = syntax::lost_comments(text, &formatted);
        assert!(
            lost.is_empty(),
            "formatting lost comments {lost:?}:\n{formatted}"
        );
    }
    let dsl = syntax::to_dsl(&playbook);
    let (again, _) = syntax::parse(&dsl).expect("printed DSL parses");
    assert_eq!(
        again, playbook,
        "DSL round trip changed the playbook:\n{dsl}"
    );
    let json = to_json(&playbook);
    let (again, _) = syntax::parse_json(&json).expect("printed JSON parses");
    assert_eq!(
        again, playbook,
        "JSON round trip changed the playbook:\n{json}"
    );

    let graph = FlowGraph::new(&playbook);
    let _ = graph.to_mermaid(&playbook);
    let _ = graph.to_dot(&playbook);
}
