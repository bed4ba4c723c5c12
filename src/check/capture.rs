//! E016: a capture card has the fields its record needs (a lead or deal: a title, and a
//! person with a name, email or phone, or an organization; an activity: a subject).

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Card, PersonSpec, Playbook, RecordSpec, Template};

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    for (i, card) in playbook.cards.iter().enumerate() {
        let Card::Capture(c) = card else { continue };
        let record = format!("{}/record", card_ptr(i));
        let kind = c.record.type_name();
        let missing = |what: &str| {
            Diagnostic::new(
                Code::CaptureMissingField,
                format!("the {kind} captured by `{}` has no {what}", c.id),
            )
        };
        match &c.record {
            RecordSpec::Lead(l) => {
                if l.title.is_none() {
                    out.push(title(missing("title"), &format!("{record}/title"), kind));
                }
                contact(&l.person, &l.organization, &record, kind, out, missing);
            }
            RecordSpec::Deal(d) => {
                if d.title.is_none() {
                    out.push(title(missing("title"), &format!("{record}/title"), kind));
                }
                contact(&d.person, &d.organization, &record, kind, out, missing);
            }
            RecordSpec::Activity(a) => {
                if a.subject.is_none() {
                    out.push(
                        missing("subject")
                            .at(format!("{record}/subject"), "this activity needs a subject")
                            .with_help("add a subject, e.g. `subject \"Call back {name}\"`"),
                    );
                }
            }
        }
    }
}

/// A missing title, pointed at where it would be written (a source map falls back to the
/// record itself).
fn title(d: Diagnostic, at: &str, kind: &str) -> Diagnostic {
    d.at(at, format!("this {kind} needs a title"))
        .with_help(format!(
            "add a title, e.g. `title \"Demo request ({{email}})\"`; the CRM shows it in its {kind} list"
        ))
}

fn contact(
    person: &Option<PersonSpec>,
    organization: &Option<Template>,
    record: &str,
    kind: &str,
    out: &mut Vec<Diagnostic>,
    missing: impl Fn(&str) -> Diagnostic,
) {
    let has_person = person
        .as_ref()
        .is_some_and(|p| p.name.is_some() || p.email.is_some() || p.phone.is_some());
    if has_person || organization.is_some() {
        return;
    }
    let (at, label) = if person.is_some() {
        (
            format!("{record}/person"),
            "a person with no name, email or phone",
        )
    } else {
        (record.to_owned(), "no person and no organization")
    };
    out.push(
        missing("contact")
            .at(at, label)
            .with_help(format!(
                "a {kind} needs a person (with a name, email or phone) or an organization, e.g. `person email \"{{email}}\"`"
            )),
    );
}
