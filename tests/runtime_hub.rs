//! The synchronous hub: engine, desk, ledger, transcripts, timers and sinks kept in step.

mod runtime_common;

use playbook::capture::{ManualDetails, ManualKind, RecordData};
use playbook::desk::{Assignment, ConvState, DeskError, Notification, Presence};
use playbook::engine::{Channel, Effect, EngineError, Phase, Status, TimerKind};
use playbook::runtime::{
    Hub, HubError, JsonLinesSink, MemorySink, Outputs, RecordSink, StartOptions,
};
use runtime_common::{T0, at, desk, engine};

const WEB: Channel = Channel::Web;

fn texts(o: &Outputs) -> Vec<String> {
    o.effects
        .iter()
        .filter_map(|e| match &e.effect {
            Effect::Say { from, text, .. } | Effect::Ask { from, text, .. } => {
                Some(format!("{}: {text}", from.name()))
            }
            _ => None,
        })
        .collect()
}

fn start(hub: &mut Hub, id: &str) -> Outputs {
    hub.start(id, StartOptions::default(), T0).expect("start")
}

#[test]
fn offline_path_ends_in_one_lead_in_ledger_and_sink() {
    let sink = MemorySink::new();
    let mut hub = Hub::new(engine("demo.playbook"), desk(&[])).with_sink(sink.clone());
    let o = start(&mut hub, "c1");
    assert_eq!(
        texts(&o),
        [
            "Ava: Hi, I'm Ava from Acme.",
            "Ava: What brings you here today?"
        ]
    );
    // idle nudge timer + idle capture timer
    assert_eq!(hub.timer_count(), 2);
    let o = hub.visitor_choice("c1", 1, WEB, at(1000)).unwrap();
    assert_eq!(
        texts(&o),
        [
            "Ava: Sorry, we're all busy right now. Leave your email and we'll get back to you.",
            "Ava: What's your name?"
        ],
        "nobody online: told so, then straight to the offline branch"
    );
    assert!(hub.desk().unassigned().is_empty());
    hub.visitor_text("c1", "Dana", WEB, at(2000)).unwrap();
    let o = hub
        .visitor_text("c1", "not an email", WEB, at(3000))
        .unwrap();
    assert!(
        matches!(&o.effects[..], [_, e] if matches!(&e.effect, Effect::Ask { retry: true, .. }))
    );
    let o = hub
        .visitor_text("c1", "dana@example.com", WEB, at(4000))
        .unwrap();
    assert_eq!(o.records.len(), 1);
    let rec = &o.records[0].record;
    assert_eq!(rec.key, "c1/sales_lead");
    assert_eq!(rec.owner.as_deref(), Some("sam"));
    assert!(
        matches!(&rec.data, RecordData::Lead(l) if l.person.email.as_deref() == Some("dana@example.com"))
    );
    // The transcript up to the capture goes with it.
    assert_eq!(o.records[0].transcript.len() as u32, rec.messages);
    assert_eq!(sink.records().len(), 1);
    assert_eq!(hub.ledger().len(), 1);
    // The pool moved on exactly once.
    use playbook::engine::DeskView;
    assert_eq!(hub.desk().pool_owner("Inbound SDRs"), Some("tia"));
    assert!(matches!(
        hub.session("c1").unwrap().status(),
        Status::Ended(_)
    ));
    assert_eq!(
        hub.timer_count(),
        0,
        "an ended conversation holds no timers"
    );
}

