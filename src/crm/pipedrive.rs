//! Pipedrive, token in the `x-api-token` header (never the `api_token` query parameter:
//! URLs end up in logs). Persons, organizations, deals, activities and their searches use
//! API v2 (<https://developers.pipedrive.com/docs/api/v2>); leads and notes, which have no
//! v2 endpoints, use API v1 (<https://developers.pipedrive.com/docs/api/v1>). Every path
//! is under `/api/` on the configured host (`/api/v2/…`, `/api/v1/…`): v2 answers only
//! there, and v1 answers there as well as under `/v1/`, on `api.pipedrive.com` and on a
//! company domain alike.
//!
//! A lead: organization (found by name, `GET /api/v2/organizations/search`, else `POST
//! /api/v2/organizations`) → person (found by email, `GET /api/v2/persons/search?fields=email
//! &exact_match=true`, else `POST /api/v2/persons` with `emails`/`phones`) → `POST
//! /api/v1/leads` (title, person_id, organization_id, owner_id, label_ids, `value: {amount,
//! currency}`, custom fields by key) → the transcript as `POST /api/v1/notes` with
//! `lead_id`. A deal: the same with `POST /api/v2/deals` (value as a number, currency,
//! owner_id, person_id, org_id, pipeline_id, stage_id, status, custom fields in
//! `custom_fields`) and a note with `deal_id`. An activity: `POST /api/v2/activities`
//! (subject, type, due_date, due_time in UTC, owner_id, note as HTML, the `lead_id` or
//! `deal_id` of the record it links to, and the person as the primary participant). A lead
//! that supersedes the idle lead updates it (`PATCH /api/v1/leads/{id}`).
//!
//! Recovery after a crash (a begun step without an id): a lead or deal is searched by its
//! exact title among the person's (`GET /api/v1/leads/search`, `GET /api/v2/deals/search`),
//! a note among the lead's or deal's notes by the record key in its first line (`GET
//! /api/v1/notes`), an activity among the activities of its lead, deal or person (and
//! owner) updated since the record was made, by subject, type, due date and link (`GET
//! /api/v2/activities`, followed through its cursor pages).
//!
//! Must not: create a person or organization without searching for it first.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::http::{Auth, Http};
use super::{CrmConfig, CrmError, Job, Maps, note_text};

/// Pages of `GET /api/v2/activities` (500 each) read at most when looking for a begun
/// activity.
const ACTIVITY_PAGES: usize = 10;
use crate::capture::{Activity, Person, RecordData, Stored};

/// The Pipedrive connector.
pub struct Pipedrive {
    /// Its section.
    pub cfg: CrmConfig,
    http: Http,
}

