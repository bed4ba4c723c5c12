//! Property: random valid playbooks × random event sequences never panic, never run more
//! cards than the step limit in one step, and leave every session waiting or ended.

use proptest::prelude::*;
use serde_json::{Value, json};

use playbook::desk::{Desk, Presence};
use playbook::engine::{Channel, Effect, Engine, Event, Instant, Session, Status, TimerKind};

const MAX_STEPS: u32 = 12;

/// One card: a kind selector and raw numbers turned into targets modulo the card count.
fn card_json(i: usize, n: usize, kind: u8, t: &[usize]) -> Value {
    let id = |k: usize| format!("c{}", t[k] % n);
    let me = format!("c{i}");
    // The first card saves `x`, so templates that read it pass the variable checks.
    let kind = if i == 0 { 2 } else { kind };
    match kind % 9 {
        0 => json!({"kind": "message", "id": me, "text": "m{x}", "then": {"goto": id(0)}}),
        1 => json!({"kind": "message", "id": me, "text": "bye", "then": {"end": "qualified"}}),
        2 => json!({"kind": "question", "id": me, "text": "q?", "save": "x",
            "answers": [{"label": "A", "to": id(0)}, {"label": "B", "to": id(1)}],
            "idle": {"after": "30s", "then": if t[2].is_multiple_of(2) { json!({"nudge": "hey"}) } else { json!({"goto": id(2)}) }}}),
        3 => json!({"kind": "ask", "id": me, "text": "email?", "expect": "email", "save": "email",
            "give_up": {"after": 2, "to": id(1)}, "then": id(0)}),
        4 => json!({"kind": "branch", "id": me,
            "rules": [{"when": {"op": "equals", "var": "x", "value": "a"}, "to": id(0)}],
            "otherwise": id(1)}),
        5 => {
            json!({"kind": "livechat", "id": me, "online": "wait", "wait": "1m", "offline": "busy",
            "route": {"to": "anyone", "availability": if t[2].is_multiple_of(2) { "available" } else { "anyone" }},
            "on_closed": id(0), "on_offline": id(1)})
        }
        6 => json!({"kind": "capture", "id": me,
            "record": if t[2].is_multiple_of(2) { json!({"type": "lead", "title": "L {x}", "organization": "Acme", "owner": {"pool": "P"}}) }
                      else { json!({"type": "activity", "activity": "call", "subject": "Call", "link": "lead"}) },
            "then": {"goto": id(0)}}),
        7 => {
            json!({"kind": "consent", "id": me, "mode": if t[2].is_multiple_of(2) { "explicit" } else { "implicit" },
            "notice": "ok?", "then": id(0)})
        }
        _ => json!({"kind": "end", "id": me, "outcome": "none"}),
    }
}

fn playbook_strategy() -> impl Strategy<Value = Engine> {
    // Only checked playbooks can run, so shapes that `check` rejects (loops that never wait,
    // dead ends, unset variables…) are filtered out; the card mix keeps most of them valid.
    prop::collection::vec((any::<u8>(), prop::array::uniform3(any::<usize>())), 1..8)
        .prop_filter_map("playbook must pass check", |cards| {
            let n = cards.len();
            let cards: Vec<Value> = cards
                .iter()
                .enumerate()
                .map(|(i, (k, t))| card_json(i, n, *k, t))
                .collect();
            let pb = json!({"playbook": {"name": "p", "start": "c0",
                "limits": {"max_steps": MAX_STEPS, "idle_capture": "5m"}}, "cards": cards});
            let pb: playbook::model::Playbook = serde_json::from_value(pb).expect("valid JSON");
            playbook::check::check(pb)
                .into_result()
                .ok()
                .map(Engine::new)
        })
}

#[derive(Debug, Clone)]
enum Ev {
    Text(u8),
    Choice(usize),
    Join(u8),
    AgentMsg(u8),
    Close(u8),
    Reassign(u8),
    FirePending(u8),
    FireRandom(u64),
    Wait(u64),
    Restart,
}

fn ev_strategy() -> impl Strategy<Value = Ev> {
    prop_oneof![
        any::<u8>().prop_map(Ev::Text),
        (0usize..4).prop_map(Ev::Choice),
        any::<u8>().prop_map(Ev::Join),
        any::<u8>().prop_map(Ev::AgentMsg),
        any::<u8>().prop_map(Ev::Close),
        any::<u8>().prop_map(Ev::Reassign),
        any::<u8>().prop_map(Ev::FirePending),
        (0u64..400_000).prop_map(Ev::FireRandom),
        (0u64..400_000).prop_map(Ev::Wait),
        Just(Ev::Restart),
    ]
}

