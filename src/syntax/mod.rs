//! DSL text → model (pest) and model → DSL text (formatter); the JSON reader with spans.
//!
//! pest lives here only. The pipeline is `grammar` (text → parse tree, syntax errors in
//! English) → `lower` (parse tree → [`Playbook`] + [`SourceMap`], every lowering error
//! collected) and, the other way, `print` (model → canonical DSL, with comments put back by
//! [`format`]). `json` reads the JSON form with the same kind of source map. Nothing here
//! checks whole-playbook rules (targets exist, one live chat per path…): that is `check`.

mod file;
mod grammar;
mod json;
mod lower;
mod print;
mod strings;

pub use file::{ReadError, read_bytes, read_text};

use crate::diagnostic::{Code, Diagnostic};
use crate::model::Playbook;
use crate::source::{SourceMap, Span};

/// The largest playbook file accepted (10 MiB), so a stray huge file fails fast.
pub const MAX_FILE_BYTES: usize = 10 * 1024 * 1024;

/// Parses DSL text into a playbook and the map of where each part was written.
///
/// A syntax error stops parsing (one [`Code::Syntax`] diagnostic); past the grammar, every
/// bad value (duration, template, pattern, id, duplicate or missing field) is reported.
pub fn parse(text: &str) -> Result<(Playbook, SourceMap), Vec<Diagnostic>> {
    let file = grammar::parse_file(text).map_err(|d| vec![d])?;
    lower::lower(file)
}

/// Reads the JSON form (the model's serde format; a top-level `"$schema"` key is ignored),
/// with a source map of every value's span.
pub fn parse_json(text: &str) -> Result<(Playbook, SourceMap), Vec<Diagnostic>> {
    json::parse_json(text)
}

/// Reads a playbook file: `.json` as JSON, anything else as the DSL.
pub fn read(name: &str, text: &str) -> Result<(Playbook, SourceMap), Vec<Diagnostic>> {
    if text.len() > MAX_FILE_BYTES {
        return Err(vec![
            Diagnostic::new(
                Code::TooLarge,
                format!(
                    "the file is {} bytes; a playbook may be at most {MAX_FILE_BYTES}",
                    text.len()
                ),
            )
            .at_span(Span::new(0, 0), "")
            .with_help("split the playbook, or check that this is the right file"),
        ]);
    }
    if name.to_ascii_lowercase().ends_with(".json") {
        parse_json(text)
    } else {
        parse(text)
    }
}

/// The canonical DSL text of a playbook (fixed field order, two-space indent, one empty line
/// between cards). `parse(&to_dsl(p))` gives `p` back.
pub fn to_dsl(playbook: &Playbook) -> String {
    print::render(&print::lines(playbook))
}

/// The `#` comments of DSL text that `new` would lose if it replaced `old`: each comment of
/// `old` not found in `new` (counted, so two equal comments need two). `fmt` refuses such a
/// replacement unless forced, since the model (and JSON) has no place for comments.
pub fn lost_comments<'a>(old: &'a str, new: &str) -> Vec<&'a str> {
    let mut kept: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for c in print::comment_texts(new) {
        *kept.entry(c).or_default() += 1;
    }
    print::comment_texts(old)
        .into_iter()
        .filter(|c| match kept.get_mut(c) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
        .collect()
}

/// Re-formats DSL text canonically, keeping its `#` comments: a comment alone on its line
/// stays before what follows it, a comment at the end of a line stays on that line.
/// Formatting twice changes nothing.
pub fn format(text: &str) -> Result<String, Vec<Diagnostic>> {
    let (playbook, map) = parse(text)?;
    Ok(print::with_comments(&playbook, text, &map))
}
