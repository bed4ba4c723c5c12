//! The part of a file miette is shown for one diagnostic: only the lines its labels touch (with
//! one line of context), each long line cut to windows around the labels.
//!
//! Two reasons. Cost: miette finds a label's line by scanning the source from its start, so
//! handing it the whole file makes each diagnostic cost the file's size, and a file with
//! thousands of diagnostics quadratic time. Safety: miette pads with `{:width$}`, which panics
//! past column 65,535, so no line it sees may be that long. Line numbers and the
//! `[file:line:col]` header stay those of the real file: the excerpt reports them through
//! [`SpanContents`]. This module decides how much of the file is shown, never what a
//! diagnostic says.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::source::{SourceFile, Span};

/// Lines up to this many bytes are shown whole.
const MAX_LINE: usize = 200;
/// On a longer line, how many bytes are kept on each side of a label's start and end.
const WINDOW: usize = 40;
/// A label over more lines than this is shown by its first line only, so that one diagnostic
/// never prints a whole long card (or file).
const MAX_LABEL_LINES: usize = 12;
/// What stands for the text cut out of a long line.
const CUT: &str = "…";

/// One file line as the excerpt holds it.
#[derive(Debug)]
struct Line {
    /// Its index in the file (from 0).
    real: usize,
    /// Which run of consecutive file lines it belongs to; miette may only be given one run at a
    /// time, or it would number the lines after a gap wrongly.
    block: usize,
    /// Where it starts in the excerpt's text.
    at: usize,
    /// Where its text ends in the excerpt (before its `\n`).
    end: usize,
    /// The pieces of the file line kept, in order: (file start, file end, excerpt start).
    pieces: Vec<(usize, usize, usize)>,
}

/// A few lines of a file, possibly cut, that miette renders as if they were the file.
#[derive(Debug)]
pub(super) struct Excerpt<'f> {
    file: &'f SourceFile,
    text: String,
    lines: Vec<Line>,
}

impl<'f> Excerpt<'f> {
    /// The excerpt that shows `spans` (byte spans of `file`, clamped to it), and those spans
    /// moved into the excerpt's text, in the same order.
    pub(super) fn new(file: &'f SourceFile, spans: &[Span]) -> (Self, Vec<Span>) {
        let last_line = file.line_count() - 1;
        // Each span clamped to the text and to character boundaries, with its first and last
        // line; a span over too many lines is cut to its first line.
        let spans: Vec<(Span, usize, usize)> = spans
            .iter()
            .map(|s| {
                let start = file.floor_char(s.start);
                let mut end = file.ceil_char(s.end.max(start));
                let first = file.line_of(start);
                let mut last = file.line_of(if end > start { end - 1 } else { start });
                if last - first >= MAX_LABEL_LINES {
                    end = file.line_span(first).end.max(start);
                    last = first;
                }
                (Span::new(start, end), first, last)
            })
            .collect();

        // The lines to show: each span's lines and one more on each side, as runs of
        // consecutive lines (touching runs join).
        let mut ranges: Vec<(usize, usize)> = spans
            .iter()
            .map(|&(_, first, last)| (first.saturating_sub(1), (last + 1).min(last_line)))
            .collect();
        ranges.sort_unstable();
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (a, b) in ranges {
            match runs.last_mut() {
                Some(run) if a <= run.1 + 1 => run.1 = run.1.max(b),
                _ => runs.push((a, b)),
            }
        }

        // Where the labels start and end: a cut line keeps the text around these.
        let mut points: Vec<usize> = spans
            .iter()
            .flat_map(|&(s, _, _)| [s.start, s.end])
            .collect();
        points.sort_unstable();

        let mut excerpt = Excerpt {
            file,
            text: String::new(),
            lines: Vec::new(),
        };
        for (block, &(a, b)) in runs.iter().enumerate() {
            for real in a..=b {
                excerpt.push_line(real, block, &points);
            }
        }
        let moved = spans
            .iter()
            .map(|&(s, first, last)| {
                let start = excerpt.to_excerpt(first, s.start);
                let end = excerpt.to_excerpt(last, s.end).max(start);
                Span::new(start, end)
            })
            .collect();
        (excerpt, moved)
    }

    /// Appends file line `real`, cut around the `points` on it when it is long.
    fn push_line(&mut self, real: usize, block: usize, points: &[usize]) {
        let file = self.file;
        let whole = file.line_span(real);
        let mut windows: Vec<(usize, usize)> = Vec::new();
        if whole.len() <= MAX_LINE {
            windows.push((whole.start, whole.end));
        } else {
            let from = points.partition_point(|&p| p < whole.start);
            let to = points.partition_point(|&p| p <= whole.end);
            for &p in &points[from..to] {
                windows.push((
                    file.floor_char(p.saturating_sub(WINDOW).max(whole.start)),
                    file.ceil_char((p + WINDOW).min(whole.end)),
                ));
            }
            if windows.is_empty() {
                // A context line: its beginning says enough.
                windows.push((whole.start, file.ceil_char(whole.start + 2 * WINDOW)));
            }
        }
        let at = self.text.len();
        let mut pieces: Vec<(usize, usize, usize)> = Vec::new();
        let mut shown_to = whole.start;
        for (s, e) in windows {
            if let Some(last) = pieces.last_mut()
                && s <= last.1
            {
                // Overlapping windows (points are sorted, so starts are too) join.
                if e > last.1 {
                    self.text.push_str(&file.text()[last.1..e]);
                    last.1 = e;
                    shown_to = e;
                }
                continue;
            }
            if s > shown_to {
                self.text.push_str(CUT);
            }
            pieces.push((s, e, self.text.len()));
            self.text.push_str(&file.text()[s..e]);
            shown_to = e;
        }
        if shown_to < whole.end {
            self.text.push_str(CUT);
        }
        let end = self.text.len();
        if whole.end < file.text().len() {
            self.text.push('\n');
        }
        self.lines.push(Line {
            real,
            block,
            at,
            end,
            pieces,
        });
    }

