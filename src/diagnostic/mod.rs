//! Diagnostics: what is wrong with a playbook, where, and how to fix it.
//!
//! Every diagnostic has a stable [`Code`]. Rendering (rustc-like text through miette, or JSON
//! for editors) happens at the edge, against the [`SourceFile`] and [`SourceMap`] it came from.
//! Rendering never panics and costs the size of what it shows, not of the file: miette only
//! sees an [`excerpt`] of it.

mod excerpt;

use std::fmt;

use serde::Serialize;

use crate::source::{LineCol, SourceFile, SourceMap, Span};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The playbook runs, but probably not as meant.
    Warning,
    /// The playbook cannot run.
    Error,
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $summary:literal;)*) => {
        /// The stable code of each kind of diagnostic (`E0xx` errors, `W0xx` warnings).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(
                #[doc = $summary]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written (`E011`).
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            /// Whether this code is an error or a warning.
            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev),* }
            }

            /// One line saying what the code means.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary),* }
            }
        }
    };
}

codes! {
    Syntax = "E001", Error, "The DSL text does not follow the grammar.";
    Json = "E002", Error, "The JSON text is malformed or does not match the playbook format.";
    InvalidDuration = "E003", Error, "A duration is malformed, zero, or longer than a year.";
    InvalidTemplate = "E004", Error, "A text has an unbalanced `{` or `}`, or braces around something that is not a variable name.";
    InvalidPattern = "E005", Error, "An `ask` card's pattern is not a valid regular expression.";
    InvalidValue = "E006", Error, "A value is out of range, blank, or of the wrong kind (an id, a number, a count; a name, label, title or contact that is empty).";
    TooLarge = "E007", Error, "The file is larger than the 10 MiB a playbook may be.";
    DuplicateCard = "E010", Error, "Two cards have the same id.";
    UnknownTarget = "E011", Error, "A card leads to a card id that does not exist.";
    MissingStart = "E012", Error, "The header's start card does not exist.";
    DeadEnd = "E013", Error, "A card that is not an end has no way on.";
    TwoLiveChats = "E014", Error, "A path from the start meets two live-chat cards (or one live-chat card twice).";
    UnsetVariable = "E015", Error, "A template or condition reads a variable that no path sets.";
    CaptureMissingField = "E016", Error, "A capture card lacks a required field.";
    NoAnswers = "E017", Error, "A question has no answer buttons.";
    DuplicateAnswer = "E018", Error, "A question has two answers with the same label.";
    SpinningLoop = "E019", Error, "A loop of cards never waits for the visitor, so it would run forever.";
    SystemVariable = "E020", Error, "A card saves to a variable the engine provides (`channel`, `page_url`…).";
    TooManySteps = "E021", Error, "A run of cards that never waits for the visitor is longer than `max steps`, so the engine would stop it.";
    Unreachable = "W001", Warning, "No path from the start reaches this card.";
    MaybeUnset = "W002", Warning, "A template or condition reads a variable that some paths leave unset.";
    UnlinkedActivity = "W003", Warning, "An activity links to a lead or deal that some paths have not made yet.";
    UnknownDeskName = "W004", Warning, "A live chat routes to a team or agent, or a capture names a pool, that the server's config does not have (`check --config`, `serve`).";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Where a label points: a byte span, or a place in the model that a [`SourceMap`] resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A span in the source text (syntax errors know these).
    Span(Span),
    /// A JSON pointer into the model (`/cards/3/answers/1/to`); checks know these.
    Pointer(String),
}

/// A marked place in the source with a short text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    /// Where.
    pub at: Location,
    /// What about it (may be empty).
    pub text: String,
}

impl Label {
    /// A label at a model path.
    pub fn pointer(pointer: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            at: Location::Pointer(pointer.into()),
            text: text.into(),
        }
    }

    /// A label at a span.
    pub fn span(span: Span, text: impl Into<String>) -> Self {
        Self {
            at: Location::Span(span),
            text: text.into(),
        }
    }
}

