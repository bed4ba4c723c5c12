//! Source files, byte spans, and the map from model paths to spans.
//!
//! Checks speak about the model ("the `to` of the second answer of card 3"), as a JSON
//! pointer such as `/cards/3/answers/1/to`. Both readers (the DSL parser and the JSON reader)
//! record where each pointer was written, so one diagnostic renders against either format.

use std::collections::HashMap;

/// A byte range in a source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the span is empty (points between two bytes).
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

/// A line and column, both counted from 1; the column counts characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LineCol {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

/// A named source text, with an index of its lines so that a position costs a binary search,
/// not a scan from the start (a file with thousands of diagnostics would be quadratic).
#[derive(Debug, Clone)]
pub struct SourceFile {
    name: String,
    text: String,
    /// Byte offset of the start of each line; the first is 0.
    line_starts: Vec<usize>,
    /// `chars[k]`: how many characters `text[..k * CHAR_STRIDE]` holds (counted as bytes that
    /// start a character, so it is defined at any byte offset).
    chars: Vec<usize>,
}

/// Bytes between two character-count checkpoints: a column costs at most this much counting.
const CHAR_STRIDE: usize = 1024;

/// Whether a byte starts a UTF-8 character (is not a continuation byte).
fn starts_char(b: u8) -> bool {
    (b as i8) >= -0x40
}

impl SourceFile {
    /// A source file.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let bytes = text.as_bytes();
        let line_starts = std::iter::once(0)
            .chain(newlines(bytes).map(|i| i + 1))
            .collect();
        let mut chars = Vec::with_capacity(bytes.len() / CHAR_STRIDE + 1);
        let mut count = 0;
        chars.push(0);
        for block in bytes.chunks(CHAR_STRIDE) {
            count += block.iter().filter(|&&b| starts_char(b)).count();
            chars.push(count);
        }
        Self {
            name: name.into(),
            text,
            line_starts,
            chars,
        }
    }

    /// The name shown in diagnostics (usually the path as given).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many lines the text has (an empty text has one, empty, line).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }

    /// The line (from 0) that holds byte `offset` (clamped to the text); a `\n` belongs to the
    /// line it ends.
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.text.len());
        self.line_starts.partition_point(|&s| s <= offset) - 1
    }

    /// The bytes of line `line` (from 0, clamped), without its `\n`.
    pub fn line_span(&self, line: usize) -> Span {
        let line = line.min(self.line_starts.len() - 1);
        let start = self.line_starts[line];
        let end = self
            .line_starts
            .get(line + 1)
            .map_or(self.text.len(), |next| next - 1);
        Span::new(start, end)
    }

    /// The nearest character boundary at or before `offset` (clamped to the text).
    pub fn floor_char(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        offset
    }

    /// The nearest character boundary at or after `offset` (clamped to the text).
    pub fn ceil_char(&self, offset: usize) -> usize {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset += 1;
        }
        offset
    }

    /// How many characters come before byte `offset` (a character boundary).
    fn chars_before(&self, offset: usize) -> usize {
        let k = offset / CHAR_STRIDE;
        let from = k * CHAR_STRIDE;
        self.chars[k]
            + self.text.as_bytes()[from..offset]
                .iter()
                .filter(|&&b| starts_char(b))
                .count()
    }

    /// The line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = self.floor_char(offset);
        let line = self.line_of(offset);
        let col = self.chars_before(offset) - self.chars_before(self.line_starts[line]) + 1;
        LineCol {
            line: line + 1,
            col,
        }
    }
}

/// The offsets of every `\n` in `bytes`.
fn newlines(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter_map(|(i, &b)| (b == b'\n').then_some(i))
}

/// Where each part of the model was written, keyed by JSON pointer (`/cards/0/text`).
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    spans: HashMap<String, Span>,
}

impl SourceMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records where `pointer` was written.
    pub fn insert(&mut self, pointer: impl Into<String>, span: Span) {
        self.spans.insert(pointer.into(), span);
    }

    /// The span of `pointer`, or of its nearest recorded parent (`/cards/3/answers/1/to`
    /// falls back to `/cards/3/answers/1`, then `/cards/3`…).
    pub fn find(&self, pointer: &str) -> Option<Span> {
        let mut p = pointer;
        loop {
            if let Some(span) = self.spans.get(p) {
                return Some(*span);
            }
            match p.rfind('/') {
                Some(0) | None => return self.spans.get("").copied(),
                Some(i) => p = &p[..i],
            }
        }
    }

    /// The span of `pointer` itself, without falling back to a parent.
    pub fn exact(&self, pointer: &str) -> Option<Span> {
        self.spans.get(pointer).copied()
    }

    /// How many pointers are recorded.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Escapes one JSON pointer segment (`~` → `~0`, `/` → `~1`), as RFC 6901 says.
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nearest_parent() {
        let mut m = SourceMap::new();
        m.insert("/cards/3", Span::new(10, 20));
        m.insert("/cards/3/answers/1/to", Span::new(15, 17));
        assert_eq!(m.find("/cards/3/answers/1/to"), Some(Span::new(15, 17)));
        assert_eq!(m.find("/cards/3/answers/0/to"), Some(Span::new(10, 20)));
        assert_eq!(m.find("/cards/4"), None);
    }

    #[test]
    fn line_col_counts_chars() {
        let f = SourceFile::new("x", "ab\ncé d");
        assert_eq!(f.line_col(0), LineCol { line: 1, col: 1 });
        assert_eq!(f.line_col(6), LineCol { line: 2, col: 3 });
        assert_eq!(f.line_col(100), LineCol { line: 2, col: 5 });
    }

    #[test]
    fn line_col_matches_a_scan_across_checkpoints() {
        // Long lines of multi-byte characters cross many checkpoints at odd places.
        let text = format!("é{}\n\n{}ü\nx", "aé".repeat(1500), "ß".repeat(2000));
        let f = SourceFile::new("x", text.clone());
        for offset in (0..=text.len() + 2).step_by(7) {
            let mut at = offset.min(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let start = before.rfind('\n').map_or(0, |i| i + 1);
            let col = before[start..].chars().count() + 1;
            assert_eq!(f.line_col(offset), LineCol { line, col }, "at {offset}");
        }
    }
}