#[test]
fn live_chat_pickup_relay_close_keeps_desk_in_step() {
    let mut hub = Hub::new(engine("demo.playbook"), desk(&["ana", "bob"]));
    start(&mut hub, "c1");
    let o = hub.visitor_choice("c1", 1, WEB, at(1000)).unwrap();
    assert_eq!(texts(&o), ["Ava: Connecting you with our sales team..."]);
    assert_eq!(hub.desk().unassigned(), ["c1"]);
    assert_eq!(o.notifications.len(), 2, "ana and bob are told: {o:?}");
    assert!(
        o.of("c1")
            .any(|e| matches!(e, Effect::SetTimer(t) if t.kind == TimerKind::Wait))
    );

    // Refusals change nothing.
    let before = hub.snapshot("c1").unwrap();
    assert_eq!(
        hub.assign_self("c1", "zed", at(2000)),
        Err(HubError::Desk(DeskError::UnknownAgent("zed".into())))
    );
    assert_eq!(
        hub.agent_message("c1", "ana", "hi", at(2000)),
        Err(HubError::Engine(EngineError::NoAgent))
    );
    assert_eq!(hub.snapshot("c1").unwrap(), before);
    assert_eq!(hub.desk().unassigned(), ["c1"]);
    assert_eq!(
        hub.visitor_text("nope", "hi", WEB, at(2000)),
        Err(HubError::UnknownConversation("nope".into()))
    );

    let o = hub.assign_self("c1", "ana", at(30_000)).unwrap();
    assert_eq!(texts(&o), ["system: ana joined the conversation"]);
    assert_eq!(hub.desk().mine("ana"), ["c1"]);
    assert_eq!(
        hub.timer_count(),
        1,
        "the wait timer is gone, idle capture stays"
    );
    // A second agent racing loses, on the engine's side first.
    assert!(hub.assign_self("c1", "bob", at(30_001)).is_err());

    let o = hub
        .visitor_text("c1", "Do you do discounts?", WEB, at(40_000))
        .unwrap();
    assert!(
        o.of("c1")
            .any(|e| matches!(e, Effect::RelayToAgent { agent: Some(a), .. } if a == "ana"))
    );
    assert_eq!(
        o.notifications,
        [Notification::MessageArrived {
            agent: "ana".into(),
            conversation: "c1".into()
        }]
    );
    let o = hub
        .agent_message("c1", "ana", "For teams, yes.", at(50_000))
        .unwrap();
    assert_eq!(texts(&o), ["ana: For teams, yes."]);
    let o = hub.reassign("c1", "ana", "bob", at(55_000)).unwrap();
    assert_eq!(texts(&o), ["system: bob joined the conversation"]);
    assert!(
        matches!(&o.notifications[..], [Notification::AssignedToYou { agent, .. }] if agent == "bob")
    );
    hub.set_presence("ana", Presence::Offline).unwrap();
    assert_eq!(
        hub.reassign("c1", "bob", "ana", at(56_000)),
        Err(HubError::Engine(EngineError::AgentOffline("ana".into())))
    );
    let o = hub.close("c1", "bob", at(60_000)).unwrap();
    assert_eq!(
        texts(&o),
        [
            "system: bob closed the conversation",
            "Ava: Have a great day!"
        ]
    );
    assert_eq!(hub.desk().closed(), ["c1"]);
    assert!(hub.close("c1", "bob", at(61_000)).is_err());
    // Records can still be made from the closed conversation.
    let o = hub
        .create_record(
            "c1",
            "bob",
            ManualKind::Deal,
            ManualDetails {
                title: "Team plan".into(),
                value: playbook::capture::Money::parse("1200"),
                ..Default::default()
            },
            at(70_000),
        )
        .unwrap();
    assert_eq!(o.records[0].record.key, "c1/#desk-1");
    assert_eq!(o.records[0].record.owner.as_deref(), Some("bob"));
    assert!(!o.records[0].transcript.is_empty());
}

