//! Pictures of playbooks: Mermaid and DOT exports are snapshots, and are deterministic.

use playbook::graph::FlowGraph;
use playbook::model::Playbook;

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn load(text: &str) -> Playbook {
    serde_json::from_str(text).expect("fixture parses")
}

#[test]
fn exports() {
    let demo = load(include_str!("graph_demo.json"));
    let escaping = load(include_str!("graph_escaping.json"));
    let broken = load(include_str!("invalid/E011_unknown_target.json"));
    settings().bind(|| {
        for (name, p) in [
            ("demo", &demo),
            ("escaping", &escaping),
            ("unknown_target", &broken),
        ] {
            let g = FlowGraph::new(p);
            let mermaid = g.to_mermaid(p);
            let dot = g.to_dot(p);
            assert_eq!(mermaid, FlowGraph::new(p).to_mermaid(p), "deterministic");
            insta::assert_snapshot!(format!("graph_{name}_mermaid"), mermaid);
            insta::assert_snapshot!(format!("graph_{name}_dot"), dot);
        }
    });
}

#[test]
fn escaping_keeps_syntax_intact() {
    let p = load(include_str!("graph_escaping.json"));
    let g = FlowGraph::new(&p);
    let mermaid = g.to_mermaid(&p);
    for line in mermaid.lines().skip(1) {
        // Inside a Mermaid label the only quotes are the label's own delimiters.
        assert_eq!(line.matches('"').count() % 2, 0, "{line}");
        assert!(!line.contains('<') || line.contains("<br/>"), "{line}");
    }
    assert!(mermaid.contains("#quot;Yes#quot; [sure]"));
    assert!(mermaid.contains("café 😀"));
    let dot = g.to_dot(&p);
    assert!(dot.contains(r#"\"Yes\" [sure]"#));
    // The condition text `x is one of "a\"b", "c\\d"`, escaped once more for DOT.
    assert!(dot.contains(r#"label="x is one of \"a\\\"b\", \"c\\\\d\"""#));
    assert!(mermaid.contains("#123;#123;not#125;#125;"));
}

#[test]
fn paths_and_reachability() {
    let p = load(include_str!("graph_demo.json"));
    let g = FlowGraph::new(&p);
    let start = g.start().expect("start exists");
    let thanks = g.node_by_id("thanks").expect("thanks exists");
    let path = g.shortest_path(start, thanks).expect("a path");
    assert_eq!(
        g.describe_path(&p, &path),
        "consent → welcome → size → email → route → deal → thanks"
    );
    assert!(g.reachable_from_start().iter().all(|&r| r));
    // Only the loop-free demo: every component is a single card.
    assert!(g.sccs().iter().all(|s| s.len() == 1));
}
