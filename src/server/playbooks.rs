//! The served playbooks and their versions.
//!
//! A playbook is a file in the playbook folder; its name is the file stem (`demo.playbook` →
//! `demo`). Reading the folder makes a new *version* of every playbook whose text changed and
//! that passes `check`; a file with errors is refused with its rendered diagnostics and the
//! previous version keeps serving. Every version ever served stays loaded (and stored), because
//! running conversations finish on the version they started on.
//!
//! Must not: touch conversations or the database (the caller stores new versions).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::engine::Engine;
use crate::model::Playbook;

/// One version of a playbook.
#[derive(Debug, Clone)]
pub struct Version {
    /// 1, 2, 3, …
    pub version: i64,
    /// The file name it came from.
    pub file: String,
    /// The file's text.
    pub source: String,
    /// The playbook (for the graph view and the title).
    pub playbook: Arc<Playbook>,
}

/// A playbook file that was refused.
#[derive(Debug, Clone, Serialize)]
pub struct Refused {
    /// The file.
    pub file: String,
    /// Its diagnostics, rendered like `playbook check` prints them.
    pub diagnostics: Vec<String>,
}

/// What reading the folder did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadReport {
    /// Playbooks that got a new version: `(name, version)`.
    pub loaded: Vec<(String, i64)>,
    /// Playbooks whose text did not change.
    pub unchanged: Vec<String>,
    /// Files refused (the old version, if any, keeps serving).
    pub refused: Vec<Refused>,
    /// What the served playbooks name that the config does not have (a team, agent or pool),
    /// one line each: `playbook `demo`: card `sales` names the team `Sales`, …`.
    pub warnings: Vec<String>,
}

/// A new version that passed `check`, ready to be added to the hub.
pub struct Candidate {
    /// Playbook name.
    pub name: String,
    /// File name.
    pub file: String,
    /// Its text.
    pub source: String,
    /// The compiled engine.
    pub engine: Engine,
    /// The playbook.
    pub playbook: Playbook,
}

/// Every playbook name with its versions, oldest first.
#[derive(Debug, Default)]
pub struct Catalog {
    by_name: BTreeMap<String, Vec<Version>>,
}

/// Parses and checks one file's text.
pub fn compile(file: &str, source: &str) -> Result<(Engine, Playbook), Vec<String>> {
    // The reload tests need a reload that panics, as a bug in parsing or rendering would.
    #[cfg(test)]
    if source.contains("#!reload-panics") {
        panic!("a reload test asked for a panic");
    }
    let loaded = crate::load::text(file, source).map_err(|invalid| {
        invalid
            .source
            .render(invalid.errors(), &miette::GraphicalTheme::unicode_nocolor())
    })?;
    let playbook = loaded.program.playbook().clone();
    Ok((Engine::new(loaded.program), playbook))
}

/// The name of a playbook file, if it is one (`*.playbook` or `*.json`).
pub fn name_of(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_str()?;
    if ext != "playbook" && ext != "json" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_owned())
}

impl Catalog {
    /// Adds a version.
    pub fn add(&mut self, name: &str, version: Version) {
        self.by_name
            .entry(name.to_owned())
            .or_default()
            .push(version);
    }

    /// The newest version of a playbook.
    pub fn latest(&self, name: &str) -> Option<&Version> {
        self.by_name.get(name)?.last()
    }

    /// A given version.
    pub fn get(&self, name: &str, version: i64) -> Option<&Version> {
        self.by_name
            .get(name)?
            .iter()
            .find(|v| v.version == version)
    }

    /// The newest version of each playbook, by name.
    pub fn latest_all(&self) -> impl Iterator<Item = (&str, &Version)> {
        self.by_name
            .iter()
            .filter_map(|(n, v)| v.last().map(|v| (n.as_str(), v)))
    }

    /// Reads the folder and returns what changed: candidates to add, and the report so far
    /// (the caller fills `loaded` as it adds them).
    pub fn scan(&self, dir: &Path) -> std::io::Result<(Vec<Candidate>, ReloadReport)> {
        let mut report = ReloadReport::default();
        let mut out = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        let mut seen = std::collections::BTreeSet::new();
        for path in entries {
            let Some(name) = name_of(&path) else { continue };
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .unwrap_or_default()
                .to_owned();
            if !seen.insert(name.clone()) {
                report.refused.push(Refused {
                    file,
                    diagnostics: vec![format!(
                        "another file already defines the playbook `{name}`; rename one"
                    )],
                });
                continue;
            }
            let source = match std::fs::metadata(&path) {
                Ok(m) if m.len() > crate::cli::MAX_FILE_BYTES => {
                    Err("the file is larger than 10 MiB".to_owned())
                }
                Ok(_) => std::fs::read_to_string(&path).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let source = match source {
                Ok(s) => s,
                Err(e) => {
                    report.refused.push(Refused {
                        file,
                        diagnostics: vec![e],
                    });
                    continue;
                }
            };
            if self
                .latest(&name)
                .is_some_and(|v| v.source == source && v.file == file)
            {
                report.unchanged.push(name);
                continue;
            }
            match compile(&file, &source) {
                Ok((engine, playbook)) => out.push(Candidate {
                    name,
                    file,
                    source,
                    engine,
                    playbook,
                }),
                Err(diagnostics) => report.refused.push(Refused { file, diagnostics }),
            }
        }
        Ok((out, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_refuses_broken_playbooks_with_diagnostics() {
        assert!(
            compile(
                "ok.playbook",
                "playbook \"x\" { start a }\nmessage a \"hi\" end\n"
            )
            .is_ok()
        );
        let err = compile(
            "bad.playbook",
            "playbook \"x\" { start a }\nmessage a \"hi\" -> nowhere\n",
        )
        .unwrap_err();
        assert!(err.iter().any(|d| d.contains("nowhere")), "{err:?}");
        assert!(compile("bad.playbook", "this is not a playbook").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(
            name_of(Path::new("a/demo.playbook")).as_deref(),
            Some("demo")
        );
        assert_eq!(name_of(Path::new("a/p.json")).as_deref(), Some("p"));
        assert_eq!(name_of(Path::new("a/readme.md")), None);
    }
}
