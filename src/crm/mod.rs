//! CRM connectors: how a stored record (lead, deal or activity with its transcript) becomes
//! requests to Pipedrive, HubSpot, Zendesk Sell or the generic JSON webhook.
//!
//! Owns: the vendors' request shapes and paths (each file cites the reference it follows),
//! the mapping of playbook names to vendor ids ([`config`]), the classification of vendor
//! answers into [`CrmError`]s the outbox acts on, and **steps**: every vendor object a
//! record makes (person, organization, lead, note …) is one step, stored in `crm_steps`
//! begun before the request and done with the vendor's id in the one write after it
//! ([`Job`]). A retry skips done steps; a begun step without an id (a crash or a timeout
//! fell between the vendor's answer and our write) is searched for at the vendor before it
//! is created again. `docs/crm.md` says what each vendor's search can and cannot find.
//!
//! Must not: decide which records exist or in what order they go (the outbox does), change
//! a record, hold any lock of the server, or put a token in a URL, a log line or an error.

pub mod config;
mod http;
pub mod hubspot;
pub mod pipedrive;
pub mod webhook;
pub mod zendesk;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use config::{CrmConfig, Kind, Token, VendorId};

use crate::capture::{Line, Record, RecordData, Stored, Who};
use crate::persist::{Storage, StoreError};

/// Why a delivery to one connector did not finish. The outbox acts by kind.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CrmError {
    /// The CRM refused the token (401/403): the connector pauses.
    #[error("the CRM refused the token ({status}): {message}")]
    Auth {
        /// The HTTP status.
        status: u16,
        /// The vendor's message.
        message: String,
    },
    /// Too many requests (429): wait this long before the next request to this CRM.
    #[error("the CRM asked to slow down (429); next try in {retry_after_ms} ms")]
    RateLimited {
        /// From `Retry-After` (10 s when it is missing).
        retry_after_ms: u64,
    },
    /// The CRM refused this record (another 4xx): it is parked with the vendor's message.
    #[error("the CRM refused the record ({status} on {what}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The request, as `METHOD /path` (no query: it may hold an email).
        what: String,
        /// The vendor's message.
        message: String,
    },
    /// A name the record uses has no vendor id in the config: parked until it is mapped.
    #[error("{0}")]
    Unmapped(String),
    /// A 5xx, a timeout or a network error: retried with backoff.
    #[error("{0}")]
    Transient(String),
    /// The step table could not be read or written: retried with backoff.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl CrmError {
    /// Whether the record is parked for it (retrying cannot help until someone acts).
    pub fn parks(&self) -> bool {
        matches!(self, CrmError::Rejected { .. } | CrmError::Unmapped(_))
    }
}

/// Whether `c` is an ISO 4217 currency code in form (three upper-case letters).
pub fn is_currency(c: &str) -> bool {
    c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())
}

/// What a step is, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    /// Never begun: create it.
    Fresh,
    /// Begun, no id stored: it may exist at the vendor, search first.
    Begun,
    /// Done: the vendor's id.
    Done(String),
}

/// One record's delivery to one connector: its stored steps, written through to the store
/// one by one, and the ids of the records it links to (an activity's lead or deal).
pub struct Job {
    store: Arc<dyn Storage>,
    connector: String,
    key: String,
    steps: BTreeMap<String, Option<String>>,
    /// Done steps of the record this one links to or supersedes, by step name.
    pub linked: BTreeMap<String, String>,
    /// Done steps of the record this one supersedes (the idle lead a capture lead
    /// replaces), by step name.
    pub superseded: BTreeMap<String, String>,
}

async fn blocking<T: Send + 'static>(
    store: &Arc<dyn Storage>,
    f: impl FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let s = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(s.as_ref()))
        .await
        .map_err(|e| StoreError::Io(format!("a storage task failed: {e}")))?
}

fn done_steps(rows: Vec<crate::persist::CrmStep>) -> BTreeMap<String, String> {
    rows.into_iter()
        .filter_map(|s| s.vendor_id.map(|id| (s.step, id)))
        .collect()
}

