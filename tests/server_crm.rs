//! Records reach the CRMs: the demo, pricing and support playbooks run against a server
//! whose `[[crm]]` points at a fake Pipedrive, HubSpot or Zendesk Sell
//! (`server_common::vendor`), which checks the token and keeps every request; the tests
//! check each request's method, path and body against the vendor's documented shapes,
//! deduplication, order, and what failures do.

mod server_common;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use server_common::vendor::{self, Fake, Kind, id_text};
use server_common::{ADMIN, ANA, Server, call};

/// `cargo test` sets CARGO_PKG_NAME in the test process: the token the fakes expect, read
/// through `token_env` like a real one, without any test changing the environment.
const TOKEN: &str = env!("CARGO_PKG_NAME");

fn with_playbooks(dir: &Path) {
    let p = dir.join("playbooks");
    std::fs::create_dir_all(&p).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks");
    for f in ["pricing.playbook", "support.playbook"] {
        std::fs::copy(root.join(f), p.join(f)).unwrap();
    }
}

/// The pools the pricing and support playbooks name, and a `[[crm]]` section.
fn crm_config(kind: &str, url: &str, maps: &str) -> String {
    format!(
        "[[pools]]\nname = \"Account Executives\"\nmembers = [\"max\"]\n\
         [[pools]]\nname = \"Support\"\nmembers = [\"sue\"]\n\
         [[crm]]\nkind = \"{kind}\"\nbase_url = \"{url}\"\ntoken_env = \"CARGO_PKG_NAME\"\n\
         retry_min_ms = 50\nretry_max_ms = 200\n{maps}"
    )
}

/// Starts a conversation and sends these answers (`Ok(n)`: button n, counted from 1 as the
/// API does; `Err(text)`: text).
async fn converse(s: &Server, playbook: &str, answers: &[Result<usize, &str>]) -> String {
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{}/api/conversations", s.base),
        None,
        Some(json!({"playbook": playbook})),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let id = v["conversation"].as_str().unwrap().to_owned();
    let token = v["token"].as_str().unwrap().to_owned();
    for a in answers {
        let body = match a {
            Ok(n) => json!({"choice": n}),
            Err(t) => json!({"text": t}),
        };
        let (st, v) = call(
            &s.client,
            "POST",
            &format!("{}/api/conversations/{id}/messages", s.base),
            Some(&token),
            Some(body),
        )
        .await;
        assert_eq!(st, 200, "{playbook} {a:?}: {v}");
    }
    id
}

async fn demo(s: &Server, name: &str, email: &str) -> String {
    converse(s, "demo", &[Ok(1), Ok(2), Err(name), Err(email)]).await
}

async fn pricing(s: &Server) -> String {
    converse(
        s,
        "pricing",
        &[
            Ok(3),
            Err("60"),
            Ok(1),
            Err("Acme GmbH"),
            Err("dan@acme.example"),
        ],
    )
    .await
}

async fn support(s: &Server) -> String {
    converse(
        s,
        "support",
        &[Ok(1), Ok(2), Ok(2), Err("sue.customer@example.com")],
    )
    .await
}

/// The records once `done` holds for them (10 s at most).
async fn records_until(s: &Server, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (st, v) = call(
            &s.client,
            "GET",
            &format!("{}/api/records?limit=100", s.base),
            Some(ANA),
            None,
        )
        .await;
        assert_eq!(st, 200);
        if done(v.as_array().unwrap()) {
            return v.as_array().unwrap().clone();
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("records never got there: {last:#}");
}

fn delivered(n: usize) -> impl Fn(&[Value]) -> bool {
    move |rs: &[Value]| rs.len() == n && rs.iter().all(|r| r["delivered_at"].is_number())
}

fn of<'a>(rs: &'a [Value], conv: &str) -> Vec<&'a Value> {
    rs.iter().filter(|r| r["conversation"] == conv).collect()
}

fn pipedrive_maps(owners: &str) -> String {
    format!(
        "[crm.owners]\n{owners}\n\
         [crm.labels]\ndemo = \"a1b2c3d4-0000-4000-8000-00000000demo\"\nsales = \"a1b2c3d4-0000-4000-8000-0000000sales\"\noffline = \"a1b2c3d4-0000-4000-8000-00000offline\"\n\
         [crm.pipelines]\nSales = 1\n[crm.stages]\n\"Sales/Qualified\" = 5\n"
    )
}

