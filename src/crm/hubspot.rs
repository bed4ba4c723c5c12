//! HubSpot (CRM API v3, <https://developers.hubspot.com/docs/api/crm/understanding-the-crm>),
//! a private app's token as `Authorization: Bearer`.
//!
//! A lead: the contact upserted by email (`POST /crm/v3/objects/contacts/batch/upsert`
//! with `idProperty: "email"`: HubSpot itself keeps one contact per email), the company
//! found by name (`POST /crm/v3/objects/companies/search`) or made, the two associated
//! (`PUT /crm/v4/objects/contact/{id}/associations/default/company/{id}`), and the
//! transcript as a note (`POST /crm/v3/objects/notes`, `hs_note_body`, `hs_timestamp`)
//! associated with the contact (type 202) and company (190). HubSpot's lead status
//! (`hs_lead_status`) comes from the `statuses` map. A deal: `POST /crm/v3/objects/deals`
//! (dealname, amount as a decimal string, deal_currency_code, pipeline, dealstage,
//! hubspot_owner_id) associated with the contact (3) and company (5), and its note (214).
//! An activity: a task (`POST /crm/v3/objects/tasks`: hs_task_subject, hs_task_body,
//! hs_timestamp = due, hs_task_type CALL / EMAIL / TODO) associated with the linked deal
//! (216) or contact (204).
//!
//! Recovery after a crash: contacts need none (upsert by email); companies are searched by
//! name; a deal, note or task is looked for among the objects already associated with its
//! contact or deal (`GET /crm/v4/objects/{type}/{id}/associations/{to}`, then
//! `POST /crm/v3/objects/{to}/batch/read`) by its exact name, or the record key in its body.
//!
//! Must not: set a contact's lifecycle stage (HubSpot refuses to move it backwards).

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::http::{Auth, Http};
use super::{CrmConfig, CrmError, Job, Maps, note_text};
use crate::capture::{Person, RecordData, Stored};
use crate::model::ActivityType;

/// The HubSpot connector.
pub struct Hubspot {
    /// Its section.
    pub cfg: CrmConfig,
    http: Http,
}

fn id_of(v: &Value) -> Result<String, CrmError> {
    match &v["id"] {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(CrmError::Transient("HubSpot answered without an id".into())),
    }
}

/// `{to: {id}, types: [{HUBSPOT_DEFINED, type}]}`.
/// https://developers.hubspot.com/docs/api/crm/associations (default association type ids).
fn assoc(id: &str, type_id: u32) -> Value {
    json!({"to": {"id": id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]})
}

impl Hubspot {
    /// A connector for this section (token read).
    pub fn new(cfg: CrmConfig, client: reqwest::Client) -> Self {
        let token = cfg.token.clone().unwrap_or(super::Token(String::new()));
        let http = Http {
            client,
            base: cfg.base(),
            auth: Auth::Bearer(token),
        };
        Hubspot { cfg, http }
    }

