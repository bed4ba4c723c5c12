//! Fake CRM vendors on a loopback port: Pipedrive, HubSpot and Zendesk Sell, each answering
//! the requests the connectors make with the shapes of the vendor's reference (ids, search
//! results, lists), keeping every request for the tests to check, and able to refuse:
//! a token that is not the expected one gets 401, scripted answers (429 with Retry-After,
//! 401) go first, an email in `reject` is refused with a 400/422, and the next POST to
//! `slow` is stored then answered late (the crash test kills the server meanwhile).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Which vendor a fake plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Pipedrive,
    Hubspot,
    Zendesk,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
    pub at: Instant,
    pub status: u16,
}

/// The fake's state.
pub struct Fake {
    pub kind: Kind,
    /// The token the fake accepts.
    pub token: String,
    /// Every request, in the order received.
    pub reqs: Vec<Req>,
    /// Objects made, by collection (`persons`, `leads`, `contacts`, …), each with its `id`.
    pub objects: BTreeMap<String, Vec<Value>>,
    /// Answers given before any other: (status, Retry-After seconds).
    pub forced: VecDeque<(u16, Option<u64>)>,
    /// An email the vendor refuses (validation error).
    pub reject: Option<String>,
    /// The next POST to this path is stored, then answered after this delay.
    pub slow: Option<(String, Duration)>,
    /// Pipedrive v2 lists: at most this many items a page, whatever `limit` asks.
    pub page_max: Option<usize>,
    next: u64,
}

impl Fake {
    pub fn new(kind: Kind, token: &str) -> Arc<Mutex<Fake>> {
        Arc::new(Mutex::new(Fake {
            kind,
            token: token.to_owned(),
            reqs: Vec::new(),
            objects: BTreeMap::new(),
            forced: VecDeque::new(),
            reject: None,
            slow: None,
            page_max: None,
            next: 100,
        }))
    }

    /// The requests with this method and path.
    pub fn hits(&self, method: &str, path: &str) -> Vec<Req> {
        self.reqs
            .iter()
            .filter(|r| r.method == method && r.path == path)
            .cloned()
            .collect()
    }

    /// Index of the first request with this method and path.
    pub fn index(&self, method: &str, path: &str) -> Option<usize> {
        self.reqs
            .iter()
            .position(|r| r.method == method && r.path == path)
    }

    pub fn count(&self, coll: &str) -> usize {
        self.objects.get(coll).map_or(0, Vec::len)
    }

    /// Adds an object as if it had been made before (an existing person, say).
    pub fn seed(&mut self, coll: &str, mut obj: Value) -> String {
        let id = self.id(coll);
        obj["id"] = id.clone();
        self.objects.entry(coll.to_owned()).or_default().push(obj);
        id_text(&id)
    }

    fn id(&mut self, coll: &str) -> Value {
        self.next += 1;
        match (self.kind, coll) {
            // Pipedrive lead ids are UUIDs; HubSpot ids are strings of digits.
            (Kind::Pipedrive, "leads") => {
                json!(format!("0b8c1f2e-0000-4000-8000-{:012}", self.next))
            }
            (Kind::Hubspot, _) => json!(self.next.to_string()),
            _ => json!(self.next),
        }
    }

    fn make(&mut self, coll: &str, body: Value) -> Value {
        let id = self.id(coll);
        let mut obj = body;
        obj["id"] = id.clone();
        self.objects.entry(coll.to_owned()).or_default().push(obj);
        id
    }

    fn all(&self, coll: &str) -> Vec<Value> {
        self.objects.get(coll).cloned().unwrap_or_default()
    }
}

