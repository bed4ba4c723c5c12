//! Static checks: every rule a playbook must follow before a visitor meets it.
//!
//! One pass per file; every pass runs and every diagnostic is kept (a user fixes ten problems
//! in one go, not one per run). Passes read the model and speak in JSON pointers; they never
//! see text or spans. Only [`check`] makes a [`Program`].

mod ids;
mod targets;

use crate::diagnostic::Diagnostic;
use crate::model::Playbook;
use crate::program::Program;

/// The result of checking a playbook: its diagnostics, and the program when there were no
/// errors.
#[derive(Debug)]
pub struct Checked {
    /// Every problem found, errors and warnings, in a stable order.
    pub diagnostics: Vec<Diagnostic>,
    /// The runnable program, present only when no diagnostic is an error.
    pub program: Option<Program>,
}

impl Checked {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// The program, or the diagnostics when there were errors.
    pub fn into_result(self) -> Result<Program, Vec<Diagnostic>> {
        self.program.ok_or(self.diagnostics)
    }
}

/// Runs every check over a playbook.
pub fn check(playbook: Playbook) -> Checked {
    let mut diagnostics = Vec::new();
    ids::check(&playbook, &mut diagnostics);
    targets::check(&playbook, &mut diagnostics);
    let program = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        Some(Program::new_unchecked(playbook))
    };
    Checked {
        diagnostics,
        program,
    }
}

/// The JSON pointer of card `i`.
pub(crate) fn card_ptr(i: usize) -> String {
    format!("/cards/{i}")
}