#[test]
fn wait_timeout_moves_to_offline_and_pickup_after_fails() {
    let mut hub = Hub::new(engine("demo.playbook"), desk(&["ana"]));
    start(&mut hub, "c1");
    hub.visitor_choice("c1", 1, WEB, at(0)).unwrap();
    let deadline = hub.next_deadline().unwrap();
    assert_eq!(deadline, at(120_000));
    // Pick-up at the deadline instant loses to the timer, and the desk is untouched.
    assert_eq!(
        hub.assign_self("c1", "ana", deadline),
        Err(HubError::Engine(EngineError::PickupTooLate { deadline }))
    );
    assert_eq!(hub.desk().unassigned(), ["c1"]);
    assert!(hub.advance(at(119_999)).is_empty());
    let o = hub.advance(deadline);
    assert_eq!(
        texts(&o),
        [
            "Ava: Sorry, we're all busy right now. Leave your email and we'll get back to you.",
            "Ava: What's your name?"
        ]
    );
    assert_eq!(
        hub.desk().conversation("c1").unwrap().state,
        ConvState::TimedOut
    );
    assert_eq!(
        hub.assign_self("c1", "ana", at(121_000)),
        Err(HubError::Engine(EngineError::NotWaitingForAgent))
    );
    assert_eq!(hub.session("c1").unwrap().phase(), Phase::Asking);
}

#[test]
fn due_timers_fire_in_deadline_then_start_order() {
    let mut hub = Hub::new(engine("demo.playbook"), desk(&[]));
    for id in ["b", "a", "c"] {
        start(&mut hub, id);
    }
    // Each waits at `welcome` with a 10m nudge and a 1d idle capture.
    assert_eq!(hub.timer_count(), 6);
    let o = hub.advance(at(24 * 3600 * 1000));
    let order: Vec<&str> = o
        .effects
        .iter()
        .filter(|e| matches!(e.effect, Effect::Say { .. }))
        .map(|e| e.conversation.as_str())
        .collect();
    assert_eq!(
        order,
        ["b", "a", "c"],
        "equal deadlines fire in start order"
    );
    // Idle capture found no contact details: nothing captured, nothing pending.
    assert!(o.records.is_empty());
    assert_eq!(hub.timer_count(), 0);
    assert_eq!(hub.now(), at(24 * 3600 * 1000));
}

#[test]
fn a_replayed_step_never_captures_twice() {
    let sink = MemorySink::new();
    let mut hub = Hub::new(engine("demo.playbook"), desk(&[])).with_sink(sink.clone());
    start(&mut hub, "c1");
    hub.visitor_choice("c1", 0, WEB, at(1)).unwrap();
    hub.visitor_text("c1", "11-200", WEB, at(2)).unwrap();
    hub.visitor_text("c1", "Dana", WEB, at(3)).unwrap();
    let snap = hub.snapshot("c1").unwrap();
    let first = hub
        .visitor_text("c1", "dana@example.com", WEB, at(4))
        .unwrap();
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.records[0].record.key, "c1/demo_lead");
    // The process "restarts" from the stored session and the same message comes again.
    hub.restore("c1", snap).unwrap();
    let again = hub
        .visitor_text("c1", "dana@example.com", WEB, at(5))
        .unwrap();
    assert!(
        again
            .effects
            .iter()
            .any(|e| matches!(e.effect, Effect::Capture(_)))
    );
    assert!(again.records.is_empty(), "the ledger recognised the key");
    assert_eq!(hub.ledger().len(), 1);
    assert_eq!(sink.records().len(), 1);
    use playbook::engine::DeskView;
    assert_eq!(
        hub.desk().pool_owner("Inbound SDRs"),
        Some("tia"),
        "pool moved once"
    );
}

#[test]
fn restore_rearms_exactly_the_session_timers() {
    let mut hub = Hub::new(engine("demo.playbook"), desk(&["ana"]));
    start(&mut hub, "c1");
    let snap = hub.snapshot("c1").unwrap();
    hub.visitor_choice("c1", 1, WEB, at(10)).unwrap();
    assert_eq!(hub.next_deadline(), Some(at(120_010)));
    hub.restore("c1", snap).unwrap();
    assert_eq!(hub.timer_count(), 2);
    assert_eq!(hub.next_deadline(), Some(at(600_000)));
    assert!(hub.restore("x", hub.snapshot("c1").unwrap()).is_err());
    assert_eq!(
        hub.start("c1", StartOptions::default(), T0),
        Err(HubError::ConversationExists("c1".into()))
    );
}

