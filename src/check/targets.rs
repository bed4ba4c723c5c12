//! E011 and E012: every link and the start name a card that exists.

use std::collections::HashSet;

use super::card_ptr;
use crate::diagnostic::{Code, Diagnostic};
use crate::model::Playbook;

pub(super) fn check(playbook: &Playbook, out: &mut Vec<Diagnostic>) {
    let ids: HashSet<&str> = playbook.cards.iter().map(|c| c.id().as_str()).collect();
    let start = &playbook.playbook.start;
    if !ids.contains(start.as_str()) {
        out.push(
            Diagnostic::new(
                Code::MissingStart,
                format!("the start card `{start}` does not exist"),
            )
            .at("/playbook/start", "no card has this id")
            .with_help(suggest(start.as_str(), &ids).map_or_else(
                || "set `start` to the id of the card the conversation begins with".to_owned(),
                |s| format!("did you mean `{s}`?"),
            )),
        );
    }
    for (i, card) in playbook.cards.iter().enumerate() {
        for link in card.links() {
            if !ids.contains(link.to.as_str()) {
                out.push(
                    Diagnostic::new(
                        Code::UnknownTarget,
                        format!(
                            "card `{}` leads to `{}`, which does not exist",
                            card.id(),
                            link.to
                        ),
                    )
                    .at(format!("{}{}", card_ptr(i), link.field), "unknown card")
                    .with_help(suggest(link.to.as_str(), &ids).map_or_else(
                        || {
                            format!(
                                "add a card with the id `{}`, or point to an existing card",
                                link.to
                            )
                        },
                        |s| format!("did you mean `{s}`?"),
                    )),
                );
            }
        }
    }
}

/// The existing id closest to a misspelt one, if any is close enough.
pub(super) fn suggest<'a>(wrong: &str, ids: &HashSet<&'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for &id in ids {
        let d = edit_distance(wrong, id);
        if d <= wrong.len().max(3) / 3 && best.is_none_or(|(bd, bid)| (d, id) < (bd, bid)) {
            best = Some((d, id));
        }
    }
    best.map(|(_, id)| id)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}
