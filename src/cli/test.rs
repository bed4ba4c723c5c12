//! `playbook test`: find scenarios, run each, compare transcripts with their snapshots,
//! report failures with a line diff, then print coverage.
//!
//! Owns reporting and exit codes only; running, snapshots and coverage live in
//! [`crate::scenario`].

use std::path::{Path, PathBuf};

use super::{EXIT_ERRORS, EXIT_OK, EXIT_USAGE, print_err, print_out};
use crate::scenario::{self, Coverage, Playbooks, snapshot};

/// Options of `playbook test`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files or folders; folders are searched for `*.scenario` (recursively).
    pub paths: Vec<PathBuf>,
    /// Write snapshots that are new or changed instead of failing.
    pub accept: bool,
    /// Fail when branch coverage is below this percentage.
    pub min_coverage: Option<f64>,
    /// Where snapshots live.
    pub snapshots: PathBuf,
}

fn find(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        // The same walk as `check` and `fmt` use: no symlinked folders, no hidden folders,
        // `target` or `node_modules`.
        let mut found = Vec::new();
        super::files::walk(
            path,
            &mut |p| p.extension().is_some_and(|x| x == scenario::EXTENSION),
            &mut found,
        )?;
        found.sort();
        out.extend(found);
        Ok(())
    } else if path.exists() {
        out.push(path.to_path_buf());
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file or folder",
        ))
    }
}

/// Runs `playbook test`; returns the exit code (2, before running anything, when two
/// scenarios would share a snapshot file).
pub fn run(opts: &Options) -> u8 {
    let paths = if opts.paths.is_empty() {
        vec![PathBuf::from("playbooks")]
    } else {
        opts.paths.clone()
    };
    let mut files = Vec::new();
    for p in &paths {
        if let Err(e) = find(p, &mut files) {
            print_err(&format!("error: cannot read {}: {e}\n", p.display()));
            return EXIT_USAGE;
        }
    }
    if files.is_empty() {
        print_err(&format!(
            "error: no `.scenario` files found in {}\n",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return EXIT_USAGE;
    }
    // The same file reached twice (a folder and a file in it) runs once.
    let mut seen = std::collections::HashSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    let clashes = snapshot::collisions(&files);
    if !clashes.is_empty() {
        for (a, b) in &clashes {
            print_err(&format!(
                "error: {} and {} would share the snapshot {}; rename one of them\n",
                a.display(),
                b.display(),
                snapshot::path(&opts.snapshots, a).display()
            ));
        }
        return EXIT_USAGE;
    }
    let mut books = Playbooks::new();
    let mut coverage = Coverage::new();
    let (mut passed, mut failed, mut written) = (0, 0, 0);
    for file in &files {
        let name = scenario::name_of(file);
        let run = match scenario::run_file(file, &mut books) {
            Ok(r) => r,
            Err(e) => {
                failed += 1;
                print_out(&format!("FAIL  {name}\n  {e}\n"));
                continue;
            }
        };
        coverage.add(&run);
        let mut problems: Vec<String> = run.failures.iter().map(|f| f.to_string()).collect();
        let snap = snapshot::path(&opts.snapshots, file);
        let old = std::fs::read_to_string(&snap).ok();
        let old_body = old.as_deref().and_then(snapshot::body);
        let matches = old_body.is_some_and(|(b, _)| snapshot::same(b, &run.text));
        if !matches {
            if opts.accept {
                let text = snapshot::render(&file.display().to_string(), &run.text);
                let write = std::fs::create_dir_all(&opts.snapshots)
                    .and_then(|()| std::fs::write(&snap, text));
                match write {
                    Ok(()) => written += 1,
                    Err(e) => problems.push(format!("cannot write {}: {e}", snap.display())),
                }
            } else {
                match old_body {
                    None => problems.push(format!(
                        "no snapshot yet at {}; review the transcript below and run `playbook test --accept` to keep it\n{}",
                        snap.display(),
                        indent(&run.text)
                    )),
                    Some((body, offset)) => problems.push(format!(
                        "the transcript differs from {} (- snapshot, + this run; numbers are lines of the snapshot file):\n{}accept the change with `playbook test --accept` (or `cargo insta review`)",
                        snap.display(),
                        snapshot::diff(body, &run.text, offset, 2)
                    )),
                }
            }
        }
        if problems.is_empty() {
            passed += 1;
            let note = if matches { "" } else { "  (snapshot written)" };
            print_out(&format!("ok    {name}{note}\n"));
        } else {
            failed += 1;
            print_out(&format!("FAIL  {name}\n"));
            for p in problems {
                print_out(&format!("  {}\n", p.trim_end().replace('\n', "\n  ")));
            }
        }
    }
    for b in books.all() {
        coverage.include(b);
    }
    let mut summary = format!(
        "\n{} scenarios: {passed} passed, {failed} failed",
        files.len()
    );
    if written > 0 {
        summary.push_str(&format!(", {written} snapshots written"));
    }
    print_out(&format!("{summary}\n\n"));
    if !coverage.is_empty() {
        print_out(&coverage.to_text());
    }
    let pct = coverage.percent();
    let mut code = if failed > 0 { EXIT_ERRORS } else { EXIT_OK };
    if let Some(min) = opts.min_coverage
        && pct + 1e-9 < min
    {
        print_out(&format!(
            "\nbranch coverage {pct:.1}% is below the minimum of {min}%\n"
        ));
        code = EXIT_ERRORS;
    }
    code
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
