//! `playbook fmt`: format in place, check formatting, or convert between DSL and JSON.
//!
//! A file that does not parse is never written; a file that parses but has `check` errors
//! (an unknown target, say) is formatted, as rustfmt formats code that does not compile:
//! that is when an author is editing it. The result is computed in full first, then written
//! through a temporary file beside the real one (symlinks followed, permissions kept) and a
//! rename, so a crash cannot leave half a playbook behind. `--to` never replaces a file that
//! holds something else than the input's playbook unless `--force` says so, and no file is
//! replaced by a text that drops any of its `#` comments (JSON has no comments, so
//! `--to dsl` over a commented `.playbook` would) unless `--force` says so.

use std::path::{Path, PathBuf};

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, FileFormat, print_err, print_out, theme};
use crate::load::LoadError;
use crate::model::to_json;
use crate::syntax;

/// What `fmt` was asked to do besides the files.
pub(super) struct Options {
    /// Write nothing; report unformatted files.
    pub check: bool,
    /// Convert to this format.
    pub to: Option<FileFormat>,
    /// Print instead of writing.
    pub stdout: bool,
    /// Replace a `--to` destination even when it holds another playbook (or no playbook).
    pub force: bool,
}

pub(super) fn run(files: &[PathBuf], opts: &Options) -> u8 {
    let Options {
        check,
        to,
        stdout,
        force,
    } = *opts;
    let mut code = EXIT_OK;
    let files = match super::expand(files) {
        Ok(files) => files,
        Err(e) => {
            print_err(&format!("error: cannot list a folder: {e}\n"));
            return EXIT_USAGE;
        }
    };
    for path in &files {
        let (file, playbook) = match crate::load::parse_file(path) {
            Ok(parsed) => (parsed.source.file, parsed.playbook),
            Err(e @ LoadError::Io { .. }) => {
                print_err(&format!("error: {e}\n"));
                code = code.max(EXIT_USAGE);
                continue;
            }
            Err(LoadError::Invalid(invalid)) => {
                print_err(&invalid.render(&theme()));
                print_err(&format!(
                    "{}: not formatted: it has errors\n",
                    invalid.source.file.name()
                ));
                code = code.max(EXIT_ERRORS);
                continue;
            }
        };
        let from = FileFormat::of(path);
        let target_format = to.unwrap_or(from);
        let output = match (from, target_format) {
            // Same format: keep what only the text has (DSL comments, JSON `$schema`).
            (FileFormat::Dsl, FileFormat::Dsl) => match syntax::format(file.text()) {
                Ok(text) => text,
                Err(_) => syntax::to_dsl(&playbook),
            },
            (FileFormat::Json, FileFormat::Json) => {
                with_schema_key(file.text(), to_json(&playbook))
            }
            (_, FileFormat::Dsl) => syntax::to_dsl(&playbook),
            (_, FileFormat::Json) => to_json(&playbook),
        };
        let dest = destination(path, target_format);
        if stdout {
            print_out(&output);
            continue;
        }
        // `None` when there is no file yet; `Some(None)` when there is one that is not a
        // readable playbook-sized text (binary, huge, a folder): never equal, never the same.
        let current = match std::fs::symlink_metadata(&dest) {
            Err(_) => None,
            Ok(_) => Some(syntax::read_text(&dest).ok()),
        };
        if current
            .as_ref()
            .is_some_and(|c| c.as_deref() == Some(output.as_str()))
        {
            continue;
        }
        if check {
            print_err(&format!("{}: not formatted\n", dest.display()));
            code = code.max(EXIT_ERRORS);
            continue;
        }
        if dest != *path
            && !force
            && let Some(current) = &current
        {
            let same = current
                .as_deref()
                .is_some_and(|text| holds_same_playbook(&dest, text, &playbook));
            if !same {
                print_err(&format!(
                    "error: {} exists and does not hold the playbook of {}; not replaced \
                         (pass --force to replace it)\n",
                    dest.display(),
                    path.display()
                ));
                code = code.max(EXIT_ERRORS);
                continue;
            }
        }
        if target_format == FileFormat::Dsl
            && !force
            && let Some(Some(current)) = &current
        {
            let lost = syntax::lost_comments(current, &output);
            if let Some(first) = lost.first() {
                print_err(&format!(
                    "error: {} has {} comment{} the new text would not keep (the first: \
                         `{first}`); not replaced (pass --force to replace it anyway)\n",
                    dest.display(),
                    lost.len(),
                    if lost.len() == 1 { "" } else { "s" },
                ));
                code = code.max(EXIT_ERRORS);
                continue;
            }
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

/// Whether the existing `--to` destination is a (possibly unformatted) copy of `playbook`,
/// so replacing it loses nothing.
fn holds_same_playbook(dest: &Path, text: &str, playbook: &crate::model::Playbook) -> bool {
    crate::load::parse_text(dest.to_string_lossy(), text)
        .is_ok_and(|other| other.playbook == *playbook)
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
    let schema = serde_json::from_str::<serde_json::Value>(original.trim_start_matches('\u{FEFF}'))
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

/// Replaces `dest` with `text` through a temporary file and a rename. A symlink is followed
/// (the file it points to is replaced, the link stays) and an existing file keeps its
/// permissions.
fn write_atomically(dest: &Path, text: &str) -> std::io::Result<()> {
    let (dest, permissions) = match std::fs::canonicalize(dest) {
        Ok(real) => {
            let permissions = std::fs::metadata(&real)?.permissions();
            (real, Some(permissions))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (dest.to_owned(), None),
        Err(e) => return Err(e),
    };
    let dest = dest.as_path();
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.fmt-tmp"));
    let written = std::fs::write(&tmp, text)
        .and_then(|()| match permissions {
            Some(p) => std::fs::set_permissions(&tmp, p),
            None => Ok(()),
        })
        .and_then(|()| std::fs::rename(&tmp, dest));
    written.inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
