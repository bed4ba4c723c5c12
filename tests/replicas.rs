//! Several `playbook serve` replicas on one PostgreSQL database, as separate processes: a
//! client spreads every conversation over the three replicas, one replica is SIGKILLed in the
//! middle and restarted on the same port, and nothing acknowledged is lost; records reach the
//! webhook under one key each; a live-chat wait times out exactly once; twenty agents racing
//! for one chat from three replicas get exactly one pick-up; a pool hands out owners in turn
//! whichever replica makes the record.
//!
//! Needs `PLAYBOOK_TEST_DATABASE_URL` (e.g. `postgres://root@127.0.0.1:5432/test`); without it
//! the tests print one line and pass. Each cluster gets a schema of its own, dropped when
//! its test passes (kept, and named on stderr, when it fails, with the replicas' log tails).

mod server_common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server_common::{Crm, Hit, fake_crm, fresh_schema, texts};

/// Replicas per cluster.
const N: usize = 3;
/// The live-chat wait of `wait.playbook`, in seconds.
const WAIT_S: u64 = 4;
/// A token for the records API (any agent's token reads it).
const A_TOKEN: &str = "agent-a-token-0123456789";

/// Tests of this file run one at a time: each runs three servers and PostgreSQL on a small
/// machine, and the timing-based parts (a wait of a few seconds) must not starve.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The database URL, or `None` (one line printed for the whole run) when it is not set.
fn database_url() -> Option<String> {
    static SKIPPED: std::sync::Once = std::sync::Once::new();
    match std::env::var("PLAYBOOK_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            SKIPPED.call_once(|| {
                println!("replicas test skipped: PLAYBOOK_TEST_DATABASE_URL is not set");
            });
            None
        }
    }
}

/// A plain connection to the test database (fails the test when it cannot connect).
async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PLAYBOOK_TEST_DATABASE_URL: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

fn race_token(i: usize) -> String {
    format!("race-agent-token-{i:02}-0123456789")
}

/// Agents a, b, c (team Sales, online), twenty racers r00..r19 (team Race, online), pool RR
/// = [a, b, c], the webhook at `hook` with short retries (and a short timeout: its lease,
/// 4 timeouts + 10 s, is how long records claimed by a killed replica wait).
fn write_config(dir: &Path, hook: &str) {
    let mut t = format!(
        "admin_token = \"admin-token-0123456789\"\n\
         [limits]\nturns_per_minute = 1000\nconversations_per_minute = 0\n\
         [webhook]\nurl = \"{hook}\"\nretry_min_ms = 50\nretry_max_ms = 200\ntimeout_ms = 500\n"
    );
    for (name, token) in [
        ("a", A_TOKEN),
        ("b", "agent-b-token-0123456789"),
        ("c", "agent-c-token-0123456789"),
    ] {
        t.push_str(&format!(
            "[[agents]]\nname = \"{name}\"\ntoken = \"{token}\"\nteams = [\"Sales\"]\npresence = \"online\"\n"
        ));
    }
    for i in 0..20 {
        t.push_str(&format!(
            "[[agents]]\nname = \"r{i:02}\"\ntoken = \"{}\"\nteams = [\"Race\"]\npresence = \"online\"\n",
            race_token(i)
        ));
    }
    t.push_str("[[pools]]\nname = \"RR\"\nmembers = [\"a\", \"b\", \"c\"]\n");
    std::fs::write(dir.join("playbook.toml"), t).unwrap();
}

/// `chat`: email (a lead owned through pool RR), then two free-text questions, then the end.
/// `wait`: a live chat routed to Sales (online, never picking up) with a wait of `WAIT_S`.
/// `race`: a live chat routed to team Race that waits ten minutes in Unassigned.
fn write_playbooks(dir: &Path) -> PathBuf {
    let p = dir.join("playbooks");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("chat.playbook"),
        r#"playbook "Chat" {
  bot "Cleo"
  start email
}

ask email "Your email?" expect email save email -> lead

capture lead lead {
  title "Lead {email}"
  person email "{email}"
  owner pool "RR"
} -> topic

ask topic "What is it about?" expect text save topic -> more

ask more "Anything else?" expect text save more -> thanks

message thanks "Thanks!" end qualified
"#,
    )
    .unwrap();
    std::fs::write(
        p.join("wait.playbook"),
        format!(
            r#"playbook "Wait" {{
  bot "Walt"
  start sales
}}

livechat sales {{
  online "Connecting you..."
  wait {WAIT_S}s
  offline "Nobody is free right now."
  route team "Sales"
  on closed -> bye
  on offline -> email
}}

ask email "Leave your email and we'll call you back." expect email save email -> bye

