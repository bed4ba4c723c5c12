//! The playbook as data: serde + schemars types. The JSON format *is* this model.
//!
//! Everything here is plain data, valid by construction where a type can say so (ids,
//! durations, templates and patterns are checked when made). Whole-playbook rules (targets
//! exist, one live chat per path…) belong to `check`; text and spans belong to `syntax`.

mod card;
mod duration;
mod ids;
mod links;
mod playbook;
mod record;
mod template;

pub use card::*;
pub use duration::{Duration, DurationError, MAX_SECONDS};
pub use ids::{CardId, IdError, SYSTEM_VARIABLES, VarName};
pub use links::{Field, Link, LinkKind};
pub use playbook::{DEFAULT_MAX_STEPS, DeskRef, Header, Limits, Playbook};
pub use record::*;
pub use template::{Part, Template, TemplateError};

/// The JSON Schema (draft 2020-12) of the JSON format.
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Playbook);
    // The JSON format allows a `$schema` key at the top so editors can find this schema; the
    // loader drops it before reading the playbook.
    if let Some(props) = schema
        .as_object_mut()
        .and_then(|o| o.get_mut("properties"))
        .and_then(|p| p.as_object_mut())
    {
        props.insert("$schema".into(), serde_json::json!({ "type": "string" }));
    }
    schema.to_value()
}

/// The playbook as pretty-printed JSON, ending with a newline.
pub fn to_json(playbook: &Playbook) -> String {
    let mut out = serde_json::to_string_pretty(playbook).expect("a playbook always serializes");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_rejects_unknown_fields() {
        let text = r#"{"playbook":{"name":"x","start":"a"},"cards":[
          {"kind":"message","id":"a","text":"hi {x}","then":{"end":"qualified"}},
          {"kind":"livechat","id":"l","online":"o","wait":"2m","offline":"f","on_closed":"a",
           "on_offline":"a","route":{"to":{"agents":["ana"]}}},
          {"kind":"branch","id":"b","rules":[{"when":{"op":"compare","var":"n","cmp":">=","value":10},"to":"a"}],"otherwise":"a"},
          {"kind":"ask","id":"e","text":"Email?","expect":{"pattern":"[A-Z]+"},"then":"a"},
          {"kind":"capture","id":"c","record":{"type":"activity","activity":"call","owner":"agent"},"then":{"goto":"a"}}
        ]}"#;
        let p: Playbook = serde_json::from_str(text).unwrap();
        let again: Playbook = serde_json::from_str(&to_json(&p)).unwrap();
        assert_eq!(p, again);
        let typo = text.replace("\"online\"", "\"onlin\"");
        let err = serde_json::from_str::<Playbook>(&typo)
            .unwrap_err()
            .to_string();
        assert!(err.contains("onlin"), "{err}");
        let zero = text.replace("\"2m\"", "\"0s\"");
        assert!(serde_json::from_str::<Playbook>(&zero).is_err());
    }
}
