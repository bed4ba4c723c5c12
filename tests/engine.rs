//! The engine end to end: every card kind, every live-chat outcome in virtual time, capture,
//! consent, channels and bad input.

mod engine_common;

use engine_common::{Chat, cow, engine};
use playbook::capture::RecordData;
use playbook::desk::{Desk, Presence};
use playbook::engine::{
    Channel, Effect, EngineError, Event, Instant, NoDesk, Session, Status, TimerKind,
};
use playbook::model::Outcome;

fn snapshot(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

const DEMO: &str = r#"{
  "playbook": {"name": "Demo", "bot": "Ava", "start": "welcome",
               "greeting": "Hi! You are on {page_url}."},
  "cards": [
    {"kind": "question", "id": "welcome", "text": "What brings you here?",
     "answers": [{"label": "Book a demo", "to": "size"},
                 {"label": "Talk to sales", "to": "sales"},
                 {"label": "Just browsing", "to": "bye"}]},
    {"kind": "question", "id": "size", "text": "How many people work at your company?", "save": "size",
     "answers": [{"label": "1-10", "to": "too_small"},
                 {"label": "11-200", "to": "email"},
                 {"label": "200+", "to": "email"}]},
    {"kind": "ask", "id": "email", "text": "What's your work email?", "expect": "email",
     "save": "email", "reprompt": "Please enter a valid email", "then": "lead"},
    {"kind": "livechat", "id": "sales", "online": "Connecting you with our sales team...",
     "wait": "2m", "offline": "Sorry, we're all busy.",
     "route": {"to": {"team": "Sales"}}, "on_closed": "bye", "on_offline": "email"},
    {"kind": "capture", "id": "lead", "record": {"type": "lead", "title": "Demo request ({size})",
     "person": {"email": "{email}"}, "owner": {"pool": "SDRs"}}, "then": {"goto": "call"}},
    {"kind": "capture", "id": "call", "record": {"type": "activity", "activity": "call",
     "subject": "Call {email}", "due": "1d", "link": "lead"}, "then": {"goto": "thanks"}},
    {"kind": "message", "id": "thanks", "text": "Thanks! We'll be in touch at {email}.",
     "then": {"end": "qualified"}},
    {"kind": "message", "id": "too_small", "text": "Our self-serve plan fits you best.",
     "then": {"end": "disqualified"}},
    {"kind": "message", "id": "bye", "text": "Have a great day, from {bot}!", "then": {"end": "none"}}
  ]
}"#;

fn desk(agents: &[(&str, Presence)]) -> Desk {
    let mut d = Desk::new();
    for (a, p) in agents {
        d.add_agent(a, *p);
    }
    let names: Vec<&str> = agents.iter().map(|(a, _)| *a).collect();
    d.add_team("Sales", &names).unwrap();
    d.add_pool("SDRs", &["sam", "tia"]);
    d
}

#[test]
fn demo_flow_captures_a_lead_and_a_linked_call() {
    let e = engine(DEMO);
    let mut c = Chat::new(&e, desk(&[]));
    c.start();
    c.say("  book A DEMO ");
    c.at(5_000).say("2"); // button number 2 = 11-200
    assert_eq!(
        c.say("not-an-email"),
        ["[web] Ava (again)? Please enter a valid email"]
    );
    c.say(" ann@example.com ");
    assert_eq!(c.session.status(), Status::Ended(Outcome::Qualified));
    assert_eq!(
        e.variables(&c.session).get("email"),
        Some(&"ann@example.com")
    );
    let recs = c.ledger.records();
    assert_eq!(recs.len(), 2);
    let RecordData::Lead(lead) = &recs[0].record.data else {
        panic!("lead first")
    };
    assert_eq!(lead.title, "Demo request (11-200)");
    assert_eq!(lead.source, "Chatbot");
    assert_eq!(lead.status, "New");
    assert_eq!(recs[0].record.owner.as_deref(), Some("sam"));
    // The transcript so far is attached: greeting .. the valid email.
    assert_eq!(recs[0].transcript.len(), 9);
    assert_eq!(recs[0].transcript[8].text, " ann@example.com ");
    let RecordData::Activity(call) = &recs[1].record.data else {
        panic!("activity second")
    };
    assert_eq!(call.link.as_deref(), Some("conv-1/lead"));
    assert_eq!(call.due, Some(c.now.after_ms(86_400_000)));
    snapshot("engine_demo_flow", &c.log());
}

