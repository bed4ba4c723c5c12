//! `playbook check`.

use std::path::{Path, PathBuf};

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, OutputFormat, print_err, print_out, theme};
use crate::diagnostic::{Diagnostic, Severity};
use crate::load::LoadError;

pub(super) fn run(
    files: &[PathBuf],
    format: OutputFormat,
    deny_warnings: bool,
    config: Option<&Path>,
) -> u8 {
    let mut code = EXIT_OK;
    // The config's text only: its secrets come from the environment, which `check` needs not.
    let config = match config.map(|p| {
        std::fs::read_to_string(p)
            .map_err(|e| e.to_string())
            .and_then(|t| crate::server::Config::parse(&t))
            .map_err(|e| format!("{}: {e}", p.display()))
    }) {
        None => None,
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            print_err(&format!("error: cannot read the config {e}\n"));
            return EXIT_USAGE;
        }
    };
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
            Ok(loaded) => {
                let mut warnings = loaded.warnings;
                if let Some(c) = &config {
                    let playbook = loaded.program.playbook();
                    warnings.extend(crate::check::desk_names(playbook, |r| c.has(r)));
                }
                (loaded.source, warnings)
            }
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
