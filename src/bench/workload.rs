//! The canonical workload file (`docs/bench/workload.json`): texts, scripts, expected
//! replies and leads, read with serde and resolved into a [`Plan`] the driver can follow
//! without looking anything up by name.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `workload.json` as written.
#[derive(Debug, Clone, Deserialize)]
pub struct Workload {
    /// Format version (1).
    pub version: u32,
    /// Every bot message by name: its text and buttons.
    pub messages: BTreeMap<String, Message>,
    /// The email rule, as a regular expression (documentation; the playbook's `ask` card
    /// implements it).
    #[serde(default)]
    pub email_pattern: Option<String>,
    /// Whether an agent is online (always `false` in the canonical workload).
    #[serde(default)]
    pub agent_online: bool,
    /// Scripted visitors by name.
    pub scripts: BTreeMap<String, Script>,
    /// Workloads by name: conversation `i` runs script `list[i mod len]`.
    pub workloads: BTreeMap<String, Vec<String>>,
    /// What the parked-session phase sends.
    pub park: ParkSpec,
}

/// One bot message: a text, and buttons when it is a question with buttons.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    /// The exact text.
    pub text: String,
    /// The button labels, in order.
    #[serde(default)]
    pub buttons: Vec<String>,
}

/// One scripted visitor.
#[derive(Debug, Clone, Deserialize)]
pub struct Script {
    /// What the visitor types, after the start event.
    pub inputs: Vec<String>,
    /// Expected replies per step, by message name: step 0 is the start event.
    pub expect: Vec<Vec<String>>,
    /// The lead this conversation must leave behind, if any.
    pub lead: Option<LeadKey>,
}

/// The fields of a lead the benchmark compares.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub struct LeadKey {
    /// Lead title.
    pub title: String,
    /// Person's email.
    pub email: String,
    /// Source.
    pub source: String,
    /// Status.
    pub status: String,
}

/// The parked phase: the first `inputs` inputs of `script`.
#[derive(Debug, Clone, Deserialize)]
pub struct ParkSpec {
    /// The script name.
    pub script: String,
    /// How many of its inputs are sent.
    pub inputs: usize,
}

/// A script resolved: inputs, and expected replies as values.
#[derive(Debug, Clone)]
pub struct PlanScript {
    /// The script's name.
    pub name: String,
    /// Visitor inputs after the start event.
    pub inputs: Vec<String>,
    /// Expected replies per step (step 0 = start event).
    pub expect: Vec<Vec<Message>>,
    /// The lead it leaves behind.
    pub lead: Option<LeadKey>,
}

/// A workload resolved for one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The workload's name (`mix`, `demo`).
    pub name: String,
    /// The scripts conversation `i` cycles through: `scripts[i % len]`.
    pub scripts: Vec<PlanScript>,
}

impl Plan {
    /// The script of conversation `i`.
    pub fn script(&self, i: usize) -> &PlanScript {
        &self.scripts[i % self.scripts.len()]
    }

    /// The most inputs any script sends (the number of rounds after round 0).
    pub fn max_inputs(&self) -> usize {
        self.scripts
            .iter()
            .map(|s| s.inputs.len())
            .max()
            .unwrap_or(0)
    }

    /// Visitor turns in `n` conversations.
    pub fn turns(&self, n: usize) -> u64 {
        (0..n).map(|i| self.script(i).inputs.len() as u64).sum()
    }

    /// The leads `n` conversations must leave behind, counted per key.
    pub fn leads(&self, n: usize) -> BTreeMap<LeadKey, u64> {
        let mut out = BTreeMap::new();
        for i in 0..n {
            if let Some(l) = &self.script(i).lead {
                *out.entry(l.clone()).or_insert(0) += 1;
            }
        }
        out
    }
}

impl Workload {
    /// Reads `workload.json`.
    pub fn from_json(text: &str) -> Result<Workload, String> {
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    fn resolve(&self, name: &str) -> Result<PlanScript, String> {
        let s = self
            .scripts
            .get(name)
            .ok_or_else(|| format!("no script named `{name}`"))?;
        if s.expect.len() != s.inputs.len() + 1 {
            return Err(format!(
                "script `{name}` has {} inputs but {} expected reply lists (one per input plus the start event)",
                s.inputs.len(),
                s.expect.len()
            ));
        }
        let expect =
            s.expect
                .iter()
                .map(|step| {
                    step.iter()
                        .map(|m| {
                            self.messages.get(m).cloned().ok_or_else(|| {
                                format!("script `{name}` expects unknown message `{m}`")
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
        Ok(PlanScript {
            name: name.to_owned(),
            inputs: s.inputs.clone(),
            expect,
            lead: s.lead.clone(),
        })
    }

    /// The named workload, resolved.
    pub fn plan(&self, workload: &str) -> Result<Plan, String> {
        if self.agent_online {
            return Err(
                "`agent_online: true` is not supported: the benchmark runs with no agent online"
                    .into(),
            );
        }
        let names = self.workloads.get(workload).ok_or_else(|| {
            let known: Vec<_> = self.workloads.keys().map(String::as_str).collect();
            format!(
                "no workload named `{workload}` (the file has: {})",
                known.join(", ")
            )
        })?;
        if names.is_empty() {
            return Err(format!("workload `{workload}` lists no scripts"));
        }
        let scripts = names
            .iter()
            .map(|n| self.resolve(n))
            .collect::<Result<_, _>>()?;
        Ok(Plan {
            name: workload.to_owned(),
            scripts,
        })
    }

    /// The parked phase as a one-script plan cut after `park.inputs` inputs.
    pub fn park_plan(&self) -> Result<Plan, String> {
        let mut s = self.resolve(&self.park.script)?;
        if self.park.inputs > s.inputs.len() {
            return Err(format!(
                "park sends {} inputs but script `{}` has {}",
                self.park.inputs,
                s.name,
                s.inputs.len()
            ));
        }
        s.inputs.truncate(self.park.inputs);
        s.expect.truncate(self.park.inputs + 1);
        s.lead = None;
        Ok(Plan {
            name: format!("park:{}", s.name),
            scripts: vec![s],
        })
    }
}