#[test]
fn buttons_free_text_and_choices() {
    let e = engine(DEMO);
    let mut c = Chat::new(&e, desk(&[]));
    c.start();
    // Free text on a button question re-asks with the buttons.
    assert_eq!(
        c.say("hmm"),
        ["[web] Ava (again)? What brings you here? [Book a demo | Talk to sales | Just browsing]"]
    );
    assert_eq!(
        c.send(Event::VisitorChoice {
            index: 3,
            channel: Channel::Web
        }),
        Err(EngineError::NoSuchChoice { index: 3, count: 3 })
    );
    c.send(Event::VisitorChoice {
        index: 0,
        channel: Channel::Web,
    })
    .unwrap();
    c.say("1-10");
    assert_eq!(c.session.status(), Status::Ended(Outcome::Disqualified));
    assert_eq!(
        c.send(Event::VisitorText {
            text: cow("hello?"),
            channel: Channel::Web
        }),
        Err(EngineError::Ended)
    );

    // A question that accepts free text saves it and goes on.
    let e = engine(
        r#"{"playbook": {"name": "f", "start": "q"}, "cards": [
        {"kind": "question", "id": "q", "text": "Pick", "save": "pick",
         "answers": [{"label": "A", "to": "done"}], "free_text": "done"},
        {"kind": "message", "id": "done", "text": "Got {pick}", "then": {"end": "none"}}]}"#,
    );
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    assert_eq!(
        c.say(" something else "),
        ["[web] Bot: Got something else", "end None"]
    );
}

#[test]
fn ask_kinds_validate_and_give_up() {
    let e = engine(
        r#"{"playbook": {"name": "a", "start": "phone"}, "cards": [
        {"kind": "ask", "id": "phone", "text": "Phone?", "expect": "phone", "save": "phone", "then": "n"},
        {"kind": "ask", "id": "n", "text": "How many?", "expect": "number", "save": "n", "then": "code"},
        {"kind": "ask", "id": "code", "text": "Code?", "expect": {"pattern": "[A-Z]{3}"},
         "give_up": {"after": 2, "to": "human"}, "then": "name"},
        {"kind": "ask", "id": "name", "text": "Name?", "expect": "text", "save": "name", "then": "end"},
        {"kind": "message", "id": "human", "text": "Let's talk in person.", "then": {"goto": "name"}},
        {"kind": "end", "id": "end", "outcome": "qualified"}]}"#,
    );
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    assert_eq!(
        c.say("call me"),
        ["[web] Bot (again)? Please enter a valid phone number."]
    );
    assert_eq!(c.say("+49 (30) 1234-567"), ["[web] Bot? How many?"]);
    assert_eq!(
        c.say("a dozen"),
        ["[web] Bot (again)? Please enter a number."]
    );
    c.say("12.5");
    assert_eq!(
        c.say("abc"),
        ["[web] Bot (again)? Sorry, that doesn't look right. Please try again."]
    );
    // Second invalid answer: give up.
    assert_eq!(
        c.say("abcd"),
        ["[web] Bot: Let's talk in person.", "[web] Bot? Name?"]
    );
    assert_eq!(c.say("   "), ["[web] Bot (again)? Please type an answer."]);
    assert_eq!(c.say(" Ann "), ["end Qualified"]);
    let vars = e.variables(&c.session);
    assert_eq!(vars.get("phone"), Some(&"+49 (30) 1234-567"));
    assert_eq!(vars.get("n"), Some(&"12.5"));
    assert_eq!(vars.get("name"), Some(&"Ann"));
    // A valid answer resets the count: a pattern card passed on the first try would too.
    assert!(
        c.send(Event::VisitorChoice {
            index: 0,
            channel: Channel::Web
        })
        .is_err()
    );
}

#[test]
fn branches_read_variables_and_system_values() {
    let e = engine(
        r#"{"playbook": {"name": "b", "start": "n"}, "cards": [
        {"kind": "ask", "id": "n", "text": "Seats?", "expect": "number", "save": "seats", "then": "b"},
        {"kind": "branch", "id": "b", "rules": [
          {"when": {"op": "compare", "var": "seats", "cmp": ">=", "value": 100}, "to": "big"},
          {"when": {"op": "equals", "var": "channel", "value": " WHATSAPP "}, "to": "wa"},
          {"when": {"op": "one_of", "var": "seats", "values": ["1", "2"]}, "to": "tiny"},
          {"when": {"op": "not_set", "var": "seats"}, "to": "big"},
          {"when": {"op": "is_set", "var": "seats"}, "to": "mid"}],
         "otherwise": "big"},
        {"kind": "end", "id": "big", "outcome": "qualified"},
        {"kind": "end", "id": "wa", "outcome": "none"},
        {"kind": "end", "id": "tiny", "outcome": "disqualified"},
        {"kind": "message", "id": "mid", "text": "{seats} seats via {channel} in {conversation_id} since {started_at}", "then": {"end": "none"}}]}"#,
    );
    let run = |input: &str, channel: Channel| {
        let mut c = Chat::new(&e, Desk::new());
        c.start();
        c.send(Event::VisitorText {
            text: cow(input),
            channel,
        })
        .unwrap()
    };
    assert_eq!(run("150", Channel::Web), ["end Qualified"]);
    assert_eq!(run("5", Channel::WhatsApp), ["end None"]);
    assert_eq!(run("2", Channel::Web), ["end Disqualified"]);
    assert_eq!(
        run("7", Channel::Sms),
        [
            "[sms] Bot: 7 seats via sms in conv-1 since 2023-11-14T22:13:20Z",
            "end None"
        ]
    );
}