impl Job {
    /// Loads the stored steps of `stored`'s record at `connector`, and those of the record
    /// it links to and the one it supersedes.
    pub async fn load(
        store: Arc<dyn Storage>,
        connector: &str,
        stored: &Stored,
    ) -> Result<Job, StoreError> {
        let r = &stored.record;
        let load = |key: String| {
            let connector = connector.to_owned();
            let store = Arc::clone(&store);
            async move { blocking(&store, move |s| s.crm_steps(&key, &connector)).await }
        };
        let steps = load(r.key.clone())
            .await?
            .into_iter()
            .map(|s| (s.step, s.vendor_id))
            .collect();
        let link = match &r.data {
            RecordData::Activity(a) => a.link.clone(),
            _ => None,
        };
        let linked = match link {
            Some(k) => done_steps(load(k).await?),
            None => BTreeMap::new(),
        };
        let superseded = match &r.supersedes {
            Some(k) => done_steps(load(k.clone()).await?),
            None => BTreeMap::new(),
        };
        Ok(Job {
            store,
            connector: connector.to_owned(),
            key: r.key.clone(),
            steps,
            linked,
            superseded,
        })
    }

    /// A step as stored.
    pub fn state(&self, step: &str) -> StepState {
        match self.steps.get(step) {
            None => StepState::Fresh,
            Some(None) => StepState::Begun,
            Some(Some(id)) => StepState::Done(id.clone()),
        }
    }

    /// The id of a done step.
    pub fn id(&self, step: &str) -> Option<&str> {
        self.steps.get(step).and_then(|s| s.as_deref())
    }

    async fn write(&mut self, step: &str, id: Option<&str>) -> Result<(), CrmError> {
        let (key, connector, name) = (self.key.clone(), self.connector.clone(), step.to_owned());
        let value = id.map(str::to_owned);
        blocking(&self.store, move |s| {
            s.crm_step(&key, &connector, &name, value.as_deref())
        })
        .await?;
        match id {
            Some(id) => {
                self.steps.insert(step.to_owned(), Some(id.to_owned()));
            }
            // As stored: a begun step never hides a done one.
            None => {
                self.steps.entry(step.to_owned()).or_insert(None);
            }
        }
        Ok(())
    }

    /// Marks a step begun (before its request goes out).
    pub async fn begin(&mut self, step: &str) -> Result<(), CrmError> {
        self.write(step, None).await
    }

    /// Marks a step done with the vendor's id.
    pub async fn done(&mut self, step: &str, id: &str) -> Result<(), CrmError> {
        self.write(step, Some(id)).await
    }

    /// Runs one step exactly once: a done step gives its id; otherwise, when `always_find`
    /// (deduplication: a person by email) or the step was begun before (a crash or timeout
    /// may have made it), `find` looks for it at the vendor; only then is it begun and
    /// `create`d. Its id is stored in the write that marks it done.
    pub async fn step(
        &mut self,
        step: &str,
        always_find: bool,
        find: impl AsyncFnOnce() -> Result<Option<String>, CrmError>,
        create: impl AsyncFnOnce() -> Result<String, CrmError>,
    ) -> Result<String, CrmError> {
        let state = self.state(step);
        if let StepState::Done(id) = state {
            return Ok(id);
        }
        if (always_find || state == StepState::Begun)
            && let Some(id) = find().await?
        {
            self.done(step, &id).await?;
            return Ok(id);
        }
        self.begin(step).await?;
        let id = create().await?;
        self.done(step, &id).await?;
        Ok(id)
    }
}

/// The names of a config looked up for one record.
pub(crate) struct Maps<'a> {
    pub cfg: &'a CrmConfig,
}