/// One problem found in a playbook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The stable code; also gives the severity.
    pub code: Code,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where; the first label is the primary one.
    pub labels: Vec<Label>,
    /// How to fix it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a message and no labels yet.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            labels: Vec::new(),
            help: None,
        }
    }

    /// Adds a label.
    pub fn with_label(mut self, label: Label) -> Self {
        self.labels.push(label);
        self
    }

    /// Adds a label at a model path.
    pub fn at(self, pointer: impl Into<String>, text: impl Into<String>) -> Self {
        self.with_label(Label::pointer(pointer, text))
    }

    /// Adds a label at a span.
    pub fn at_span(self, span: Span, text: impl Into<String>) -> Self {
        self.with_label(Label::span(span, text))
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The severity, from the code.
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }

    fn resolve(&self, map: &SourceMap) -> Vec<(Span, &str)> {
        self.labels
            .iter()
            .filter_map(|l| {
                let span = match &l.at {
                    Location::Span(s) => Some(*s),
                    Location::Pointer(p) => map.find(p),
                };
                span.map(|s| (s, l.text.as_str()))
            })
            .collect()
    }

    /// Renders like rustc, without colour (stable for snapshots and logs).
    pub fn render(&self, file: &SourceFile, map: &SourceMap) -> String {
        self.render_with(file, map, miette::GraphicalTheme::unicode_nocolor())
    }

    /// Renders like rustc with a given miette theme (colour for terminals).
    pub fn render_with(
        &self,
        file: &SourceFile,
        map: &SourceMap,
        theme: miette::GraphicalTheme,
    ) -> String {
        let resolved = self.resolve(map);
        // A diagnostic with very many labels (a long spinning loop has one per link) shows the
        // first few: miette's layout costs labels × lines, and a screen of arrows helps nobody.
        let shown = &resolved[..resolved.len().min(MAX_RENDERED_LABELS)];
        let spans: Vec<Span> = shown.iter().map(|(s, _)| *s).collect();
        let (src, spans) = excerpt::Excerpt::new(file, &spans);
        let report = Report {
            diag: self,
            src,
            labels: shown
                .iter()
                .zip(spans)
                .map(|(&(_, text), span)| {
                    let text = (!text.is_empty()).then(|| text.to_owned());
                    miette::LabeledSpan::new(text, span.start, span.len())
                })
                .collect(),
        };
        let mut out = String::new();
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_width(100);
        if handler.render_report(&mut out, &report).is_err() {
            // Rendering into a String cannot fail for I/O reasons; keep the message anyway.
            out = format!(
                "{}[{}]: {}\n",
                self.severity_word(),
                self.code,
                self.message
            );
        }
        if resolved.len() > shown.len() {
            out.push_str(&format!(
                "  note: {} more places are not shown (`--format json` lists them all)\n",
                resolved.len() - shown.len()
            ));
        }
        // The first label's position, so that `file:line:col` is on the first line a user
        // reads even when the terminal cuts the snippet.
        let at = resolved
            .first()
            .map(|(s, _)| file.line_col(s.start))
            .map_or_else(
                || file.name().to_owned(),
                |lc| format!("{}:{}:{}", file.name(), lc.line, lc.col),
            );
        format!("{at}: {}[{}]\n{out}", self.severity_word(), self.code)
    }

    fn severity_word(&self) -> &'static str {
        match self.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    /// The diagnostic as JSON for editors: code, severity, message, help, and labels with
    /// byte spans and line/column positions.
    pub fn to_json(&self, file: &SourceFile, map: &SourceMap) -> serde_json::Value {
        let labels: Vec<_> = self
            .resolve(map)
            .into_iter()
            .map(|(span, text)| JsonLabel {
                span,
                start: file.line_col(span.start),
                end: file.line_col(span.end),
                text,
            })
            .collect();
        serde_json::json!({
            "file": file.name(),
            "code": self.code,
            "severity": self.severity(),
            "message": self.message,
            "help": self.help,
            "labels": labels,
        })
    }
}

#[derive(Serialize)]
struct JsonLabel<'a> {
    span: Span,
    start: LineCol,
    end: LineCol,
    text: &'a str,
}

/// How many labels a rendered diagnostic shows at most; JSON output has them all.
const MAX_RENDERED_LABELS: usize = 8;

struct Report<'a> {
    diag: &'a Diagnostic,
    src: excerpt::Excerpt<'a>,
    labels: Vec<miette::LabeledSpan>,
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Report<'_> {}

impl miette::Diagnostic for Report<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity() {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

/// The table of every code as Markdown (code, severity, meaning), as the README shows it.
pub fn codes_markdown() -> String {
    let mut out = String::from("| code | severity | meaning |\n|---|---|---|\n");
    for code in Code::ALL {
        let severity = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "| `{}` | {severity} | {} |\n",
            code.as_str(),
            code.summary().replace('|', "\\|")
        ));
    }
    out
}