#[test]
fn replies_follow_the_visitors_last_channel() {
    let e = engine(DEMO);
    let mut c = Chat::new(&e, desk(&[]));
    c.start();
    let out = c
        .send(Event::VisitorText {
            text: cow("Book a demo"),
            channel: Channel::WhatsApp,
        })
        .unwrap();
    assert!(out[0].starts_with("[whatsapp] Ava?"), "{out:?}");
    c.send(Event::VisitorChoice {
        index: 1,
        channel: Channel::Messenger,
    })
    .unwrap();
    assert_eq!(c.session.channel(), Channel::Messenger);
    assert_eq!(
        c.transcript.lines.last().unwrap().channel,
        Channel::Messenger
    );
}

#[test]
fn consent_explicit_and_implicit() {
    let pb = |mode: &str, decline: &str| {
        engine(&format!(
            r#"{{"playbook": {{"name": "c", "start": "c"}}, "cards": [
            {{"kind": "consent", "id": "c", "mode": "{mode}", "notice": "We store your answers.",
              "agree": "OK", "then": "go"{decline}}},
            {{"kind": "message", "id": "go", "text": "Great.", "then": {{"end": "qualified"}}}},
            {{"kind": "message", "id": "no", "text": "Understood.", "then": {{"end": "none"}}}}]}}"#
        ))
    };
    let e = pb("explicit", "");
    let mut c = Chat::new(&e, Desk::new());
    assert_eq!(
        c.start(),
        ["[web] Bot? We store your answers. [OK | No, thanks]"]
    );
    assert_eq!(
        c.say("maybe"),
        ["[web] Bot (again)? We store your answers. [OK | No, thanks]"]
    );
    // Agreeing is recorded: explicit, when (the notice is on the effect too).
    assert_eq!(
        c.say("ok"),
        [
            "consent Explicit at 1700000000000",
            "[web] Bot: Great.",
            "end Qualified"
        ]
    );
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    assert_eq!(
        c.say("no, thanks"),
        [
            "[web] Bot: No problem. We won't process your data, so we'll end the chat here. Goodbye!",
            "end None"
        ]
    );
    let e = pb("explicit", r#", "on_decline": "no""#);
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    assert_eq!(
        c.send(Event::VisitorChoice {
            index: 1,
            channel: Channel::Web
        })
        .unwrap(),
        ["consent declined", "[web] Bot: Understood.", "end None"]
    );
    let e = pb("implicit", "");
    let mut c = Chat::new(&e, Desk::new());
    assert_eq!(
        c.start(),
        [
            "consent Implicit at 1700000000000",
            "[web] Bot: We store your answers.",
            "[web] Bot: Great.",
            "end Qualified"
        ]
    );
}

const IDLE: &str = r#"{"playbook": {"name": "i", "start": "q"}, "cards": [
  {"kind": "question", "id": "q", "text": "Still there?", "answers": [{"label": "Yes", "to": "a"}],
   "idle": {"after": "30s", "then": {"nudge": "Take your time."}}},
  {"kind": "ask", "id": "a", "text": "Email?", "expect": "email", "save": "email", "then": "end",
   "idle": {"after": "1m", "then": {"goto": "gone"}}},
  {"kind": "message", "id": "gone", "text": "We'll leave it there.", "then": {"end": "none"}},
  {"kind": "end", "id": "end"}]}"#;