#[test]
fn json_lines_sink_writes_each_key_once_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("records.jsonl");
    let run = |sink: JsonLinesSink| {
        let mut hub = Hub::new(engine("demo.playbook"), desk(&[])).with_sink(sink);
        start(&mut hub, "c1");
        hub.visitor_choice("c1", 1, WEB, at(1)).unwrap();
        hub.visitor_text("c1", "Dana", WEB, at(2)).unwrap();
        hub.visitor_text("c1", "dana@example.com", WEB, at(3))
            .unwrap()
    };
    let o = run(JsonLinesSink::open(&path).unwrap());
    assert!(o.sink_errors.is_empty());
    let sink = JsonLinesSink::open(&path).unwrap();
    assert_eq!(sink.len(), 1);
    // A fresh process replays the whole conversation: its ledger is empty, the file is not.
    run(sink);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 1);
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["record"]["key"], "c1/sales_lead");
    assert!(v["transcript"].as_array().is_some_and(|t| !t.is_empty()));
    // A torn last line is skipped when reading keys.
    std::fs::write(&path, format!("{text}{{\"record\":")).unwrap();
    let mut sink = JsonLinesSink::open(&path).unwrap();
    assert_eq!(sink.len(), 1);
    let stored = o.records[0].clone();
    sink.put(&stored).unwrap();
}

#[test]
fn a_visitor_back_after_the_idle_lead_updates_it_instead_of_adding_one() {
    let text = r#"
playbook "Gap" {
  bot "Ava"
  start email
  idle capture 1h
}
ask email "Your email?" expect email save email -> company
ask company "Your company?" expect text save company -> lead
capture lead lead {
  title "Lead from {company}"
  person email "{email}"
} -> done
message done "Thanks!" end qualified
"#;
    let (pb, _) = playbook::syntax::read("gap.playbook", text).expect("parses");
    let program = playbook::check::check(pb).into_result().expect("checks");
    let sink = MemorySink::new();
    let mut hub = Hub::from_program(program, desk(&[])).with_sink(sink.clone());
    start(&mut hub, "c1");
    hub.visitor_text("c1", "dana@example.com", WEB, at(1000))
        .unwrap();
    let idle = hub.advance(at(1000 + 3_600_000));
    assert_eq!(idle.records.len(), 1);
    assert_eq!(idle.records[0].record.key, "c1/#idle");
    // Two hours later the visitor answers the open question and reaches the capture card.
    let back = hub
        .visitor_text("c1", "Acme", WEB, at(3 * 3_600_000))
        .unwrap();
    assert_eq!(back.records.len(), 1);
    let lead = &back.records[0].record;
    assert_eq!(lead.key, "c1/lead");
    assert_eq!(lead.supersedes.as_deref(), Some("c1/#idle"));
    assert!(matches!(&lead.data, RecordData::Lead(l) if l.title == "Lead from Acme"));
    // One lead in the ledger, found under either key.
    assert_eq!(hub.ledger().len(), 1);
    assert_eq!(hub.ledger().get("c1/#idle").unwrap().record.key, "c1/lead");
    // The sink saw both, the second saying what it replaces.
    let seen = sink.records();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].record.supersedes.as_deref(), Some("c1/#idle"));
    let json = serde_json::to_value(lead).unwrap();
    assert_eq!(json["supersedes"], "c1/#idle");
}

/// The rule the desk used to enforce for agent-made records, now the hub's alone: only an
/// agent the desk knows, only for a conversation that exists; numbering is per conversation.
#[test]
fn agent_made_records_need_a_known_agent_and_conversation() {
    let mut hub = Hub::new(engine("demo.playbook"), desk(&["ana"]));
    start(&mut hub, "c1");
    let make = |hub: &mut Hub, conv: &str, agent: &str| {
        hub.create_record(
            conv,
            agent,
            ManualKind::Lead,
            ManualDetails::default(),
            at(1_000),
        )
    };
    assert!(matches!(
        make(&mut hub, "c1", "zed"),
        Err(HubError::Desk(DeskError::UnknownAgent(a))) if a == "zed"
    ));
    assert!(matches!(
        make(&mut hub, "nope", "ana"),
        Err(HubError::UnknownConversation(c)) if c == "nope"
    ));
    assert!(hub.ledger().records().is_empty());
    // A conversation that never reached the desk still takes records (an agent read its
    // transcript), numbered per conversation.
    let o = make(&mut hub, "c1", "ana").unwrap();
    assert_eq!(o.records[0].record.key, "c1/#desk-1");
    let o = make(&mut hub, "c1", "ana").unwrap();
    assert_eq!(o.records[0].record.key, "c1/#desk-2");
}