message bye "Bye!" end
"#
        ),
    )
    .unwrap();
    std::fs::write(
        p.join("race.playbook"),
        r#"playbook "Race" {
  bot "Rae"
  start desk
}

livechat desk {
  online "Finding someone..."
  wait 10m
  offline "Nobody came."
  route team "Race"
  on closed -> bye
  on offline -> bye
}

message bye "Bye!" end
"#,
    )
    .unwrap();
    p
}

/// A `playbook serve` process, SIGKILLed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn log_path(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("replica{i}.log"))
}

/// The last `n` lines of a replica's log.
fn log_tail(dir: &Path, i: usize, n: usize) -> String {
    let text = strip_ansi(&std::fs::read_to_string(log_path(dir, i)).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Starts replica `i` on `port` and waits for its `listening on` line. Blocking.
fn spawn_replica(dir: &Path, url: &str, schema: &str, i: usize, port: u16) -> Proc {
    try_spawn_replica(dir, url, schema, i, port).unwrap_or_else(|e| panic!("{e}"))
}

/// [`spawn_replica`] (`port` 0: any free one), or why the replica did not start (its log's
/// tail).
fn try_spawn_replica(
    dir: &Path,
    url: &str,
    schema: &str,
    i: usize,
    port: u16,
) -> Result<Proc, String> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log_path(dir, i))
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_playbook"))
        .arg("serve")
        .arg("--playbooks")
        .arg(dir.join("playbooks"))
        .arg("--data")
        .arg(dir.join(format!("data{i}")))
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--config")
        .arg(dir.join("playbook.toml"))
        .arg("--database")
        .arg(url)
        .arg("--db-schema")
        .arg(schema)
        .env_remove("PLAYBOOK_DATABASE_URL")
        // Warnings, and the driver's "lost a race to another replica" (debug).
        .env("RUST_LOG", "warn,playbook::runtime::driver=debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    // Port 0: the replica picks one (no window in which another process takes it).
    let started = match port {
        0 => line.trim().starts_with("listening on http://127.0.0.1:"),
        _ => line.trim() == format!("listening on http://127.0.0.1:{port}"),
    };
    if !started {
        let _ = child.kill();
        let status = child.wait();
        return Err(format!(
            "replica {i} did not start (first line {line:?}, exit {status:?}); its log:\n{}",
            log_tail(dir, i, 40)
        ));
    }
    Ok(Proc(child))
}

/// `text` without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What each replica logged (warnings, errors, and the driver's lost races): how many, and the distinct messages (the
/// text after the level, without the timestamp), at most `n` of them.
fn log_summary(dir: &Path, n: usize) -> String {
    let mut out = String::new();
    for i in 0..N {
        let text = strip_ansi(&std::fs::read_to_string(log_path(dir, i)).unwrap_or_default());
        let mut total = 0;
        let mut distinct: BTreeMap<String, usize> = BTreeMap::new();
        for l in text.lines() {
            let Some(at) = [" WARN ", " ERROR ", " DEBUG "]
                .iter()
                .find_map(|level| l.find(level))
            else {
                continue;
            };
            total += 1;
            // Keys and ids vary: keep the message up to its first field.
            let msg = &l[at..];
            let msg = msg.split(" key=").next().unwrap_or(msg);
            let msg = msg.split(" conversation=").next().unwrap_or(msg);
            *distinct.entry(msg.trim().to_owned()).or_default() += 1;
        }
        out.push_str(&format!(
            "replica {i}: {total} lines logged (warnings, errors, lost races)\n"
        ));
        for (m, k) in distinct.iter().take(n) {
            out.push_str(&format!("  {k} x {m}\n"));
        }
    }
    out
}

/// What the client counted.
#[derive(Default)]
struct Stats {
    /// HTTP requests sent (each attempt counts).
    requests: AtomicUsize,
    /// Attempts that could not connect (the replica was down) and went to another replica.
    down: AtomicUsize,
    /// Attempts whose outcome is unknown (the connection broke after the request was sent).
    unknown: AtomicUsize,
    /// `503 storage` answers, sent again.
    busy: AtomicUsize,
    /// Visitor lines answered with a 2xx.
    acked: AtomicUsize,
    /// Visitor lines with an unknown outcome that were found stored.
    found: AtomicUsize,
}

/// One attempt's result.
enum Sent {
    Answer(u16, Value),
    /// Not connected: the request never reached a server.
    Refused,
    /// Sent, but no answer: it may or may not have been applied.
    Unknown(String),
}

/// The client side of a cluster: the replicas' addresses (stable across restarts).
struct Net {
    bases: Vec<String>,
    http: reqwest::Client,
    stats: Stats,
}

impl Net {
    fn base(&self, i: usize) -> &str {
        &self.bases[i % self.bases.len()]
    }

    async fn once(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Sent {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}{path}", self.base(i));
        let mut req = self.http.request(method.parse().unwrap(), &url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Sent::Refused,
            Err(e) => return Sent::Unknown(format!("{url}: {e:?}")),
        };
        let status = resp.status().as_u16();
        match resp.text().await {
            Ok(text) => Sent::Answer(
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ),
            Err(e) => Sent::Unknown(format!("{url}: {e:?}")),
        }
    }

    /// A request that may be repeated (a read, or a start whose lost twin is harmless):
    /// from replica `i` on, the next replica after a refused connection, a broken one or a
    /// `503`. Returns the replica that answered, the status and the body.
    async fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (usize, u16, Value) {
        let mut last = String::new();
        for k in 0..40 {
            let at = i + k;
            match self.once(at, method, path, token, body).await {
                Sent::Answer(503, v) => {
                    self.stats.busy.fetch_add(1, Ordering::Relaxed);
                    last = format!("503 {v}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Sent::Answer(st, v) => return (at % N, st, v),
                Sent::Refused => {
                    self.stats.down.fetch_add(1, Ordering::Relaxed);
                    last = format!("{} refused the connection", self.base(at));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Sent::Unknown(e) => {
                    self.stats.unknown.fetch_add(1, Ordering::Relaxed);
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!("{method} {path}: no replica answered; last: {last}");
    }

    /// Starts a conversation on `playbook` from replica `i` on.
    async fn start(&self, i: usize, playbook: &str) -> (Conv, Value) {
        let (_, st, v) = self
            .call(
                i,
                "POST",
                "/api/conversations",
                None,
                Some(&json!({"playbook": playbook})),
            )
            .await;
        assert_eq!(st, 201, "start {playbook}: {v}");
        let conv = Conv {
            id: v["conversation"].as_str().unwrap().to_owned(),
            token: v["token"].as_str().unwrap().to_owned(),
            stored: Vec::new(),
            acked: Vec::new(),
        };
        (conv, v)
    }

    /// The visitor's whole history of `c`, read from replica `i` (or the next ones).
    async fn history(&self, i: usize, c: &Conv) -> Value {
        let path = format!("/api/conversations/{}/messages", c.id);
        let (_, st, v) = self.call(i, "GET", &path, Some(&c.token), None).await;
        assert_eq!(st, 200, "history of {}: {v}", c.id);
        v
    }

    /// Sends the visitor line `text` of `c` to replica `i`. A visitor message is not
    /// idempotent (sent twice it would answer the next question too), so: a refused
    /// connection or a `503` (not applied, by the API's contract) goes to the next replica;
    /// a broken connection (unknown outcome: the replica died with the request) is looked
    /// up in the history, read from another replica once the dead one's transaction has
    /// settled, and sent again only if it is not there. Lines are unique per conversation.
    /// Returns the answer when there was one (a 2xx).
    async fn say(&self, i: usize, c: &mut Conv, text: &str) -> Option<Value> {
        let path = format!("/api/conversations/{}/messages", c.id);
        let body = json!({"text": text});
        let mut last = String::new();
        for k in 0..40 {
            let at = i + k;
            match self
                .once(at, "POST", &path, Some(&c.token), Some(&body))
                .await
            {
                Sent::Answer(st, v) if (200..300).contains(&st) => {
                    self.stats.acked.fetch_add(1, Ordering::Relaxed);
                    c.stored.push(text.to_owned());
                    c.acked.push(text.to_owned());
                    return Some(v);
                }
                Sent::Answer(503, v) => {
                    self.stats.busy.fetch_add(1, Ordering::Relaxed);
                    last = format!("503 {v}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Sent::Answer(st, v) => panic!(
                    "{} {path} {text:?}: {st} {v} (stored so far: {:?})",
                    self.base(at),
                    c.stored
                ),
                Sent::Refused => {
                    self.stats.down.fetch_add(1, Ordering::Relaxed);
                    last = format!("{} refused the connection", self.base(at));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Sent::Unknown(e) => {
                    self.stats.unknown.fetch_add(1, Ordering::Relaxed);
                    // The killed process's PostgreSQL session has committed or rolled back
                    // by now (its socket closed when it died).
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let h = self.history(at + 1, c).await;
                    if visitor_lines(&h).iter().any(|l| l == text) {
                        self.stats.found.fetch_add(1, Ordering::Relaxed);
                        c.stored.push(text.to_owned());
                        return None;
                    }
                    last = e;
                }
            }
        }
        panic!("{path} {text:?}: no replica took it; last: {last}");
    }
}

/// A conversation as the client knows it.
#[derive(Debug, Clone)]
struct Conv {
    id: String,
    token: String,
    /// Visitor lines known to be stored, in order: answered with a 2xx, or sent with an
    /// unknown outcome and then found in the history.
    stored: Vec<String>,
    /// Visitor lines answered with a 2xx.
    acked: Vec<String>,
}

fn visitor_lines(h: &Value) -> Vec<String> {
    h["messages"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["from"]["role"] == "visitor")
                .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn count(h: &Value, text: &str) -> usize {
    texts(&h["messages"]).iter().filter(|t| *t == text).count()
}

/// Three replicas on one schema, the webhook receiver, and the client.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    schema: String,
    ports: Vec<u16>,
    procs: Vec<Option<Proc>>,
    net: Arc<Net>,
    crm: Arc<Mutex<Crm>>,
}

impl Cluster {
    /// The first replica alone, then the others together (starting all three at once on a
    /// new schema is `three_replicas_starting_together_on_a_new_schema_all_come_up`).
    async fn start(url: String, crm_delay: Duration, fail_first: usize) -> Cluster {
        // Fails the test here, with the reason, when the database cannot be reached.
        pg(&url).await;
        let dir = tempfile::tempdir().unwrap();
        let crm_state = Arc::new(Mutex::new(Crm {
            fail_first,
            ..Default::default()
        }));
        let hook = fake_crm(crm_state.clone(), crm_delay).await;
        write_playbooks(dir.path());
        write_config(dir.path(), &hook);
        let schema = fresh_schema();
        let ports: Vec<u16> = (0..N).map(|_| free_port()).collect();
        let mut c = Cluster {
            dir,
            url,
            schema,
            net: Arc::new(Net {
                bases: ports
                    .iter()
                    .map(|p| format!("http://127.0.0.1:{p}"))
                    .collect(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap(),
                stats: Stats::default(),
            }),
            ports,
            procs: (0..N).map(|_| None).collect(),
            crm: crm_state,
        };
        c.up(&[0]).await;
        c.up(&(1..N).collect::<Vec<_>>()).await;
        c
    }

    /// Starts these replicas at once (on their own ports) and waits until each listens.
    async fn up(&mut self, which: &[usize]) {
        let mut handles = Vec::new();
        for &i in which {
            let (dir, url, schema, port) = (
                self.dir.path().to_owned(),
                self.url.clone(),
                self.schema.clone(),
                self.ports[i],
            );
            handles.push((
                i,
                tokio::task::spawn_blocking(move || spawn_replica(&dir, &url, &schema, i, port)),
            ));
        }
        for (i, h) in handles {
            match h.await {
                Ok(p) => self.procs[i] = Some(p),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
    }

    /// SIGKILL, as a crash would, and wait until it is gone.
    async fn kill(&mut self, i: usize) {
        let p = self.procs[i].take().expect("running");
        tokio::task::spawn_blocking(move || drop(p)).await.unwrap();
    }

    /// Stops every replica and drops the schema (only when the test got this far).
    async fn finish(mut self) {
        for i in 0..N {
            if self.procs[i].is_some() {
                self.kill(i).await;
            }
        }
        let db = pg(&self.url).await;
        db.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .await
            .unwrap();
        self.schema.clear();
    }

    /// Every record in the store, oldest first (paged).
    async fn records(&self, i: usize) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (_, st, v) = self
                .net
                .call(
                    i,
                    "GET",
                    &format!("/api/records?after={after}&limit=1000"),
                    Some(A_TOKEN),
                    None,
                )
                .await;
            assert_eq!(st, 200, "records: {v}");
            let page = v.as_array().unwrap().clone();
            if page.is_empty() {
                return all;
            }
            after = page.last().unwrap()["id"].as_i64().unwrap();
            all.extend(page);
        }
    }

    fn stats_line(&self, what: &str) {
        let s = &self.net.stats;
        eprintln!(
            "{what}: {} requests; {} retried because a replica was down (connection refused), \
             {} with an unknown outcome (connection broken by the kill), {} answered 503 and sent again; \
             {} visitor lines acknowledged, {} more found stored after an unknown outcome",
            s.requests.load(Ordering::Relaxed),
            s.down.load(Ordering::Relaxed),
            s.unknown.load(Ordering::Relaxed),
            s.busy.load(Ordering::Relaxed),
            s.acked.load(Ordering::Relaxed),
            s.found.load(Ordering::Relaxed),
        );
    }
}

impl Drop for Cluster {
    /// A failing test shows what the replicas logged and keeps its schema for a look.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..N {
                eprintln!(
                    "--- replica {i} log (tail) ---\n{}",
                    log_tail(self.dir.path(), i, 30)
                );
            }
            if !self.schema.is_empty() {
                eprintln!("schema kept for inspection: {}", self.schema);
            }
        }
    }
}

/// Runs `f` on every item, `par` at a time; returns the conversations in the items' order.
async fn round<T, F, Fut>(items: Vec<T>, par: usize, f: F) -> Vec<Conv>
where
    F: Fn(usize, T) -> Fut,
    Fut: std::future::Future<Output = Conv> + Send + 'static,
{
    let sem = Arc::new(tokio::sync::Semaphore::new(par));
    let mut set = tokio::task::JoinSet::new();
    for (k, c) in items.into_iter().enumerate() {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let fut = f(k, c);
        set.spawn(async move {
            let c = fut.await;
            drop(permit);
            (k, c)
        });
    }
    let mut out: Vec<(usize, Conv)> = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(x) => out.push(x),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out.sort_by_key(|(k, _)| *k);
    out.into_iter().map(|(_, c)| c).collect()
}

/// Sends line `text(k)` of every conversation, conversation `k` to replica `(k + shift) % 3`.
fn say_all(
    net: &Arc<Net>,
    convs: Vec<Conv>,
    shift: usize,
    text: fn(usize) -> String,
) -> tokio::task::JoinHandle<Vec<Conv>> {
    let net = net.clone();
    tokio::spawn(async move {
        round(convs, 8, |k, mut c| {
            let net = net.clone();
            async move {
                net.say(k + shift, &mut c, &text(k)).await;
                c
            }
        })
        .await
    })
}

/// A spawned task's result; its panic, if it panicked.
async fn joined<T>(h: tokio::task::JoinHandle<T>) -> T {
    match h.await {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Polls until `done` holds, every 100 ms, for at most `limit`.
async fn until<F, Fut>(limit: Duration, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// The main story. 60 `chat` conversations, each request of one going to the next replica:
/// start on replica k % 3, the email (which makes a lead owned through pool RR) on the next,
/// then two more lines on the others. Nine `wait` conversations are started just before
/// the email round; replica 1 is SIGKILLed when half the emails are acknowledged, stays
/// down through the next round and the waits' expiry, and is restarted on the same port.
///
/// Asserted:
/// - every conversation's visitor lines, read from each of the three replicas, are exactly
///   the lines known stored, in order: every acknowledged (2xx) line is there, and none twice
///   (a line whose request died with the replica is sent again only if it was not stored);
/// - the store holds exactly one record per conversation, under key `<id>/lead`, each
///   eventually delivered (`delivered_at` set), and the owners are a, b, c 20 times each (the
///   pool's cursor moved once per record, whichever replica made it);
/// - the webhook got every key with a 2xx at least once, every request of one key carried the
///   same body (the stored one); a key may arrive more than once only for a request whose
///   outcome the server could not store: the sum over keys of (requests received - attempts
///   the store counts) is at most the number of kills (the outbox sends one request at a time,
///   so a killed replica leaves at most one unrecorded);
/// - each `wait` conversation says "Nobody is free right now." and asks for the email exactly
///   once, although the timers expired while a replica was dead, and still once after it came
///   back; then it goes on to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_lose_nothing_when_one_is_killed() {
    let Some(url) = database_url() else { return };
    let _serial = SERIAL.lock().await;
    let t0 = Instant::now();
    // The CRM refuses its first 5 requests, then takes 30 ms per record.
    let mut cl = Cluster::start(url, Duration::from_millis(30), 5).await;
    let net = cl.net.clone();
    const CONVS: usize = 60;
    const KILLED: usize = 1;

    // Round 0: the starts, conversation k on replica k % 3.
    let convs = round(vec![(); CONVS], 8, |k, ()| {
        let net = net.clone();
        async move {
            let (c, v) = net.start(k, "chat").await;
            assert_eq!(texts(&v["messages"]), ["Your email?"], "{v}");
            c
        }
    })
    .await;

    // The waiters: three on each replica, with a 4 s wait for an agent who never comes.
    let waits_started = Instant::now();
    let mut waiters = Vec::new();
    for k in 0..9 {
        let (c, v) = net.start(k, "wait").await;
        assert_eq!(v["status"], "queued", "{v}");
        waiters.push(c);
    }

    // Round 1: the emails (each makes a record); replica 1 dies halfway.
    let acked_before = net.stats.acked.load(Ordering::Relaxed);
    let emails = say_all(&net, convs, 1, |k| format!("v{k}@example.com"));
    until(Duration::from_secs(20), "half the emails", || {
        let n = net.stats.acked.load(Ordering::Relaxed);
        let over = emails.is_finished();
        async move { over || n >= acked_before + CONVS / 2 }
    })
    .await;
    cl.kill(KILLED).await;
    let killed_at = Instant::now();
    let hits_at_kill = cl.crm.lock().unwrap().hits.len();
    assert!(
        killed_at - waits_started < Duration::from_secs(WAIT_S - 1),
        "the kill must land while the waits run (it came {:?} after them)",
        killed_at - waits_started
    );
    let convs = joined(emails).await;

    // Round 2, with replica 1 down.
    let convs = joined(say_all(&net, convs, 2, |k| format!("topic of {k}"))).await;

    // The waits expire while replica 1 is dead: each fires once, on a live replica.
    for (k, w) in waiters.iter().enumerate() {
        let net = net.clone();
        until(
            Duration::from_secs(WAIT_S + 10),
            "a wait to time out",
            || {
                let net = net.clone();
                let w = w.clone();
                async move { net.history(k, &w).await["status"] == "waiting" }
            },
        )
        .await;
    }
    for (k, w) in waiters.iter().enumerate() {
        let h = net.history(k + 2, w).await;
        assert_eq!(count(&h, "Nobody is free right now."), 1, "{h}");
        assert_eq!(
            count(&h, "Leave your email and we'll call you back."),
            1,
            "{h}"
        );
    }
    let down_for = killed_at.elapsed();

    // Back on the same port; round 3 goes through all three again.
    cl.up(&[KILLED]).await;
    let convs = joined(say_all(&net, convs, 3, |k| format!("more from {k}"))).await;
    // The restarted replica (and the others) claim timers every 500 ms: nothing fires again.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for (k, w) in waiters.iter_mut().enumerate() {
        let h = net.history(KILLED, w).await;
        assert_eq!(h["status"], "waiting", "{h}");
        assert_eq!(count(&h, "Nobody is free right now."), 1, "{h}");
        assert_eq!(
            count(&h, "Leave your email and we'll call you back."),
            1,
            "{h}"
        );
        let v = net.say(k + 1, w, &format!("w{k}@example.com")).await;
        if let Some(v) = v {
            assert_eq!(v["status"], "ended", "{v}");
        }
    }

    // No acknowledged line lost, none twice, the same history from every replica.
    for c in convs.iter().chain(&waiters) {
        let mut seen = Vec::new();
        for i in 0..N {
            let path = format!("/api/conversations/{}/messages", c.id);
            let (at, st, h) = net.call(i, "GET", &path, Some(&c.token), None).await;
            assert_eq!((at, st), (i, 200), "{}: {h}", c.id);
            assert_eq!(h["status"], "ended", "{}: {h}", c.id);
            let lines = visitor_lines(&h);
            assert_eq!(lines, c.stored, "{} from replica {i}: {h}", c.id);
            for a in &c.acked {
                assert!(lines.contains(a), "{}: acknowledged {a:?} lost", c.id);
            }
            seen.push(h["messages"].clone());
        }
        assert!(
            seen.windows(2).all(|w| w[0] == w[1]),
            "{}: replicas disagree: {seen:?}",
            c.id
        );
    }
    for c in &convs {
        assert_eq!(c.stored.len(), 3, "{c:?}");
    }

    // Every record stored once and delivered.
    let expected: BTreeSet<String> = convs.iter().map(|c| format!("{}/lead", c.id)).collect();
    let delivery_wait = Instant::now();
    let mut records = Vec::new();
    // Records a killed replica had claimed wait for its lease: 4 webhook timeouts + 10 s.
    for _ in 0..450 {
        records = cl.records(2).await;
        if records.len() >= expected.len() && records.iter().all(|r| !r["delivered_at"].is_null()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery_wait = delivery_wait.elapsed();
    let keys: Vec<String> = records
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_owned())
        .collect();
    let unique: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(unique.len(), keys.len(), "a key stored twice: {keys:?}");
    assert_eq!(unique, expected, "one record per conversation");
    for r in &records {
        assert!(!r["delivered_at"].is_null(), "not delivered: {r}");
    }
    let mut owners: BTreeMap<String, usize> = BTreeMap::new();
    for r in &records {
        let o = r["body"]["record"]["owner"].as_str().unwrap_or("none");
        *owners.entry(o.to_owned()).or_default() += 1;
    }
    assert_eq!(
        owners,
        BTreeMap::from([("a".into(), 20), ("b".into(), 20), ("c".into(), 20)]),
        "pool RR takes a, b, c in turn, one turn per record"
    );

    let kills = 1;
    let crm_hits = cl.crm.lock().unwrap().hits.clone();
    let mut by_key: BTreeMap<&str, Vec<&Hit>> = BTreeMap::new();
    for h in &crm_hits {
        by_key.entry(h.key.as_str()).or_default().push(h);
    }
    let delivered: BTreeSet<String> = by_key
        .iter()
        .filter(|(_, hs)| hs.iter().any(|h| h.status == 200))
        .map(|(k, _)| (*k).to_owned())
        .collect();
    assert_eq!(delivered, expected, "every record reached the CRM");
    assert_eq!(
        by_key.len(),
        expected.len(),
        "no other key was sent: {:?}",
        by_key.keys()
    );
    let mut unrecorded = 0;
    let mut redelivered = 0;
    for r in &records {
        let key = r["key"].as_str().unwrap();
        let hs = &by_key[key];
        for h in hs {
            assert_eq!(h.body, r["body"], "{key}: a request with another body");
        }
        let attempts = r["attempts"].as_u64().unwrap() as usize;
        unrecorded += hs.len().saturating_sub(attempts);
        if hs.iter().filter(|h| h.status == 200).count() > 1 {
            redelivered += 1;
        }
    }
    assert!(
        unrecorded <= kills,
        "{unrecorded} webhook requests the store does not count (at most {kills}: one per kill)"
    );
    let hits = crm_hits.len();

    eprintln!(
        "replicas: {CONVS} conversations x 3 lines + 9 waits; replica {KILLED} down {:.1} s \
         ({hits_at_kill} webhook requests before the kill); {} records, {hits} webhook \
         requests, {redelivered} keys acknowledged twice by the CRM, {unrecorded} requests \
         not counted by the store; waited {:.1} s for delivery at the end; total {:.1} s",
        down_for.as_secs_f64(),
        records.len(),
        delivery_wait.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    cl.stats_line("replicas client");
    eprint!("{}", log_summary(cl.dir.path(), 8));
    cl.finish().await;
}

/// Twenty agents online (presence set through the three replicas), one chat waiting in
/// Unassigned, twenty assign requests at once spread over the replicas: exactly one `200`,
/// nineteen `409`; every replica then shows the chat with the winner (the conversation's
/// detail) and the visitor sees an agent. Five rounds. (Whether the agents' folders list the
/// chat is checked apart, in `every_replica_lists_a_waiting_chat_in_the_agents_folders`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_agents_race_for_one_chat_across_replicas() {
    let Some(url) = database_url() else { return };
    let _serial = SERIAL.lock().await;
    let t0 = Instant::now();
    let cl = Cluster::start(url, Duration::ZERO, 0).await;
    let net = cl.net.clone();

    for i in 0..20 {
        let (_, st, v) = net
            .call(
                i,
                "PUT",
                "/api/agent/presence",
                Some(&race_token(i)),
                Some(&json!({"presence": "online"})),
            )
            .await;
        assert_eq!(st, 200, "{v}");
    }
    for i in 0..N {
        let (_, st, agents) = net
            .call(i, "GET", "/api/agent/agents", Some(A_TOKEN), None)
            .await;
        assert_eq!(st, 200, "{agents}");
        let online = agents
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["name"].as_str().unwrap().starts_with('r') && a["presence"] == "online")
            .count();
        assert_eq!(online, 20, "replica {i}: {agents}");
    }

    for round in 0..5 {
        let (conv, v) = net.start(round, "race").await;
        assert_eq!(v["status"], "queued", "{v}");
        let id = conv.id.clone();
        let barrier = Arc::new(tokio::sync::Barrier::new(20));
        let mut tasks = Vec::new();
        for i in 0..20 {
            let (net, barrier, id) = (net.clone(), barrier.clone(), id.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let path = format!("/api/agent/conversations/{id}/assign");
                match net
                    .once(i + round, "POST", &path, Some(&race_token(i)), None)
                    .await
                {
                    Sent::Answer(st, v) => (i, st, v),
                    Sent::Refused => panic!("replica {} refused", (i + round) % N),
                    Sent::Unknown(e) => panic!("assign {i}: {e}"),
                }
            }));
        }
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(joined(t).await);
        }
        let winners: Vec<&(usize, u16, Value)> =
            answers.iter().filter(|(_, st, _)| *st == 200).collect();
        let conflicts = answers.iter().filter(|(_, st, _)| *st == 409).count();
        assert!(
            winners.len() == 1 && conflicts == 19,
            "round {round}: want one 200 and nineteen 409, got {:?}",
            answers
                .iter()
                .map(|(i, st, v)| format!("r{i:02}@{}: {st} {v}", (i + round) % N))
                .collect::<Vec<_>>()
        );
        let winner = format!("r{:02}", winners[0].0);
        for i in 0..N {
            let (_, st, d) = net
                .call(
                    i,
                    "GET",
                    &format!("/api/agent/conversations/{id}"),
                    Some(A_TOKEN),
                    None,
                )
                .await;
            assert_eq!(st, 200, "{d}");
            assert_eq!(d["state"], "assigned", "replica {i}: {d}");
            assert_eq!(d["agent"], winner.as_str(), "replica {i}: {d}");
        }
        let h = net.history(round + 1, &conv).await;
        assert_eq!(h["status"], "with_agent", "{h}");
    }
    eprintln!(
        "race: 5 rounds of 20 assigns in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    cl.stats_line("race client");
    cl.finish().await;
}

/// The agents' folders on PostgreSQL: a chat waiting for team Race is in every replica's
/// Unassigned folder (also the replica that started it); once r00 picks it up it is in r00's
/// Mine folder on every replica and no longer in Unassigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_lists_a_waiting_chat_in_the_agents_folders() {
    let Some(url) = database_url() else { return };
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(url, Duration::ZERO, 0).await;
    let net = cl.net.clone();
    let (conv, v) = net.start(0, "race").await;
    assert_eq!(v["status"], "queued", "{v}");
    let id = conv.id.as_str();
    let listed = |v: &Value| v.as_array().unwrap().iter().any(|c| c["id"] == id);
    let r00 = race_token(0);
    for i in 0..N {
        let (_, st, list) = net
            .call(
                i,
                "GET",
                "/api/agent/conversations?folder=unassigned",
                Some(&r00),
                None,
            )
            .await;
        assert_eq!(st, 200, "{list}");
        assert!(
            listed(&list),
            "replica {i} does not list {id} in Unassigned: {list}"
        );
    }
    let path = format!("/api/agent/conversations/{id}/assign");
    let (_, st, v) = net.call(1, "POST", &path, Some(&r00), None).await;
    assert_eq!(st, 200, "{v}");
    for i in 0..N {
        let (_, _, mine) = net
            .call(
                i,
                "GET",
                "/api/agent/conversations?folder=mine",
                Some(&r00),
                None,
            )
            .await;
        assert!(listed(&mine), "replica {i}: {id} not in r00's Mine: {mine}");
        let (_, _, un) = net
            .call(
                i,
                "GET",
                "/api/agent/conversations?folder=unassigned",
                Some(&r00),
                None,
            )
            .await;
        assert!(!listed(&un), "replica {i}: {id} still in Unassigned: {un}");
    }
    cl.finish().await;
}

/// Pool RR = [a, b, c]: four conversations, one after another, started on replicas 0, 1, 2,
/// 0, each giving its email on the replica that started it (which makes a lead owned
/// through the pool) → owners a, b, c, a in creation order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_takes_turns_across_replicas() {
    let Some(url) = database_url() else { return };
    let _serial = SERIAL.lock().await;
    let cl = Cluster::start(url, Duration::ZERO, 0).await;
    let net = cl.net.clone();
    let mut ids = Vec::new();
    for k in 0..4 {
        let (mut c, _) = net.start(k, "chat").await;
        let v = net
            .say(k, &mut c, &format!("rr{k}@example.com"))
            .await
            .expect("answered");
        assert_eq!(texts(&v["messages"])[1..], ["What is it about?"], "{v}");
        ids.push(c.id);
    }
    let records = cl.records(1).await;
    let got: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r["conversation"].as_str().unwrap().to_owned(),
                r["body"]["record"]["owner"]
                    .as_str()
                    .unwrap_or("none")
                    .to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = ids
        .iter()
        .zip(["a", "b", "c", "a"])
        .map(|(id, o)| (id.clone(), o.to_owned()))
        .collect();
    assert_eq!(got, want, "records oldest first: (conversation, owner)");
    cl.finish().await;
}

/// Three replicas started at the same moment on a schema that does not exist yet (a first
/// deploy): all three come up. Twenty tries, each on a fresh schema (the collision below is a
/// race: on the 2-core test machine about one try in eight hit it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_starting_together_on_a_new_schema_all_come_up() {
    let Some(url) = database_url() else { return };
    let _serial = SERIAL.lock().await;
    pg(&url).await;
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        write_playbooks(dir.path());
        write_config(dir.path(), "http://127.0.0.1:9/crm");
        let schema = fresh_schema();
        let mut handles = Vec::new();
        for i in 0..N {
            let (d, u, s) = (dir.path().to_owned(), url.clone(), schema.clone());
            handles.push(tokio::task::spawn_blocking(move || {
                try_spawn_replica(&d, &u, &s, i, 0)
            }));
        }
        let mut failed = Vec::new();
        let mut procs = Vec::new();
        for h in handles {
            match h.await.unwrap() {
                Ok(p) => procs.push(p),
                Err(e) => failed.push(e),
            }
        }
        drop(procs);
        let db = pg(&url).await;
        db.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
        assert!(failed.is_empty(), "{}", failed.join("\n\n"));
    }
}
