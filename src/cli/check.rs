//! `playbook check`.

use std::path::PathBuf;

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, OutputFormat, print_err, print_out, theme};
use crate::diagnostic::{Diagnostic, Severity};
use crate::load::LoadError;

pub(super) fn run(files: &[PathBuf], format: OutputFormat, deny_warnings: bool) -> u8 {
    let mut code = EXIT_OK;
    let files = match super::expand(files) {
        Ok(files) => files,
        Err(e) => {
            print_err(&format!("error: cannot list a folder: {e}\n"));
            return EXIT_USAGE;
        }
    };
    let mut reports = Vec::new();
    for path in &files {
        // `playbook check playbooks/*` meets the scenario files that live beside playbooks;
        // they are `playbook test`'s input, not playbooks.
        if path.extension().is_some_and(|e| e == "scenario") {
            if format == OutputFormat::Text {
                print_err(&format!(
                    "{}: skipped (a scenario; `playbook test` runs it)\n",
                    path.display()
                ));
            }
            continue;
        }
        let (source, diagnostics) = match crate::load::file(path) {
            Ok(loaded) => (loaded.source, loaded.warnings),
            Err(LoadError::Invalid(invalid)) => (invalid.source, invalid.diagnostics),
            Err(e @ LoadError::Io { .. }) => {
                print_err(&format!("error: {e}\n"));
                code = code.max(EXIT_USAGE);
                continue;
            }
        };
        let fails = |d: &Diagnostic| d.is_error() || deny_warnings;
        let failed = diagnostics.iter().any(fails);
        if failed {
            code = code.max(EXIT_ERRORS);
        }
        match format {
            OutputFormat::Text => {
                for rendered in source.render(&diagnostics, &theme()) {
                    print_err(&rendered);
                    print_err("\n");
                }
                let count = |s| diagnostics.iter().filter(|d| d.severity() == s).count();
                let (errors, warnings) = (count(Severity::Error), count(Severity::Warning));
                let verdict = if failed { "failed" } else { "ok" };
                print_err(&format!(
                    "{}: {verdict} ({errors} error{}, {warnings} warning{})\n",
                    source.file.name(),
                    plural(errors),
                    plural(warnings)
                ));
            }
            OutputFormat::Json => reports.push(serde_json::json!({
                "file": source.file.name(),
                "ok": !failed,
                "diagnostics": diagnostics
                    .iter()
                    .map(|d| d.to_json(&source.file, &source.map))
                    .collect::<Vec<_>>(),
            })),
        }
    }
    if format == OutputFormat::Json {
        let doc = serde_json::json!({ "ok": code == EXIT_OK, "files": reports });
        print_out(&format!("{doc:#}\n"));
    }
    code
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
