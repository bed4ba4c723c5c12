//! Parse and check throughput on a generated playbook of 10,000 cards, and `playbook check`'s
//! whole work (read, check, render every diagnostic) on broken playbooks of 2,000 to 16,000
//! cards, whose times should grow about linearly (issue 11 found them quadratic).
//!
//! `cargo bench --bench pipeline`; the figures are in `docs/performance.md`.

use criterion::{Criterion, criterion_group, criterion_main};

/// A playbook of `n` cards: questions whose answers go two and three cards ahead, asks that
/// save variables read by later messages, branches, and a live chat — a realistic mix, with
/// every card reachable and every path ending.
fn generate(n: usize) -> String {
    let mut s = String::from("playbook \"Generated\" {\n  start c0\n}\n\n");
    for i in 0..n {
        let next = |k: usize| {
            if i + k < n {
                format!("c{}", i + k)
            } else {
                "done".into()
            }
        };
        match i % 5 {
            0 => s.push_str(&format!(
                "question c{i} \"Question {i}?\" save v{i} {{\n  \"Yes\" -> {}\n  \"No\" -> {}\n}}\n\n",
                next(1),
                next(2)
            )),
            1 => s.push_str(&format!(
                "ask c{i} \"Your email?\" expect email save e{i} -> {} {{\n  reprompt \"Please check it.\"\n  give up after 3 -> done\n}}\n\n",
                next(1)
            )),
            2 => s.push_str(&format!(
                "branch c{i} {{\n  when v{} is \"Yes\" -> {}\n  else -> {}\n}}\n\n",
                i - 2,
                next(1),
                next(2)
            )),
            3 => s.push_str(&format!("message c{i} \"Noted: {{v{}}}.\" -> {}\n\n", i - 3, next(1))),
            _ => s.push_str(&format!("question c{i} \"Go on?\" {{\n  \"Yes\" -> {}\n  \"Stop\" -> done\n}}\n\n", next(1))),
        }
    }
    s.push_str("message done \"Bye!\" end\n");
    s
}

fn bench(c: &mut Criterion) {
    let text = generate(10_000);
    let (playbook, _) = playbook::syntax::parse(&text).expect("the generated playbook parses");
    let checked = playbook::check::check(playbook.clone());
    assert!(!checked.has_errors(), "{:?}", checked.diagnostics.first());

    let mut group = c.benchmark_group("10k cards");
    group.sample_size(20);
    group.bench_function("parse", |b| {
        b.iter(|| playbook::syntax::parse(&text).unwrap())
    });
    group.bench_function("check", |b| {
        b.iter(|| playbook::check::check(playbook.clone()))
    });
    group.bench_function("parse + check", |b| {
        b.iter(|| playbook::check::check(playbook::syntax::parse(&text).unwrap().0))
    });
    group.finish();
}

/// A playbook of `n` cards where much is wrong: every third card leads to a card that does not
/// exist (E011, each asking for a spelling suggestion), every tenth repeats an earlier id
/// (E010), and every card reads a variable that nothing saves (E015), several times on one line.
fn generate_broken(n: usize) -> String {
    let mut s = String::from("playbook \"Broken\" {\n  start c0\n}\n\n");
    for i in 0..n {
        let id = if i % 10 == 9 {
            format!("c{}", i - 5)
        } else {
            format!("c{i}")
        };
        let to = if i % 3 == 0 {
            format!("missing{i}")
        } else {
            format!("c{}", i + 1)
        };
        s.push_str(&format!(
            "message {id} \"Hi {{name}}, {{name}} and {{who{i}}}\" -> {to}\n"
        ));
    }
    s.push_str(&format!("message c{n} \"Bye!\" end\n"));
    s
}

/// What `playbook check FILE` does: read, check, and render every diagnostic.
fn check_and_render(name: &str, text: &str) -> usize {
    let file = playbook::source::SourceFile::new(name, text);
    let (playbook, map) = playbook::syntax::read(file.name(), file.text()).expect("it parses");
    let checked = playbook::check::check(playbook);
    checked
        .diagnostics
        .iter()
        .map(|d| d.render(&file, &map).len())
        .sum()
}

fn bench_broken(c: &mut Criterion) {
    let mut group = c.benchmark_group("check broken");
    group.sample_size(10);
    for n in [2_000, 4_000, 8_000, 16_000] {
        let text = generate_broken(n);
        group.bench_function(format!("{n} cards"), |b| {
            b.iter(|| check_and_render("broken.playbook", &text))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_broken);
criterion_main!(benches);
