//! Server start time and resident memory over a data folder of N **ended** conversations
//! (issue 9: start loads only what is open, so both should barely depend on N).
//!
//! ```sh
//! cargo bench --bench server_start -- 1000 1000000
//! SERVER_START_N=1000000 SERVER_START_RUNS=5 cargo bench --bench server_start
//! ```
//!
//! For each N, a data folder `$SERVER_START_DIR/n<N>` (default `/tmp/playbook-start`) is
//! seeded once and kept between runs (a `seeded` file marks it done; delete the folder to
//! seed again). Seeding runs real conversations of `playbooks/demo.playbook` through a
//! durable [`Hub`] — five paths: a qualified demo request with a re-prompted email (a lead),
//! a sales chat an agent picks up and closes, a sales chat nobody picks up that falls back
//! to the offline form (a lead), a company too small, a visitor just browsing — turns each
//! unit's changes into rows with the runtime's own [`durable::commit`], and writes copies of
//! those rows under new ids (`c_` + 20 hex digits, tokens of 32, as the server makes them)
//! through [`SqliteStore::commit`], 10,000 conversations per commit. Each copy is stored as
//! revision 1 (a real conversation reaches the same rows through several revisions).
//!
//! Then each measurement runs in a **fresh process** (this binary re-runs itself), so the
//! seeding's memory is not counted: `VmRSS` from `/proc/self/status` before anything, after
//! [`server::open`] (open the file, compile the stored playbook versions, read the open set),
//! and after [`server::start`] (the driver, the playbook folder re-read), plus `VmHWM`.
//! With `SERVER_START_COLD=1` the database file is dropped from the page cache before each
//! run (`dd iflag=nocache count=0`), so the reads hit the disk.
//!
//! Not a criterion bench (`harness = false`): a start is one long event per process, and the
//! memory figure needs a fresh process per sample.

use std::path::{Path, PathBuf};
use std::process::Command as Proc;
use std::time::Instant as Wall;

use playbook::engine::{Channel, Instant};
use playbook::persist::{
    Commit, ConvWrite, NewRecord, SqliteOptions, SqliteStore, Storage, VersionRow,
};
use playbook::runtime::driver::Clock;
use playbook::runtime::{Hub, StartOptions, durable};
use playbook::server::{self, Config, ServeOptions};

#[path = "demo_paths.rs"]
mod demo_paths;

const DEMO: &str = include_str!("../playbooks/demo.playbook");
const CONFIG: &str = include_str!("../playbook.toml.example");
/// The id and token the templates run under; copies replace them.
const TID: &str = demo_paths::ID;
const TTOKEN: &str = "deadbeefdeadbeefdeadbeefdeadbeef";
const BATCH: usize = 10_000;
const T0: u64 = 1_767_225_600_000;