pub fn id_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Serves a fake on a loopback port; returns its base URL.
pub async fn serve(fake: Arc<Mutex<Fake>>) -> String {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: String| {
            let fake = fake.clone();
            async move {
                let query: BTreeMap<String, String> = uri
                    .query()
                    .map(|q| {
                        q.split('&')
                            .filter_map(|kv| kv.split_once('='))
                            .map(|(k, v)| (decode(k), decode(v)))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut req = Req {
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    query,
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                    at: Instant::now(),
                    status: 0,
                };
                let (status, answer, retry, delay) = {
                    let mut f = fake.lock().unwrap();
                    let (status, answer, retry) = respond(&mut f, &req);
                    // Once: the request after a restart is answered at once.
                    let slow = f.slow.as_ref().is_some_and(|(p, _)| {
                        req.method == "POST" && *p == req.path && status < 300
                    });
                    let delay = if slow {
                        f.slow.take().map(|(_, d)| d)
                    } else {
                        None
                    };
                    req.status = status;
                    f.reqs.push(req);
                    (status, answer, retry, delay)
                };
                if let Some(d) = delay {
                    tokio::time::sleep(d).await;
                }
                let mut resp = axum::response::Response::builder()
                    .status(StatusCode::from_u16(status).unwrap())
                    .header("content-type", "application/json");
                if let Some(s) = retry {
                    resp = resp.header("retry-after", s.to_string());
                }
                resp.body(axum::body::Body::from(answer.to_string()))
                    .unwrap()
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn authorized(f: &Fake, r: &Req) -> bool {
    match f.kind {
        Kind::Pipedrive => r.headers.get("x-api-token") == Some(&f.token),
        _ => r.headers.get("authorization") == Some(&format!("Bearer {}", f.token)),
    }
}

fn respond(f: &mut Fake, r: &Req) -> (u16, Value, Option<u64>) {
    if let Some((status, retry)) = f.forced.pop_front() {
        return (
            status,
            json!({"error": "scripted", "message": "scripted"}),
            retry,
        );
    }
    if !authorized(f, r) {
        return (
            401,
            json!({"success": false, "error": "unauthorized access", "message": "Authentication credentials not found"}),
            None,
        );
    }
    match f.kind {
        Kind::Pipedrive => pipedrive(f, r),
        Kind::Hubspot => hubspot(f, r),
        Kind::Zendesk => zendesk(f, r),
    }
}

fn q<'a>(r: &'a Req, k: &str) -> &'a str {
    r.query.get(k).map(String::as_str).unwrap_or("")
}

/// Pipedrive paths Pipedrive deprecated on 2026-01-01 and stopped supporting on 2026-08-01
/// (<https://developers.pipedrive.com/changelog/post/deprecation-of-selected-api-v1-endpoints>):
/// the fake answers them 410 and keeps them in the request log for the tests to refuse.
pub fn pipedrive_deprecated(method: &str, path: &str) -> bool {
    let p = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix("/v1/"));
    let Some(p) = p else { return false };
    matches!(
        (method, p),
        ("POST", "persons" | "organizations" | "deals" | "activities")
            | ("GET", "activities")
            | (
                "GET",
                "persons/search" | "organizations/search" | "deals/search"
            )
    )
}

/// Pipedrive: persons, organizations, deals, activities and their searches on API v2
/// (<https://developers.pipedrive.com/docs/api/v2>, only under `/api/v2/`); leads and notes
/// on API v1 under `/api/v1/`. `{success, data}` answers; searches as `data.items[].item`;
/// v2 lists paged by `limit` and `cursor` (`additional_data.next_cursor`, null at the end).
fn pipedrive(f: &mut Fake, r: &Req) -> (u16, Value, Option<u64>) {
    let ok = |data: Value| (200, json!({"success": true, "data": data}), None);
    let created = |obj: Value| (201, json!({"success": true, "data": obj}), None);
    let items = |v: Vec<Value>| json!({"items": v.into_iter().map(|i| json!({"result_score": 1.0, "item": i})).collect::<Vec<_>>()});
    let v2_items = |v: Vec<Value>| json!({"success": true, "data": items(v), "additional_data": {"next_cursor": null}});
    if pipedrive_deprecated(&r.method, &r.path) {
        return (
            410,
            json!({"success": false, "error": "deprecated API v1 endpoint called"}),
            None,
        );
    }
    let (v2, rest) = if let Some(rest) = r.path.strip_prefix("/api/v2/") {
        (true, rest)
    } else if let Some(rest) = r.path.strip_prefix("/api/v1/") {
        (false, rest)
    } else {
        return (
            404,
            json!({"success": false, "error": "unknown path"}),
            None,
        );
    };
    let seg: Vec<&str> = rest.split('/').collect();
    match (r.method.as_str(), v2, seg.as_slice()) {
        // PersonSearch (v2): items carry `emails` as plain strings.
        ("GET", true, ["persons", "search"]) => {
            if q(r, "fields") != "email" || q(r, "exact_match") != "true" {
                return (
                    400,
                    json!({"success": false, "error": "expected fields=email&exact_match=true"}),
                    None,
                );
            }
            let hits = f
                .all("persons")
                .into_iter()
                .filter(|p| {
                    p["emails"]
                        .as_array()
                        .is_some_and(|es| es.iter().any(|e| e["value"].as_str() == Some(q(r, "term"))))
                })
                .map(|p| {
                    json!({"id": p["id"], "type": "person", "name": p["name"],
                        "emails": p["emails"].as_array().unwrap().iter().map(|e| e["value"].clone()).collect::<Vec<_>>()})
                })
                .collect();
            (200, v2_items(hits), None)
        }
        ("GET", true, ["organizations", "search"]) => {
            let hits = f
                .all("organizations")
                .into_iter()
                .filter(|o| o["name"].as_str() == Some(q(r, "term")))
                .map(|o| json!({"id": o["id"], "type": "organization", "name": o["name"]}))
                .collect();
            (200, v2_items(hits), None)
        }
        ("GET", is_v2, [coll @ ("leads" | "deals"), "search"]) if is_v2 == (*coll == "deals") => {
            let hits: Vec<Value> = f
                .all(coll)
                .into_iter()
                .filter(|o| {
                    o["title"].as_str() == Some(q(r, "term"))
                        && (q(r, "person_id").is_empty()
                            || id_text(&o["person_id"]) == q(r, "person_id"))
                        && (q(r, "organization_id").is_empty()
                            || id_text(&o[if is_v2 { "org_id" } else { "organization_id" }])
                                == q(r, "organization_id"))
                })
                .map(|o| json!({"id": o["id"], "type": coll.trim_end_matches('s'), "title": o["title"]}))
                .collect();
            if is_v2 {
                (200, v2_items(hits), None)
            } else {
                ok(items(hits))
            }
        }
        ("GET", false, ["notes"]) => {
            let (k, v) = if q(r, "lead_id").is_empty() {
                ("deal_id", q(r, "deal_id"))
            } else {
                ("lead_id", q(r, "lead_id"))
            };
            ok(json!(
                f.all("notes")
                    .into_iter()
                    .filter(|n| id_text(&n[k]) == v)
                    .collect::<Vec<_>>()
            ))
        }
        // Activities#getActivities (v2): filters ANDed, `limit` (≤ 500), `cursor`.
        ("GET", true, ["activities"]) => {
            if let Some(k) = ["type", "start_date", "end_date", "user_id"]
                .into_iter()
                .find(|k| r.query.contains_key(*k))
            {
                return (
                    400,
                    json!({"success": false, "error": format!("not a v2 filter: {k}")}),
                    None,
                );
            }
            let keep: Vec<Value> = f
                .all("activities")
                .into_iter()
                .filter(|a| {
                    ["deal_id", "lead_id", "person_id", "owner_id"]
                        .iter()
                        .all(|k| q(r, k).is_empty() || id_text(&a[*k]) == q(r, k))
                })
                .collect();
            let limit: usize = q(r, "limit").parse().unwrap_or(100);
            if limit > 500 {
                return (
                    400,
                    json!({"success": false, "error": "limit over 500"}),
                    None,
                );
            }
            let limit = f.page_max.map_or(limit, |m| limit.min(m));
            let from: usize = q(r, "cursor").parse().unwrap_or(0);
            let page: Vec<Value> = keep.iter().skip(from).take(limit).cloned().collect();
            let next = (from + limit < keep.len()).then(|| (from + limit).to_string());
            (
                200,
                json!({"success": true, "data": page, "additional_data": {"next_cursor": next}}),
                None,
            )
        }
        ("POST", true, ["persons"]) => {
            if f.reject.is_some() && r.body["emails"][0]["value"].as_str() == f.reject.as_deref() {
                return (
                    400,
                    json!({"success": false, "error": "The email address is invalid", "error_info": "Please check developers.pipedrive.com"}),
                    None,
                );
            }
            let id = f.make("persons", r.body.clone());
            created(json!({"id": id, "name": r.body["name"], "emails": r.body["emails"]}))
        }
        // Activities (v2): `person_id` is read-only, derived from the primary participant.
        ("POST", true, ["activities"]) => {
            if r.body.get("person_id").is_some() || r.body.get("user_id").is_some() {
                return (
                    400,
                    json!({"success": false, "error": "'person_id' is a read-only field"}),
                    None,
                );
            }
            let mut body = r.body.clone();
            if let Some(p) = r.body["participants"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["primary"] == true))
            {
                body["person_id"] = p["person_id"].clone();
            }
            let id = f.make("activities", body);
            created(json!({"id": id, "subject": r.body["subject"]}))
        }
        ("POST", true, [coll @ ("organizations" | "deals")])
        | ("POST", false, [coll @ ("leads" | "notes")]) => {
            let id = f.make(coll, r.body.clone());
            created(json!({"id": id}))
        }
        ("PATCH", false, ["leads", id]) => ok(json!({"id": id})),
        _ => (
            404,
            json!({"success": false, "error": "unknown path"}),
            None,
        ),
    }
}

/// https://developers.hubspot.com/docs/api/crm — objects as `{id, properties}`.
fn hubspot(f: &mut Fake, r: &Req) -> (u16, Value, Option<u64>) {
    let path = r.path.as_str();
    match (r.method.as_str(), path) {
        ("POST", "/crm/v3/objects/contacts/batch/upsert") => {
            let input = &r.body["inputs"][0];
            let email = input["id"].as_str().unwrap_or_default().to_owned();
            if f.reject.as_deref() == Some(email.as_str()) {
                return (
                    400,
                    json!({"status": "error", "message": "Property values were not valid: invalid email", "category": "VALIDATION_ERROR"}),
                    None,
                );
            }
            let existing = f
                .all("contacts")
                .into_iter()
                .find(|c| c["properties"]["email"].as_str() == Some(email.as_str()));
            let (id, new) = match existing {
                Some(c) => (c["id"].clone(), false),
                None => (
                    f.make("contacts", json!({"properties": input["properties"]})),
                    true,
                ),
            };
            (
                200,
                json!({"status": "COMPLETE", "results": [{"id": id, "new": new, "properties": input["properties"]}]}),
                None,
            )
        }
        ("POST", "/crm/v3/objects/companies/search") => {
            let want = r.body["filterGroups"][0]["filters"][0]["value"].clone();
            let hits: Vec<Value> = f
                .all("companies")
                .into_iter()
                .filter(|c| c["properties"]["name"] == want)
                .collect();
            (200, json!({"total": hits.len(), "results": hits}), None)
        }
        ("POST", p) if p.starts_with("/crm/v3/objects/") && p.ends_with("/batch/read") => {
            let coll = p.split('/').nth(4).unwrap_or_default().to_owned();
            let ids: Vec<String> = r.body["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| id_text(&i["id"]))
                .collect();
            let hits: Vec<Value> = f
                .all(&coll)
                .into_iter()
                .filter(|o| ids.contains(&id_text(&o["id"])))
                .collect();
            (200, json!({"status": "COMPLETE", "results": hits}), None)
        }
        ("POST", p) if p.starts_with("/crm/v3/objects/") => {
            let coll = p.trim_start_matches("/crm/v3/objects/").to_owned();
            let id = f.make(&coll, r.body.clone());
            (
                201,
                json!({"id": id, "properties": r.body["properties"]}),
                None,
            )
        }
        ("PUT", p) if p.starts_with("/crm/v4/objects/contact/") => (200, json!({}), None),
        ("GET", p) if p.starts_with("/crm/v4/objects/") => {
            // Associations: objects of `to` whose associations name `from/id`.
            let parts: Vec<&str> = p.split('/').collect();
            let (id, to) = (parts[5], parts[7]);
            let hits: Vec<Value> = f
                .all(to)
                .into_iter()
                .filter(|o| {
                    o["associations"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| id_text(&x["to"]["id"]) == id))
                })
                .map(|o| json!({"toObjectId": id_text(&o["id"]).parse::<u64>().unwrap()}))
                .collect();
            (200, json!({"results": hits}), None)
        }
        _ => (
            404,
            json!({"status": "error", "message": "unknown path"}),
            None,
        ),
    }
}

/// https://developer.zendesk.com/api-reference/sales-crm — `{data}` in, `{data, meta}` and
/// `{items: [{data}]}` out.
fn zendesk(f: &mut Fake, r: &Req) -> (u16, Value, Option<u64>) {
    let coll = r.path.trim_start_matches("/v2/").to_owned();
    match r.method.as_str() {
        "GET" => {
            let items: Vec<Value> = f
                .all(&coll)
                .into_iter()
                .filter(|o| r.query.iter().all(|(k, v)| id_text(&o[k.as_str()]) == *v))
                .map(|o| json!({"data": o, "meta": {"type": coll.trim_end_matches('s')}}))
                .collect();
            (
                200,
                json!({"items": items, "meta": {"type": "collection", "count": items.len()}}),
                None,
            )
        }
        "POST" => {
            let data = r.body["data"].clone();
            if data.is_null() {
                return (
                    422,
                    json!({"errors": [{"error": {"code": "invalid", "message": "missing data envelope"}}]}),
                    None,
                );
            }
            if f.reject.is_some() && data["email"].as_str() == f.reject.as_deref() {
                return (
                    422,
                    json!({"errors": [{"error": {"code": "invalid", "message": "email is invalid", "details": "email must be a valid address"}}]}),
                    None,
                );
            }
            let id = f.make(&coll, data.clone());
            let mut d = data;
            d["id"] = id;
            (
                200,
                json!({"data": d, "meta": {"type": coll.trim_end_matches('s')}}),
                None,
            )
        }
        _ => (
            404,
            json!({"errors": [{"error": {"message": "unknown"}}]}),
            None,
        ),
    }
}