/// The `id` of `{"data": {"id": …}}` as text (numbers for persons, UUIDs for leads): the
/// answer of a v1 and of a v2 `POST` alike.
fn data_id(v: &Value) -> Result<String, CrmError> {
    id_text(&v["data"]["id"])
        .ok_or_else(|| CrmError::Transient("Pipedrive answered without data.id".into()))
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The first hit's id of a search answer (`data.items[].item.id`, v1 and v2 alike) whose
/// item passes `keep`.
fn first_item(v: &Value, keep: impl Fn(&Value) -> bool) -> Option<String> {
    v["data"]["items"]
        .as_array()?
        .iter()
        .map(|i| &i["item"])
        .find(|i| keep(i))
        .and_then(|i| id_text(&i["id"]))
}

/// An id config maps give as text, sent as a number when it is one (Pipedrive's user,
/// pipeline and stage ids are integers).
fn num_or_text(id: &str) -> Value {
    id.parse::<i64>().map_or_else(|_| json!(id), |n| json!(n))
}

impl Pipedrive {
    /// A connector for this section (token read).
    pub fn new(cfg: CrmConfig, client: reqwest::Client) -> Self {
        let token = cfg.token.clone().unwrap_or(super::Token(String::new()));
        let http = Http {
            client,
            base: cfg.base(),
            auth: Auth::Header("x-api-token".into(), token),
        };
        Pipedrive { cfg, http }
    }

    /// Delivers one record.
    pub async fn deliver(&self, stored: &Stored, job: &mut Job) -> Result<(), CrmError> {
        let maps = Maps { cfg: &self.cfg };
        let r = &stored.record;
        let owner = maps.owner(r)?;
        match &r.data {
            RecordData::Lead(l) => {
                let labels = maps.labels(&l.labels)?;
                let currency = maps.currency(&l.currency)?;
                let (fields, mut extra) = maps.fields(&l.fields);
                extra.insert(0, ("Title".into(), l.title.clone()));
                if labels.is_none() && !l.labels.is_empty() {
                    extra.push(("Labels".into(), l.labels.join(", ")));
                }
                extra.push(("Source".into(), l.source.clone()));
                extra.push(("Status".into(), l.status.clone()));
                let (org, person) = self
                    .contacts(
                        job,
                        &l.person,
                        l.organization.as_deref(),
                        &owner,
                        &r.conversation,
                    )
                    .await?;
                let mut body = Map::new();
                body.insert("title".into(), json!(l.title));
                if let Some(p) = &person {
                    body.insert("person_id".into(), num_or_text(p));
                }
                if let Some(o) = &org {
                    body.insert("organization_id".into(), num_or_text(o));
                }
                if let Some(o) = &owner {
                    body.insert("owner_id".into(), num_or_text(o));
                }
                if let Some(ids) = labels {
                    body.insert("label_ids".into(), json!(ids));
                }
                match (&l.value, &currency) {
                    // https://developers.pipedrive.com/docs/api/v1/Leads#addLead: `value` is
                    // `{amount: number, currency: string}`; the number's text is the decimal.
                    (Some(v), Some(c)) => {
                        body.insert(
                            "value".into(),
                            json!({"amount": Value::Number(v.to_json_number()), "currency": c}),
                        );
                    }
                    (Some(v), None) => extra.push(("Value".into(), v.to_string())),
                    _ => {}
                }
                for (k, v) in fields {
                    body.insert(k, json!(v));
                }
                let body = Value::Object(body);
                let lead = match self.superseded_lead(job, &body).await? {
                    Some(id) => id,
                    None => {
                        let title = l.title.clone();
                        let (p, o) = (person.clone(), org.clone());
                        job.step(
                            "lead",
                            false,
                            async || {
                                self.find_titled("leads", &title, p.as_deref(), o.as_deref())
                                    .await
                            },
                            async || {
                                data_id(
                                    &self
                                        .http
                                        .json(Method::POST, "/api/v1/leads", &[], Some(&body))
                                        .await?,
                                )
                            },
                        )
                        .await?
                    }
                };
                self.note(job, stored, &extra, "lead_id", &json!(lead))
                    .await
            }
            RecordData::Deal(d) => {
                let currency = maps.currency(&d.currency)?;
                let pipeline = maps.pipeline(d.pipeline.as_deref())?;
                let stage = maps.stage(d.pipeline.as_deref(), d.stage.as_deref())?;
                let (fields, mut extra) = maps.fields(&d.fields);
                extra.insert(0, ("Title".into(), d.title.clone()));
                if !d.labels.is_empty() {
                    extra.push(("Labels".into(), d.labels.join(", ")));
                }
                extra.push(("Source".into(), d.source.clone()));
                if pipeline.is_none()
                    && let Some(p) = &d.pipeline
                {
                    extra.push(("Pipeline".into(), p.clone()));
                }
                if stage.is_none()
                    && let Some(s) = &d.stage
                {
                    extra.push(("Stage".into(), s.clone()));
                }
                let (org, person) = self
                    .contacts(
                        job,
                        &d.person,
                        d.organization.as_deref(),
                        &owner,
                        &r.conversation,
                    )
                    .await?;
                let mut body = Map::new();
                body.insert("title".into(), json!(d.title));
                // https://developers.pipedrive.com/docs/api/v2/Deals#addDeal: `value` is a
                // number (v2 refuses a string), its text the decimal.
                if let Some(v) = &d.value {
                    body.insert("value".into(), Value::Number(v.to_json_number()));
                }
                if let Some(c) = &currency {
                    body.insert("currency".into(), json!(c));
                }
                if let Some(o) = &owner {
                    body.insert("owner_id".into(), num_or_text(o));
                }
                if let Some(p) = &person {
                    body.insert("person_id".into(), num_or_text(p));
                }
                if let Some(o) = &org {
                    body.insert("org_id".into(), num_or_text(o));
                }
                if let Some(p) = &pipeline {
                    body.insert("pipeline_id".into(), num_or_text(p));
                }
                if let Some(s) = &stage {
                    body.insert("stage_id".into(), num_or_text(s));
                }
                let status = d.status.to_ascii_lowercase();
                if ["open", "won", "lost"].contains(&status.as_str()) {
                    body.insert("status".into(), json!(status));
                } else {
                    extra.push(("Status".into(), d.status.clone()));
                }
                // v2 takes custom fields in `custom_fields` (a text field's value as is).
                if !fields.is_empty() {
                    let custom: Map<String, Value> =
                        fields.into_iter().map(|(k, v)| (k, json!(v))).collect();
                    body.insert("custom_fields".into(), Value::Object(custom));
                }
                let body = Value::Object(body);
                let title = d.title.clone();
                let deal = job
                    .step(
                        "deal",
                        false,
                        async || {
                            self.find_titled("deals", &title, person.as_deref(), org.as_deref())
                                .await
                        },
                        async || {
                            data_id(
                                &self
                                    .http
                                    .json(Method::POST, "/api/v2/deals", &[], Some(&body))
                                    .await?,
                            )
                        },
                    )
                    .await?;
                self.note(job, stored, &extra, "deal_id", &num_or_text(&deal))
                    .await
            }
            RecordData::Activity(a) => self.activity(job, a, owner, stored).await,
        }
    }

    /// The idle lead this lead replaces, updated in place (`PATCH /api/v1/leads/{id}`).
    async fn superseded_lead(
        &self,
        job: &mut Job,
        body: &Value,
    ) -> Result<Option<String>, CrmError> {
        let Some(id) = job.superseded.get("lead").cloned() else {
            return Ok(None);
        };
        if job.id("lead").is_none() {
            self.http
                .json(
                    Method::PATCH,
                    &format!("/api/v1/leads/{id}"),
                    &[],
                    Some(body),
                )
                .await?;
            job.done("lead", &id).await?;
        }
        Ok(Some(id))
    }

    /// The organization and person of a lead or deal, found or made (a lead needs one of
    /// them: a visitor who left neither becomes a person named after the conversation).
    async fn contacts(
        &self,
        job: &mut Job,
        p: &Person,
        organization: Option<&str>,
        owner: &Option<String>,
        conversation: &str,
    ) -> Result<(Option<String>, Option<String>), CrmError> {
        let org = match organization {
            Some(name) => Some(
                job.step(
                    "organization",
                    true,
                    async || {
                        let v = self
                            .http
                            .json(
                                Method::GET,
                                "/api/v2/organizations/search",
                                &[
                                    ("term", name.to_owned()),
                                    ("fields", "name".into()),
                                    ("exact_match", "true".into()),
                                ],
                                None,
                            )
                            .await?;
                        Ok(first_item(&v, |_| true))
                    },
                    async || {
                        let mut b = json!({"name": name});
                        if let Some(o) = owner {
                            b["owner_id"] = num_or_text(o);
                        }
                        data_id(
                            &self
                                .http
                                .json(Method::POST, "/api/v2/organizations", &[], Some(&b))
                                .await?,
                        )
                    },
                )
                .await?,
            ),
            None => None,
        };
        let needs_person =
            p.name.is_some() || p.email.is_some() || p.phone.is_some() || org.is_none();
        if !needs_person {
            return Ok((org, None));
        }
        let name = p
            .name
            .clone()
            .or_else(|| p.email.clone())
            .unwrap_or_else(|| format!("Website visitor ({conversation})"));
        let email = p.email.clone();
        let person = job
            .step(
                "person",
                email.is_some(),
                async || {
                    let Some(email) = &email else { return Ok(None) };
                    let v = self
                        .http
                        .json(
                            Method::GET,
                            "/api/v2/persons/search",
                            &[
                                ("term", email.clone()),
                                ("fields", "email".into()),
                                ("exact_match", "true".into()),
                            ],
                            None,
                        )
                        .await?;
                    Ok(first_item(&v, |_| true))
                },
                async || {
                    // https://developers.pipedrive.com/docs/api/v2/Persons#addPerson: `emails`
                    // and `phones` as `[{value, primary, label}]`.
                    let mut b = json!({"name": name});
                    if let Some(e) = &p.email {
                        b["emails"] = json!([{"value": e, "primary": true, "label": "work"}]);
                    }
                    if let Some(ph) = &p.phone {
                        b["phones"] = json!([{"value": ph, "primary": true, "label": "work"}]);
                    }
                    if let Some(o) = &org {
                        b["org_id"] = num_or_text(o);
                    }
                    if let Some(o) = owner {
                        b["owner_id"] = num_or_text(o);
                    }
                    data_id(
                        &self
                            .http
                            .json(Method::POST, "/api/v2/persons", &[], Some(&b))
                            .await?,
                    )
                },
            )
            .await?;
        Ok((org, Some(person)))
    }

    /// A lead or deal with exactly this title among the person's (or organization's): leads
    /// by `GET /api/v1/leads/search`, deals by `GET /api/v2/deals/search` (the same
    /// parameters and `data.items[].item` answer).
    async fn find_titled(
        &self,
        what: &str,
        title: &str,
        person: Option<&str>,
        org: Option<&str>,
    ) -> Result<Option<String>, CrmError> {
        let mut q = vec![
            ("term", title.to_owned()),
            ("fields", "title".into()),
            ("exact_match", "true".into()),
        ];
        if let Some(p) = person {
            q.push(("person_id", p.to_owned()));
        } else if let Some(o) = org {
            q.push(("organization_id", o.to_owned()));
        }
        let path = if what == "leads" {
            "/api/v1/leads/search"
        } else {
            "/api/v2/deals/search"
        };
        let v = self.http.json(Method::GET, path, &q, None).await?;
        Ok(first_item(&v, |i| i["title"].as_str() == Some(title)))
    }

    /// The transcript note on a lead (`lead_id`) or deal (`deal_id`).
    async fn note(
        &self,
        job: &mut Job,
        stored: &Stored,
        extra: &[(String, String)],
        link: &str,
        id: &Value,
    ) -> Result<(), CrmError> {
        let content = note_text(stored, extra, true);
        let marker = format!("playbook record {}", stored.record.key);
        job.step(
            "note",
            false,
            async || {
                let id = id_text(id).unwrap_or_default();
                let v = self
                    .http
                    .json(Method::GET, "/api/v1/notes", &[(link, id)], None)
                    .await?;
                Ok(v["data"].as_array().and_then(|a| {
                    a.iter()
                        .find(|n| n["content"].as_str().is_some_and(|c| c.contains(&marker)))
                        .and_then(|n| id_text(&n["id"]))
                }))
            },
            async || {
                // https://developers.pipedrive.com/docs/api/v1/Notes#addNote
                let b = json!({"content": content, link: id});
                data_id(
                    &self
                        .http
                        .json(Method::POST, "/api/v1/notes", &[], Some(&b))
                        .await?,
                )
            },
        )
        .await
        .map(drop)
    }

    async fn activity(
        &self,
        job: &mut Job,
        a: &Activity,
        owner: Option<String>,
        stored: &Stored,
    ) -> Result<(), CrmError> {
        // https://developers.pipedrive.com/docs/api/v2/Activities#addActivity
        let mut b = Map::new();
        b.insert("subject".into(), json!(a.subject));
        b.insert("type".into(), json!(a.activity.name()));
        let due = a.due.unwrap_or(stored.record.created_at);
        let (date, time) = super::date_time(due.0);
        b.insert("due_date".into(), json!(date));
        if a.due.is_some() {
            b.insert("due_time".into(), json!(time));
        }
        if let Some(o) = &owner {
            b.insert("owner_id".into(), num_or_text(o));
        }
        // `note` is HTML: line breaks as `<br>`, text escaped.
        let note = super::html_text(&super::activity_text(&stored.record, a.note.as_deref()));
        b.insert("note".into(), json!(note));
        let lead = job.linked.get("lead").cloned();
        let deal = job.linked.get("deal").cloned();
        let person = job.linked.get("person").cloned();
        if let Some(l) = &lead {
            b.insert("lead_id".into(), json!(l));
        }
        if let Some(d) = &deal {
            b.insert("deal_id".into(), num_or_text(d));
        }
        // v2 makes `person_id` read-only: the person is the primary participant.
        if let Some(p) = &person {
            b.insert(
                "participants".into(),
                json!([{"person_id": num_or_text(p), "primary": true}]),
            );
        }
        let body = Value::Object(b);
        let subject = a.subject.clone();
        let kind = a.activity.name().to_owned();
        // The activity was made after its record: anything updated a day before that at
        // the earliest (clock skew) is enough to look at.
        let since =
            jiff::Timestamp::from_millisecond(stored.record.created_at.0 as i64 - 24 * 3600 * 1000)
                .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_default();
        job.step(
            "activity",
            false,
            async || {
                // GET /api/v2/activities has no type or date filter: narrowed by the link
                // (deal, lead, else the person as primary participant), the owner and the
                // update time, then matched here.
                let mut q: Vec<(&str, String)> = Vec::new();
                if let Some(d) = &deal {
                    q.push(("deal_id", d.clone()));
                } else if let Some(l) = &lead {
                    q.push(("lead_id", l.clone()));
                } else if let Some(p) = &person {
                    q.push(("person_id", p.clone()));
                }
                if let Some(o) = &owner {
                    q.push(("owner_id", o.clone()));
                }
                if !since.is_empty() {
                    q.push(("updated_since", since.clone()));
                }
                q.push(("limit", "500".into()));
                let mut cursor: Option<String> = None;
                for _ in 0..ACTIVITY_PAGES {
                    let mut page = q.clone();
                    if let Some(c) = &cursor {
                        page.push(("cursor", c.clone()));
                    }
                    let v = self
                        .http
                        .json(Method::GET, "/api/v2/activities", &page, None)
                        .await?;
                    let found = v["data"].as_array().and_then(|acts| {
                        acts.iter()
                            .find(|x| {
                                x["subject"].as_str() == Some(subject.as_str())
                                    && x["type"].as_str() == Some(kind.as_str())
                                    && x["due_date"].as_str() == Some(date.as_str())
                                    && x["is_deleted"] != true
                                    && lead
                                        .as_deref()
                                        .is_none_or(|l| x["lead_id"].as_str() == Some(l))
                                    && deal.as_deref().is_none_or(|d| {
                                        id_text(&x["deal_id"]).as_deref() == Some(d)
                                    })
                            })
                            .and_then(|x| id_text(&x["id"]))
                    });
                    if found.is_some() {
                        return Ok(found);
                    }
                    match v["additional_data"]["next_cursor"].as_str() {
                        Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
                        _ => return Ok(None),
                    }
                }
                Ok(None)
            },
            async || {
                data_id(
                    &self
                        .http
                        .json(Method::POST, "/api/v2/activities", &[], Some(&body))
                        .await?,
                )
            },
        )
        .await
        .map(drop)
    }
}
