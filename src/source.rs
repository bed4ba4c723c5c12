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

/// A named source text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The name shown in diagnostics (usually the path as given).
    pub name: String,
    /// The text.
    pub text: String,
}

impl SourceFile {
    /// A source file.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// The line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = before[line_start..].chars().count() + 1;
        LineCol { line, col }
    }
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
}