const ALL_OWNERS: &str = "sam = 101\ntia = 102\nmax = 103\nsue = 104\nana = 105\nbob = 106";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_gets_persons_once_leads_deals_notes_and_linked_activities() {
    let fake = Fake::new(Kind::Pipedrive, TOKEN);
    let eve = fake.lock().unwrap().seed(
        "persons",
        json!({"name": "Eve Smith", "emails": [{"value": "eve@example.com", "primary": true}]}),
    );
    let url = vendor::serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    with_playbooks(dir.path());
    let s = Server::start(
        dir.path(),
        &crm_config("pipedrive", &url, &pipedrive_maps(ALL_OWNERS)),
    )
    .await;

    let a = demo(&s, "Eve Smith", "eve@example.com").await;
    let b = demo(&s, "Neo Ander", "neo@example.com").await;
    let c = demo(&s, "Neo Ander", "neo@example.com").await;
    let d = pricing(&s).await;
    let e = support(&s).await;
    // An agent makes a deal from Eve's conversation in the inbox: the same outbox and
    // connector, owned by the agent, with an exact value.
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{}/api/agent/conversations/{a}/records", s.base),
        Some(ANA),
        Some(
            json!({"type": "deal", "title": "Agent deal", "value": "12000.50", "currency": "eur",
                    "person": {"name": "Eve Smith", "email": "eve@example.com"}}),
        ),
    )
    .await;
    assert_eq!(st, 400, "a currency is an ISO code: {v}");
    let (st, v) = call(
        &s.client,
        "POST",
        &format!("{}/api/agent/conversations/{a}/records", s.base),
        Some(ANA),
        Some(
            json!({"type": "deal", "title": "Agent deal", "value": "12000.50", "currency": "EUR",
                    "person": {"name": "Eve Smith", "email": "eve@example.com"}}),
        ),
    )
    .await;
    assert_eq!(st, 201, "{v}");
    let rs = records_until(&s, delivered(7)).await;

    let f = fake.lock().unwrap();
    for r in &f.reqs {
        assert_eq!(
            r.headers.get("x-api-token").map(String::as_str),
            Some(TOKEN),
            "{r:?}"
        );
        assert!(
            !r.query.contains_key("api_token"),
            "the token never goes in a URL"
        );
        // Persons, organizations, deals, activities on API v2; leads and notes on v1; all
        // under `/api/`, none of the deprecated v1 endpoints.
        assert!(
            !vendor::pipedrive_deprecated(&r.method, &r.path),
            "a deprecated v1 endpoint: {r:?}"
        );
        let v1 = ["/api/v1/leads", "/api/v1/notes"]
            .iter()
            .any(|p| r.path.starts_with(p));
        assert!(v1 || r.path.starts_with("/api/v2/"), "{r:?}");
        if r.method == "POST" || r.method == "PATCH" {
            assert_eq!(
                r.headers.get("content-type").map(String::as_str),
                Some("application/json"),
                "{r:?}"
            );
        }
    }
    // Eve existed: found by email, never made again; Neo is made once for two leads.
    let searches = f.hits("GET", "/api/v2/persons/search");
    assert!(!searches.is_empty());
    assert!(searches.iter().all(|r| r.query["fields"] == "email"
        && r.query["exact_match"] == "true"
        && r.query["term"].contains('@')));
    let made = f.hits("POST", "/api/v2/persons");
    assert_eq!(made.len(), 2, "neo and dan: {made:?}");
    // Persons#addPerson (v2): `emails` as `[{value, primary, label}]`, owner_id a number.
    assert_eq!(
        made[0].body,
        json!({"name": "Neo Ander", "emails": [{"value": "neo@example.com", "primary": true, "label": "work"}], "owner_id": 102})
    );
    let neo = id_text(&f.objects["persons"][1]["id"]);

    // Leads: the person, the pool's owners in turn mapped to user ids, labels by id.
    let leads = f.hits("POST", "/api/v1/leads");
    assert_eq!(leads.len(), 3);
    assert_eq!(
        leads[0].body,
        json!({"title": "Demo request (11-200)", "person_id": eve.parse::<i64>().unwrap(),
               "owner_id": 101, "label_ids": ["a1b2c3d4-0000-4000-8000-00000000demo"]})
    );
    assert_eq!(leads[1].body["owner_id"], 102);
    assert_eq!(leads[2].body["owner_id"], 101);
    assert_eq!(id_text(&leads[1].body["person_id"]), neo);
    assert_eq!(id_text(&leads[2].body["person_id"]), neo);

    // Each lead's transcript is a note on it, after it.
    let notes = f.hits("POST", "/api/v1/notes");
    assert_eq!(notes.len(), 5, "three leads and two deals");
    for (i, lead) in f.objects["leads"].iter().enumerate() {
        let note = &notes[i].body;
        assert_eq!(note["lead_id"], lead["id"], "{note}");
        assert!(
            note["lead_id"].is_string(),
            "a lead id is a UUID string: {note}"
        );
        let content = note["content"].as_str().unwrap();
        assert!(
            content.contains("Chat transcript (playbook record"),
            "{content}"
        );
        assert!(content.contains("Visitor: 11-200"), "{content}");
        assert!(
            content.contains("Company size: 11-200"),
            "an unmapped field goes into the note: {content}"
        );
    }
    let first_lead = f.index("POST", "/api/v1/leads").unwrap();
    let first_note = f.index("POST", "/api/v1/notes").unwrap();
    assert!(first_lead < first_note);

    // The deal: organization searched by exact name, made once; the value a number
    // (Deals#addDeal v2), owner_id, pipeline and stage ids.
    let org_searches = f.hits("GET", "/api/v2/organizations/search");
    assert!(!org_searches.is_empty());
    assert!(org_searches.iter().all(|r| r.query["term"] == "Acme GmbH"
        && r.query["fields"] == "name"
        && r.query["exact_match"] == "true"));
    let orgs = f.hits("POST", "/api/v2/organizations");
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].body, json!({"name": "Acme GmbH", "owner_id": 103}));
    assert!(
        f.index("GET", "/api/v2/organizations/search") < f.index("POST", "/api/v2/organizations")
    );
    let org = id_text(&f.objects["organizations"][0]["id"]);
    let deals = f.hits("POST", "/api/v2/deals");
    assert_eq!(deals.len(), 2);
    let agent_deal = deals
        .iter()
        .find(|d| d.body["title"] == "Agent deal")
        .unwrap();
    assert_eq!(
        agent_deal.body,
        json!({"title": "Agent deal", "value": 12000.5, "currency": "EUR", "owner_id": 105,
               "person_id": eve.parse::<i64>().unwrap(), "status": "open"})
    );
    let deals: Vec<_> = deals
        .into_iter()
        .filter(|d| d.body["title"] != "Agent deal")
        .collect();
    let deal_id = f.objects["deals"]
        .iter()
        .find(|d| d["title"] != "Agent deal")
        .unwrap()["id"]
        .clone();
    let dan = id_text(&f.objects["persons"][2]["id"]);
    assert_eq!(
        deals[0].body,
        json!({"title": "Enterprise plan for Acme GmbH (60 seats)", "value": 60, "currency": "EUR",
               "owner_id": 103, "person_id": dan.parse::<i64>().unwrap(), "org_id": org.parse::<i64>().unwrap(),
               "pipeline_id": 1, "stage_id": 5, "status": "open", })
    );
    assert!(notes.iter().any(|n| n.body["deal_id"] == deal_id));

    // The call is linked to the deal by the deal's id, and made after it.
    let acts = f.hits("POST", "/api/v2/activities");
    assert_eq!(acts.len(), 2);
    let call_act = acts.iter().find(|a| a.body["type"] == "call").unwrap();
    assert_eq!(call_act.body["deal_id"], deal_id);
    // Activities#addActivity (v2): the person is the primary participant (`person_id` is
    // read-only there), the owner `owner_id`.
    assert_eq!(
        call_act.body["participants"],
        json!([{"person_id": dan.parse::<i64>().unwrap(), "primary": true}])
    );
    assert!(call_act.body.get("person_id").is_none() && call_act.body.get("user_id").is_none());
    assert_eq!(call_act.body["owner_id"], 103);
    assert_eq!(call_act.body["subject"], "Pricing call with Acme GmbH");
    // due_date `YYYY-MM-DD`, due_time `HH:MM` (UTC), deal_id an integer, type a key_string.
    let due_date = call_act.body["due_date"].as_str().unwrap();
    assert!(
        due_date.len() == 10 && &due_date[4..5] == "-" && &due_date[7..8] == "-",
        "{due_date}"
    );
    let due_time = call_act.body["due_time"].as_str().unwrap();
    assert!(due_time.len() == 5 && &due_time[2..3] == ":", "{due_time}");
    assert!(call_act.body["deal_id"].is_number());
    assert!(call_act.body.get("lead_id").is_none());
    let deal_at = f.index("POST", "/api/v2/deals").unwrap();
    let act_at = f
        .reqs
        .iter()
        .position(|r| r.path == "/api/v2/activities" && r.body["type"] == "call")
        .unwrap();
    assert!(deal_at < act_at, "the activity goes after its deal");
    // The support ticket: owner from the Support pool; the consent is in its note.
    let task = acts.iter().find(|a| a.body["type"] == "task").unwrap();
    assert_eq!(task.body["owner_id"], 104);
    let note = task.body["note"].as_str().unwrap();
    assert!(note.contains("Consent (explicit)"), "{note}");
    // The activity `note` is HTML: line breaks as <br>, none raw.
    assert!(note.contains("<br>") && !note.contains('\n'), "{note}");
    assert!(note.contains("Reply to sue.customer@example.com"), "{note}");
    drop(f);

    for conv in [&a, &b, &c, &d, &e] {
        assert!(!of(&rs, conv).is_empty(), "{conv}");
    }
    // Money in the record itself is an exact decimal.
    let deal_rec = of(&rs, &d)[0];
    assert_eq!(deal_rec["body"]["record"]["data"]["value"], "60");
    assert!(
        rs.iter()
            .all(|r| r["last_error"].is_null() && r["parked"] == false)
    );
}

