//! Which files a command line names: folders expanded to the playbooks below them.
//!
//! Reading them is [`crate::load`]'s.

use std::path::Path;

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