impl Maps<'_> {
    fn lookup(
        &self,
        map: &BTreeMap<String, VendorId>,
        what: &str,
        table: &str,
        name: &str,
    ) -> Result<Option<String>, CrmError> {
        if map.is_empty() {
            // Not mapped at all: the name goes into the note (start warned of it).
            return Ok(None);
        }
        match map.get(name) {
            Some(id) => Ok(Some(id.0.clone())),
            None => Err(CrmError::Unmapped(format!(
                "{what} `{name}` has no id in [[crm]] `{}` {table} (add it to the config, then restart)",
                self.cfg.name()
            ))),
        }
    }

    /// The owner's vendor id. A record with a pool but no owner (nobody in the pool) is an
    /// error rather than an owner-less record.
    pub fn owner(&self, r: &Record) -> Result<Option<String>, CrmError> {
        match (&r.owner, &r.pool) {
            (Some(o), _) => self.lookup(&self.cfg.owners, "owner", "owners", o),
            (None, Some(p)) if !self.cfg.owners.is_empty() => Err(CrmError::Unmapped(format!(
                "the pool `{p}` gave no owner (is it in the server config with members?)"
            ))),
            (None, _) => Ok(None),
        }
    }

    /// Label ids, in order; `None` when labels are not mapped at all.
    pub fn labels(&self, labels: &[String]) -> Result<Option<Vec<String>>, CrmError> {
        if self.cfg.labels.is_empty() || labels.is_empty() {
            return Ok(None);
        }
        labels
            .iter()
            .map(|l| {
                self.lookup(&self.cfg.labels, "label", "labels", l)
                    .map(Option::unwrap_or_default)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// A source's id.
    pub fn source(&self, s: &str) -> Result<Option<String>, CrmError> {
        self.lookup(&self.cfg.sources, "source", "sources", s)
    }

    /// A status's vendor value.
    pub fn status(&self, s: &str) -> Result<Option<String>, CrmError> {
        self.lookup(&self.cfg.statuses, "status", "statuses", s)
    }

    /// A pipeline's id.
    pub fn pipeline(&self, p: Option<&str>) -> Result<Option<String>, CrmError> {
        match p {
            Some(p) => self.lookup(&self.cfg.pipelines, "pipeline", "pipelines", p),
            None => Ok(None),
        }
    }

    /// A stage's id, by `Pipeline/Stage` first, then by the stage's name.
    pub fn stage(
        &self,
        pipeline: Option<&str>,
        s: Option<&str>,
    ) -> Result<Option<String>, CrmError> {
        let Some(s) = s else { return Ok(None) };
        if let Some(p) = pipeline
            && let Some(id) = self.cfg.stages.get(&format!("{p}/{s}"))
        {
            return Ok(Some(id.0.clone()));
        }
        self.lookup(&self.cfg.stages, "stage", "stages", s)
    }

    /// Custom fields split into (vendor key → value) and the unmapped ones (for the note).
    #[allow(clippy::type_complexity)]
    pub fn fields(
        &self,
        fields: &BTreeMap<String, String>,
    ) -> (BTreeMap<String, String>, Vec<(String, String)>) {
        let mut mapped = BTreeMap::new();
        let mut rest = Vec::new();
        for (k, v) in fields {
            match self.cfg.fields.get(k) {
                Some(key) => {
                    mapped.insert(key.clone(), v.clone());
                }
                None => rest.push((k.clone(), v.clone())),
            }
        }
        (mapped, rest)
    }

    /// The currency as an ISO code, or a parking error.
    pub fn currency(&self, c: &Option<String>) -> Result<Option<String>, CrmError> {
        match c {
            None => Ok(None),
            Some(c) => {
                let up = c.trim().to_ascii_uppercase();
                if is_currency(&up) {
                    Ok(Some(up))
                } else {
                    Err(CrmError::Unmapped(format!(
                        "currency `{c}` is not an ISO 4217 code such as EUR"
                    )))
                }
            }
        }
    }
}

/// The transcript note of a record: a header with what the vendor has no field for (the
/// record's key, unmapped fields, labels, source, consent, an agent's note), then the
/// conversation, one line each. Plain text with line breaks; `html` turns it into the
/// paragraphs Pipedrive and HubSpot notes show.
pub fn note_text(stored: &Stored, extra: &[(String, String)], html: bool) -> String {
    let r = &stored.record;
    let mut head: Vec<String> = vec![format!("Chat transcript (playbook record {})", r.key)];
    for (k, v) in extra {
        head.push(format!("{k}: {v}"));
    }
    if let Some(c) = &r.consent {
        let mode = match c.mode {
            crate::capture::ConsentMode::Explicit => "explicit",
            crate::capture::ConsentMode::Implicit => "implicit",
        };
        head.push(format!("Consent ({mode}) at {}: {}", iso(c.at.0), c.notice));
    }
    let note = match &r.data {
        RecordData::Lead(l) => l.note.as_deref(),
        RecordData::Deal(d) => d.note.as_deref(),
        RecordData::Activity(_) => None,
    };
    if let Some(n) = note {
        head.push(format!("Note: {n}"));
    }
    let lines: Vec<String> = stored.transcript.iter().map(line_text).collect();
    if html {
        let mut out = String::new();
        for h in &head {
            out.push_str(&format!("<p>{}</p>", escape_html(h)));
        }
        if !lines.is_empty() {
            out.push_str("<p>");
            out.push_str(
                &lines
                    .iter()
                    .map(|l| escape_html(l))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            );
            out.push_str("</p>");
        }
        out
    } else {
        let mut out = head.join("\n");
        if !lines.is_empty() {
            out.push_str("\n\n");
            out.push_str(&lines.join("\n"));
        }
        out
    }
}

/// The visitor's consent as one line (`Consent (explicit) at …: notice`), if they gave it.
pub fn consent_line(r: &Record) -> Option<String> {
    let c = r.consent.as_ref()?;
    let mode = match c.mode {
        crate::capture::ConsentMode::Explicit => "explicit",
        crate::capture::ConsentMode::Implicit => "implicit",
    };
    Some(format!("Consent ({mode}) at {}: {}", iso(c.at.0), c.notice))
}

/// `&`, `<` and `>` escaped for a vendor field that takes HTML.
fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Plain text as HTML for a vendor field documented as HTML (Pipedrive's activity `note`,
/// <https://developers.pipedrive.com/docs/api/v2/Activities#addActivity>): escaped, each
/// line break a `<br>` (raw line breaks would run together, raw `<` could be sanitized
/// away).
pub fn html_text(s: &str) -> String {
    escape_html(s).replace('\n', "<br>")
}

/// An activity's text: its note, the consent, then the record key (what a search after a
/// crash looks for).
pub fn activity_text(r: &Record, note: Option<&str>) -> String {
    let mut parts: Vec<String> = note.map(str::to_owned).into_iter().collect();
    parts.extend(consent_line(r));
    parts.push(format!("playbook record {}", r.key));
    parts.join("\n\n")
}

fn line_text(l: &Line) -> String {
    let who = match &l.from {
        Who::Visitor => "Visitor".to_owned(),
        Who::Bot(n) | Who::Agent(n) => n.clone(),
        Who::System => "—".to_owned(),
    };
    format!("[{}] {who}: {}", hhmm(l.at.0), l.text)
}

/// An instant as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn iso(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// An instant's UTC date `YYYY-MM-DD` and time `HH:MM`.
pub fn date_time(ms: u64) -> (String, String) {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| {
            (
                t.strftime("%Y-%m-%d").to_string(),
                t.strftime("%H:%M").to_string(),
            )
        })
        .unwrap_or_default()
}

fn hhmm(ms: u64) -> String {
    date_time(ms).1
}

/// A person's name split into first and last (the last word is the last name).
pub fn split_name(name: &str) -> (Option<String>, String) {
    let name = name.trim();
    match name.rsplit_once(' ') {
        Some((first, last)) => (Some(first.trim().to_owned()), last.to_owned()),
        None => (None, name.to_owned()),
    }
}

/// One configured connector.
pub enum Connector {
    /// Pipedrive.
    Pipedrive(pipedrive::Pipedrive),
    /// HubSpot.
    Hubspot(hubspot::Hubspot),
    /// Zendesk Sell.
    Zendesk(zendesk::Zendesk),
    /// The JSON webhook.
    Webhook(webhook::Webhook),
}

impl Connector {
    /// Builds the connector a section describes (its token already read).
    pub fn new(cfg: CrmConfig) -> Result<Connector, String> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(cfg.timeout_ms))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(match cfg.kind {
            Kind::Pipedrive => Connector::Pipedrive(pipedrive::Pipedrive::new(cfg, client)),
            Kind::Hubspot => Connector::Hubspot(hubspot::Hubspot::new(cfg, client)),
            Kind::ZendeskSell => Connector::Zendesk(zendesk::Zendesk::new(cfg, client)),
            Kind::Webhook => Connector::Webhook(webhook::Webhook::new(cfg, client)),
        })
    }

    /// Its config.
    pub fn config(&self) -> &CrmConfig {
        match self {
            Connector::Pipedrive(c) => &c.cfg,
            Connector::Hubspot(c) => &c.cfg,
            Connector::Zendesk(c) => &c.cfg,
            Connector::Webhook(c) => &c.cfg,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.config().name()
    }

    /// Delivers one record, step by step: `stored` is `body` read (the webhook sends
    /// `body` as it was stored).
    pub async fn deliver(
        &self,
        stored: &Stored,
        body: &serde_json::Value,
        job: &mut Job,
    ) -> Result<(), CrmError> {
        match self {
            Connector::Pipedrive(c) => c.deliver(stored, job).await,
            Connector::Hubspot(c) => c.deliver(stored, job).await,
            Connector::Zendesk(c) => c.deliver(stored, job).await,
            Connector::Webhook(c) => c.deliver(stored, body, job).await,
        }
    }
}

/// What one capture card names: owner, labels, status, source, pipeline, stage.
type Named<'a> = (
    &'a Option<crate::model::Owner>,
    &'a [String],
    Option<String>,
    Option<String>,
    Option<&'a String>,
    Option<&'a String>,
);

