//! The one loader: a playbook file (or a named text) → a checked [`Program`], in two stages.
//!
//! ```text
//! parse_file(path)       ─┐
//!                         ├→ Parsed { source, playbook } ─ .check() → Loaded { source, program, .. }
//! parse_text(name, text) ─┘  or Invalid { stage: Parse, .. }          or Invalid { stage: Check, .. }
//! ```
//!
//! [`parse_file`] reads at most [`MAX_FILE_BYTES`] bytes, insists on UTF-8 and picks the
//! reader by extension; [`parse_text`] picks it the same way for a text already in memory
//! (the server's stored versions). [`Parsed::check`] runs every check; the [`Program`] comes
//! only from there. [`file()`] and [`text()`] are both stages at once. Every problem with the
//! content (too large, not UTF-8, a syntax error, a check error) is a [`Diagnostic`] in
//! [`Invalid`]; only the operating system's refusals are [`LoadError::Io`].
//! [`Source::render`] is the one way diagnostics are rendered against the text they are about.
//!
//! Owns: reading, the size limit, the UTF-8 check, choosing DSL or JSON, running `check`.
//! Must not: print, choose exit codes, or hand out a program whose check found errors. What
//! each edge says around the diagnostics (the CLI's summary lines, a scenario's error, the
//! server's reload report) is the edge's own.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic};
use crate::model::Playbook;
use crate::program::Program;
use crate::source::{SourceFile, SourceMap, Span};

/// Files larger than this are refused before they are read as text (10 MiB).
pub const MAX_FILE_BYTES: u64 = crate::syntax::MAX_FILE_BYTES as u64;

/// A playbook's text and where each part of the playbook was written in it: what its
/// diagnostics are rendered against.
#[derive(Debug, Clone)]
pub struct Source {
    /// The text as shown in diagnostics (a file that is not UTF-8 has its bad bytes
    /// replaced), named as given.
    pub file: SourceFile,
    /// Model paths → spans; empty when the text did not parse.
    pub map: SourceMap,
}

impl Source {
    /// Renders diagnostics like rustc, one string each (each ends with a newline), with a
    /// miette theme (`unicode_nocolor` for snapshots and the server, colour for terminals).
    pub fn render<'a>(
        &self,
        diagnostics: impl IntoIterator<Item = &'a Diagnostic>,
        theme: &miette::GraphicalTheme,
    ) -> Vec<String> {
        diagnostics
            .into_iter()
            .map(|d| d.render_with(&self.file, &self.map, theme.clone()))
            .collect()
    }
}

/// A playbook that parsed: the first stage. It may still fail [`Parsed::check`]; `fmt` and
/// `graph` work on it as it is.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Its text and source map.
    pub source: Source,
    /// The playbook as written.
    pub playbook: Playbook,
}

/// A playbook that passed `check`: the second stage, ready to run.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Its text and source map.
    pub source: Source,
    /// The checked program (it holds the playbook: [`Program::playbook`]).
    pub program: Program,
    /// What `check` warned about, in order (no errors: those would have refused it).
    pub warnings: Vec<Diagnostic>,
}

/// Which stage refused a playbook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The text is not a playbook: too large, not UTF-8, a syntax error or a bad value.
    /// [`Source::map`] is empty.
    Parse,
    /// The playbook parsed but `check` found errors.
    Check,
}

/// A playbook refused by a stage, with everything needed to show why.
#[derive(Debug, Clone)]
pub struct Invalid {
    /// Its text, and its source map when it parsed.
    pub source: Source,
    /// The stage that refused it.
    pub stage: Stage,
    /// Every diagnostic of that stage, in order: at least one error, and (from `check`) the
    /// warnings among them.
    pub diagnostics: Vec<Diagnostic>,
}

impl Invalid {
    /// Every diagnostic rendered against the source, as `playbook check` prints them.
    pub fn render(&self, theme: &miette::GraphicalTheme) -> String {
        self.source.render(&self.diagnostics, theme).concat()
    }

