//! Reading a playbook file: size limit, UTF-8, and the reader chosen by extension.

use std::path::Path;

use crate::diagnostic::{Code, Diagnostic};
use crate::model::Playbook;
use crate::source::{SourceFile, SourceMap, Span};

/// Files larger than this are refused before they are read as text (10 MiB).
pub const MAX_FILE_BYTES: u64 = crate::syntax::MAX_FILE_BYTES as u64;

/// A file read from disk: its text, and the playbook or the diagnostics that stopped it.
pub struct Loaded {
    /// The file as shown in diagnostics (invalid UTF-8 replaced).
    pub file: SourceFile,
    /// The playbook and its spans, or why it could not be read.
    pub result: Result<(Playbook, SourceMap), Vec<Diagnostic>>,
}

/// Expands the paths given on the command line: a directory stands for every `.playbook` and
/// `.json` file below it (sorted, so output is stable); a file stands for itself.
///
/// The walk skips folders that hold no playbooks of the author's ([`skipped_folder`]) and
/// does not follow symlinks to folders, so a link loop cannot make it run forever.
pub fn expand(paths: &[std::path::PathBuf]) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut is_playbook_file, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn is_playbook_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "playbook" || e == "json")
}

/// Folders a recursive search never enters: hidden ones (`.git`, `.github`…), build output
/// (`target`) and `node_modules`, which hold JSON files that are not playbooks.
pub fn skipped_folder(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name == "target" || name == "node_modules"
}

/// Collects the files below `dir` that `wanted` accepts (unsorted). Folders are entered by
/// their own file type, never through a symlink; a symlink to a file is kept when `wanted`
/// accepts its name.
pub fn walk(
    dir: &Path,
    wanted: &mut dyn FnMut(&Path) -> bool,
    out: &mut Vec<std::path::PathBuf>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if !skipped_folder(&entry.file_name()) {
                walk(&path, wanted, out)?;
            }
        } else if (kind.is_file() || (kind.is_symlink() && path.is_file())) && wanted(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and parses a playbook file. `Err` only for I/O problems (missing file, permissions);
/// every problem with the content is a diagnostic in [`Loaded::result`].
pub fn load(path: &Path) -> std::io::Result<Loaded> {
    let name = path.display().to_string();
    let bytes = match crate::syntax::read_bytes(path) {
        Ok(bytes) => bytes,
        Err(crate::syntax::ReadError::Io(e)) => return Err(e),
        Err(crate::syntax::ReadError::TooLarge) => {
            return Ok(Loaded {
                file: SourceFile::new(name, String::new()),
                result: Err(vec![
                    Diagnostic::new(
                        Code::TooLarge,
                        format!(
                            "the file is larger than {MAX_FILE_BYTES} bytes (10 MiB), the most a playbook may be"
                        ),
                    )
                    .with_help("split the playbook, or check that this is the file you meant"),
                ]),
            });
        }
    };
    Ok(from_bytes(name, bytes))
}

/// Parses a playbook from raw bytes named `name` (the extension picks the reader).
pub fn from_bytes(name: String, bytes: Vec<u8>) -> Loaded {
    match String::from_utf8(bytes) {
        Ok(text) => {
            let result = crate::syntax::read(&name, &text);
            Loaded {
                file: SourceFile::new(name, text),
                result,
            }
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // The lossy text has a replacement character where the bad byte was; point at it.
            let at = text
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| i >= at)
                .unwrap_or(text.len());
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            Loaded {
                file: SourceFile::new(name, text),
                result: Err(vec![
                    Diagnostic::new(Code::Syntax, "the file is not valid UTF-8")
                        .at_span(Span::new(at, end), "this byte is not UTF-8")
                        .with_help("save the file as UTF-8"),
                ]),
            }
        }
    }
}
