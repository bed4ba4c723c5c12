//! Zendesk Sell (Core API v2, <https://developer.zendesk.com/api-reference/sales-crm/introduction/>),
//! `Authorization: Bearer TOKEN`, every body in a `{"data": {…}}` envelope, lists as
//! `{"items": [{"data": {…}}]}`.
//!
//! A lead: an existing lead with the visitor's email is reused (`GET /v2/leads?email=`),
//! else `POST /v2/leads` (first_name, last_name, organization_name, email, phone, status,
//! source_id, owner_id, tags, custom_fields, description = the title); then the transcript
//! as `POST /v2/notes` with `resource_type: "lead"`. A deal: its contact found by email
//! (`GET /v2/contacts?email=`) or made (`POST /v2/contacts`), then `POST /v2/deals` (name,
//! contact_id, value, currency, stage_id, owner_id, source_id, tags, custom_fields) and a
//! note on the deal. An activity: `POST /v2/tasks` (content, due_date, owner_id and the
//! linked lead or deal as resource_type/resource_id).
//!
//! Recovery after a crash: a lead without email is searched by name and organization with
//! the title as description; a deal among its contact's deals by name (`GET
//! /v2/deals?contact_id=&name=`); a note or task among the resource's (`GET /v2/notes`,
//! `GET /v2/tasks`) by the record key in its text.
//!
//! Must not: create a lead for an email that already has one.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::http::{Auth, Http};
use super::{CrmConfig, CrmError, Job, Maps, note_text};
use crate::capture::{RecordData, Stored};

/// The Zendesk Sell connector.
pub struct Zendesk {
    /// Its section.
    pub cfg: CrmConfig,
    http: Http,
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn data_id(v: &Value) -> Result<String, CrmError> {
    id_text(&v["data"]["id"])
        .ok_or_else(|| CrmError::Transient("Zendesk Sell answered without data.id".into()))
}

/// The first listed item's id whose data passes `keep`.
fn first(v: &Value, keep: impl Fn(&Value) -> bool) -> Option<String> {
    v["items"]
        .as_array()?
        .iter()
        .map(|i| &i["data"])
        .find(|d| keep(d))
        .and_then(|d| id_text(&d["id"]))
}

fn num_or_text(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
}

impl Zendesk {
    /// A connector for this section (token read).
    pub fn new(cfg: CrmConfig, client: reqwest::Client) -> Self {
        let token = cfg.token.clone().unwrap_or(super::Token(String::new()));
        let http = Http {
            client,
            base: cfg.base(),
            auth: Auth::Bearer(token),
        };
        Zendesk { cfg, http }
    }

    async fn post(&self, path: &str, data: Value) -> Result<String, CrmError> {
        data_id(
            &self
                .http
                .json(Method::POST, path, &[], Some(&json!({"data": data})))
                .await?,
        )
    }