#[test]
fn idle_timeouts_nudge_once_or_branch_and_stale_timers_do_nothing() {
    let e = engine(IDLE);
    let mut c = Chat::new(&e, Desk::new());
    let out = c.start();
    assert_eq!(out[1], "set timer Idle at 1700000030000");
    let t = c.timer(TimerKind::Idle);
    // Early: refused.
    assert_eq!(
        c.send(Event::TimerFired(t)),
        Err(EngineError::TimerEarly {
            at: t.at,
            now: c.now
        })
    );
    assert_eq!(c.fire(t).unwrap(), ["[web] Bot: Take your time."]);
    assert_eq!(c.session.timers().count(), 0, "nudges once");
    assert_eq!(
        c.fire(t).unwrap(),
        Vec::<String>::new(),
        "a repeat is stale"
    );
    c.at(40_000).say("yes");
    let t2 = c.timer(TimerKind::Idle);
    assert_eq!(t2.at, Instant(1_700_000_100_000));
    // The old timer is stale now.
    assert_eq!(c.fire(t).unwrap(), Vec::<String>::new());
    assert_eq!(
        c.fire(t2).unwrap(),
        ["[web] Bot: We'll leave it there.", "end None"]
    );
    // After the end: timers are ignored, visitor events are errors.
    assert_eq!(c.fire(t2).unwrap(), Vec::<String>::new());
    // A late timer (delivered after its deadline) still works.
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    let t = c.timer(TimerKind::Idle);
    c.at(3_600_000);
    assert_eq!(
        c.send(Event::TimerFired(t)).unwrap(),
        ["[web] Bot: Take your time."]
    );
}

#[test]
fn a_flow_that_never_waits_stops_at_the_step_limit() {
    // `check` rejects loops that never wait (E019) and reachable runs longer than the limit
    // (E021), so the limit guards what the checks do not see: a run entered by `start_at`
    // (scenario tails) at a card no path reaches. Twelve messages against a limit of ten.
    let cards: Vec<String> = (1..=12)
        .map(|i| {
            let then = if i < 12 {
                format!(r#"{{"goto": "m{}"}}"#, i + 1)
            } else {
                r#"{"end": "none"}"#.to_owned()
            };
            format!(r#"{{"kind": "message", "id": "m{i}", "text": "M{i}", "then": {then}}}"#)
        })
        .collect();
    let json = format!(
        r#"{{"playbook": {{"name": "chain", "start": "s", "limits": {{"max_steps": 10}}}}, "cards": [{{"kind": "end", "id": "s"}}, {}]}}"#,
        cards.join(",")
    );
    let e = engine(&json);
    let mut c = Chat::new(&e, Desk::new());
    let start = Event::Start {
        conversation: "conv-1".into(),
        channel: Channel::Web,
        page_url: None,
        contact_owner: None,
        said: None,
    };
    let m1 = e.program().lookup("m1").expect("m1");
    let mut effects = Vec::new();
    e.start_at(
        &mut c.session,
        start,
        Some(m1),
        &[],
        c.now,
        &c.desk,
        &mut effects,
    )
    .expect("start at m1");
    let out: Vec<String> = effects.iter().map(engine_common::line).collect();
    // Ten cards entered, each saying its text, then the failure.
    assert_eq!(out.len(), 10 * 2 + 1, "{out:?}");
    assert_eq!(
        out.last().unwrap(),
        "failed: ran 10 cards without waiting for the visitor (next was `m11`); raise the playbook's `max steps` or add a card that waits"
    );
    assert_eq!(c.session.status(), Status::Failed);
    assert_eq!(
        c.send(Event::AgentClosed { agent: cow("x") }),
        Err(EngineError::Ended)
    );
}

#[test]
fn bad_events_are_typed_errors_and_change_nothing() {
    let e = engine(DEMO);
    let mut s = Session::new();
    let now = Instant(0);
    let text = |t: &str| Event::VisitorText {
        text: cow(t).into_owned().into(),
        channel: Channel::Web,
    };
    assert_eq!(
        e.step_vec(&mut s, text("hi"), now, &NoDesk),
        Err(EngineError::NotStarted)
    );
    let mut c = Chat::new(&e, desk(&[]));
    c.start();
    assert_eq!(
        c.send(Event::Start {
            conversation: cow("again"),
            channel: Channel::Web,
            page_url: None,
            contact_owner: None,
            said: None,
        }),
        Err(EngineError::AlreadyStarted)
    );
    let long = "é".repeat(4097);
    assert_eq!(
        c.send(Event::VisitorText {
            text: cow(&long),
            channel: Channel::Web
        }),
        Err(EngineError::TextTooLong {
            chars: 4097,
            max: 4096
        })
    );
    // Exactly at the limit (in characters, not bytes) is fine.
    c.say(&"é".repeat(4096));
    assert_eq!(
        c.send(Event::AgentMessage {
            agent: cow("ana"),
            text: cow("hi")
        }),
        Err(EngineError::NoAgent)
    );
    assert_eq!(
        c.send(Event::AgentJoined { agent: cow("ana") }),
        Err(EngineError::NotWaitingForAgent)
    );
    assert_eq!(
        c.send(Event::Reassigned { to: cow("ana") }),
        Err(EngineError::NoAgent)
    );
    c.say("Book a demo");
    c.say("11-200");
    assert_eq!(
        c.send(Event::VisitorChoice {
            index: 0,
            channel: Channel::Web
        }),
        Err(EngineError::NothingToChoose)
    );
}

// ---- live chat ----

fn online_chat<'e>(e: &'e playbook::engine::Engine, agents: &[(&str, Presence)]) -> Chat<'e> {
    let mut c = Chat::new(e, desk(agents));
    c.start();
    c.say("Talk to sales");
    c
}