#[test]
fn transcript_lines_carry_the_kind_their_step_gave_them() {
    use playbook::capture::{Line, LineKind};
    let mut hub = Hub::new(engine("demo.playbook"), desk(&["ana"]));
    start(&mut hub, "c1");
    hub.visitor_text("c1", "hmm", WEB, at(1000)).unwrap();
    hub.visitor_choice("c1", 1, WEB, at(2000)).unwrap();
    hub.assign_self("c1", "ana", at(3000)).unwrap();
    hub.agent_message("c1", "ana", "Hello!", at(4000)).unwrap();
    let kinds: Vec<(LineKind, &str)> = hub
        .transcript("c1")
        .unwrap()
        .lines
        .iter()
        .map(|l| (l.kind, l.text.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (LineKind::Say, "Hi, I'm Ava from Acme."),
            (LineKind::Ask, "What brings you here today?"),
            (LineKind::Visitor, "hmm"),
            (LineKind::Reprompt, "What brings you here today?"),
            (LineKind::Visitor, "Talk to sales"),
            (LineKind::Say, "Connecting you with our sales team..."),
            (LineKind::Notice, "ana joined the conversation"),
            (LineKind::Say, "Hello!"),
        ]
    );
    // Serialized as `kind`; lines stored before kinds existed read back with one inferred.
    let v = serde_json::to_value(&hub.transcript("c1").unwrap().lines[2]).unwrap();
    assert_eq!(v["kind"], "visitor");
    let old: Line =
        serde_json::from_str(r#"{"at":1,"from":{"role":"visitor"},"channel":"web","text":"hi"}"#)
            .unwrap();
    assert_eq!(old.kind, LineKind::Visitor);
    let old: Line = serde_json::from_str(
        r#"{"at":1,"from":{"role":"bot","name":"Ava"},"channel":"web","text":"hi"}"#,
    )
    .unwrap();
    assert_eq!(old.kind, LineKind::Say);
}

#[test]
fn presence_is_a_desk_wide_command() {
    use playbook::runtime::Command;
    let mut hub = Hub::new(engine("demo.playbook"), desk(&["ana"]));
    let away = Command::Presence {
        agent: "ana".into(),
        presence: Presence::Away,
    };
    // No conversation needed: the id is ignored.
    let o = hub.apply("no-such-conversation", away, T0).unwrap();
    assert!(o.is_empty());
    assert_eq!(hub.desk().presence("ana"), Some(Presence::Away));
    let zed = Command::Presence {
        agent: "zed".into(),
        presence: Presence::Online,
    };
    assert!(matches!(
        hub.apply("c1", zed, T0),
        Err(HubError::Desk(DeskError::UnknownAgent(_)))
    ));
    // Its serde form is the protocol's.
    let cmd: Command =
        serde_json::from_str(r#"{"event":"presence","agent":"ana","presence":"online"}"#).unwrap();
    assert!(matches!(
        cmd,
        Command::Presence {
            presence: Presence::Online,
            ..
        }
    ));
}

/// Milliseconds of a UTC time (`2026-01-05T08:00:00Z`).
fn utc(s: &str) -> playbook::engine::Instant {
    playbook::engine::Instant(s.parse::<jiff::Timestamp>().unwrap().as_millisecond() as u64)
}

/// Starts the demo at `t` and asks for sales; what the visitor hears, and whether the chat
/// waits in Unassigned.
fn ask_for_sales_at(t: &str) -> (Vec<String>, bool) {
    let mut d = desk(&["ana"]);
    // Sales: weekdays 09:00-17:00 in Berlin, closed on Christmas Eve.
    let hours = playbook::desk::Hours::parse(
        "Europe/Berlin",
        &["mon-fri 09:00-17:00".into()],
        &["2026-12-24".into()],
    )
    .unwrap();
    d.set_hours("Sales", hours);
    let mut hub = Hub::new(engine("demo.playbook"), d);
    let now = utc(t);
    hub.start("c1", StartOptions::default(), now).unwrap();
    let o = hub
        .visitor_choice("c1", 1, WEB, now.after_ms(1000))
        .unwrap();
    let waiting = hub.desk().unassigned() == ["c1"];
    (texts(&o), waiting)
}

#[test]
fn team_hours_decide_routing_in_virtual_time() {
    let offline = [
        "Ava: Sorry, we're all busy right now. Leave your email and we'll get back to you.",
        "Ava: What's your name?",
    ];
    // Inside: Monday 5 January 2026, 10:00 in Berlin (UTC+1). ana is online: the chat waits.
    let (heard, waiting) = ask_for_sales_at("2026-01-05T09:00:00Z");
    assert!(waiting, "{heard:?}");
    assert_eq!(heard, ["Ava: Connecting you with our sales team..."]);
    // Outside: the same Monday at 18:00 in Berlin, ana still online: nobody counts.
    let (heard, waiting) = ask_for_sales_at("2026-01-05T17:00:00Z");
    assert!(!waiting);
    assert_eq!(heard, offline);
    // A closed date: Thursday 24 December 2026 at 10:00.
    let (heard, waiting) = ask_for_sales_at("2026-12-24T09:00:00Z");
    assert!(!waiting);
    assert_eq!(heard, offline);
    // Daylight saving: 07:30 UTC is 08:30 in Berlin on Friday 27 March 2026 (closed) and
    // 09:30 on Monday 30 March, after the switch to UTC+2 (open).
    assert!(!ask_for_sales_at("2026-03-27T07:30:00Z").1);
    assert!(ask_for_sales_at("2026-03-30T07:30:00Z").1);
}

/// Starts the demo as `id` at `t` and asks for sales.
fn ask_for_sales(hub: &mut Hub, id: &str, t: u64) -> Outputs {
    hub.start(id, StartOptions::default(), at(t)).unwrap();
    hub.visitor_choice(id, 1, WEB, at(t + 500)).unwrap()
}

fn assigned_to(o: &Outputs) -> Vec<(String, String)> {
    o.notifications
        .iter()
        .filter_map(|n| match n {
            Notification::AssignedToYou {
                agent,
                conversation,
                by: None,
            } => Some((conversation.clone(), agent.clone())),
            _ => None,
        })
        .collect()
}

fn pair(c: &str, a: &str) -> (String, String) {
    (c.to_owned(), a.to_owned())
}

/// Round robin with a capacity of one chat each, in virtual time: chats go to the agent given
/// one longest ago; when both are full the next wait in Unassigned, oldest first, and the
/// first place that frees (a close) takes the oldest; an agent who went away is skipped; the
/// wait timeout still ends a chat nobody could take.
#[test]
fn automatic_assignment_round_robin_with_capacity() {
    let mut d = desk(&["ana", "bob"]);
    d.set_assignment(Some("Sales"), Assignment::RoundRobin);
    d.set_capacity("ana", Some(1)).unwrap();
    d.set_capacity("bob", Some(1)).unwrap();
    let mut hub = Hub::new(engine("demo.playbook"), d);
    let o = ask_for_sales(&mut hub, "c1", 1_000);
    assert_eq!(assigned_to(&o), [pair("c1", "ana")]);
    // The visitor hears the online line, then the agent joining, in one answer.
    assert_eq!(hub.session("c1").unwrap().phase(), Phase::Live);
    assert_eq!(
        hub.desk().conversation("c1").unwrap().state,
        ConvState::Assigned("ana".into())
    );
    let o = ask_for_sales(&mut hub, "c2", 2_000);
    assert_eq!(assigned_to(&o), [pair("c2", "bob")]);
    // Both full: c3 and c4 wait, oldest first, and their visitors hear no join.
    assert!(assigned_to(&ask_for_sales(&mut hub, "c3", 3_000)).is_empty());
    assert!(assigned_to(&ask_for_sales(&mut hub, "c4", 4_000)).is_empty());
    assert_eq!(hub.desk().unassigned(), ["c3", "c4"]);
    assert_eq!(hub.desk().load("ana").unwrap().open, 1);
    // ana closes c1: the oldest waiting chat is hers at once.
    let o = hub.close("c1", "ana", at(10_000)).unwrap();
    assert_eq!(assigned_to(&o), [pair("c3", "ana")]);
    assert_eq!(hub.desk().unassigned(), ["c4"]);
    // bob goes away, then closes c2: his place is free but he is not available.
    hub.apply(
        "",
        playbook::runtime::Command::Presence {
            agent: "bob".into(),
            presence: Presence::Away,
        },
        at(11_000),
    )
    .unwrap();
    let o = hub
        .apply(
            "c2",
            playbook::runtime::Command::Close {
                agent: "bob".into(),
            },
            at(12_000),
        )
        .unwrap();
    assert!(assigned_to(&o).is_empty());
    assert_eq!(hub.desk().load("bob").unwrap().open, 0);
    // Nobody takes c4 within its 2 minutes: it times out to the offline branch as before.
    let o = hub.advance(at(4_500 + 120_000));
    assert!(
        texts(&o).contains(&"Ava: What's your name?".to_owned()),
        "{:?}",
        texts(&o)
    );
    assert_eq!(
        hub.desk().conversation("c4").unwrap().state,
        ConvState::TimedOut
    );
    // bob is back: c5 goes to him, not to ana (given one more recently), though both have
    // room only once ana closes c3.
    hub.apply(
        "",
        playbook::runtime::Command::Presence {
            agent: "bob".into(),
            presence: Presence::Online,
        },
        at(200_000),
    )
    .unwrap();
    hub.apply(
        "c3",
        playbook::runtime::Command::Close {
            agent: "ana".into(),
        },
        at(201_000),
    )
    .unwrap();
    let o = ask_for_sales(&mut hub, "c5", 202_000);
    assert_eq!(assigned_to(&o), [pair("c5", "bob")]);
    let o = ask_for_sales(&mut hub, "c6", 203_000);
    assert_eq!(assigned_to(&o), [pair("c6", "ana")]);
}

/// Least busy: a chat goes to the agent with the fewest open chats, counting the ones they
/// picked up themselves; a capacity only limits what is given out automatically.
#[test]
fn automatic_assignment_least_busy_counts_pick_ups() {
    let mut d = desk(&["ana", "bob"]);
    d.set_capacity("ana", Some(2)).unwrap();
    let mut hub = Hub::new(engine("demo.playbook"), d);
    // bob picks up two by hand while Sales is still on manual pick-up (the default).
    ask_for_sales(&mut hub, "c1", 1_000);
    ask_for_sales(&mut hub, "c2", 2_000);
    hub.assign_self("c1", "bob", at(3_000)).unwrap();
    hub.assign_self("c2", "bob", at(3_100)).unwrap();
    assert_eq!(hub.desk().load("bob").unwrap().open, 2);
    hub.desk_mut()
        .set_assignment(Some("Sales"), Assignment::LeastBusy);
    // ana has none: the next two are hers (then she is at her capacity of 2), the third
    // goes to bob (no limit) although he has more.
    for (i, id) in ["c3", "c4"].iter().enumerate() {
        let o = ask_for_sales(&mut hub, id, 10_000 + i as u64 * 1_000);
        assert_eq!(assigned_to(&o), [pair(id, "ana")]);
    }
    let o = ask_for_sales(&mut hub, "c5", 20_000);
    assert_eq!(assigned_to(&o), [pair("c5", "bob")]);
    assert_eq!(hub.desk().load("ana").unwrap().open, 2);
    assert_eq!(hub.desk().load("bob").unwrap().open, 3);
}

/// A live-chat card's own `assign` wins over a desk on manual pick-up.
#[test]
fn a_live_chat_card_may_assign_automatically_itself() {
    let path = format!("{}/playbooks/demo.playbook", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "  route team \"Sales\"\n",
        "  route team \"Sales\"\n  assign round_robin\n",
    );
    let (pb, _) = playbook::syntax::read(&path, &text).unwrap();
    let engine = playbook::engine::Engine::new(playbook::check::check(pb).into_result().unwrap());
    let mut hub = Hub::new(engine, desk(&["ana", "bob"]));
    assert!(hub.desk().assigns_automatically());
    let o = ask_for_sales(&mut hub, "c1", 1_000);
    assert_eq!(assigned_to(&o), [pair("c1", "ana")]);
    let o = ask_for_sales(&mut hub, "c2", 2_000);
    assert_eq!(assigned_to(&o), [pair("c2", "bob")]);
    // The same desk with the example as it is: manual pick-up.
    let mut hub = Hub::new(engine_of_demo(), desk(&["ana", "bob"]));
    assert!(!hub.desk().assigns_automatically());
    assert!(assigned_to(&ask_for_sales(&mut hub, "c1", 1_000)).is_empty());
}

fn engine_of_demo() -> playbook::engine::Engine {
    engine("demo.playbook")
}

#[test]
fn a_channel_switch_transcribes_the_linking_message_and_moves_replies_without_moving_the_flow() {
    use playbook::capture::{LineKind, Who};
    let mut hub = Hub::new(engine("demo.playbook"), desk(&[]));
    // A contact's opening message: in the transcript, first, and no answer.
    let opts = StartOptions {
        channel: Channel::WhatsApp,
        said: Some("hi there".into()),
        ..StartOptions::default()
    };
    hub.start("c1", opts, T0).unwrap();
    let t = hub.transcript("c1").unwrap();
    assert_eq!(t.lines[0].from, Who::Visitor);
    assert_eq!(t.lines[0].text, "hi there");
    assert_eq!(t.lines[2].text, "What brings you here today?");
    assert_eq!(hub.session("c1").unwrap().phase(), Phase::Asking);

    // Back to the web: a notice there; the question still waits for its answer.
    let o = hub.switch_channel("c1", WEB, None, None, at(1000)).unwrap();
    assert_eq!(texts(&o), ["system: The conversation continues here"]);
    assert_eq!(hub.session("c1").unwrap().channel(), WEB);
    // Again to the web: refused, nothing changes.
    let err = hub
        .switch_channel("c1", WEB, None, None, at(1500))
        .unwrap_err();
    assert!(
        matches!(err, HubError::Engine(EngineError::SameChannel(_))),
        "{err:?}"
    );
    // Linked on Messenger with a message: transcribed there, the notice there too.
    hub.switch_channel(
        "c1",
        Channel::Messenger,
        Some("psid-1"),
        Some("LINK-ABCDEFGHJK"),
        at(2000),
    )
    .unwrap();
    let t = hub.transcript("c1").unwrap();
    let tail: Vec<_> = t.lines[t.lines.len() - 2..]
        .iter()
        .map(|l| (l.kind, l.channel, l.text.as_str()))
        .collect();
    assert_eq!(
        tail,
        [
            (LineKind::Visitor, Channel::Messenger, "LINK-ABCDEFGHJK"),
            (
                LineKind::Notice,
                Channel::Messenger,
                "The conversation continues on Messenger"
            ),
        ]
    );
    // The flow did not move: a button still answers the question, on Messenger.
    let o = hub
        .visitor_choice("c1", 2, Channel::Messenger, at(3000))
        .unwrap();
    assert!(!texts(&o).is_empty());
    assert_eq!(
        hub.state("c1").unwrap().social,
        Some(playbook::capture::SocialId {
            channel: Channel::Messenger,
            id: "psid-1".into()
        })
    );
}
