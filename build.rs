//! Records the compiler version for `playbook bench`'s report (`runtime`).

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    println!("cargo:rustc-env=PLAYBOOK_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
}
