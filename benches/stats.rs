//! Analytics (issue 14): how long a report takes over the counters of N stored conversations
//! (default 1,000,000), on SQLite and, with `PLAYBOOK_TEST_DATABASE_URL`, PostgreSQL.
//!
//! ```sh
//! cargo bench --bench stats                 # N = 1,000,000
//! cargo bench --bench stats -- 100000
//! ```
//!
//! Seeding runs the five demo paths of `demo_paths.rs` once each through a durable [`Hub`]
//! (counters on) and takes the counters each path's unit adds. N conversations, the paths
//! in turn, spread evenly over 90 days, then add those counters to the store through
//! [`Storage::commit`] in commits of 10,000 conversations (each commit's counters summed per
//! day and key, as a group commit of the server sums them). On PostgreSQL three stores take
//! the commits in turn, as three replicas would (each writes its own shard of rows). The
//! conversations themselves are not stored: a report never reads them.
//!
//! Then a report — [`Storage::stats`] and [`stats::report`] — over the last 30 days and over
//! all 90 is timed 50 times each; the median and the 95th percentile are printed.

#[path = "demo_paths.rs"]
mod demo_paths;

use std::collections::BTreeMap;
use std::time::Instant as Wall;

use playbook::engine::{Channel, Instant};
use playbook::persist::{Commit, SqliteOptions, SqliteStore, Storage};
use playbook::runtime::{Hub, StartOptions};
use playbook::server::{self, Config};
use playbook::stats;

const DEMO: &str = include_str!("../playbooks/demo.playbook");
const CONFIG: &str = include_str!("../playbook.toml.example");
const T0: u64 = 1_767_225_600_000; // 2026-01-01
const DAYS: u64 = 90;
const BATCH: u64 = 10_000;
const RUNS: usize = 50;

/// The counters one conversation of each path adds: `(key, n)`.
fn per_path(config: &Config) -> Vec<Vec<(String, i64)>> {
    demo_paths::paths()
        .into_iter()
        .map(|(name, path)| {
            let (engine, _) =
                server::playbooks::compile("demo.playbook", DEMO).expect("demo compiles");
            let mut hub = Hub::durable(config.desk());
            let pb = hub.add_named_playbook("demo", 1, engine);
            hub.begin();
            let opts = StartOptions {
                playbook: pb,
                channel: Channel::Web,
                ..StartOptions::default()
            };
            hub.start(demo_paths::ID, opts, Instant(T0))
                .expect("starts");
            path(&mut hub, T0).unwrap_or_else(|e| panic!("{name}: {e}"));
            let ch = hub.seal();
            let keys: Vec<(String, i64)> = ch
                .stats
                .rows()
                .map(|(_, _, _, k, n)| (k.to_owned(), n))
                .collect();
            assert!(!keys.is_empty(), "{name}: nothing counted");
            keys
        })
        .collect()
}

fn seed(stores: &[&dyn Storage], paths: &[Vec<(String, i64)>], n: u64) -> usize {
    let first = stats::day(Instant(T0));
    let mut commits = 0;
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let mut sum: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for c in start..end {
            let day = first + (c * DAYS / n) as i64;
            for (k, m) in &paths[(c % paths.len() as u64) as usize] {
                *sum.entry((day, k.clone())).or_default() += m;
            }
        }
        let commit = Commit {
            stats: sum
                .into_iter()
                .map(|((d, k), m)| ("demo".to_owned(), 1, d, k, m))
                .collect(),
            ..Commit::default()
        };
        stores[commits % stores.len()]
            .commit(&commit)
            .expect("commit");
        commits += 1;
        start = end;
    }
    commits
}

fn measure(label: &str, store: &dyn Storage, n: u64) {
    let (engine, _) = server::playbooks::compile("demo.playbook", DEMO).expect("demo compiles");
    let playbook = engine.program().playbook().clone();
    let last = stats::day(Instant(T0)) + DAYS as i64 - 1;
    for (range, from) in [("30 days", last - 29), ("90 days", last - 89)] {
        let mut times = Vec::with_capacity(RUNS);
        let mut started = 0;
        for _ in 0..RUNS {
            let t = Wall::now();
            let rows = store.stats("demo", None, from, last).expect("stats");
            let r = stats::report(&playbook, "demo", None, (from, last), &rows);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            started = r.started;
            std::hint::black_box(r);
        }
        times.sort_by(f64::total_cmp);
        let rows = store.stats("demo", None, from, last).expect("stats").len();
        println!(
            "{label}: N={n} report over {range}: {rows} rows, {started} started; median {:.2} ms, p95 {:.2} ms",
            times[RUNS / 2],
            times[RUNS * 95 / 100]
        );
    }
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .find_map(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let config = Config::parse(CONFIG).expect("example config");
    let paths = per_path(&config);
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, _) = SqliteStore::open(&dir.path().join("stats.sqlite"), SqliteOptions::default())
        .expect("open");
    let t = Wall::now();
    let commits = seed(&[&store], &paths, n);
    println!(
        "sqlite: seeded {n} conversations' counters in {commits} commits, {:.1} s",
        t.elapsed().as_secs_f64()
    );
    measure("sqlite", &store, n);
    if let Ok(url) = std::env::var("PLAYBOOK_TEST_DATABASE_URL") {
        let schema = format!("bench_stats_{}", std::process::id());
        let open = || {
            playbook::persist::PgStore::open(&playbook::persist::PgOptions {
                schema: Some(schema.clone()),
                ..playbook::persist::PgOptions::new(url.clone())
            })
            .expect("postgres")
        };
        let replicas = [open(), open(), open()];
        let refs: Vec<&dyn Storage> = replicas.iter().map(|s| s as &dyn Storage).collect();
        let t = Wall::now();
        let commits = seed(&refs, &paths, n);
        println!(
            "postgres: seeded {n} conversations' counters in {commits} commits over 3 replicas, {:.1} s",
            t.elapsed().as_secs_f64()
        );
        measure("postgres", &replicas[0], n);
        drop(replicas);
        // Leave nothing behind (psql is PostgreSQL's client; without it the schema stays).
        let _ = std::process::Command::new("psql")
            .env("PGOPTIONS", "-c client_min_messages=warning")
            .args([
                url.as_str(),
                "-qc",
                &format!("DROP SCHEMA {schema} CASCADE"),
            ])
            .status();
    }
}
