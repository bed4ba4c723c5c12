//! insta-compatible snapshot files: `snapshots/scenarios@<file>.scenario.snap`, the name
//! `insta::glob!` gives them in `tests/scenarios.rs`, so `playbook test`, `cargo test` and
//! `cargo insta review` all read and write the same files. Also a line diff with line numbers.
//!
//! Must not print or decide what fails: the CLI does.

use std::path::{Path, PathBuf};

/// The snapshot file of a scenario in `dir`.
pub fn path(dir: &Path, scenario: &Path) -> PathBuf {
    let file = scenario
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    dir.join(format!("scenarios@{file}.snap"))
}

/// Scenario files that would share one snapshot file: the snapshot is named after the file
/// name only (as `insta::glob!` names it), so `a/x.scenario` and `b/x.scenario` collide.
/// Each pair is (the first file with that name, a later one). The same path given twice is
/// not a collision.
pub fn collisions(scenarios: &[PathBuf]) -> Vec<(&Path, &Path)> {
    let mut first: std::collections::HashMap<std::ffi::OsString, &Path> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    for s in scenarios {
        let Some(name) = s.file_name() else { continue };
        match first.get(name) {
            Some(earlier) if *earlier != s.as_path() => out.push((*earlier, s.as_path())),
            Some(_) => {}
            None => {
                first.insert(name.to_owned(), s.as_path());
            }
        }
    }
    out
}

/// A snapshot file's body (what follows the `---` metadata header), or `None` if it has no
/// header. Line numbers of the body start at the returned offset + 1.
pub fn body(file_text: &str) -> Option<(&str, usize)> {
    let rest = file_text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    let header_lines = 2 + rest[..end].matches('\n').count() + 1;
    Some((&rest[end + 5..], header_lines))
}

/// The file insta writes for a text snapshot: metadata, then the body.
pub fn render(scenario_file: &str, body: &str) -> String {
    let input = scenario_file.replace('\\', "/");
    format!(
        "---\nsource: tests/scenarios.rs\nexpression: transcript\ninput_file: {input}\n---\n{}\n",
        body.trim_end()
    )
}

/// Whether two bodies are the same snapshot (insta ignores trailing whitespace at the end).
pub fn same(a: &str, b: &str) -> bool {
    a.trim_end() == b.trim_end()
}

/// A line diff of `old` (the accepted snapshot) against `new` (this run), with `context`
/// unchanged lines around each change. Numbers are lines of the snapshot file: `old` lines
/// are counted from `old_offset + 1`, `new` lines as they would be once accepted.
pub fn diff(old: &str, new: &str, old_offset: usize, context: usize) -> String {
    let a: Vec<&str> = old.trim_end().lines().collect();
    let b: Vec<&str> = new.trim_end().lines().collect();
    let ops = lcs_ops(&a, &b);
    // Mark which ops to show: changes and `context` lines around them.
    let changed: Vec<bool> = ops.iter().map(|o| !matches!(o, Op::Same(_))).collect();
    let show: Vec<bool> = (0..ops.len())
        .map(|i| {
            let lo = i.saturating_sub(context);
            let hi = (i + context + 1).min(ops.len());
            changed[lo..hi].iter().any(|&c| c)
        })
        .collect();
    let mut out = String::new();
    let mut gap = false;
    for (i, op) in ops.iter().enumerate() {
        if !show[i] {
            gap = true;
            continue;
        }
        if gap && !out.is_empty() {
            out.push_str("     ...\n");
        }
        gap = false;
        match op {
            Op::Same(x) => out.push_str(&format!("  {:>4} | {}\n", x + 1 + old_offset, a[*x])),
            Op::Del(x) => out.push_str(&format!("- {:>4} | {}\n", x + 1 + old_offset, a[*x])),
            Op::Add(y) => out.push_str(&format!("+ {:>4} | {}\n", y + 1 + old_offset, b[*y])),
        }
    }
    out
}

enum Op {
    Same(usize),
    Del(usize),
    Add(usize),
}

/// Longest-common-subsequence diff; transcripts are a few hundred lines, so the quadratic
/// table is fine. Very long inputs fall back to "all old deleted, all new added".
fn lcs_ops(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    if n.saturating_mul(m) > 25_000_000 {
        return (0..n).map(Op::Del).chain((0..m).map(Op::Add)).collect();
    }
    let mut t = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[at(i, j)] = if a[i] == b[j] {
                t[at(i + 1, j + 1)] + 1
            } else {
                t[at(i + 1, j)].max(t[at(i, j + 1)])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::new();
    while i < n && j < m {
        if a[i] == b[j] {
            ops.push(Op::Same(i));
            i += 1;
            j += 1;
        } else if t[at(i + 1, j)] >= t[at(i, j + 1)] {
            ops.push(Op::Del(i));
            i += 1;
        } else {
            ops.push(Op::Add(j));
            j += 1;
        }
    }
    ops.extend((i..n).map(Op::Del));
    ops.extend((j..m).map(Op::Add));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_name_in_two_folders_collides() {
        let files: Vec<PathBuf> = [
            "a/x.scenario",
            "a/y.scenario",
            "b/x.scenario",
            "a/y.scenario",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let c = collisions(&files);
        assert_eq!(
            c,
            vec![(Path::new("a/x.scenario"), Path::new("b/x.scenario"))]
        );
        // Unique names keep their snapshot names.
        assert_eq!(
            path(Path::new("snapshots"), Path::new("a/y.scenario")),
            Path::new("snapshots/scenarios@y.scenario.snap")
        );
    }

    #[test]
    fn body_and_render_round_trip() {
        let text = render("playbooks/a.scenario", "one\ntwo\n");
        let (b, offset) = body(&text).unwrap();
        assert_eq!(b, "one\ntwo\n");
        assert_eq!(offset, 5);
        assert_eq!(text.lines().nth(offset), Some("one"));
    }

    #[test]
    fn diff_names_lines() {
        let d = diff("a\nb\nc\nd\n", "a\nB\nc\nd\n", 5, 1);
        assert_eq!(d, "     6 | a\n-    7 | b\n+    7 | B\n     8 | c\n");
    }
}
