//! `playbook fmt`: format in place, check formatting, or convert between DSL and JSON.
//!
//! A file with errors is never written: the result is computed in full first, then written
//! through a temporary file and a rename, so a crash cannot leave half a playbook behind.

use std::path::{Path, PathBuf};

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, FileFormat, load, print_err, print_out, theme};
use crate::model::to_json;
use crate::source::SourceMap;
use crate::syntax;

pub(super) fn run(files: &[PathBuf], check: bool, to: Option<FileFormat>, stdout: bool) -> u8 {
    let mut code = EXIT_OK;
    let files = match super::expand(files) {
        Ok(files) => files,
        Err(e) => {
            print_err(&format!("error: cannot list a folder: {e}\n"));
            return EXIT_USAGE;
        }
    };
    for path in &files {
        let loaded = match load(path) {
            Ok(l) => l,
            Err(e) => {
                print_err(&format!("error: cannot read {}: {e}\n", path.display()));
                code = code.max(EXIT_USAGE);
                continue;
            }
        };
        let from = FileFormat::of(path);
        let target_format = to.unwrap_or(from);
        let playbook = match loaded.result {
            Ok((playbook, _)) => playbook,
            Err(diags) => {
                for d in &diags {
                    print_err(&d.render_with(&loaded.file, &SourceMap::new(), theme()));
                }
                print_err(&format!(
                    "{}: not formatted: it has errors\n",
                    loaded.file.name
                ));
                code = code.max(EXIT_ERRORS);
                continue;
            }
        };
        let output = match (from, target_format) {
            // Same format: keep what only the text has (DSL comments, JSON `$schema`).
            (FileFormat::Dsl, FileFormat::Dsl) => match syntax::format(&loaded.file.text) {
                Ok(text) => text,
                Err(_) => syntax::to_dsl(&playbook),
            },
            (FileFormat::Json, FileFormat::Json) => {
                with_schema_key(&loaded.file.text, to_json(&playbook))
            }
            (_, FileFormat::Dsl) => syntax::to_dsl(&playbook),
            (_, FileFormat::Json) => to_json(&playbook),
        };
        let dest = destination(path, target_format);
        if stdout {
            print_out(&output);
            continue;
        }
        let current = std::fs::read_to_string(&dest).ok();
        if current.as_deref() == Some(output.as_str()) {
            continue;
        }
        if check {
            print_err(&format!("{}: not formatted\n", dest.display()));
            code = code.max(EXIT_ERRORS);
            continue;
        }
        if let Err(e) = write_atomically(&dest, &output) {
            print_err(&format!("error: cannot write {}: {e}\n", dest.display()));
            code = code.max(EXIT_USAGE);
        } else {
            print_err(&format!("{}: written\n", dest.display()));
        }
    }
    code
}

fn destination(path: &Path, format: FileFormat) -> PathBuf {
    if FileFormat::of(path) == format {
        path.to_owned()
    } else {
        path.with_extension(format.extension())
    }
}

/// Puts a `$schema` key the original JSON had back at the top of the formatted text.
fn with_schema_key(original: &str, formatted: String) -> String {
    let schema = serde_json::from_str::<serde_json::Value>(original)
        .ok()
        .and_then(|v| v.get("$schema").cloned());
    match schema {
        Some(s) => {
            let key = format!("{{\n  \"$schema\": {},\n", serde_json::Value::to_string(&s));
            formatted.replacen("{\n", &key, 1)
        }
        None => formatted,
    }
}

fn write_atomically(dest: &Path, text: &str) -> std::io::Result<()> {
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.fmt-tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dest).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