    /// Delivers one record.
    pub async fn deliver(&self, stored: &Stored, job: &mut Job) -> Result<(), CrmError> {
        let maps = Maps { cfg: &self.cfg };
        let r = &stored.record;
        let owner = maps.owner(r)?;
        match &r.data {
            RecordData::Lead(l) => {
                let status = maps.status(&l.status)?;
                let (fields, mut extra) = maps.fields(&l.fields);
                extra.insert(0, ("Lead".into(), l.title.clone()));
                if !l.labels.is_empty() {
                    extra.push(("Labels".into(), l.labels.join(", ")));
                }
                extra.push(("Source".into(), l.source.clone()));
                if status.is_none() {
                    extra.push(("Status".into(), l.status.clone()));
                }
                if let Some(v) = &l.value {
                    let c = maps.currency(&l.currency)?.unwrap_or_default();
                    extra.push(("Value".into(), format!("{v} {c}").trim().to_owned()));
                }
                let mut props = Map::new();
                if let Some(s) = status {
                    props.insert("hs_lead_status".into(), json!(s));
                }
                for (k, v) in fields {
                    props.insert(k, json!(v));
                }
                let contact = self
                    .contact(job, &l.person, &owner, props, &r.conversation)
                    .await?;
                let company = self
                    .company(job, l.organization.as_deref(), &contact)
                    .await?;
                let mut to = vec![assoc(&contact, 202)];
                if let Some(c) = &company {
                    to.push(assoc(c, 190));
                }
                self.note(job, stored, &extra, &owner, to, ("contact", &contact))
                    .await
            }
            RecordData::Deal(d) => {
                let currency = maps.currency(&d.currency)?;
                let pipeline = maps.pipeline(d.pipeline.as_deref())?;
                let stage = maps.stage(d.pipeline.as_deref(), d.stage.as_deref())?;
                let (fields, mut extra) = maps.fields(&d.fields);
                extra.insert(0, ("Deal".into(), d.title.clone()));
                if !d.labels.is_empty() {
                    extra.push(("Labels".into(), d.labels.join(", ")));
                }
                extra.push(("Source".into(), d.source.clone()));
                let contact = if d.person.email.is_some() || d.person.name.is_some() {
                    Some(
                        self.contact(job, &d.person, &None, Map::new(), &r.conversation)
                            .await?,
                    )
                } else {
                    None
                };
                let company = match &contact {
                    Some(c) => self.company(job, d.organization.as_deref(), c).await?,
                    None => None,
                };
                // https://developers.hubspot.com/docs/api/crm/deals
                let mut props = Map::new();
                props.insert("dealname".into(), json!(d.title));
                if let Some(v) = &d.value {
                    props.insert("amount".into(), json!(v.as_str()));
                }
                if let Some(c) = currency {
                    props.insert("deal_currency_code".into(), json!(c));
                }
                if let Some(p) = pipeline {
                    props.insert("pipeline".into(), json!(p));
                }
                if let Some(s) = stage {
                    props.insert("dealstage".into(), json!(s));
                }
                if let Some(o) = &owner {
                    props.insert("hubspot_owner_id".into(), json!(o));
                }
                for (k, v) in fields {
                    props.insert(k, json!(v));
                }
                let mut associations = Vec::new();
                if let Some(c) = &contact {
                    associations.push(assoc(c, 3));
                }
                if let Some(c) = &company {
                    associations.push(assoc(c, 5));
                }
                let body = json!({"properties": props, "associations": associations});
                let title = d.title.clone();
                let contact_ref = contact.clone();
                let deal = job
                    .step(
                        "deal",
                        false,
                        async || match &contact_ref {
                            Some(c) => {
                                self.associated("contact", c, "deals", "dealname", &|v| v == title)
                                    .await
                            }
                            None => Ok(None),
                        },
                        async || {
                            id_of(
                                &self
                                    .http
                                    .json(Method::POST, "/crm/v3/objects/deals", &[], Some(&body))
                                    .await?,
                            )
                        },
                    )
                    .await?;
                let mut to = vec![assoc(&deal, 214)];
                if let Some(c) = &contact {
                    to.push(assoc(c, 202));
                }
                self.note(job, stored, &extra, &owner, to, ("deal", &deal))
                    .await
            }
            RecordData::Activity(a) => {
                // https://developers.hubspot.com/docs/api/crm/tasks
                let kind = match a.activity {
                    ActivityType::Call => "CALL",
                    ActivityType::Email => "EMAIL",
                    _ => "TODO",
                };
                let due = a.due.unwrap_or(r.created_at);
                let marker = format!("playbook record {}", r.key);
                let body_text = super::activity_text(r, a.note.as_deref());
                let mut props = json!({
                    "hs_task_subject": a.subject,
                    "hs_task_body": body_text,
                    "hs_timestamp": super::iso(due.0),
                    "hs_task_status": "NOT_STARTED",
                    "hs_task_type": kind,
                });
                if let Some(o) = &owner {
                    props["hubspot_owner_id"] = json!(o);
                }
                let mut associations = Vec::new();
                let deal = job.linked.get("deal").cloned();
                let contact = job.linked.get("contact").cloned();
                if let Some(d) = &deal {
                    associations.push(assoc(d, 216));
                }
                if let Some(c) = &contact {
                    associations.push(assoc(c, 204));
                }
                let body = json!({"properties": props, "associations": associations});
                let from = deal
                    .map(|d| ("deal", d))
                    .or(contact.map(|c| ("contact", c)));
                job.step(
                    "task",
                    false,
                    async || match &from {
                        Some((t, id)) => {
                            self.associated(t, id, "tasks", "hs_task_body", &|v| {
                                v.contains(&marker)
                            })
                            .await
                        }
                        None => Ok(None),
                    },
                    async || {
                        id_of(
                            &self
                                .http
                                .json(Method::POST, "/crm/v3/objects/tasks", &[], Some(&body))
                                .await?,
                        )
                    },
                )
                .await
                .map(drop)
            }
        }
    }

