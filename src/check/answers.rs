//! E017 and E018: a question has answer buttons, and no two of them look the same to the
//! engine (which matches a typed answer trimmed and ignoring ASCII case).

use std::collections::HashMap;

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Card, Playbook};

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    for (i, card) in playbook.cards.iter().enumerate() {
        let Card::Question(q) = card else { continue };
        if q.answers.is_empty() {
            out.push(
                Diagnostic::new(
                    Code::NoAnswers,
                    format!("the question `{}` has no answers", q.id),
                )
                .at(format!("{}/answers", card_ptr(i)), "no answer buttons")
                .with_help(
                    "add at least one answer button that leads on, or use an `ask` card for typed input",
                ),
            );
        }
        let mut first: HashMap<String, usize> = HashMap::new();
        for (j, a) in q.answers.iter().enumerate() {
            let key = a.label.trim().to_ascii_lowercase();
            if let Some(&k) = first.get(&key) {
                out.push(
                    Diagnostic::new(
                        Code::DuplicateAnswer,
                        format!(
                            "the question `{}` has two answers labelled `{}`",
                            q.id,
                            a.label.trim()
                        ),
                    )
                    .at(
                        format!("{}/answers/{j}/label", card_ptr(i)),
                        "this answer can never be chosen by typing",
                    )
                    .at(
                        format!("{}/answers/{k}/label", card_ptr(i)),
                        "same label as this one",
                    )
                    .with_help(
                        "labels are compared trimmed and ignoring case; give each answer its own label",
                    ),
                );
            } else {
                first.insert(key, j);
            }
        }
    }
}