fn main() {
    if let Ok(dir) = std::env::var("SERVER_START_CHILD") {
        child(Path::new(&dir));
        return;
    }
    let mut ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    if ns.is_empty() {
        ns.push(
            std::env::var("SERVER_START_N")
                .ok()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or(1000),
        );
    }
    let runs: usize = std::env::var("SERVER_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let base = PathBuf::from(
        std::env::var("SERVER_START_DIR").unwrap_or_else(|_| "/tmp/playbook-start".into()),
    );
    let cold = std::env::var("SERVER_START_COLD").is_ok_and(|v| v == "1");
    let mut rows = Vec::new();
    for &n in &ns {
        let dir = base.join(format!("n{n}"));
        ensure_seeded(&dir, n);
        let mut samples = Vec::new();
        for _ in 0..runs {
            if cold {
                evict(&dir.join("data/playbook.sqlite"));
            }
            let out = Proc::new(std::env::current_exe().expect("own path"))
                .env("SERVER_START_CHILD", &dir)
                .output()
                .expect("re-run");
            assert!(
                out.status.success(),
                "child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let s = Sample::parse(&String::from_utf8_lossy(&out.stdout));
            eprintln!("n={n}: {s:?}");
            samples.push(s);
        }
        rows.push((n, db_mb(&dir), samples));
    }
    println!(
        "\nserver start over N ended conversations ({runs} fresh processes each{}; load average {})\n",
        if cold {
            ", database evicted from the page cache before each"
        } else {
            ", warm page cache"
        },
        loadavg()
    );
    println!(
        "| N ended | database | open ms (median; min–max) | open + start ms (median) | RSS before → after open → after start | VmHWM | conversations in memory |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (n, mb, samples) in &rows {
        let med = |f: fn(&Sample) -> f64| {
            let mut v: Vec<f64> = samples.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            (v[v.len() / 2], v[0], v[v.len() - 1])
        };
        let (open, lo, hi) = med(|s| s.open_ms);
        let (total, _, _) = med(|s| s.open_ms + s.start_ms);
        let (b, _, _) = med(|s| s.rss_before_kb);
        let (a, _, _) = med(|s| s.rss_open_kb);
        let (st, _, _) = med(|s| s.rss_start_kb);
        let (hwm, _, _) = med(|s| s.hwm_kb);
        println!(
            "| {n} | {mb:.0} MB | {open:.1} ({lo:.1}–{hi:.1}) | {total:.1} | {:.1} → {:.1} → {:.1} MB | {:.1} MB | {} |",
            b / 1024.0,
            a / 1024.0,
            st / 1024.0,
            hwm / 1024.0,
            samples[0].in_memory
        );
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn db_mb(dir: &Path) -> f64 {
    ["playbook.sqlite", "playbook.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join("data").join(f)).ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / 1e6
}

fn evict(file: &Path) {
    for f in [file.to_owned(), file.with_extension("sqlite-wal")] {
        if f.exists() {
            let _ = Proc::new("dd")
                .arg(format!("if={}", f.display()))
                .args(["iflag=nocache", "count=0", "status=none"])
                .status();
        }
    }
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn vm() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

#[derive(Debug)]
struct Sample {
    open_ms: f64,
    start_ms: f64,
    rss_before_kb: f64,
    rss_open_kb: f64,
    rss_start_kb: f64,
    hwm_kb: f64,
    in_memory: usize,
}

impl Sample {
    fn parse(s: &str) -> Sample {
        let get = |k: &str| -> f64 {
            s.split_whitespace()
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {s:?}"))
        };
        Sample {
            open_ms: get("open_ms"),
            start_ms: get("start_ms"),
            rss_before_kb: get("rss_before_kb"),
            rss_open_kb: get("rss_open_kb"),
            rss_start_kb: get("rss_start_kb"),
            hwm_kb: get("hwm_kb"),
            in_memory: get("in_memory") as usize,
        }
    }
}

/// One measurement, in a fresh process: what `playbook serve` does before it listens.
fn child(dir: &Path) {
    let (rss_before, _) = vm();
    let opts = ServeOptions {
        playbooks: dir.join("playbooks"),
        data: dir.join("data"),
        addr: "127.0.0.1:0".into(),
        config: Some(dir.join("playbook.toml")),
        database: None,
    };
    let t = Wall::now();
    let opening = server::open(&opts).expect("opens");
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let (rss_open, _) = vm();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (state, in_memory, start_ms) = rt.block_on(async {
        let t = Wall::now();
        let (state, _report) = server::start(opening, Clock::wall()).await.expect("starts");
        let start_ms = t.elapsed().as_secs_f64() * 1e3;
        let stats = state.driver().stats().await.expect("stats");
        (state, stats.conversations, start_ms)
    });
    let (rss_start, hwm) = vm();
    println!(
        "open_ms={open_ms:.3} start_ms={start_ms:.3} rss_before_kb={rss_before} rss_open_kb={rss_open} rss_start_kb={rss_start} hwm_kb={hwm} in_memory={in_memory}"
    );
    drop(state);
}

/// One template conversation's rows: its conversation and its records.
struct Template {
    name: &'static str,
    conv: ConvWrite,
    records: Vec<NewRecord>,
}

/// Runs the five conversations through a durable hub, each as one unit of work, and keeps
/// the rows the runtime would commit for them.
fn templates(config: &Config) -> Vec<Template> {
    let paths = demo_paths::paths();
    let mut out = Vec::new();
    for (name, path) in paths {
        let (engine, _) = server::playbooks::compile("demo.playbook", DEMO).expect("demo compiles");
        let mut hub = Hub::durable(config.desk());
        let pb = hub.add_named_playbook("demo", 1, engine);
        hub.begin();
        hub.start(
            TID,
            StartOptions {
                playbook: pb,
                channel: Channel::Web,
                page_url: Some("https://acme.example/pricing".into()),
                contact_owner: None,
                token: Some(TTOKEN.into()),
                visitor: Default::default(),
                said: None,
            },
            Instant(T0),
        )
        .expect("starts");
        path(&mut hub, T0).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut c = durable::commit(&hub.seal()).expect("encodes");
        hub.keep();
        assert_eq!(c.convs.len(), 1, "{name}");
        let conv = c.convs.pop().expect("one");
        assert!(conv.row.ended, "{name}: not ended");
        assert!(
            conv.row.next_due.is_none(),
            "{name}: a timer left at {:?}",
            conv.row.next_due
        );
        assert!(conv.row.state.contains(TID), "{name}: id not in state");
        out.push(Template {
            name,
            conv,
            records: c.records,
        });
    }
    out
}

/// splitmix64: ids and tokens that look random (B-tree inserts land all over, as in a server).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn ensure_seeded(dir: &Path, n: usize) {
    let marker = dir.join("seeded");
    if std::fs::read_to_string(&marker).is_ok_and(|s| s.trim() == n.to_string()) {
        eprintln!("n={n}: using the seeded folder {}", dir.display());
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("playbooks")).expect("mkdir");
    std::fs::write(dir.join("playbooks/demo.playbook"), DEMO).expect("write playbook");
    std::fs::write(dir.join("playbook.toml"), CONFIG).expect("write config");
    let config = Config::load(&dir.join("playbook.toml")).expect("config");
    let tpl = templates(&config);
    // Weights out of 20: 7 qualified, 3 closed by an agent, 3 offline form, 3 too small,
    // 4 browsing.
    let pick = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4];
    let lines: usize = pick.iter().map(|&i| tpl[i].conv.flush.len()).sum();
    let records: usize = pick.iter().map(|&i| tpl[i].records.len()).sum();
    for t in &tpl {
        eprintln!(
            "template {:50} {:2} lines, {} record(s), state {} bytes, desk {:?}",
            t.name,
            t.conv.flush.len(),
            t.records.len(),
            t.conv.row.state.len(),
            t.conv.row.desk
        );
    }
    eprintln!(
        "mix: {:.1} lines and {:.2} records per conversation",
        lines as f64 / 20.0,
        records as f64 / 20.0
    );
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    let (store, _) = SqliteStore::open(&dir.join("data/playbook.sqlite"), SqliteOptions::default())
        .expect("store");
    let t = Wall::now();
    let mut commit = Commit {
        versions: vec![VersionRow {
            name: "demo".into(),
            version: 1,
            file: "demo.playbook".into(),
            source: DEMO.into(),
        }],
        ..Commit::default()
    };
    for i in 0..n {
        let tp = &tpl[pick[mix(i as u64 ^ 0x5eed) as usize % pick.len()]];
        let (a, b, c) = (mix(i as u64), mix(!(i as u64)), mix(i as u64 ^ 0xabcd_ef01));
        let id = format!("c_{:016x}{:04x}", a, b & 0xffff);
        let token = format!("{b:016x}{c:016x}");
        let swap = |s: &str| s.replace(TID, &id).replace(TTOKEN, &token);
        let mut conv = tp.conv.clone();
        conv.row.id.clone_from(&id);
        conv.row.ord = i as i64 + 1;
        // Spread over about a year.
        conv.row.updated_at += (i as i64) * 30_000;
        conv.row.state = swap(&conv.row.state);
        for (_, l) in &mut conv.flush {
            if l.contains(TID) {
                *l = swap(l);
            }
        }
        commit.convs.push(conv);
        for r in &tp.records {
            commit.records.push(NewRecord {
                key: r.key.replace(TID, &id),
                conversation: id.clone(),
                body: swap(&r.body),
                created_at: r.created_at,
            });
        }
        if commit.convs.len() == BATCH || i + 1 == n {
            store.commit(&commit).expect("commit");
            commit = Commit::default();
            if (i + 1) % 100_000 == 0 {
                eprintln!(
                    "  {} conversations stored, {:.0} s",
                    i + 1,
                    t.elapsed().as_secs_f64()
                );
            }
        }
    }
    drop(store);
    eprintln!(
        "n={n}: seeded in {:.1} s, {:.0} MB",
        t.elapsed().as_secs_f64(),
        db_mb(dir)
    );
    std::fs::write(&marker, n.to_string()).expect("marker");
}