/// What the playbooks name that a connector's maps lack: warnings for `serve` at start and
/// at every reload (a record that needs one is parked with the same words).
pub fn warnings(
    cfg: &CrmConfig,
    playbooks: &[(&str, &crate::model::Playbook)],
    agents: &[&str],
    pools: &BTreeMap<String, Vec<String>>,
) -> Vec<String> {
    use crate::model::{Card, Owner, RecordSpec};
    if cfg.kind == Kind::Webhook {
        return Vec::new();
    }
    let name = cfg.name();
    let mut out = std::collections::BTreeSet::new();
    let check = |out: &mut std::collections::BTreeSet<String>,
                 map: &BTreeMap<String, VendorId>,
                 table: &str,
                 what: &str,
                 value: &str,
                 pb: &str| {
        if !map.is_empty() && !map.contains_key(value) {
            out.insert(format!(
                "W005 in playbook `{pb}`: the {what} `{value}` has no id in [[crm]] `{name}` {table}; its records will be parked"
            ));
        }
    };
    let constant = |t: &Option<crate::model::Template>| -> Option<String> {
        let t = t.as_ref()?;
        match t.parts() {
            [crate::model::Part::Text(s)] => Some(s.clone()),
            _ => None,
        }
    };
    for (pb, p) in playbooks {
        for card in &p.cards {
            let Card::Capture(c) = card else { continue };
            let (owner, labels, status, source, pipeline, stage): Named<'_> = match &c.record {
                RecordSpec::Lead(l) => (
                    &l.owner,
                    &l.labels,
                    constant(&l.status).or(Some("New".into())),
                    constant(&l.source),
                    None,
                    None,
                ),
                RecordSpec::Deal(d) => (
                    &d.owner,
                    &d.labels,
                    constant(&d.status).or(Some("Open".into())),
                    None,
                    d.pipeline.as_ref(),
                    d.stage.as_ref(),
                ),
                RecordSpec::Activity(a) => (&a.owner, &[], None, None, None, None),
            };
            match owner {
                Some(Owner::User(u)) => check(&mut out, &cfg.owners, "owners", "owner", u, pb),
                Some(Owner::Pool(pool)) => {
                    for m in pools.get(pool).into_iter().flatten() {
                        check(&mut out, &cfg.owners, "owners", "pool member", m, pb);
                    }
                }
                Some(Owner::Agent) | None => {
                    for a in agents {
                        check(&mut out, &cfg.owners, "owners", "agent", a, pb);
                    }
                }
            }
            for l in labels {
                check(&mut out, &cfg.labels, "labels", "label", l, pb);
            }
            if let Some(s) = status {
                check(&mut out, &cfg.statuses, "statuses", "status", &s, pb);
            }
            if let Some(s) = source {
                check(&mut out, &cfg.sources, "sources", "source", &s, pb);
            }
            if let Some(p) = pipeline {
                check(&mut out, &cfg.pipelines, "pipelines", "pipeline", p, pb);
            }
            if let Some(s) = stage {
                let both = pipeline.map(|p| format!("{p}/{s}"));
                if !both.is_some_and(|b| cfg.stages.contains_key(&b)) {
                    check(&mut out, &cfg.stages, "stages", "stage", s, pb);
                }
            }
        }
    }
    if cfg.owners.is_empty() {
        out.insert(format!(
            "W005: [[crm]] `{name}` has no `owners` map: records are owned by the token's user"
        ));
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_currencies_are_checked() {
        assert_eq!(
            split_name("Eve Ann Smith"),
            (Some("Eve Ann".into()), "Smith".into())
        );
        assert_eq!(split_name("Eve"), (None, "Eve".into()));
        assert!(is_currency("EUR") && !is_currency("eur") && !is_currency("EURO"));
        assert_eq!(date_time(0), ("1970-01-01".into(), "00:00".into()));
    }

    #[test]
    fn html_text_escapes_and_breaks_lines() {
        assert_eq!(
            html_text("Call <Eve> & Co\n\nplaybook record k1"),
            "Call &lt;Eve&gt; &amp; Co<br><br>playbook record k1"
        );
    }
}
