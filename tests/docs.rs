//! The docs tell the truth: the committed JSON Schema is the one the code makes, the README
//! lists every diagnostic code, and every JSON example validates against the schema.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schema_is_current() {
    let expected = format!(
        "{}\n",
        serde_json::to_string_pretty(&playbook::model::schema()).unwrap()
    );
    let path = root().join("docs/playbook.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != expected {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, &expected).unwrap();
        } else {
            panic!(
                "docs/playbook.schema.json is stale: run `UPDATE_DOCS=1 cargo test --test docs`"
            );
        }
    }
}

#[test]
fn readme_lists_every_code() {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let table = playbook::diagnostic::codes_markdown();
    let (start, end) = ("<!-- codes:start -->\n", "<!-- codes:end -->");
    let (Some(a), Some(b)) = (readme.find(start), readme.find(end)) else {
        panic!("README.md lacks the {start:?} … {end:?} markers");
    };
    let current = &readme[a + start.len()..b];
    if current != table {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{table}{}", &readme[..a + start.len()], &readme[b..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            panic!(
                "the README's diagnostics table is stale: run `UPDATE_DOCS=1 cargo test --test docs`"
            );
        }
    }
}

#[test]
fn json_examples_validate_against_the_schema() {
    let schema = playbook::model::schema();
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let mut seen = 0;
    for entry in std::fs::read_dir(root().join("playbooks")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let value: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
            seen += 1;
        }
    }
    assert!(seen > 0, "no JSON example found in playbooks/");
}

#[test]
fn schema_rejects_a_broken_playbook() {
    let schema = playbook::model::schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let broken = serde_json::json!({
        "playbook": { "name": "x", "start": "a" },
        "cards": [{ "kind": "message", "id": "a", "txt": "typo", "then": { "end": "none" } }]
    });
    assert!(!validator.is_valid(&broken));
}