    /// The contact, upserted by email (or made, without one).
    async fn contact(
        &self,
        job: &mut Job,
        p: &Person,
        owner: &Option<String>,
        mut props: Map<String, Value>,
        conversation: &str,
    ) -> Result<String, CrmError> {
        // https://developers.hubspot.com/docs/api/crm/contacts
        // Without a name, an upsert by email must not overwrite the contact's name.
        let name = match (&p.name, &p.email) {
            (Some(n), _) => Some(super::split_name(n)),
            (None, None) => Some((None, format!("Website visitor ({conversation})"))),
            (None, Some(_)) => None,
        };
        if let Some((first, last)) = name {
            if let Some(f) = first {
                props.insert("firstname".into(), json!(f));
            }
            props.insert("lastname".into(), json!(last));
        }
        if let Some(ph) = &p.phone {
            props.insert("phone".into(), json!(ph));
        }
        if let Some(o) = owner {
            props.insert("hubspot_owner_id".into(), json!(o));
        }
        match &p.email {
            Some(email) => {
                props.insert("email".into(), json!(email));
                let body =
                    json!({"inputs": [{"idProperty": "email", "id": email, "properties": props}]});
                // The upsert is idempotent by email: no search, no begun state to fear.
                job.step(
                    "contact",
                    false,
                    async || Ok(None),
                    async || {
                        let v = self
                            .http
                            .json(
                                Method::POST,
                                "/crm/v3/objects/contacts/batch/upsert",
                                &[],
                                Some(&body),
                            )
                            .await?;
                        id_of(&v["results"][0])
                    },
                )
                .await
            }
            None => {
                let body = json!({"properties": props});
                job.step(
                    "contact",
                    false,
                    async || Ok(None),
                    async || {
                        id_of(
                            &self
                                .http
                                .json(Method::POST, "/crm/v3/objects/contacts", &[], Some(&body))
                                .await?,
                        )
                    },
                )
                .await
            }
        }
    }

    /// The company by name, found or made, associated with the contact.
    async fn company(
        &self,
        job: &mut Job,
        name: Option<&str>,
        contact: &str,
    ) -> Result<Option<String>, CrmError> {
        let Some(name) = name else { return Ok(None) };
        // https://developers.hubspot.com/docs/api/crm/search
        let search = json!({
            "filterGroups": [{"filters": [{"propertyName": "name", "operator": "EQ", "value": name}]}],
            "properties": ["name"],
            "limit": 1
        });
        let company = job
            .step(
                "company",
                true,
                async || {
                    let v = self
                        .http
                        .json(
                            Method::POST,
                            "/crm/v3/objects/companies/search",
                            &[],
                            Some(&search),
                        )
                        .await?;
                    Ok(v["results"].get(0).and_then(|c| id_of(c).ok()))
                },
                async || {
                    let b = json!({"properties": {"name": name}});
                    id_of(
                        &self
                            .http
                            .json(Method::POST, "/crm/v3/objects/companies", &[], Some(&b))
                            .await?,
                    )
                },
            )
            .await?;
        // The default association is idempotent: PUT it again on a retry.
        job.step(
            "contact_company",
            false,
            async || Ok(None),
            async || {
                self.http
                    .json(
                        Method::PUT,
                        &format!("/crm/v4/objects/contact/{contact}/associations/default/company/{company}"),
                        &[],
                        None,
                    )
                    .await?;
                Ok("default".to_owned())
            },
        )
        .await?;
        Ok(Some(company))
    }

    /// The transcript note, associated as `to` says.
    async fn note(
        &self,
        job: &mut Job,
        stored: &Stored,
        extra: &[(String, String)],
        owner: &Option<String>,
        to: Vec<Value>,
        on: (&str, &str),
    ) -> Result<(), CrmError> {
        // https://developers.hubspot.com/docs/api/crm/notes
        let mut props = json!({
            "hs_note_body": note_text(stored, extra, true),
            "hs_timestamp": super::iso(stored.record.created_at.0),
        });
        if let Some(o) = owner {
            props["hubspot_owner_id"] = json!(o);
        }
        let body = json!({"properties": props, "associations": to});
        let marker = format!("playbook record {}", stored.record.key);
        job.step(
            "note",
            false,
            async || {
                self.associated(on.0, on.1, "notes", "hs_note_body", &|v| {
                    v.contains(&marker)
                })
                .await
            },
            async || {
                id_of(
                    &self
                        .http
                        .json(Method::POST, "/crm/v3/objects/notes", &[], Some(&body))
                        .await?,
                )
            },
        )
        .await
        .map(drop)
    }

    /// Among the `to` objects associated with `from/id`, the first whose `prop` passes
    /// `keep`.
    async fn associated(
        &self,
        from: &str,
        id: &str,
        to: &str,
        prop: &str,
        keep: &(dyn Fn(&str) -> bool + Sync),
    ) -> Result<Option<String>, CrmError> {
        // https://developers.hubspot.com/docs/api/crm/associations (v4 list)
        let v = self
            .http
            .json(
                Method::GET,
                &format!("/crm/v4/objects/{from}/{id}/associations/{to}"),
                &[("limit", "500".into())],
                None,
            )
            .await?;
        let ids: Vec<Value> = v["results"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| match &x["toObjectId"] {
                        Value::Number(n) => Some(json!({"id": n.to_string()})),
                        Value::String(s) => Some(json!({"id": s})),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if ids.is_empty() {
            return Ok(None);
        }
        let read = json!({"inputs": ids, "properties": [prop]});
        let v = self
            .http
            .json(
                Method::POST,
                &format!("/crm/v3/objects/{to}/batch/read"),
                &[],
                Some(&read),
            )
            .await?;
        Ok(v["results"].as_array().and_then(|a| {
            a.iter()
                .find(|o| o["properties"][prop].as_str().is_some_and(keep))
                .and_then(|o| id_of(o).ok())
        }))
    }
}