    /// The errors among the diagnostics (every parse diagnostic is one).
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }
}

/// Why a playbook file did not load.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The operating system refused to read it (missing file, permissions, a folder…).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path as given.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// It was read, but a stage refused its content.
    #[error("{} has errors", .0.source.file.name())]
    Invalid(Box<Invalid>),
}

impl From<Box<Invalid>> for LoadError {
    fn from(invalid: Box<Invalid>) -> Self {
        LoadError::Invalid(invalid)
    }
}

/// Reads, parses and checks a playbook file: [`parse_file`] then [`Parsed::check`].
pub fn file(path: &Path) -> Result<Loaded, LoadError> {
    Ok(parse_file(path)?.check()?)
}

/// Parses and checks a playbook text named `name` (the extension picks DSL or JSON):
/// [`parse_text`] then [`Parsed::check`].
pub fn text(name: impl Into<String>, text: impl Into<String>) -> Result<Loaded, Box<Invalid>> {
    parse_text(name, text)?.check()
}

/// Reads a playbook file (at most [`MAX_FILE_BYTES`], UTF-8) and parses it. The file is
/// named in diagnostics by its path as given.
pub fn parse_file(path: &Path) -> Result<Parsed, LoadError> {
    let name = path.display().to_string();
    let io = |source| LoadError::Io {
        path: path.to_owned(),
        source,
    };
    let bytes = match crate::syntax::read_bytes(path) {
        Ok(bytes) => bytes,
        Err(crate::syntax::ReadError::Io(e)) => return Err(io(e)),
        Err(crate::syntax::ReadError::TooLarge) => {
            let too_large = Diagnostic::new(
                Code::TooLarge,
                format!(
                    "the file is larger than {MAX_FILE_BYTES} bytes (10 MiB), the most a playbook may be"
                ),
            )
            .with_help("split the playbook, or check that this is the file you meant");
            return Err(refused(SourceFile::new(name, String::new()), too_large).into());
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => Ok(parse_text(name, text)?),
        Err(e) => Err(not_utf8(name, e).into()),
    }
}

/// Parses a playbook text named `name` (`.json` is read as JSON, anything else as the DSL).
pub fn parse_text(
    name: impl Into<String>,
    text: impl Into<String>,
) -> Result<Parsed, Box<Invalid>> {
    let file = SourceFile::new(name, text);
    match crate::syntax::read(file.name(), file.text()) {
        Ok((playbook, map)) => Ok(Parsed {
            source: Source { file, map },
            playbook,
        }),
        Err(diagnostics) => Err(Box::new(Invalid {
            source: Source {
                file,
                map: SourceMap::new(),
            },
            stage: Stage::Parse,
            diagnostics,
        })),
    }
}

impl Parsed {
    /// Runs every check: the program when none found an error (its warnings kept), or every
    /// diagnostic when one did.
    pub fn check(self) -> Result<Loaded, Box<Invalid>> {
        let checked = crate::check::check(self.playbook);
        match checked.program {
            Some(program) => Ok(Loaded {
                source: self.source,
                program,
                warnings: checked.diagnostics,
            }),
            None => Err(Box::new(Invalid {
                source: self.source,
                stage: Stage::Check,
                diagnostics: checked.diagnostics,
            })),
        }
    }
}

fn refused(file: SourceFile, diagnostic: Diagnostic) -> Box<Invalid> {
    Box::new(Invalid {
        source: Source {
            file,
            map: SourceMap::new(),
        },
        stage: Stage::Parse,
        diagnostics: vec![diagnostic],
    })
}

/// Refuses bytes that are not UTF-8, pointing at the first bad one in the lossy text (where
/// the replacement character stands).
fn not_utf8(name: String, e: std::string::FromUtf8Error) -> Box<Invalid> {
    let at = e.utf8_error().valid_up_to();
    let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
    let at = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|&i| i >= at)
        .unwrap_or(text.len());
    let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
    let diagnostic = Diagnostic::new(Code::Syntax, "the file is not valid UTF-8")
        .at_span(Span::new(at, end), "this byte is not UTF-8")
        .with_help("save the file as UTF-8");
    refused(SourceFile::new(name, text), diagnostic)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "playbook \"x\" { start a }\nmessage a \"hi\" end\n";

    fn invalid(r: Result<Loaded, LoadError>) -> Box<Invalid> {
        match r {
            Err(LoadError::Invalid(invalid)) => invalid,
            Err(e) => panic!("not refused for its content: {e}"),
            Ok(_) => panic!("loaded"),
        }
    }

    fn codes(invalid: &Invalid) -> Vec<Code> {
        invalid.diagnostics.iter().map(|d| d.code).collect()
    }

    #[test]
    fn a_good_file_loads_with_its_source_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.playbook");
        std::fs::write(&path, OK).unwrap();
        let loaded = file(&path).unwrap();
        assert_eq!(loaded.source.file.name(), path.display().to_string());
        assert!(!loaded.source.map.is_empty());
        assert_eq!(loaded.program.cards().len(), 1);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let e = file(Path::new("no/such.playbook")).expect_err("no such file");
        assert!(matches!(e, LoadError::Io { .. }));
        assert!(
            e.to_string().starts_with("cannot read no/such.playbook: "),
            "{e}"
        );
    }

    #[test]
    fn an_oversized_file_is_a_diagnostic_not_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.playbook");
        std::fs::File::create(&path)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        let invalid = invalid(file(&path));
        assert_eq!(invalid.stage, Stage::Parse);
        assert_eq!(codes(&invalid), [Code::TooLarge]);
        assert_eq!(invalid.source.file.text(), "", "the text is not kept");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_pointed_at() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes.playbook");
        std::fs::write(&path, b"playbook \"x\xff\" { start a }\n").unwrap();
        let invalid = invalid(file(&path));
        assert_eq!(
            (invalid.stage, codes(&invalid)),
            (Stage::Parse, vec![Code::Syntax])
        );
        let theme = miette::GraphicalTheme::unicode_nocolor();
        let shown = invalid.source.render(&invalid.diagnostics, &theme).concat();
        assert!(shown.contains("not valid UTF-8"), "{shown}");
        assert!(shown.contains(":1:12"), "{shown}");
    }

    #[test]
    fn check_errors_come_back_with_the_warnings_among_them_and_the_source_map() {
        let text = "playbook \"x\" { start a }\nmessage a \"hi\" -> nowhere\n\
                    message lost \"unseen\" end\n";
        let invalid = text_err(text);
        assert_eq!(invalid.stage, Stage::Check);
        assert_eq!(codes(&invalid), [Code::UnknownTarget, Code::Unreachable]);
        assert_eq!(invalid.errors().count(), 1);
        assert!(!invalid.source.map.is_empty());
        let theme = miette::GraphicalTheme::unicode_nocolor();
        let shown = invalid.source.render(invalid.errors(), &theme);
        assert!(shown[0].contains("x.playbook:2:"), "{}", shown[0]);
    }

    fn text_err(source: &str) -> Box<Invalid> {
        text("x.playbook", source).expect_err("refused")
    }

    #[test]
    fn warnings_are_kept_when_the_program_is_made() {
        let loaded = text("w.playbook", format!("{OK}message lost \"unseen\" end\n")).unwrap();
        assert_eq!(loaded.program.cards().len(), 2);
        let warned: Vec<Code> = loaded.warnings.iter().map(|d| d.code).collect();
        assert_eq!(warned, [Code::Unreachable]);
    }

    #[test]
    fn the_name_picks_the_reader_and_parsing_alone_skips_check() {
        assert!(text("a.json", OK).is_err_and(|i| i.stage == Stage::Parse));
        let parsed = parse_text(
            "a.playbook",
            "playbook \"x\" { start nowhere }\nmessage a \"hi\" end\n",
        )
        .expect("it parses");
        assert_eq!(parsed.playbook.cards.len(), 1);
        assert!(parsed.check().is_err_and(|i| i.stage == Stage::Check));
    }
}
