//! "Did you mean …?": the known name closest to a misspelt one (a card id, a variable).
//!
//! Not a check: E011, E012 and E015 use it for their help line. It must stay cheap per
//! question, since a broken playbook can ask it once per link: with many names it compares
//! only the names next to the misspelling in sorted order and in sorted order of the reversed
//! names (a typo keeps the start or the end of a word), so a question costs O(log n), not
//! O(n), and a playbook with thousands of unknown targets checks in near-linear time.

use std::collections::HashSet;

/// Up to this many names, every one is compared (exact, and cheap enough).
const COMPARE_ALL: usize = 64;
/// With more names, how many neighbours on each side of the misspelling, in each order.
const NEIGHBOURS: usize = 8;
/// Names longer than this get no suggestion: the edit distance costs length², and a
/// 60-character id is not misspelt by accident.
const MAX_LEN: usize = 64;

/// The known names, sorted two ways for neighbour lookups.
pub(super) struct Names<'a> {
    /// The names, sorted.
    sorted: Vec<&'a str>,
    /// Each name reversed, with the name, sorted by the reversed text.
    reversed: Vec<(String, &'a str)>,
}

impl<'a> Names<'a> {
    /// The names to suggest from.
    pub(super) fn new(names: &HashSet<&'a str>) -> Self {
        let mut sorted: Vec<&str> = names.iter().copied().collect();
        sorted.sort_unstable();
        let mut reversed: Vec<(String, &str)> = if sorted.len() > COMPARE_ALL {
            sorted
                .iter()
                .map(|n| (n.chars().rev().collect(), *n))
                .collect()
        } else {
            Vec::new()
        };
        reversed.sort_unstable();
        Self { sorted, reversed }
    }

    /// The known name closest to `wrong`, if one is close enough (an edit distance of at most
    /// a third of its length, at least 1); ties go to the alphabetically first.
    pub(super) fn suggest(&self, wrong: &str) -> Option<&'a str> {
        if wrong.len() > MAX_LEN {
            return None;
        }
        let limit = wrong.len().max(3) / 3;
        let mut best: Option<(usize, &'a str)> = None;
        for id in self.candidates(wrong) {
            if id.len().abs_diff(wrong.len()) > limit * 4 || id.len() > MAX_LEN {
                // Too different in length to be within `limit` edits (a char is ≤ 4 bytes).
                continue;
            }
            let d = edit_distance(wrong, id);
            if d <= limit && best.is_none_or(|(bd, bid)| (d, id) < (bd, bid)) {
                best = Some((d, id));
            }
        }
        best.map(|(_, id)| id)
    }

    /// The names compared with `wrong`: all of them when there are few, else at most
    /// `4 × NEIGHBOURS` (its neighbours in both orders).
    fn candidates(&self, wrong: &str) -> Vec<&'a str> {
        if self.sorted.len() <= COMPARE_ALL {
            return self.sorted.clone();
        }
        let near =
            |at: usize, len: usize| at.saturating_sub(NEIGHBOURS)..(at + NEIGHBOURS).min(len);
        let at = self.sorted.partition_point(|id| *id < wrong);
        let mut out: Vec<&str> = self.sorted[near(at, self.sorted.len())].to_vec();
        let back: String = wrong.chars().rev().collect();
        let at = self
            .reversed
            .partition_point(|(r, _)| r.as_str() < back.as_str());
        out.extend(
            self.reversed[near(at, self.reversed.len())]
                .iter()
                .map(|(_, id)| *id),
        );
        out
    }
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_among_many_names() {
        let many: Vec<String> = (0..5_000).map(|i| format!("card_{i:05}")).collect();
        let mut names: HashSet<&str> = many.iter().map(String::as_str).collect();
        names.insert("welcome");
        names.insert("pricing_page");
        let names = Names::new(&names);
        assert_eq!(names.suggest("welcom"), Some("welcome"));
        assert_eq!(names.suggest("wellcome"), Some("welcome"));
        assert_eq!(names.suggest("xricing_page"), Some("pricing_page"));
        assert_eq!(names.suggest("pricing_pagx"), Some("pricing_page"));
        assert_eq!(names.suggest("card_0042"), Some("card_00042"));
        assert_eq!(names.suggest("nothing_like_it"), None);
    }

    /// Issue 11: comparing every id made 16,000 unknown targets take minutes.
    #[test]
    fn a_question_compares_a_bounded_number_of_names() {
        let many: Vec<String> = (0..20_000).map(|i| format!("c{i}")).collect();
        let names = Names::new(&many.iter().map(String::as_str).collect());
        for wrong in ["c", "c5", "missing123", "zzz", ""] {
            assert!(names.candidates(wrong).len() <= 4 * NEIGHBOURS, "{wrong}");
        }
    }

    #[test]
    fn few_names_are_all_compared() {
        let names = Names::new(&HashSet::from(["end", "welcome"]));
        assert_eq!(names.suggest("nd"), Some("end"));
        assert_eq!(names.suggest("welcme"), Some("welcome"));
        assert_eq!(names.suggest("x"), None);
    }
}