/// Applies a desk action, then the matching engine event, as a driver does.
/// What the server's desk does when the engine enters Unassigned: the chat waits for Sales.
fn queue_for_sales(c: &mut Chat<'_>) {
    c.desk
        .enqueue(
            "conv-1",
            &playbook::model::Route {
                to: playbook::model::RouteTarget::Team("Sales".into()),
                availability: playbook::model::Availability::Available,
                assign: None,
            },
            None,
        )
        .unwrap();
}

fn pick_up(c: &mut Chat<'_>, agent: &str) -> Result<Vec<String>, String> {
    c.desk
        .assign_self("conv-1", agent)
        .map_err(|e| e.to_string())?;
    c.send(Event::AgentJoined {
        agent: agent.to_owned().into(),
    })
    .map_err(|e| e.to_string())
}

#[test]
fn livechat_no_agent_online_says_its_offline_line_and_goes_offline_at_once() {
    let e = engine(DEMO);
    let mut c = Chat::new(
        &e,
        desk(&[("ana", Presence::Away), ("bob", Presence::Offline)]),
    );
    c.start();
    // The visitor asked for a person: they hear that nobody can come, then the flow goes on.
    assert_eq!(
        c.say("Talk to sales"),
        [
            "[web] Ava: Sorry, we're all busy.",
            "[web] Ava? What's your work email?"
        ]
    );
    assert!(c.desk.unassigned().is_empty());
}

#[test]
fn livechat_picked_up_then_closed() {
    let e = engine(DEMO);
    let mut c = Chat::new(
        &e,
        desk(&[("ana", Presence::Online), ("bob", Presence::Online)]),
    );
    c.start();
    let out = c.say("Talk to sales");
    assert_eq!(
        out,
        [
            "[web] Ava: Connecting you with our sales team...",
            "enter Unassigned (Team(\"Sales\"))",
            "set timer Wait at 1700000120000"
        ]
    );
    queue_for_sales(&mut c);
    assert_eq!(c.desk.take_notifications().len(), 2);
    c.at(10_000).say("hello?");
    c.at(60_000);
    assert_eq!(
        pick_up(&mut c, "ana").unwrap(),
        ["cancel timer Wait", "[web] *: ana joined the conversation"]
    );
    // Two agents racing: exactly one wins.
    assert!(
        pick_up(&mut c, "bob")
            .unwrap_err()
            .contains("already picked up")
    );
    c.send(Event::VisitorText {
        text: cow("I need a quote"),
        channel: Channel::Web,
    })
    .unwrap();
    c.desk.visitor_message("conv-1").unwrap();
    c.send(Event::AgentMessage {
        agent: cow("ana"),
        text: cow("Sure, how many seats?"),
    })
    .unwrap();
    assert!(matches!(
        c.send(Event::AgentMessage {
            agent: cow("bob"),
            text: cow("hi")
        }),
        Err(EngineError::WrongAgent { .. })
    ));
    // The stale wait timer does nothing now.
    let stale = playbook::engine::Timer {
        kind: TimerKind::Wait,
        at: Instant(1_700_000_120_000),
    };
    assert_eq!(c.fire(stale).unwrap(), Vec::<String>::new());
    c.desk.close("conv-1", "ana").unwrap();
    let out = c.send(Event::AgentClosed { agent: cow("ana") }).unwrap();
    assert_eq!(
        out,
        [
            "[web] *: ana closed the conversation",
            "[web] Ava: Have a great day, from Ava!",
            "end None"
        ]
    );
    // Pick-up after close: refused by the desk and by the engine.
    assert!(c.desk.assign_self("conv-1", "bob").is_err());
    assert_eq!(
        c.send(Event::AgentJoined { agent: cow("bob") }),
        Err(EngineError::Ended)
    );
    assert_eq!(c.desk.closed(), ["conv-1"]);
    snapshot("engine_livechat_closed", &c.log());
}