    /// Delivers one record.
    pub async fn deliver(&self, stored: &Stored, job: &mut Job) -> Result<(), CrmError> {
        let maps = Maps { cfg: &self.cfg };
        let r = &stored.record;
        let owner = maps.owner(r)?;
        match &r.data {
            RecordData::Lead(l) => {
                let source = maps.source(&l.source)?;
                let status = maps.status(&l.status)?.unwrap_or_else(|| l.status.clone());
                let (fields, mut extra) = maps.fields(&l.fields);
                if source.is_none() {
                    extra.push(("Source".into(), l.source.clone()));
                }
                if let Some(v) = &l.value {
                    let c = maps.currency(&l.currency)?.unwrap_or_default();
                    extra.push(("Value".into(), format!("{v} {c}").trim().to_owned()));
                }
                // https://developer.zendesk.com/api-reference/sales-crm/resources/leads/#create-a-lead
                let mut d = Map::new();
                let (first_name, last_name) = match &l.person.name {
                    Some(n) => super::split_name(n),
                    None => (None, String::new()),
                };
                if let Some(f) = &first_name {
                    d.insert("first_name".into(), json!(f));
                }
                // A lead needs a last name or an organization name.
                let last = if last_name.is_empty() && l.organization.is_none() {
                    format!("Website visitor ({})", r.conversation)
                } else {
                    last_name
                };
                if !last.is_empty() {
                    d.insert("last_name".into(), json!(last));
                }
                if let Some(o) = &l.organization {
                    d.insert("organization_name".into(), json!(o));
                }
                if let Some(e) = &l.person.email {
                    d.insert("email".into(), json!(e));
                }
                if let Some(p) = &l.person.phone {
                    d.insert("phone".into(), json!(p));
                }
                d.insert("status".into(), json!(status));
                if let Some(s) = &source {
                    d.insert("source_id".into(), num_or_text(s));
                }
                if let Some(o) = &owner {
                    d.insert("owner_id".into(), num_or_text(o));
                }
                if !l.labels.is_empty() {
                    d.insert("tags".into(), json!(l.labels));
                }
                if !fields.is_empty() {
                    d.insert("custom_fields".into(), json!(fields));
                }
                d.insert("description".into(), json!(l.title));
                let data = Value::Object(d);
                let email = l.person.email.clone();
                let title = l.title.clone();
                let (org, last_q) = (l.organization.clone(), last.clone());
                let lead = job
                    .step(
                        "lead",
                        email.is_some(),
                        async || {
                            let q = match &email {
                                Some(e) => vec![("email", e.clone())],
                                None => {
                                    let mut q = vec![("last_name", last_q.clone())];
                                    if let Some(o) = &org {
                                        q.push(("organization_name", o.clone()));
                                    }
                                    q
                                }
                            };
                            let v = self.http.json(Method::GET, "/v2/leads", &q, None).await?;
                            Ok(first(&v, |d| {
                                email.is_some() || d["description"].as_str() == Some(title.as_str())
                            }))
                        },
                        async || self.post("/v2/leads", data).await,
                    )
                    .await?;
                self.note(job, stored, &extra, "lead", &lead).await
            }
            RecordData::Deal(dl) => {
                let source = maps.source(&dl.source)?;
                let currency = maps.currency(&dl.currency)?;
                let stage = maps.stage(dl.pipeline.as_deref(), dl.stage.as_deref())?;
                let (fields, mut extra) = maps.fields(&dl.fields);
                if source.is_none() {
                    extra.push(("Source".into(), dl.source.clone()));
                }
                if stage.is_none()
                    && let Some(s) = &dl.stage
                {
                    extra.push(("Stage".into(), s.clone()));
                }
                // https://developer.zendesk.com/api-reference/sales-crm/resources/contacts/#create-a-contact
                let p = &dl.person;
                let email = p.email.clone();
                let mut c = Map::new();
                match (&p.name, &p.email, &dl.organization) {
                    (None, None, Some(org)) => {
                        c.insert("is_organization".into(), json!(true));
                        c.insert("name".into(), json!(org));
                    }
                    _ => {
                        let (first_name, last_name) = match &p.name {
                            Some(n) => super::split_name(n),
                            None => (
                                None,
                                p.email.clone().unwrap_or_else(|| {
                                    format!("Website visitor ({})", r.conversation)
                                }),
                            ),
                        };
                        c.insert("is_organization".into(), json!(false));
                        if let Some(f) = first_name {
                            c.insert("first_name".into(), json!(f));
                        }
                        c.insert("last_name".into(), json!(last_name));
                    }
                }
                if let Some(e) = &p.email {
                    c.insert("email".into(), json!(e));
                }
                if let Some(ph) = &p.phone {
                    c.insert("phone".into(), json!(ph));
                }
                if let Some(o) = &owner {
                    c.insert("owner_id".into(), num_or_text(o));
                }
                let contact_data = Value::Object(c);
                let contact = job
                    .step(
                        "contact",
                        email.is_some(),
                        async || match &email {
                            Some(e) => {
                                let v = self
                                    .http
                                    .json(
                                        Method::GET,
                                        "/v2/contacts",
                                        &[("email", e.clone())],
                                        None,
                                    )
                                    .await?;
                                Ok(first(&v, |_| true))
                            }
                            None => Ok(None),
                        },
                        async || self.post("/v2/contacts", contact_data).await,
                    )
                    .await?;
                // https://developer.zendesk.com/api-reference/sales-crm/resources/deals/#create-a-deal
                let mut d = Map::new();
                d.insert("name".into(), json!(dl.title));
                d.insert("contact_id".into(), num_or_text(&contact));
                if let Some(v) = &dl.value {
                    d.insert("value".into(), Value::Number(v.to_json_number()));
                }
                if let Some(c) = currency {
                    d.insert("currency".into(), json!(c));
                }
                if let Some(s) = &stage {
                    d.insert("stage_id".into(), num_or_text(s));
                }
                if let Some(o) = &owner {
                    d.insert("owner_id".into(), num_or_text(o));
                }
                if let Some(s) = &source {
                    d.insert("source_id".into(), num_or_text(s));
                }
                if !dl.labels.is_empty() {
                    d.insert("tags".into(), json!(dl.labels));
                }
                if !fields.is_empty() {
                    d.insert("custom_fields".into(), json!(fields));
                }
                let data = Value::Object(d);
                let name = dl.title.clone();
                let deal = job
                    .step(
                        "deal",
                        false,
                        async || {
                            let v = self
                                .http
                                .json(
                                    Method::GET,
                                    "/v2/deals",
                                    &[("contact_id", contact.clone()), ("name", name.clone())],
                                    None,
                                )
                                .await?;
                            Ok(first(&v, |d| d["name"].as_str() == Some(name.as_str())))
                        },
                        async || self.post("/v2/deals", data).await,
                    )
                    .await?;
                self.note(job, stored, &extra, "deal", &deal).await
            }
            RecordData::Activity(a) => {
                // https://developer.zendesk.com/api-reference/sales-crm/resources/tasks/#create-a-task
                let marker = format!("playbook record {}", r.key);
                let content = format!(
                    "{}\n\n{}",
                    a.subject,
                    super::activity_text(r, a.note.as_deref())
                );
                let mut d = json!({"content": content});
                if let Some(due) = a.due {
                    d["due_date"] = json!(super::iso(due.0));
                }
                if let Some(o) = &owner {
                    d["owner_id"] = num_or_text(o);
                }
                let resource = job
                    .linked
                    .get("deal")
                    .map(|id| ("deal", id.clone()))
                    .or_else(|| job.linked.get("lead").map(|id| ("lead", id.clone())));
                if let Some((t, id)) = &resource {
                    d["resource_type"] = json!(t);
                    d["resource_id"] = num_or_text(id);
                }
                job.step(
                    "task",
                    false,
                    async || match &resource {
                        Some((t, id)) => {
                            let v = self
                                .http
                                .json(
                                    Method::GET,
                                    "/v2/tasks",
                                    &[
                                        ("resource_type", (*t).to_owned()),
                                        ("resource_id", id.clone()),
                                    ],
                                    None,
                                )
                                .await?;
                            Ok(first(&v, |d| {
                                d["content"].as_str().is_some_and(|c| c.contains(&marker))
                            }))
                        }
                        None => Ok(None),
                    },
                    async || self.post("/v2/tasks", d).await,
                )
                .await
                .map(drop)
            }
        }
    }

    /// The transcript note on a lead or deal.
    async fn note(
        &self,
        job: &mut Job,
        stored: &Stored,
        extra: &[(String, String)],
        resource_type: &str,
        id: &str,
    ) -> Result<(), CrmError> {
        // https://developer.zendesk.com/api-reference/sales-crm/resources/notes/#create-a-note
        let content = note_text(stored, extra, false);
        let marker = format!("playbook record {}", stored.record.key);
        let data = json!({"resource_type": resource_type, "resource_id": num_or_text(id), "content": content});
        job.step(
            "note",
            false,
            async || {
                let v = self
                    .http
                    .json(
                        Method::GET,
                        "/v2/notes",
                        &[
                            ("resource_type", resource_type.to_owned()),
                            ("resource_id", id.to_owned()),
                        ],
                        None,
                    )
                    .await?;
                Ok(first(&v, |d| {
                    d["content"].as_str().is_some_and(|c| c.contains(&marker))
                }))
            },
            async || self.post("/v2/notes", data).await,
        )
        .await
        .map(drop)
    }
}
