//! The minimum Rust version we state (`rust-version` in Cargo.toml, and the README) is true:
//! no locked dependency needs a newer one. Issue 11 found it false (1.85, while rusqlite 0.41
//! needs 1.89). `.ci/run` runs this first.

use std::process::Command;

/// `1.89` or `1.89.0` as numbers, so that `1.9` < `1.89`.
fn version(v: &str) -> Vec<u64> {
    let mut parts: Vec<u64> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    parts.resize(3, 0);
    parts
}

/// `cargo metadata` over the lock file; with no network (a dependency for another platform
/// not downloaded yet) it falls back to this platform's dependencies.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let run = |extra: &[&str]| {
        Command::new(&cargo)
            .args(["metadata", "--locked", "--format-version", "1"])
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo runs")
    };
    let mut out = run(&[]);
    if !out.status.success() {
        let host = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned()))
            .arg("-vV")
            .output()
            .expect("rustc runs");
        let host = String::from_utf8_lossy(&host.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
            .expect("rustc -vV names the host");
        eprintln!(
            "cargo metadata failed ({}); checking this platform's dependencies only",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out = run(&["--offline", "--filter-platform", &host]);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn rust_version_covers_every_locked_dependency() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("a package list");
    let ours = packages
        .iter()
        .find(|p| p["name"] == env!("CARGO_PKG_NAME") && p["source"].is_null())
        .and_then(|p| p["rust_version"].as_str())
        .expect("Cargo.toml sets rust-version");
    let needs = packages
        .iter()
        .filter_map(|p| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .expect("some dependency states a rust-version");
    assert!(
        version(ours) >= version(needs.0),
        "Cargo.toml says rust-version = {ours}, but {} needs {}: raise rust-version (and the \
         README's \"Rust toolchain (… or newer)\")",
        needs.1,
        needs.0
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(
        readme.contains(&format!("Rust toolchain ({ours} or newer)")),
        "the README states another minimum Rust version than rust-version = {ours}"
    );
}