#[test]
fn livechat_picked_up_reassigned_closed() {
    let e = engine(DEMO);
    let mut c = online_chat(
        &e,
        &[
            ("ana", Presence::Online),
            ("bob", Presence::Online),
            ("cy", Presence::Offline),
        ],
    );
    c.at(1_000);
    c.send(Event::AgentJoined { agent: cow("ana") }).unwrap();
    assert_eq!(
        c.send(Event::Reassigned { to: cow("cy") }),
        Err(EngineError::AgentOffline("cy".into()))
    );
    assert_eq!(
        c.send(Event::Reassigned { to: cow("ana") }),
        Err(EngineError::SameAgent("ana".into()))
    );
    assert_eq!(
        c.send(Event::Reassigned { to: cow("bob") }).unwrap(),
        ["[web] *: bob joined the conversation"]
    );
    assert_eq!(c.say("hi bob"), ["relay to bob from [web]: hi bob"]);
    assert!(matches!(
        c.send(Event::AgentClosed { agent: cow("ana") }),
        Err(EngineError::WrongAgent { .. })
    ));
    let out = c.send(Event::AgentClosed { agent: cow("bob") }).unwrap();
    // The agent closed: the bot's closing line is the bot's, not the agent's.
    assert_eq!(out[1], "[web] Ava: Have a great day, from Ava!");
    assert_eq!(c.session.agent(), Some("bob"));
}

#[test]
fn livechat_not_picked_up_in_time() {
    let e = engine(DEMO);
    let mut c = online_chat(&e, &[("ana", Presence::Online)]);
    assert_eq!(
        c.say("anyone?"),
        ["relay to Unassigned from [web]: anyone?"]
    );
    let t = c.timer(TimerKind::Wait);
    let out = c.fire(t).unwrap();
    assert_eq!(
        out,
        [
            "leave Unassigned",
            "[web] Ava: Sorry, we're all busy.",
            "[web] Ava? What's your work email?"
        ]
    );
    assert_eq!(
        pick_up(&mut c, "ana").unwrap_err(),
        "no conversation `conv-1` on the desk"
    );
    assert_eq!(
        c.send(Event::AgentJoined { agent: cow("ana") }),
        Err(EngineError::NotWaitingForAgent)
    );
    c.say("ann@example.com");
    let RecordData::Lead(l) = &c.ledger.records()[0].record.data else {
        panic!()
    };
    assert_eq!(l.source, "Chatbot");
    snapshot("engine_livechat_timeout", &c.log());
}

#[test]
fn livechat_pickup_racing_the_timer_has_one_outcome_in_either_order() {
    let e = engine(DEMO);
    // Pick-up delivered first, at the deadline: refused; the timer then moves on.
    let mut a = online_chat(&e, &[("ana", Presence::Online)]);
    let t = a.timer(TimerKind::Wait);
    a.now = t.at;
    assert_eq!(
        a.send(Event::AgentJoined { agent: cow("ana") }),
        Err(EngineError::PickupTooLate { deadline: t.at })
    );
    let out_a = a.fire(t).unwrap();
    // Timer delivered first: the pick-up then finds nothing waiting.
    let mut b = online_chat(&e, &[("ana", Presence::Online)]);
    let out_b = b.fire(t).unwrap();
    assert_eq!(
        b.send(Event::AgentJoined { agent: cow("ana") }),
        Err(EngineError::NotWaitingForAgent)
    );
    assert_eq!(out_a, out_b);
    assert_eq!(a.session, b.session);
    // One millisecond earlier, the agent wins, and the timer is stale afterwards.
    let mut c = online_chat(&e, &[("ana", Presence::Online)]);
    c.now = Instant(t.at.0 - 1);
    c.send(Event::AgentJoined { agent: cow("ana") }).unwrap();
    assert_eq!(c.fire(t).unwrap(), Vec::<String>::new());
}

#[test]
fn livechat_handoff_makes_records_live_chat_and_owned_by_the_agent() {
    let e = engine(
        r#"{"playbook": {"name": "h", "start": "lc"}, "cards": [
        {"kind": "livechat", "id": "lc", "online": "Wait", "wait": "1m", "offline": "Busy",
         "route": {"to": {"agents": ["ana"]}, "availability": "anyone"}, "on_closed": "cap", "on_offline": "cap"},
        {"kind": "capture", "id": "cap", "record": {"type": "deal", "title": "Chat deal", "value": "1200",
         "organization": "Acme", "owner": "agent"}, "then": {"end": "qualified"}}]}"#,
    );
    // availability anyone: queued even though ana is away.
    let mut c = Chat::new(&e, desk(&[("ana", Presence::Away)]));
    assert_eq!(c.start()[1], "enter Unassigned (Agents([\"ana\"]))");
    c.send(Event::AgentJoined { agent: cow("ana") }).unwrap();
    c.send(Event::AgentClosed { agent: cow("ana") }).unwrap();
    let r = &c.ledger.records()[0].record;
    assert_eq!(r.owner.as_deref(), Some("ana"));
    let RecordData::Deal(d) = &r.data else {
        panic!()
    };
    assert_eq!(
        (
            d.source.as_str(),
            d.status.as_str(),
            d.value.as_ref().map(|v| v.as_str())
        ),
        ("Live chat", "Open", Some("1200"))
    );
}

