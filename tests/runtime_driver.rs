//! The tokio driver in virtual time: tokio's clock is paused and advanced by hand.

mod runtime_common;

use std::time::Duration;

use playbook::engine::Effect;
use playbook::engine::{Channel, Phase};
use playbook::runtime::driver::{Clock, Driver};
use playbook::runtime::{Command, Hub, StartOptions};
use runtime_common::{T0, desk, engine};

fn start() -> Command {
    Command::Start {
        playbook: None,
        channel: Channel::Web,
        page_url: None,
        contact_owner: None,
        token: None,
        visitor: Default::default(),
        said: None,
    }
}

fn choose(index: usize) -> Command {
    Command::VisitorChoice {
        index,
        channel: Channel::Web,
    }
}

fn said<'a>(e: &'a Effect<'_>) -> Option<&'a str> {
    match e {
        Effect::Say { text, .. } | Effect::Ask { text, .. } => Some(text),
        _ => None,
    }
}

async fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Effect<'static>>) -> Vec<String> {
    // Let the driver task run what is due.
    tokio::task::yield_now().await;
    let mut v = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Some(t) = said(&e) {
            v.push(t.to_owned());
        }
    }
    v
}

fn driver(agents: &[&str]) -> Driver {
    Driver::spawn(
        Hub::new(engine("demo.playbook"), desk(agents)),
        Clock::starting_at(T0),
    )
}

#[tokio::test(start_paused = true)]
async fn wait_then_pickup_before_the_deadline() {
    let d = driver(&["ana"]);
    let mut rx = d.subscribe("c1").await.unwrap();
    d.apply("c1", start()).await.unwrap();
    d.apply("c1", choose(1)).await.unwrap();
    assert_eq!(
        drain(&mut rx).await.last().map(String::as_str),
        Some("Connecting you with our sales team...")
    );
    tokio::time::advance(Duration::from_secs(119)).await;
    let out = d
        .apply(
            "c1",
            Command::Pickup {
                agent: "ana".into(),
            },
        )
        .await
        .unwrap();
    assert!(
        out.of("c1")
            .any(|e| said(e) == Some("ana joined the conversation"))
    );
    // The wait deadline passes: nothing happens, the timer was cancelled.
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(drain(&mut rx).await, ["ana joined the conversation"]);
    let phase = d
        .call(|hub, _, _| hub.session("c1").map(|s| s.phase()))
        .await
        .unwrap();
    assert_eq!(phase, Some(Phase::Live));
}

#[tokio::test(start_paused = true)]
async fn wait_then_offline_when_nobody_picks_up() {
    let d = driver(&["ana"]);
    let mut all = d.subscribe_all();
    let mut rx = d.subscribe("c1").await.unwrap();
    d.apply("c1", start()).await.unwrap();
    d.apply("c1", choose(1)).await.unwrap();
    drain(&mut rx).await;
    tokio::time::advance(Duration::from_millis(119_999)).await;
    assert!(drain(&mut rx).await.is_empty(), "one ms early: nothing");
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        drain(&mut rx).await,
        [
            "Sorry, we're all busy right now. Leave your email and we'll get back to you.",
            "What's your name?"
        ]
    );
    // The broadcast saw the fired timer's outputs too, at the exact virtual deadline.
    let mut seen_leave = false;
    while let Ok(o) = all.try_recv() {
        seen_leave |= o.of("c1").any(|e| matches!(e, Effect::LeaveUnassigned));
    }
    assert!(seen_leave);
    let late = d
        .apply(
            "c1",
            Command::Pickup {
                agent: "ana".into(),
            },
        )
        .await;
    assert!(late.is_err(), "a pick-up after the timeout is refused");
    let now = d.call(|hub, now, _| (hub.now(), now)).await.unwrap();
    assert_eq!(now.1, T0.after_ms(120_000));
}

#[tokio::test(start_paused = true)]
async fn an_answer_cancels_the_idle_nudge() {
    let d = driver(&[]);
    let mut rx = d.subscribe("c1").await.unwrap();
    d.apply("c1", start()).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    d.apply("c1", choose(0)).await.unwrap();
    drain(&mut rx).await;
    // Past the welcome card's 10-minute nudge: it was cancelled by the answer.
    tokio::time::advance(Duration::from_secs(15 * 60)).await;
    assert!(drain(&mut rx).await.is_empty());
    // Without an answer the nudge comes exactly once.
    let mut rx2 = d.subscribe("c2").await.unwrap();
    d.apply("c2", start()).await.unwrap();
    drain(&mut rx2).await;
    tokio::time::advance(Duration::from_secs(10 * 60)).await;
    assert_eq!(
        drain(&mut rx2).await,
        ["Still there? Pick an option whenever you're ready."]
    );
    tokio::time::advance(Duration::from_secs(30 * 60)).await;
    assert!(drain(&mut rx2).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_hundred_thousand_parked_conversations_cost_one_sleep() {
    let d = driver(&[]);
    let n = 100_000;
    d.call(move |hub, now, _| {
        for i in 0..n {
            hub.start(&format!("c{i}"), StartOptions::default(), now)
                .expect("start");
        }
    })
    .await
    .unwrap();
    let s = d.stats().await.unwrap();
    assert_eq!(s.conversations, n);
    // Each waits at `welcome`: a 10-minute nudge and a 1-day idle capture.
    assert_eq!(s.queued_timers, 2 * n);
    assert_eq!(s.armed_sleeps, 1, "one tokio timer for the whole hub");
    let resets = s.sleep_resets;
    // All nudges share one deadline: one wake-up fires them all, then the sleep moves on once.
    tokio::time::advance(Duration::from_secs(10 * 60)).await;
    tokio::task::yield_now().await;
    let s = d.stats().await.unwrap();
    assert_eq!(s.queued_timers, n, "only the idle captures remain");
    assert_eq!(s.armed_sleeps, 1);
    assert_eq!(s.sleep_resets, resets + 1);
}