    /// Where byte `offset` of file line `real` is in the excerpt.
    fn to_excerpt(&self, real: usize, offset: usize) -> usize {
        let i = self.lines.partition_point(|l| l.real < real);
        let Some(line) = self.lines.get(i).filter(|l| l.real == real) else {
            return self.text.len();
        };
        if offset > self.file.line_span(real).end {
            // Past the line's text: its newline.
            return (line.end + 1).min(self.text.len());
        }
        let k = line.pieces.partition_point(|p| p.0 <= offset);
        match k.checked_sub(1).map(|k| line.pieces[k]) {
            Some((s, e, x)) => x + offset.min(e) - s,
            None => line.pieces.first().map_or(line.at, |p| p.2),
        }
    }

    /// The index of the excerpt line that holds excerpt offset `at`.
    fn line_at(&self, at: usize) -> usize {
        self.lines.partition_point(|l| l.at <= at).saturating_sub(1)
    }

    /// The file offset that excerpt offset `at` stands for (the nearest kept byte).
    fn to_file(&self, at: usize) -> usize {
        let line = &self.lines[self.line_at(at)];
        let k = line.pieces.partition_point(|p| p.2 <= at);
        match k.checked_sub(1).map(|k| line.pieces[k]) {
            Some((s, e, x)) => (s + (at - x)).min(e),
            None => self.file.line_span(line.real).start,
        }
    }
}

impl SourceCode for Excerpt<'_> {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let start = span.offset();
        let end = start.saturating_add(span.len());
        if self.lines.is_empty() || end > self.text.len() {
            return Err(MietteError::OutOfBounds);
        }
        let first = self.line_at(start);
        let last = self.line_at(if end > start { end - 1 } else { start });
        let block = self.lines[first].block;
        if self.lines[last].block != block {
            return Err(MietteError::OutOfBounds);
        }
        let mut from = first;
        while from > 0 && first - from < context_lines_before && self.lines[from - 1].block == block
        {
            from -= 1;
        }
        let mut to = last;
        while to + 1 < self.lines.len()
            && to - last < context_lines_after
            && self.lines[to + 1].block == block
        {
            to += 1;
        }
        // Like miette's own sources: without context the data is the span itself, with a column;
        // with context it is whole lines, starting at column 0.
        let (data_start, column) = if context_lines_before == 0 {
            let col = self.file.line_col(self.to_file(start)).col - 1;
            (start, col)
        } else {
            (self.lines[from].at, 0)
        };
        let data_end = if context_lines_after == 0 {
            end
        } else {
            self.lines.get(to + 1).map_or(self.text.len(), |l| l.at)
        };
        let line = if context_lines_before == 0 {
            self.lines[first].real
        } else {
            self.lines[from].real
        };
        Ok(Box::new(MietteSpanContents::new_named(
            self.file.name().to_owned(),
            &self.text.as_bytes()[data_start..data_end],
            SourceSpan::new(data_start.into(), data_end - data_start),
            line,
            column,
            to - from + 1,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_lines_around_labels() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let file = SourceFile::new("f", text.clone());
        let at = text.find("line 50").unwrap_or_default();
        let (ex, spans) = Excerpt::new(&file, &[Span::new(at, at + 7)]);
        assert_eq!(ex.text, "line 49\nline 50\nline 51\n");
        assert_eq!(&ex.text[spans[0].start..spans[0].end], "line 50");
        let got = ex
            .read_span(&SourceSpan::new(spans[0].start.into(), 7), 1, 1)
            .ok()
            .map(|c| (c.line(), c.line_count()));
        assert_eq!(got, Some((48, 3)));
    }

    #[test]
    fn cuts_a_long_line_around_the_label() {
        let text = format!("x\n\"{}\" -> nowhere\n", "a".repeat(70_000));
        let file = SourceFile::new("f", text.clone());
        let at = text.find("nowhere").unwrap_or_default();
        let (ex, spans) = Excerpt::new(&file, &[Span::new(at, at + 7)]);
        assert!(ex.text.len() < 200, "{}", ex.text);
        assert_eq!(&ex.text[spans[0].start..spans[0].end], "nowhere");
        let head = ex.read_span(&SourceSpan::new(spans[0].start.into(), 7), 0, 0);
        let col = head.ok().map(|c| (c.line(), c.column()));
        assert_eq!(col, Some((1, file.line_col(at).col - 1)));
    }

    #[test]
    fn refuses_a_span_across_two_runs() {
        let text: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let file = SourceFile::new("f", text);
        let (ex, spans) = Excerpt::new(&file, &[Span::new(0, 4), Span::new(150, 152)]);
        let across = SourceSpan::new(spans[0].start.into(), spans[1].end - spans[0].start);
        assert!(ex.read_span(&across, 1, 1).is_err());
    }
}
