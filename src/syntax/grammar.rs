//! The pest parser generated from `grammar/playbook.pest`, and syntax errors in English.
//!
//! Owns the mapping from grammar rule names to words an admin understands ("expected a card
//! id", not "expected card_id"). Must not build model values: that is `lower`'s job.

use pest::Parser as _;
use pest::iterators::Pair;

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;

/// The generated parser.
#[derive(pest_derive::Parser)]
#[grammar = "grammar/playbook.pest"]
pub(crate) struct PlaybookParser;

/// Parses a whole file, or says (once) what was expected where.
pub(crate) fn parse_file(text: &str) -> Result<Pair<'_, Rule>, Diagnostic> {
    match PlaybookParser::parse(Rule::file, text) {
        Ok(mut pairs) => pairs.next().ok_or_else(|| {
            Diagnostic::new(Code::Syntax, "the file could not be read").at_span(Span::new(0, 0), "")
        }),
        Err(e) => Err(syntax_error(text, e)),
    }
}

fn syntax_error(text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let mut pos = pos.min(text.len());
    // At the end of the file, point just after the last thing written rather than at an
    // empty last line.
    let at_eof = text[pos..].trim().is_empty();
    if at_eof {
        pos = text.trim_end().len();
    }
    let rest = &text[pos..];
    // The span covers the offending token (a word, or one character), so the underline shows
    // what was found.
    let found_len = rest
        .char_indices()
        .find(|&(i, c)| i > 0 && !(c.is_alphanumeric() || c == '_' || c == '-'))
        .map_or(rest.len(), |(i, _)| i)
        .min(rest.chars().next().map_or(0, |c| {
            if c.is_alphanumeric() || c == '_' {
                usize::MAX
            } else {
                c.len_utf8()
            }
        }));
    let found_len = if rest.starts_with("->") { 2 } else { found_len };
    let span = Span::new(pos, if at_eof { pos } else { pos + found_len });
    if rest.starts_with('"') && !rest[1..].lines().next().is_some_and(|l| l.contains('"')) {
        return Diagnostic::new(Code::Syntax, "this string is never closed")
            .at_span(Span::new(pos, pos + 1), "the string starts here")
            .with_help("end the string with `\"` on the same line; write `\\n` for a line break");
    }
    let (positives, negatives) = match &e.variant {
        pest::error::ErrorVariant::ParsingError {
            positives,
            negatives,
        } => (positives.clone(), negatives.clone()),
        pest::error::ErrorVariant::CustomError { .. } => (Vec::new(), Vec::new()),
    };
    let mut words: Vec<String> = Vec::new();
    let cards = [
        Rule::kw_message,
        Rule::kw_question,
        Rule::kw_ask,
        Rule::kw_branch,
        Rule::kw_livechat,
        Rule::kw_capture,
        Rule::kw_consent,
        Rule::kw_end,
    ];
    let is_card_start = cards.iter().all(|r| positives.contains(r));
    if is_card_start {
        words.push(
            "a card (`message`, `question`, `ask`, `branch`, `livechat`, `capture`, `consent` \
             or `end`)"
                .into(),
        );
    }
    for r in &positives {
        if is_card_start && (cards.contains(r) || *r == Rule::kw_playbook) {
            continue;
        }
        let w = describe(*r);
        if !words.contains(&w) {
            words.push(w);
        }
    }
    let found = if at_eof {
        "the end of the file".to_owned()
    } else {
        let t = &text[span.start..span.end];
        format!("`{}`", t.escape_debug())
    };
    let message = if words.is_empty() {
        let neg: Vec<_> = negatives.iter().map(|r| describe(*r)).collect();
        if neg.is_empty() {
            format!("unexpected {found}")
        } else {
            format!("unexpected {}", join(&neg))
        }
    } else {
        format!("expected {}, found {found}", join(&words))
    };
    let mut d = Diagnostic::new(Code::Syntax, message).at_span(span, "");
    if is_card_start && rest.starts_with('}') {
        d = d.with_help("this `}` closes nothing; check the braces of the card above");
    } else if positives.contains(&Rule::otherwise) || positives.contains(&Rule::kw_else) {
        d = d.with_help("a branch ends with `else -> card` after its `when` rules");
    }
    d
}

fn join(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// A grammar rule in words.
fn describe(rule: Rule) -> String {
    let s = match rule {
        Rule::card_id => "a card id",
        Rule::target => "the id of the card to go to",
        Rule::var => "a variable name",
        Rule::word => "a word",
        Rule::string => "a string in double quotes",
        Rule::duration => "a duration like `30s`, `5m` or `1h30m`",
        Rule::count => "a whole number",
        Rule::number => "a number",
        Rule::arrow => "`->`",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::comma => "`,`",
        Rule::outcome => "an outcome (`qualified`, `disqualified` or `none`)",
        Rule::input_kind | Rule::input_pattern => {
            "an input kind (`text`, `email`, `phone`, `number` or `pattern \"regex\"`)"
        }
        Rule::cmp_op => "a comparison (`<`, `<=`, `>` or `>=`)",
        Rule::availability => "`available` or `anytime`",
        Rule::assignment => "`manual`, `round_robin` or `least_busy`",
        Rule::record_type => "a record type (`lead`, `deal` or `activity`)",
        Rule::activity_type => {
            "an activity type (`call`, `meeting`, `task`, `email`, `deadline` or `lunch`)"
        }
        Rule::link_to => "`lead` or `deal`",
        Rule::consent_mode => "`explicit` or `implicit`",
        Rule::header => "the `playbook` header",
        // pest names the whole file when nothing at the top level starts here.
        Rule::file => {
            "the `playbook` header or a card (`message`, `question`, `ask`, `branch`, `livechat`, `capture`, `consent` or `end`)"
        }
        Rule::next => "`->` or `end`",
        Rule::goto => "`->`",
        Rule::end_next => "`end`",
        Rule::save => "`save`",
        Rule::idle => "`idle`",
        Rule::nudge => "`nudge`",
        Rule::answer => "an answer (`\"label\" -> card`)",
        Rule::free_text => "`free text`",
        Rule::expect => "`expect`",
        Rule::when_rule => "`when`",
        Rule::otherwise => "`else`",
        Rule::is_not_set | Rule::is_set | Rule::is_value => "`is`",
        Rule::in_values => "`in`",
        Rule::compare => "a comparison (`<`, `<=`, `>` or `>=`)",
        Rule::agents => "`agents`",
        Rule::team => "`team`",
        Rule::owner_user => "`user`",
        Rule::owner_pool => "`pool`",
        Rule::person_name => "`name`",
        Rule::person_email => "`email`",
        Rule::person_phone => "`phone`",
        Rule::EOI => "the end of the file",
        other => {
            let name = format!("{other:?}");
            let base = name
                .strip_prefix("kw_")
                .or_else(|| name.strip_prefix("h_"))
                .or_else(|| name.strip_prefix("lc_"))
                .or_else(|| name.strip_prefix("f_"))
                .or_else(|| name.strip_prefix("c_"))
                .unwrap_or(&name);
            let word = base.split('_').next().unwrap_or(base);
            return format!("`{word}`");
        }
    };
    s.to_owned()
}
