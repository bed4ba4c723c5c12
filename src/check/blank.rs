//! E006 for texts that must show something: the playbook's name, the bot's name, every answer
//! button's label, and a capture card's title, subject, person fields and organization may not
//! be empty or only spaces (a visitor would see a nameless bot or a blank button; the CRM would
//! get a lead titled "" whose contact is nobody). One pass for both formats, since the DSL and
//! JSON both allow `""`. A field that is absent is E016's business, not this pass's.

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Card, PersonSpec, Playbook, RecordSpec, Template};

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    let blank = |s: &str| s.trim().is_empty();
    let header = &playbook.playbook;
    if blank(&header.name) {
        out.push(
            Diagnostic::new(Code::InvalidValue, "the playbook's name is empty")
                .at("/playbook/name", "an empty name")
                .with_help("name the playbook as admins should see it, e.g. `playbook \"Website demo requests\"`"),
        );
    }
    if header.bot.as_deref().is_some_and(blank) {
        out.push(
            Diagnostic::new(Code::InvalidValue, "the bot's name is empty")
                .at("/playbook/bot", "an empty name")
                .with_help("give the bot a name visitors see (`bot \"Ava\"`), or leave `bot` out"),
        );
    }
    for (i, card) in playbook.cards.iter().enumerate() {
        if let Card::Capture(c) = card {
            for (field, what) in capture_texts(&c.record) {
                out.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("the {what} of the {} captured by `{}` is empty", c.record.type_name(), c.id),
                    )
                    .at(format!("{}/record/{field}", card_ptr(i)), "an empty text")
                    .with_help(if matches!(field, "title" | "subject") {
                        format!("write the {what} the CRM shows (a variable like `{{name}}` is fine); it is required")
                    } else {
                        format!("write the {what} (a variable like `{{name}}` is fine), or leave the field out")
                    }),
                );
            }
            continue;
        }
        let Card::Question(q) = card else { continue };
        for (j, a) in q.answers.iter().enumerate() {
            if blank(&a.label) {
                out.push(
                    Diagnostic::new(
                        Code::InvalidValue,
                        format!("the question `{}` has an answer with an empty label", q.id),
                    )
                    .at(
                        format!("{}/answers/{j}/label", card_ptr(i)),
                        "a blank button",
                    )
                    .with_help("write the text the visitor clicks or types"),
                );
            }
        }
    }
}

/// The blank texts of a record that must show something: (pointer below the record, name).
fn capture_texts(record: &RecordSpec) -> Vec<(&'static str, &'static str)> {
    let blank = |t: &Option<Template>| t.as_ref().is_some_and(|t| t.source().trim().is_empty());
    let mut fields: Vec<(&'static str, &'static str, bool)> = Vec::new();
    let person = |p: &Option<PersonSpec>| -> [(&'static str, &'static str, bool); 3] {
        let p = p.as_ref();
        [
            (
                "person/name",
                "person's name",
                p.is_some_and(|p| blank(&p.name)),
            ),
            (
                "person/email",
                "person's email",
                p.is_some_and(|p| blank(&p.email)),
            ),
            (
                "person/phone",
                "person's phone",
                p.is_some_and(|p| blank(&p.phone)),
            ),
        ]
    };
    match record {
        RecordSpec::Lead(l) => {
            fields.push(("title", "title", blank(&l.title)));
            fields.extend(person(&l.person));
            fields.push(("organization", "organization", blank(&l.organization)));
        }
        RecordSpec::Deal(d) => {
            fields.push(("title", "title", blank(&d.title)));
            fields.extend(person(&d.person));
            fields.push(("organization", "organization", blank(&d.organization)));
        }
        RecordSpec::Activity(a) => fields.push(("subject", "subject", blank(&a.subject))),
    }
    fields
        .into_iter()
        .filter(|&(_, _, b)| b)
        .map(|(f, w, _)| (f, w))
        .collect()
}