// ---- capture ----

#[test]
fn replaying_a_step_never_yields_a_second_record() {
    let e = engine(DEMO);
    let mut c = Chat::new(&e, desk(&[]));
    c.start();
    c.say("Book a demo");
    c.say("200+");
    // The driver saved the session here, ran the step, then crashed before saving again.
    let saved = serde_json::to_string(&c.session).unwrap();
    let saved_transcript = c.transcript.clone();
    c.say("bob@example.com");
    assert_eq!(c.ledger.len(), 2);
    c.session = serde_json::from_str(&saved).unwrap();
    c.transcript = saved_transcript;
    let out = c.say("bob@example.com");
    assert!(out.iter().filter(|l| l.starts_with("capture")).count() == 2);
    assert_eq!(c.ledger.len(), 2, "same keys: deduplicated");
    // The pool moved once, not twice.
    assert_eq!(
        playbook::engine::DeskView::pool_owner(&c.desk, "SDRs"),
        Some("tia")
    );
}

#[test]
fn a_capture_card_in_a_loop_captures_once() {
    let e = engine(
        r#"{"playbook": {"name": "l", "start": "q"}, "cards": [
        {"kind": "question", "id": "q", "text": "Again?", "answers": [{"label": "Yes", "to": "cap"}, {"label": "No", "to": "end"}]},
        {"kind": "capture", "id": "cap", "record": {"type": "lead", "title": "T", "organization": "Acme", "owner": {"user": "max"}}, "then": {"goto": "q"}},
        {"kind": "end", "id": "end"}]}"#,
    );
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    c.say("yes");
    assert_eq!(c.say("yes"), ["[web] Bot? Again? [Yes | No]"]);
    assert_eq!(c.ledger.len(), 1);
    assert_eq!(c.ledger.records()[0].record.owner.as_deref(), Some("max"));
}

const IDLE_CAPTURE: &str = r#"{"playbook": {"name": "ic", "start": "email",
   "limits": {"idle_capture": "10m"}}, "cards": [
  {"kind": "ask", "id": "email", "text": "Email?", "expect": "email", "save": "work", "then": "size"},
  {"kind": "question", "id": "size", "text": "Size?", "save": "size", "answers": [{"label": "Big", "to": "lead"}]},
  {"kind": "capture", "id": "lead", "record": {"type": "lead", "title": "L", "person": {"email": "{work}"}}, "then": {"goto": "call"}},
  {"kind": "capture", "id": "call", "record": {"type": "activity", "activity": "call", "subject": "Call", "link": "lead"},
   "then": {"end": "qualified"}}]}"#;

#[test]
fn idle_capture_takes_an_unfinished_conversation_once() {
    let e = engine(IDLE_CAPTURE);
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    // No contact details yet: the idle timer passes without a record.
    let t = c.timer(TimerKind::IdleCapture);
    assert_eq!(c.fire(t).unwrap(), Vec::<String>::new());
    assert!(c.ledger.is_empty());
    c.at(700_000).say("ann@example.com");
    let t = c.timer(TimerKind::IdleCapture);
    assert_eq!(t.at, Instant(1_700_000_000_000 + 700_000 + 600_000));
    let out = c.fire(t).unwrap();
    assert_eq!(
        out,
        [
            "capture conv-1/#idle owner=None: lead \"Unfinished conversation\" email=Some(\"ann@example.com\") source=Chatbot status=New"
        ]
    );
    assert_eq!(c.ledger.records()[0].record.messages, 3);
    assert_eq!(c.ledger.records()[0].transcript.len(), 3);
    // Once: the visitor comes back and goes idle again: nothing more.
    c.say("Big");
    assert!(c.session.timers().all(|t| t.kind != TimerKind::IdleCapture));
    assert_eq!(c.session.status(), Status::Ended(Outcome::Qualified));
    // The flow's own lead still comes, superseding the idle one (one person, one lead);
    // the activity links to it.
    assert_eq!(c.ledger.len(), 2);
    let lead = &c.ledger.records()[0].record;
    assert_eq!(lead.key, "conv-1/lead");
    assert_eq!(lead.supersedes.as_deref(), Some("conv-1/#idle"));
    let RecordData::Activity(a) = &c.ledger.records()[1].record.data else {
        panic!()
    };
    assert_eq!(a.link.as_deref(), Some("conv-1/lead"));
}