const TEXTS: &[&str] = &["A", "b", "1", "2", "ann@example.com", "nope", "", " a "];
const AGENTS: &[&str] = &["ana", "bob", "cy"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_global_rejects: 1_000_000, ..ProptestConfig::default() })]

    #[test]
    fn random_playbooks_and_events_stay_sane(
        engine in playbook_strategy(),
        events in prop::collection::vec(ev_strategy(), 0..30),
        ana_online in any::<bool>(),
    ) {
        let mut desk = Desk::new();
        desk.add_agent("ana", if ana_online { Presence::Online } else { Presence::Offline });
        desk.add_agent("bob", Presence::Online);
        desk.add_agent("cy", Presence::Away);
        desk.add_pool("P", &["sam", "tia"]);
        let mut s = Session::new();
        let mut now = Instant(0);
        let mut out = Vec::new();
        let start = Event::Start { conversation: "c".into(), channel: Channel::Web, page_url: None, contact_owner: None, said: None };
        engine.step(&mut s, start, now, &desk, &mut out).unwrap();
        check(&engine, &s, &out);
        let long = "x".repeat(5000);
        for ev in events {
            out.clear();
            let before = s.clone();
            let pick = |i: u8| AGENTS[i as usize % AGENTS.len()];
            let event = match ev {
                Ev::Text(255) => Event::VisitorText { text: long.as_str().into(), channel: Channel::Web },
                Ev::Text(i) => Event::VisitorText { text: TEXTS[i as usize % TEXTS.len()].into(), channel: if i % 3 == 0 { Channel::Sms } else { Channel::Web } },
                Ev::Choice(i) => Event::VisitorChoice { index: i, channel: Channel::Web },
                Ev::Join(i) => Event::AgentJoined { agent: pick(i).into() },
                Ev::AgentMsg(i) => Event::AgentMessage { agent: pick(i).into(), text: "hello".into() },
                Ev::Close(i) => Event::AgentClosed { agent: pick(i).into() },
                Ev::Reassign(i) => Event::Reassigned { to: pick(i).into() },
                Ev::FirePending(i) => {
                    let timers: Vec<_> = s.timers().collect();
                    if timers.is_empty() { continue; }
                    let t = timers[i as usize % timers.len()];
                    now = now.max(t.at);
                    Event::TimerFired(t)
                }
                Ev::FireRandom(at) => Event::TimerFired(playbook::engine::Timer {
                    kind: [TimerKind::Idle, TimerKind::Wait, TimerKind::IdleCapture][at as usize % 3],
                    at: Instant(at),
                }),
                Ev::Wait(ms) => { now = now.after_ms(ms); continue; }
                Ev::Restart => {
                    // A driver that stores sessions: serialize and load back.
                    let json = serde_json::to_string(&s).unwrap();
                    s = serde_json::from_str(&json).unwrap();
                    prop_assert_eq!(&s, &before);
                    continue;
                }
            };
            match engine.step(&mut s, event, now, &desk, &mut out) {
                Ok(()) => check(&engine, &s, &out),
                Err(_) => {
                    prop_assert_eq!(&s, &before, "an error changed the session");
                    prop_assert!(out.is_empty());
                }
            }
        }
    }
}

fn check(engine: &Engine, s: &Session, out: &[Effect<'_>]) {
    // Every session is waiting or over.
    assert!(
        matches!(
            s.status(),
            Status::Waiting | Status::Ended(_) | Status::Failed
        ),
        "{:?}",
        s.status()
    );
    // At most MAX_STEPS cards ran: each card shows at most one message (plus a greeting-less
    // start, a notice, an offline message and a re-prompt), so messages bound cards.
    let messages = out
        .iter()
        .filter(|e| matches!(e, Effect::Say { .. } | Effect::Ask { .. }))
        .count();
    assert!(
        messages <= MAX_STEPS as usize + 2,
        "{messages} messages: {out:?}"
    );
    let ends = out
        .iter()
        .filter(|e| matches!(e, Effect::End { .. } | Effect::Failed(_)))
        .count();
    assert!(ends <= 1);
    if ends == 1 {
        assert!(matches!(s.status(), Status::Ended(_) | Status::Failed));
    }
    if let Status::Waiting = s.status() {
        assert!(engine.program().card(s.card()).waits());
    }
}