/// A deal and an activity Pipedrive made but whose answer never came (the request timed
/// out): the retry finds them through API v2 (`GET /api/v2/deals/search` among the
/// person's, `GET /api/v2/activities` among the owner's, followed through its cursor) and
/// makes neither twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipedrive_finds_a_deal_and_an_activity_it_made_without_an_answer_through_v2() {
    let fake = Fake::new(Kind::Pipedrive, TOKEN);
    {
        let mut f = fake.lock().unwrap();
        f.slow = Some(("/api/v2/deals".into(), Duration::from_secs(3)));
        f.page_max = Some(2);
        // Other activities of the support pool's owner, listed before ours.
        for i in 0..3 {
            f.seed(
                "activities",
                json!({"subject": format!("Older task {i}"), "type": "task", "owner_id": 104}),
            );
        }
    }
    let url = vendor::serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    with_playbooks(dir.path());
    // A short timeout: the held-back answers are given up on.
    let maps = format!("timeout_ms = 500\n{}", pipedrive_maps(ALL_OWNERS));
    let s = Server::start(dir.path(), &crm_config("pipedrive", &url, &maps)).await;

    let d = pricing(&s).await;
    records_until(&s, |rs| {
        of(rs, &d).len() == 2 && of(rs, &d).iter().all(|r| r["delivered_at"].is_number())
    })
    .await;
    fake.lock().unwrap().slow = Some(("/api/v2/activities".into(), Duration::from_secs(3)));
    let e = support(&s).await;
    let rs = records_until(&s, |rs| {
        of(rs, &e).len() == 1 && of(rs, &e)[0]["delivered_at"].is_number()
    })
    .await;
    assert!(rs.iter().all(|r| r["parked"] == false), "{rs:?}");

    let f = fake.lock().unwrap();
    assert!(
        f.reqs
            .iter()
            .all(|r| !vendor::pipedrive_deprecated(&r.method, &r.path)),
        "no deprecated v1 endpoint"
    );
    assert_eq!(f.hits("POST", "/api/v2/deals").len(), 1);
    assert_eq!(f.count("deals"), 1, "the deal was found, not made again");
    let dan = id_text(&f.objects["persons"][0]["id"]);
    let searched = f.hits("GET", "/api/v2/deals/search");
    assert!(!searched.is_empty());
    assert_eq!(
        searched[0].query["term"],
        "Enterprise plan for Acme GmbH (60 seats)"
    );
    assert_eq!(searched[0].query["fields"], "title");
    assert_eq!(searched[0].query["exact_match"], "true");
    assert_eq!(searched[0].query["person_id"], dan);
    // The note and the call went to the deal found.
    let deal = f.objects["deals"][0]["id"].clone();
    assert!(
        f.hits("POST", "/api/v1/notes")
            .iter()
            .any(|n| n.body["deal_id"] == deal)
    );
    // The ticket: made once, found on the second page of the owner's activities.
    let tickets: Vec<_> = f.objects["activities"]
        .iter()
        .filter(|a| {
            a["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with("Support request"))
        })
        .collect();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let lists = f.hits("GET", "/api/v2/activities");
    assert!(
        lists.iter().any(|r| r.query.contains_key("cursor")),
        "{lists:?}"
    );
    assert!(lists.iter().all(|r| r.query["owner_id"] == "104"
        && r.query["limit"] == "500"
        && r.query["updated_since"].ends_with('Z')));
    assert_eq!(
        f.hits("POST", "/api/v2/activities")
            .iter()
            .filter(|a| a.body["type"] == "task")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hubspot_gets_contacts_upserted_companies_deals_tasks_and_notes_with_associations() {
    let fake = Fake::new(Kind::Hubspot, TOKEN);
    let url = vendor::serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    with_playbooks(dir.path());
    let maps = format!(
        "[crm.owners]\n{ALL_OWNERS}\n[crm.pipelines]\nSales = \"default\"\n[crm.stages]\nQualified = \"qualifiedtobuy\"\n[crm.statuses]\nNew = \"NEW\"\n[crm.fields]\n\"Company size\" = \"company_size\"\n"
    );
    let s = Server::start(dir.path(), &crm_config("hubspot", &url, &maps)).await;
    demo(&s, "Eve Smith", "eve@example.com").await;
    demo(&s, "Eve Smith", "eve@example.com").await;
    pricing(&s).await;
    records_until(&s, delivered(4)).await;

    let f = fake.lock().unwrap();
    for r in &f.reqs {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let upserts = f.hits("POST", "/crm/v3/objects/contacts/batch/upsert");
    assert_eq!(upserts.len(), 3);
    assert_eq!(
        upserts[0].body,
        json!({"inputs": [{"idProperty": "email", "id": "eve@example.com", "properties": {
            "email": "eve@example.com", "firstname": "Eve", "lastname": "Smith",
            "hubspot_owner_id": "101", "hs_lead_status": "NEW", "company_size": "11-200"}}]})
    );
    assert_eq!(f.count("contacts"), 2, "eve once, dan once");
    let eve = id_text(&f.objects["contacts"][0]["id"]);
    let notes = f.hits("POST", "/crm/v3/objects/notes");
    assert_eq!(notes.len(), 3);
    let n = &notes[0].body;
    assert_eq!(
        n["associations"][0],
        json!({"to": {"id": eve}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]})
    );
    assert!(
        n["properties"]["hs_timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(
        n["properties"]["hs_note_body"]
            .as_str()
            .unwrap()
            .contains("Demo request (11-200)")
    );

    let deals = f.hits("POST", "/crm/v3/objects/deals");
    assert_eq!(deals.len(), 1);
    let dan = id_text(&f.objects["contacts"][1]["id"]);
    let company = id_text(&f.objects["companies"][0]["id"]);
    assert_eq!(
        deals[0].body,
        json!({"properties": {"dealname": "Enterprise plan for Acme GmbH (60 seats)", "amount": "60",
            "deal_currency_code": "EUR", "pipeline": "default", "dealstage": "qualifiedtobuy",
            "hubspot_owner_id": "103"},
            "associations": [
                {"to": {"id": dan}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]},
                {"to": {"id": company}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 5}]}]})
    );
    assert_eq!(
        f.hits(
            "PUT",
            &format!("/crm/v4/objects/contact/{dan}/associations/default/company/{company}")
        )
        .len(),
        1
    );
    let deal = id_text(&f.objects["deals"][0]["id"]);
    // The deal's note: note→deal 214 and note→contact 202 (HubSpot-defined types).
    let deal_note = notes
        .iter()
        .find(|n| n.body["associations"][0]["to"]["id"] == deal.as_str())
        .unwrap();
    assert_eq!(
        deal_note.body["associations"],
        json!([
            {"to": {"id": deal}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 214}]},
            {"to": {"id": dan}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 202}]}])
    );
    // The company was searched for by exact name before it was made.
    let searches = f.hits("POST", "/crm/v3/objects/companies/search");
    assert!(!searches.is_empty());
    assert_eq!(
        searches[0].body["filterGroups"][0]["filters"][0],
        json!({"propertyName": "name", "operator": "EQ", "value": "Acme GmbH"})
    );
    let tasks = f.hits("POST", "/crm/v3/objects/tasks");
    assert_eq!(tasks.len(), 1);
    let t = &tasks[0].body;
    assert_eq!(t["properties"]["hs_task_type"], "CALL");
    assert_eq!(
        t["properties"]["hs_task_subject"],
        "Pricing call with Acme GmbH"
    );
    assert_eq!(t["properties"]["hubspot_owner_id"], "103");
    assert_eq!(t["associations"][0]["to"]["id"], deal.as_str());
    assert_eq!(t["associations"][0]["types"][0]["associationTypeId"], 216);
    // task→contact 204 with the deal's contact.
    assert_eq!(
        t["associations"][1],
        json!({"to": {"id": dan}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]})
    );
    assert_eq!(t["properties"]["hs_task_status"], "NOT_STARTED");
    assert!(
        t["properties"]["hs_timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(f.index("POST", "/crm/v3/objects/deals") < f.index("POST", "/crm/v3/objects/tasks"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zendesk_sell_gets_leads_reused_by_email_contacts_deals_tasks_and_notes() {
    let fake = Fake::new(Kind::Zendesk, TOKEN);
    let url = vendor::serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    with_playbooks(dir.path());
    let maps = format!(
        "[crm.owners]\n{ALL_OWNERS}\n[crm.sources]\nChatbot = 7\n\"Live chat\" = 8\n[crm.stages]\nQualified = 5\n"
    );
    let s = Server::start(dir.path(), &crm_config("zendesk_sell", &url, &maps)).await;
    demo(&s, "Eve Smith", "eve@example.com").await;
    demo(&s, "Eve Smith", "eve@example.com").await;
    pricing(&s).await;
    support(&s).await;
    records_until(&s, delivered(5)).await;

    let f = fake.lock().unwrap();
    for r in &f.reqs {
        assert_eq!(
            r.headers.get("authorization").map(String::as_str),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert!(r.path.starts_with("/v2/"));
        if r.method == "POST" {
            assert!(r.body["data"].is_object(), "the data envelope: {r:?}");
        }
    }
    let leads = f.hits("POST", "/v2/leads");
    assert_eq!(leads.len(), 1, "the second demo request reuses Eve's lead");
    assert_eq!(
        leads[0].body,
        json!({"data": {"first_name": "Eve", "last_name": "Smith", "email": "eve@example.com",
            "status": "New", "source_id": 7, "owner_id": 101, "tags": ["demo"],
            "description": "Demo request (11-200)"}})
    );
    let lead = f.objects["leads"][0]["id"].clone();
    // The lead is looked up by the visitor's email (GET /v2/leads?email=).
    let lookups = f.hits("GET", "/v2/leads");
    assert!(
        lookups.iter().all(|r| r.query.contains_key("email"))
            && lookups
                .iter()
                .any(|r| r.query.get("email").map(String::as_str) == Some("eve@example.com")),
        "{lookups:?}"
    );
    let notes = f.hits("POST", "/v2/notes");
    assert_eq!(notes.len(), 3, "two on the lead, one on the deal");
    assert_eq!(notes[0].body["data"]["resource_type"], "lead");
    assert_eq!(notes[1].body["data"]["resource_id"], lead);
    let contacts = f.hits("POST", "/v2/contacts");
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0].body["data"],
        json!({"is_organization": false, "last_name": "dan@acme.example", "email": "dan@acme.example", "owner_id": 103})
    );
    let deals = f.hits("POST", "/v2/deals");
    assert_eq!(
        deals[0].body["data"],
        json!({"name": "Enterprise plan for Acme GmbH (60 seats)", "contact_id": f.objects["contacts"][0]["id"],
            "value": 60, "currency": "EUR", "stage_id": 5, "owner_id": 103, "source_id": 7})
    );
    // The deal's transcript is a note on the deal.
    let deal_note = notes
        .iter()
        .find(|n| n.body["data"]["resource_type"] == "deal")
        .unwrap();
    assert_eq!(
        deal_note.body["data"]["resource_id"],
        f.objects["deals"][0]["id"]
    );
    let tasks = f.hits("POST", "/v2/tasks");
    assert_eq!(tasks.len(), 2);
    let call_task = &tasks[0].body["data"];
    assert_eq!(call_task["resource_type"], "deal");
    assert_eq!(call_task["resource_id"], f.objects["deals"][0]["id"]);
    assert!(call_task["due_date"].as_str().unwrap().ends_with('Z'));
    let ticket = &tasks[1].body["data"];
    assert!(ticket.get("resource_type").is_none());
    assert_eq!(ticket["owner_id"], 104);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_refused_records_park_and_a_refused_token_pauses() {
    let fake = Fake::new(Kind::Pipedrive, TOKEN);
    {
        let mut f = fake.lock().unwrap();
        f.forced.push_back((429, Some(1)));
        f.reject = Some("bad@example.com".into());
    }
    let url = vendor::serve(fake.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    with_playbooks(dir.path());
    // tia (the pool's second member) has no id.
    let s = Server::start(
        dir.path(),
        &crm_config(
            "pipedrive",
            &url,
            &pipedrive_maps("sam = 101\nmax = 103\nsue = 104\nana = 105\nbob = 106"),
        ),
    )
    .await;
    let (st, report) = call(
        &s.client,
        "POST",
        &format!("{}/api/admin/reload", s.base),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("pool member `tia` has no id")),
        "{report}"
    );

    let x = demo(&s, "Bad Address", "bad@example.com").await; // sam; the CRM refuses the email
    let y = demo(&s, "Tia's Visitor", "y@example.com").await; // tia: no id
    let z = demo(&s, "Zed", "z@example.com").await; // sam
    let rs = records_until(&s, |rs| {
        rs.len() == 3
            && of(rs, &z)[0]["delivered_at"].is_number()
            && of(rs, &x)[0]["parked"] == true
            && of(rs, &y)[0]["parked"] == true
    })
    .await;
    let xr = of(&rs, &x)[0];
    let e = xr["last_error"].as_str().unwrap();
    assert!(
        e.starts_with("pipedrive: the CRM refused the record (400 on POST /api/v2/persons)"),
        "{e}"
    );
    assert!(e.contains("The email address is invalid"), "{e}");
    assert!(xr["delivered_at"].is_null());
    // The inbox shows it: the conversation's detail says the record is parked, and why.
    let (st, detail) = call(
        &s.client,
        "GET",
        &format!("{}/api/agent/conversations/{x}", s.base),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(st, 200, "{detail}");
    let delivery = &detail["records"][0]["delivery"];
    assert_eq!(delivery["state"], "parked", "{detail}");
    assert!(
        delivery["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("The email address is invalid")),
        "{delivery}"
    );
    let (_, detail) = call(
        &s.client,
        "GET",
        &format!("{}/api/agent/conversations/{z}", s.base),
        Some(ANA),
        None,
    )
    .await;
    assert_eq!(
        detail["records"][0]["delivery"]["state"], "delivered",
        "{detail}"
    );
    let ye = of(&rs, &y)[0]["last_error"].as_str().unwrap();
    assert!(
        ye.contains("owner `tia` has no id in [[crm]] `pipedrive` owners"),
        "{ye}"
    );
    {
        let f = fake.lock().unwrap();
        // The 429 was honoured: the next request waited out Retry-After.
        assert_eq!(f.reqs[0].status, 429);
        let gap = f.reqs[1].at.duration_since(f.reqs[0].at);
        assert!(gap >= Duration::from_millis(950), "{gap:?}");
        assert_eq!(f.hits("POST", "/api/v1/leads").len(), 1, "only z's lead");
        assert!(
            !format!("{:?}", f.reqs).contains("Tia's Visitor"),
            "y never reached the CRM"
        );
    }

    // The token is refused: the connector pauses, says so, and stops asking.
    fake.lock().unwrap().token = "rotated".into();
    let p = pricing(&s).await;
    let rs = records_until(&s, |rs| {
        of(rs, &p).first().is_some_and(|r| {
            r["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("paused"))
        })
    })
    .await;
    let pe = of(&rs, &p)[0]["last_error"].as_str().unwrap().to_owned();
    assert!(
        pe.contains("refused the token (401)") && !pe.contains(TOKEN),
        "{pe}"
    );
    let asked = fake.lock().unwrap().reqs.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        fake.lock().unwrap().reqs.len(),
        asked,
        "a paused connector sends nothing"
    );

    // Fixed at the CRM and reloaded: the deal and its call go, in order.
    fake.lock().unwrap().token = TOKEN.into();
    let (st, _) = call(
        &s.client,
        "POST",
        &format!("{}/api/admin/reload", s.base),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(st, 200);
    let rs = records_until(&s, |rs| {
        of(rs, &p).len() == 2 && of(rs, &p).iter().all(|r| r["delivered_at"].is_number())
    })
    .await;
    assert!(of(&rs, &x)[0]["delivered_at"].is_null(), "still refused");
}