const IDLE_AT_CONSENT: &str = r#"{"playbook": {"name": "ic", "start": "email",
   "limits": {"idle_capture": "10m"}}, "cards": [
  {"kind": "ask", "id": "email", "text": "Email?", "expect": "email", "save": "email", "then": "ok"},
  {"kind": "consent", "id": "ok", "mode": "explicit", "notice": "May we store it?", "agree": "Yes",
   "then": "size", "on_decline": "size"},
  {"kind": "question", "id": "size", "text": "Size?", "save": "size", "answers": [{"label": "Big", "to": "end"}]},
  {"kind": "end", "id": "end"}]}"#;

#[test]
fn idle_capture_honours_explicit_consent() {
    let e = engine(IDLE_AT_CONSENT);
    // Gave an email, left at the consent question without agreeing: no lead.
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    c.say("ann@example.com");
    let t = c.timer(TimerKind::IdleCapture);
    assert_eq!(c.fire(t).unwrap(), Vec::<String>::new());
    assert!(c.ledger.is_empty());
    // Declined, went on, then left: no lead either.
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    c.say("ann@example.com");
    c.say("No, thanks");
    let t = c.timer(TimerKind::IdleCapture);
    assert_eq!(c.fire(t).unwrap(), Vec::<String>::new());
    assert!(c.ledger.is_empty());
    // Agreed, then left: the unfinished conversation is captured.
    let mut c = Chat::new(&e, Desk::new());
    c.start();
    c.say("ann@example.com");
    c.say("Yes");
    let t = c.timer(TimerKind::IdleCapture);
    assert_eq!(c.fire(t).unwrap().len(), 1);
    assert_eq!(c.ledger.len(), 1);
}

#[test]
fn effects_serialize_for_json_drivers_and_sessions_stay_small() {
    let e = engine(DEMO);
    let mut s = Session::new();
    let out = e
        .step_vec(
            &mut s,
            serde_json::from_str(
                r#"{"event":"start","conversation":"conv-12345","channel":"web"}"#,
            )
            .unwrap(),
            Instant(0),
            &NoDesk,
        )
        .unwrap();
    let json: Vec<String> = out
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(json[1], r#"{"effect":"entered","card":"welcome"}"#);
    assert_eq!(
        json[2],
        r#"{"effect":"ask","from":{"role":"bot","name":"Ava"},"text":"What brings you here?","buttons":["Book a demo","Talk to sales","Just browsing"],"channel":"web","retry":false}"#
    );
    for input in ["Book a demo", "11-200"] {
        let out = e
            .step_vec(
                &mut s,
                Event::VisitorText {
                    text: cow(input),
                    channel: Channel::Web,
                },
                Instant(1),
                &NoDesk,
            )
            .unwrap();
        if input == "Book a demo" {
            let entered = out
                .iter()
                .find(|e| matches!(e, Effect::Entered { .. }))
                .expect("entered `size`");
            assert_eq!(
                serde_json::to_string(entered).unwrap(),
                r#"{"effect":"entered","card":"size","via":{"from":"welcome","link":{"answer":0}}}"#
            );
        }
    }
    // Parked at the email question with one variable.
    let inline = std::mem::size_of::<Session>();
    let json = serde_json::to_string(&s).unwrap();
    assert!(inline <= 72, "{inline}");
    assert!(json.len() < 200, "{json}");
    let back: Session = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    let _ = Effect::LeaveUnassigned;
}

#[test]
fn the_chats_notices_speak_the_playbooks_language() {
    let german = DEMO.replacen(
        r#""name": "Demo","#,
        r#""name": "Demo", "language": "de","#,
        1,
    );
    assert_ne!(german, DEMO);
    let e = engine(&german);
    let mut c = Chat::new(
        &e,
        desk(&[("ana", Presence::Online), ("bob", Presence::Online)]),
    );
    c.start();
    c.say("Talk to sales");
    queue_for_sales(&mut c);
    assert_eq!(
        pick_up(&mut c, "ana").unwrap(),
        [
            "cancel timer Wait",
            "[web] *: ana ist dem Gespräch beigetreten"
        ]
    );
    assert_eq!(
        c.send(Event::ChannelSwitched {
            channel: Channel::WhatsApp,
            said: None,
        })
        .unwrap(),
        ["[whatsapp] *: Das Gespräch geht auf WhatsApp weiter"]
    );
    assert_eq!(
        c.send(Event::AgentClosed { agent: cow("ana") }).unwrap()[0],
        "[whatsapp] *: ana hat das Gespräch beendet"
    );
}
