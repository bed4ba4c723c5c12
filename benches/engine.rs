//! One engine step of each kind on the benchmark playbook, and a session's JSON round trip.
//!
//! `cargo bench --bench engine`; the figures are in `docs/performance.md`.

use std::borrow::Cow;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use playbook::engine::{Channel, Effect, Engine, Event, Instant, NoDesk, Session};

const NOW: Instant = Instant(1_767_225_600_000);

fn engine() -> Engine {
    let text = include_str!("../playbooks/bench.playbook");
    let (playbook, _) = playbook::syntax::parse(text).expect("parses");
    Engine::new(playbook::check::check(playbook).program.expect("checks"))
}

fn start(id: &str) -> Event<'_> {
    Event::Start {
        conversation: Cow::Borrowed(id),
        channel: Channel::Web,
        page_url: None,
        contact_owner: None,
        said: None,
    }
}

fn text(t: &str) -> Event<'_> {
    Event::VisitorText {
        text: Cow::Borrowed(t),
        channel: Channel::Web,
    }
}

/// A session after the start event and these inputs.
fn after(engine: &Engine, inputs: &[&str]) -> Session {
    let mut s = Session::new();
    engine
        .step_vec(&mut s, start("conv-12345"), NOW, &NoDesk)
        .unwrap();
    for i in inputs {
        engine.step_vec(&mut s, text(i), NOW, &NoDesk).unwrap();
    }
    s
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let mut out: Vec<Effect<'_>> = Vec::with_capacity(16);
    let mut g = c.benchmark_group("step");
    g.sample_size(30);
    g.bench_function("start (greet + intent question)", |b| {
        b.iter_batched_ref(
            Session::new,
            |s| {
                out.clear();
                engine.step(s, start("conv-12345"), NOW, &NoDesk, &mut out)
            },
            BatchSize::SmallInput,
        )
    });
    let cases: [(&str, &[&str], &str); 5] = [
        ("button: Book a demo", &[], "Book a demo"),
        ("button + save: 11-200", &["Book a demo"], "11-200"),
        ("button to end: Just browsing", &[], "Just browsing"),
        (
            "invalid email (re-prompt)",
            &["Book a demo", "11-200"],
            "not-an-email",
        ),
        (
            "valid email (capture + end)",
            &["Book a demo", "11-200"],
            "ann@example.com",
        ),
    ];
    for (name, before, input) in cases {
        let ready = after(&engine, before);
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                || ready.clone(),
                |s| {
                    out.clear();
                    engine.step(s, text(input), NOW, &NoDesk, &mut out)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let parked = after(&engine, &["Book a demo", "11-200"]);
    let json = serde_json::to_vec(&parked).unwrap();
    let mut g = c.benchmark_group("session json");
    g.sample_size(30);
    g.bench_function(format!("serialize ({} bytes)", json.len()), |b| {
        let mut buf = Vec::with_capacity(256);
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, &parked).unwrap();
        })
    });
    g.bench_function("deserialize", |b| {
        b.iter(|| serde_json::from_slice::<Session>(&json).unwrap())
    });
    g.bench_function("clone (memory store get)", |b| b.iter(|| parked.clone()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
