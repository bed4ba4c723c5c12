//! The PostgreSQL backend, for one or several `playbook serve` replicas on one database.
//!
//! **Shared.** Other processes write the same tables at the same time, so the store says
//! [`Storage::shared`] and the driver keeps nothing between commits. What makes replicas
//! safe lives in the SQL:
//! - a conversation row is written only over the revision it was read at (`WHERE rev =
//!   excluded.rev - 1`, one statement for a whole group via `UNNEST`); a new one under an
//!   existing id violates `UNIQUE (id)`: both are [`StoreError::Conflict`] and the caller
//!   reloads and retries;
//! - a pool's round-robin cursor moves only from the value it was read at;
//! - due timers and due records are claimed with `FOR UPDATE SKIP LOCKED` and a lease (a
//!   column holding until when), so two replicas never take the same one, and one that dies
//!   lets go when the lease runs out;
//! - start orders come from a sequence, in blocks of [`ORD_BLOCK`] per replica;
//! - every commit that changes conversations sends their ids with `pg_notify` (delivered at
//!   commit, never for a rolled-back one), a wake-up for the other replicas' sockets
//!   ([`PgStore::listen`]); the lines themselves are read from the tables.
//!
//! **Migrations** are embedded and applied at open inside a transaction holding an advisory
//! lock, so replicas starting together migrate once (the others wait, then find the schema
//! current). A database whose schema version is newer is refused.
//!
//! **Blocking over async.** The [`Storage`] trait is blocking (the SQLite store is); this
//! store runs `tokio-postgres` with a `deadpool` pool on a small runtime of its own and waits
//! for each call on a plain channel, so it can be called from a blocking thread and from the
//! driver's task alike (the driver's short reads block it either way).
//!
//! Must not: parse the JSON bodies it stores, or log the database URL's password.

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    Change, ChannelSend, CodeChange, Commit, ConvRow, CrmStep, Delivery, DeskColumn, DeskRows,
    LinkCode, OpenSet, PARKED, RecordRow, SCHEMA_VERSION, Storage, StoreError, VersionRow,
    decode_tail, encode_tail,
};

/// Start orders are reserved this many at a time per replica.
pub const ORD_BLOCK: i64 = 4096;

/// The `pg_notify` channel of a schema's changes (channels are per database, and each
/// schema is a deployment of its own).
fn channel_of(schema: &str) -> String {
    let mut c = format!("playbook_{schema}");
    c.truncate(63);
    c
}

/// How to reach the database.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` (or libpq's `key=value` form).
    pub url: String,
    /// Connections in the pool (this replica's share of the server's `max_connections`).
    pub pool_size: usize,
    /// The longest one statement may run before PostgreSQL cancels it.
    pub statement_timeout: Duration,
    /// Tables in this schema (created if missing) instead of the user's default one; tests
    /// use one schema each.
    pub schema: Option<String>,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgOptions")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    /// Defaults for `url`: 16 connections, statements cancelled after 5 s.
    pub fn new(url: impl Into<String>) -> Self {
        PgOptions {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(5),
            schema: None,
        }
    }

    fn config(&self) -> Result<tokio_postgres::Config, StoreError> {
        let mut cfg: tokio_postgres::Config = self.url.parse().map_err(|_| {
            StoreError::Io(
                "the database URL cannot be read; write it as postgres://USER@HOST[:PORT]/DATABASE"
                    .into(),
            )
        })?;
        let mut options = format!(
            "-c statement_timeout={}",
            self.statement_timeout.as_millis().max(1)
        );
        if let Some(schema) = &self.schema {
            check_schema_name(schema)?;
            options.push_str(&format!(" -c search_path={schema}"));
        }
        cfg.options(&options);
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(Duration::from_secs(5));
        }
        cfg.application_name("playbook");
        Ok(cfg)
    }
}

/// Version 3's agents' loads, counted from the conversations of a version-2 database (same
/// SQL for both stores).
pub(super) const BACKFILL_LOADS: &str = "
INSERT INTO agent_load (name, open, last)
SELECT agent, COUNT(*), 0 FROM conversations
WHERE desk = 'assigned' AND agent IS NOT NULL GROUP BY agent;
";

/// Schema names go into SQL text (`CREATE SCHEMA`), so only plain identifiers are allowed.
fn check_schema_name(s: &str) -> Result<(), StoreError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Io(format!(
            "the schema name `{s}` is not a plain lower-case identifier"
        )))
    }
}

/// A tokio-postgres error as a store error: the server's message, never the connection
/// string. A unique violation or a serialization failure is a conflict (the caller retries).
fn pg_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        use tokio_postgres::error::SqlState;
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StoreError::Conflict(db.detail().unwrap_or(db.message()).to_owned());
        }
        return StoreError::Io(format!("postgres: {}", db.message()));
    }
    StoreError::Io(format!("postgres: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        e => StoreError::Io(format!("postgres pool: {e}")),
    }
}

/// The schema of version 6 (the same tables as the SQLite store's; version 5 lacked the
/// `channel_*` tables, version 3 `crm_steps`).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS playbook_versions (
    name    TEXT NOT NULL,
    version BIGINT NOT NULL,
    file    TEXT NOT NULL,
    source  TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS conversations (
    ord         BIGINT PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    playbook    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    rev         BIGINT NOT NULL,
    ended       BOOLEAN NOT NULL,
    desk        TEXT,
    agent       TEXT,
    updated_at  BIGINT NOT NULL,
    lines       BIGINT NOT NULL,
    tail        TEXT NOT NULL,
    next_due    BIGINT,
    lease_until BIGINT,
    state       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_due ON conversations (next_due) WHERE next_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversations_desk ON conversations (desk, updated_at) WHERE desk IS NOT NULL;
-- The Unassigned line: by when each chat entered it (the desk entry time in its state).
CREATE INDEX IF NOT EXISTS conversations_line ON conversations
    (COALESCE((state::jsonb -> 'desk' ->> 'since')::bigint, 0), ord) WHERE desk = 'unassigned';
CREATE TABLE IF NOT EXISTS lines (
    conv BIGINT NOT NULL,
    seq  BIGINT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (conv, seq)
);
CREATE TABLE IF NOT EXISTS agents (
    name     TEXT PRIMARY KEY,
    presence TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pools (
    name TEXT PRIMARY KEY,
    next BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_load (
    name TEXT PRIMARY KEY,
    open BIGINT NOT NULL,
    last BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    playbook TEXT NOT NULL,
    version  BIGINT NOT NULL,
    day      BIGINT NOT NULL,
    key      TEXT NOT NULL,
    n        BIGINT NOT NULL,
    shard    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (playbook, day, version, key, shard)
);
CREATE TABLE IF NOT EXISTS records (
    id              BIGSERIAL PRIMARY KEY,
    key             TEXT NOT NULL UNIQUE,
    conversation    TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS records_due ON records (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS records_conversation ON records (conversation);
CREATE TABLE IF NOT EXISTS crm_steps (
    record_key TEXT NOT NULL,
    connector  TEXT NOT NULL,
    step       TEXT NOT NULL,
    vendor_id  TEXT,
    PRIMARY KEY (record_key, connector, step)
);
CREATE TABLE IF NOT EXISTS channel_contacts (
    channel      TEXT NOT NULL,
    contact      TEXT NOT NULL,
    conversation TEXT NOT NULL,
    linked_at    BIGINT NOT NULL,
    PRIMARY KEY (channel, contact)
);
CREATE TABLE IF NOT EXISTS channel_messages (
    channel      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    conversation TEXT NOT NULL,
    PRIMARY KEY (channel, message_id)
);
CREATE TABLE IF NOT EXISTS channel_sends (
    conversation TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    status       TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    at           BIGINT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE TABLE IF NOT EXISTS channel_codes (
    code         TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    conversation TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    spent_at     BIGINT
);
CREATE INDEX IF NOT EXISTS channel_contacts_conversation ON channel_contacts (conversation);
CREATE SEQUENCE IF NOT EXISTS ord_blocks;
";

const CONV_COLUMNS: &str =
    "id, ord, playbook, version, rev, ended, desk, agent, updated_at, lines, tail, next_due, state";

const RECORD_COLUMNS: &str = "id, key, conversation, body, delivered_at, attempts, last_error,
     (next_attempt_at = 9223372036854775807) AS parked";

/// The PostgreSQL store.
pub struct PgStore {
    /// Runs the pool's connections; `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    cfg: tokio_postgres::Config,
    /// This process among the replicas (its own notifications are not echoed back).
    instance: String,
    /// The `NOTIFY` channel of this schema.
    channel: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks on its threads, which tokio forbids inside async code
        // (where the server's state is dropped): let them wind down in the background.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn conv_of(r: &tokio_postgres::Row) -> ConvRow {
    let desk: Option<String> = r.get(6);
    ConvRow {
        id: r.get(0),
        ord: r.get(1),
        playbook: r.get(2),
        version: r.get(3),
        rev: r.get(4),
        ended: r.get(5),
        desk: desk.as_deref().and_then(DeskColumn::parse),
        agent: r.get(7),
        updated_at: r.get(8),
        lines: r.get(9),
        tail: decode_tail(r.get::<_, &str>(10)),
        next_due: r.get(11),
        state: r.get(12),
    }
}

fn record_of(r: &tokio_postgres::Row) -> RecordRow {
    let body: String = r.get(3);
    RecordRow {
        id: r.get(0),
        key: r.get(1),
        conversation: r.get(2),
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        delivered_at: r.get(4),
        attempts: r.get(5),
        last_error: r.get(6),
        parked: r.get(7),
    }
}

/// The column after [`CONV_COLUMNS`] that brings a conversation's flushed lines along, so a
/// conversation is read in one round trip (`FROM conversations c`).
const FLUSHED: &str = "ARRAY(SELECT l.body FROM lines l WHERE l.conv = c.ord ORDER BY l.seq)";

/// A conversation with every line: those in `lines` (column 13), then its tail.
fn conv_with_lines(r: &tokio_postgres::Row) -> (ConvRow, Vec<String>) {
    let row = conv_of(r);
    let mut lines: Vec<String> = r.get(13);
    lines.extend(row.tail.iter().map(|(_, l)| l.clone()));
    (row, lines)
}

impl PgStore {
    /// Connects, creates the schema if asked, and migrates (once across replicas). Refuses a
    /// database of a newer schema.
    pub fn open(opts: &PgOptions) -> Result<PgStore, StoreError> {
        let cfg = opts.config()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("playbook-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(format!("cannot start the database runtime: {e}")))?;
        let mgr = Manager::from_config(
            cfg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            // Building a pool with timeouts needs the runtime's context.
            let _guard = rt.enter();
            Pool::builder(mgr)
                .max_size(opts.pool_size.max(1))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(Duration::from_secs(10)))
                .create_timeout(Some(Duration::from_secs(5)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| StoreError::Io(format!("cannot make the database pool: {e}")))?
        };
        let mut instance = [0u8; 8];
        getrandom::fill(&mut instance)
            .map_err(|e| StoreError::Io(format!("no randomness: {e}")))?;
        let mut store = PgStore {
            rt: Some(rt),
            pool,
            cfg,
            instance: instance.iter().map(|b| format!("{b:02x}")).collect(),
            channel: String::new(),
        };
        let schema = opts.schema.clone();
        let schema = store.block(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg_err)?;
            // One replica migrates; the others wait here, then find the schema current. The
            // lock comes first: two `CREATE SCHEMA IF NOT EXISTS` at once can collide.
            let target: String = match &schema {
                Some(s) => s.clone(),
                None => tx
                    .query_one("SELECT current_schema()::text", &[])
                    .await
                    .map_err(pg_err)?
                    .get::<_, Option<String>>(0)
                    .unwrap_or_default(),
            };
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('playbook:' || $1))",
                &[&target],
            )
            .await
            .map_err(pg_err)?;
            if let Some(schema) = &schema {
                // Checked to be a plain identifier.
                tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .await
                    .map_err(|e| StoreError::Io(format!("cannot create the schema: {e}")))?;
            }
            let exists: Option<String> = tx
                .query_one("SELECT to_regclass('meta')::text", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            if exists.is_some() {
                let found = tx
                    .query_opt("SELECT value FROM meta WHERE key = 'schema_version'", &[])
                    .await
                    .map_err(pg_err)?
                    .and_then(|r| r.get::<_, String>(0).parse::<i64>().ok());
                if let Some(found) = found
                    && found > SCHEMA_VERSION
                {
                    return Err(StoreError::TooNew { found });
                }
            }
            let had_stats: Option<String> = tx
                .query_one("SELECT to_regclass('stats')::text", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            let had_loads: Option<String> = tx
                .query_one("SELECT to_regclass('agent_load')::text", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            tx.batch_execute(SCHEMA).await.map_err(pg_err)?;
            if had_loads.is_none() {
                // Version 2 → 3: agents' open chats, counted once from the conversations.
                tx.batch_execute(BACKFILL_LOADS).await.map_err(pg_err)?;
            }
            if had_stats.is_none() {
                // Version 5: the conversations stored so far are counted once by a server.
                tx.execute(
                    "INSERT INTO meta (key, value)
                     SELECT $1, MAX(ord)::text FROM conversations HAVING COUNT(*) > 0
                     ON CONFLICT (key) DO NOTHING",
                    &[&super::STATS_BACKFILL],
                )
                .await
                .map_err(pg_err)?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', $1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&SCHEMA_VERSION.to_string()],
            )
            .await
            .map_err(pg_err)?;
            let schema: String = tx
                .query_one("SELECT current_schema()", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            tx.commit().await.map_err(pg_err)?;
            Ok(schema)
        })?;
        store.channel = channel_of(&schema);
        Ok(store)
    }

    /// This process's id among the replicas.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Runs `f` on the store's runtime and waits for it (from any thread, async or not).
    fn block<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let Some(rt) = &self.rt else {
            return Err(StoreError::Io("the database store is closing".into()));
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(self.pool.clone());
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| StoreError::Io("a database task failed".into()))?
    }

    /// Changes other replicas commit, as they commit them: a task on the store's runtime
    /// holds a `LISTEN` connection (reopened after a failure, with a [`Change::Resync`] each
    /// time it opens). Ends when the receiver is dropped.
    pub fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<Change> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let Some(rt) = &self.rt else {
            return rx;
        };
        let cfg = self.cfg.clone();
        let me = self.instance.clone();
        let channel = self.channel.clone();
        let (ready, listening) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let mut delay = Duration::from_millis(100);
            while !tx.is_closed() {
                match listen_once(&cfg, &channel, &me, &tx, &ready).await {
                    Ok(()) => delay = Duration::from_millis(100),
                    Err(e) => {
                        tracing::warn!(error = %e, "the database notification connection failed; reopening it");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
        // Listening before the server answers anything, so no change of another replica
        // after that is missed; a database that does not answer is not waited for long.
        if listening.recv_timeout(Duration::from_secs(5)).is_err() {
            tracing::warn!(
                "not yet listening for other replicas' changes; sockets catch up once it is"
            );
        }
        rx
    }
}

/// One `LISTEN` connection, until it fails or nobody listens.
async fn listen_once(
    cfg: &tokio_postgres::Config,
    channel: &str,
    me: &str,
    tx: &tokio::sync::mpsc::UnboundedSender<Change>,
    ready: &std::sync::mpsc::SyncSender<()>,
) -> Result<(), StoreError> {
    use futures_util::StreamExt;
    let (client, mut conn) = cfg.connect(NoTls).await.map_err(pg_err)?;
    let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    // The channel is `playbook_` and a schema name checked to be a plain identifier (or
    // PostgreSQL's own current schema).
    let sql = format!("LISTEN \"{}\"", channel.replace('"', ""));
    let listen = client.batch_execute(&sql);
    tokio::pin!(listen);
    // The connection must be polled for LISTEN itself to complete.
    loop {
        tokio::select! {
            r = &mut listen => { r.map_err(pg_err)?; break; }
            m = messages.next() => match m {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg_err(e)),
                None => return Err(StoreError::Io("the connection closed".into())),
            }
        }
    }
    let _ = ready.try_send(());
    if tx.send(Change::Resync).is_err() {
        return Ok(());
    }
    loop {
        tokio::select! {
            () = tx.closed() => return Ok(()),
            m = messages.next() => match m {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    // One's own changes were published locally already.
                    let Some(change) = parse_notice(n.payload(), me) else { continue };
                    if tx.send(change).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(pg_err(e)),
                None => return Err(StoreError::Io("the connection closed".into())),
            }
        }
    }
}

/// A payload of another instance as a change: `instance|c|id,id,…` or `instance|n|notice`.
fn parse_notice(payload: &str, me: &str) -> Option<Change> {
    let (from, rest) = payload.split_once('|')?;
    if from == me {
        return None;
    }
    match rest.split_once('|')? {
        ("c", ids) if !ids.is_empty() => Some(Change::Conversations(
            ids.split(',').map(str::to_owned).collect(),
        )),
        ("n", notice) => Some(Change::Notice(notice.to_owned())),
        _ => None,
    }
}

/// PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7900;

/// The payloads announcing a commit's conversations: `instance|c|id,id,…`, each under
/// PostgreSQL's limit.
fn notices(instance: &str, ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for id in ids {
        if !cur.is_empty() && cur.len() + id.len() + 1 > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur.push_str(instance);
            cur.push_str("|c|");
        } else {
            cur.push(',');
        }
        cur.push_str(&id);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A group's conversation rows as one array per column (bound to one `UNNEST` insert).
#[derive(Default)]
struct ConvColumns<'a> {
    id: Vec<&'a str>,
    ord: Vec<i64>,
    playbook: Vec<&'a str>,
    version: Vec<i64>,
    rev: Vec<i64>,
    ended: Vec<bool>,
    desk: Vec<Option<&'static str>>,
    agent: Vec<Option<&'a str>>,
    updated_at: Vec<i64>,
    lines: Vec<i64>,
    tail: Vec<String>,
    next_due: Vec<Option<i64>>,
    state: Vec<&'a str>,
}

impl<'a> ConvColumns<'a> {
    fn of(convs: &'a [super::ConvWrite]) -> Self {
        let mut c = ConvColumns::default();
        for w in convs {
            let r = &w.row;
            c.id.push(&r.id);
            c.ord.push(r.ord);
            c.playbook.push(&r.playbook);
            c.version.push(r.version);
            c.rev.push(r.rev);
            c.ended.push(r.ended);
            c.desk.push(r.desk.map(DeskColumn::as_str));
            c.agent.push(r.agent.as_deref());
            c.updated_at.push(r.updated_at);
            c.lines.push(r.lines);
            c.tail.push(encode_tail(&r.tail));
            c.next_due.push(r.next_due);
            c.state.push(&r.state);
        }
        c
    }
}

async fn write_commit(
    tx: &deadpool_postgres::Transaction<'_>,
    c: Commit,
    instance: &str,
    channel: &str,
) -> Result<(), StoreError> {
    write_channel_rows(tx, &c).await?;
    if !c.convs.is_empty() {
        // Every conversation of the group in one statement. Revision 1 inserts; revision n
        // replaces the row only over n - 1; the ids written come back, so a missing one names
        // the conversation another replica changed first.
        let n = c.convs.len();
        let cols = ConvColumns::of(&c.convs);
        let st = tx
            .prepare_cached(
                "INSERT INTO conversations AS c (id, ord, playbook, version, rev, ended, desk, agent, updated_at, lines, tail, next_due, state)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bool[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::bigint[], $13::text[])
                 ON CONFLICT (ord) DO UPDATE SET rev = excluded.rev, ended = excluded.ended,
                     desk = excluded.desk, agent = excluded.agent, updated_at = excluded.updated_at,
                     lines = excluded.lines, tail = excluded.tail, next_due = excluded.next_due,
                     state = excluded.state, lease_until = NULL
                 WHERE c.rev = excluded.rev - 1 AND c.id = excluded.id
                 RETURNING id",
            )
            .await
            .map_err(pg_err)?;
        let params: [&(dyn ToSql + Sync); 13] = [
            &cols.id,
            &cols.ord,
            &cols.playbook,
            &cols.version,
            &cols.rev,
            &cols.ended,
            &cols.desk,
            &cols.agent,
            &cols.updated_at,
            &cols.lines,
            &cols.tail,
            &cols.next_due,
            &cols.state,
        ];
        let written = tx.query(&st, &params).await.map_err(pg_err)?;
        if written.len() != n {
            let done: std::collections::HashSet<String> =
                written.iter().map(|r| r.get::<_, String>(0)).collect();
            let lost = c
                .convs
                .iter()
                .find(|w| !done.contains(&w.row.id))
                .map_or_else(String::new, |w| format!("conversation `{}`", w.row.id));
            return Err(StoreError::Conflict(lost));
        }
        let (mut lconv, mut lseq, mut lbody) = (Vec::new(), Vec::new(), Vec::new());
        for w in &c.convs {
            for (seq, body) in &w.flush {
                lconv.push(w.row.ord);
                lseq.push(*seq);
                lbody.push(body.as_str());
            }
        }
        if !lconv.is_empty() {
            let st = tx
                .prepare_cached(
                    "INSERT INTO lines (conv, seq, body)
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[])",
                )
                .await
                .map_err(pg_err)?;
            tx.execute(&st, &[&lconv, &lseq, &lbody])
                .await
                .map_err(pg_err)?;
        }
        for payload in notices(instance, c.convs.iter().map(|w| w.row.id.clone())) {
            tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .map_err(pg_err)?;
        }
    }
    for notice in &c.notices {
        let payload = format!("{instance}|n|{notice}");
        // Too long to announce: the listeners still learn of the conversation above.
        if payload.len() < MAX_PAYLOAD {
            tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
                .await
                .map_err(pg_err)?;
        }
    }
    if !c.records.is_empty() {
        let keys: Vec<&str> = c.records.iter().map(|r| r.key.as_str()).collect();
        let convs: Vec<&str> = c.records.iter().map(|r| r.conversation.as_str()).collect();
        let bodies: Vec<&str> = c.records.iter().map(|r| r.body.as_str()).collect();
        let at: Vec<i64> = c.records.iter().map(|r| r.created_at).collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO records (key, conversation, body, created_at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
                 ON CONFLICT (key) DO NOTHING",
            )
            .await
            .map_err(pg_err)?;
        tx.execute(&st, &[&keys, &convs, &bodies, &at])
            .await
            .map_err(pg_err)?;
    }
    for (agent, presence) in &c.agents {
        tx.execute(
            "INSERT INTO agents (name, presence) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET presence = excluded.presence",
            &[agent, presence],
        )
        .await
        .map_err(pg_err)?;
    }
    for l in &c.loads {
        // Moves only from what this replica read: two replicas never both give an agent
        // their last free place.
        let n = tx
            .execute(
                "INSERT INTO agent_load AS l (name, open, last) VALUES ($1, $4, $5)
                 ON CONFLICT (name) DO UPDATE SET open = excluded.open, last = excluded.last
                 WHERE l.open = $2 AND l.last = $3",
                &[&l.agent, &l.before.0, &l.before.1, &l.after.0, &l.after.1],
            )
            .await
            .map_err(pg_err)?;
        if n != 1 {
            return Err(StoreError::Conflict(format!("agent `{}`'s load", l.agent)));
        }
    }
    for (pool, before, next) in &c.pools {
        // Moves only from where this replica read it: two replicas never give the same turn.
        let n = tx
            .execute(
                "INSERT INTO pools AS p (name, next) VALUES ($1, $3)
                 ON CONFLICT (name) DO UPDATE SET next = excluded.next WHERE p.next = $2",
                &[pool, before, next],
            )
            .await
            .map_err(pg_err)?;
        if n != 1 {
            return Err(StoreError::Conflict(format!("pool `{pool}`")));
        }
    }
    if !c.stats.is_empty() {
        // Each replica adds to rows of its own shard: a day's busiest counters are written by
        // every commit, and one row for all replicas would make their commits wait in turn.
        let shard = i32::from_str_radix(instance.get(..2).unwrap_or("0"), 16).unwrap_or(0) % 16;
        let playbooks: Vec<&str> = c.stats.iter().map(|r| r.0.as_str()).collect();
        let versions: Vec<i64> = c.stats.iter().map(|r| r.1).collect();
        let days: Vec<i64> = c.stats.iter().map(|r| r.2).collect();
        let keys: Vec<&str> = c.stats.iter().map(|r| r.3.as_str()).collect();
        let ns: Vec<i64> = c.stats.iter().map(|r| r.4).collect();
        let st = tx
            .prepare_cached(
                "INSERT INTO stats AS s (playbook, version, day, key, n, shard)
                 SELECT p, v, d, k, n, $6 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[]) AS u(p, v, d, k, n)
                 ON CONFLICT (playbook, day, version, key, shard) DO UPDATE SET n = s.n + excluded.n",
            )
            .await
            .map_err(pg_err)?;
        tx.execute(&st, &[&playbooks, &versions, &days, &keys, &ns, &shard])
            .await
            .map_err(pg_err)?;
    }
    for (key, value) in &c.meta {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[key, value],
        )
        .await
        .map_err(pg_err)?;
    }
    for v in &c.versions {
        tx.execute(
            "INSERT INTO playbook_versions (name, version, file, source) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&v.name, &v.version, &v.file, &v.source],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}

impl Storage for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Change>> {
        Some(self.listen())
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.block(|pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.simple_query("SELECT 1").await.map_err(pg_err)?;
            Ok(())
        })
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        let commit = commit.clone();
        let instance = self.instance.clone();
        let channel = self.channel.clone();
        self.block(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg_err)?;
            write_commit(&tx, commit, &instance, &channel).await?;
            tx.commit().await.map_err(pg_err)
        })
    }

    fn open_set(&self) -> Result<OpenSet, StoreError> {
        self.block(|pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let conversations = c
                .query(
                    &format!(
                        "SELECT {CONV_COLUMNS}, {FLUSHED} FROM conversations c
                         WHERE desk IN ('unassigned', 'assigned') AND NOT ended ORDER BY ord"
                    ),
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(conv_with_lines)
                .collect();
            let parked = c
                .query(
                    "SELECT id, ord, next_due FROM conversations
                     WHERE next_due IS NOT NULL
                       AND NOT (desk IS NOT NULL AND desk IN ('unassigned', 'assigned') AND NOT ended)
                     ORDER BY next_due, ord",
                    &[],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            let desk = desk_rows(&c).await?;
            let meta = c
                .query("SELECT key, value FROM meta ORDER BY key", &[])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let max_ord = c
                .query_one("SELECT COALESCE(MAX(ord), 0) FROM conversations", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            Ok(OpenSet {
                conversations,
                parked,
                agents: desk.agents,
                loads: desk.loads,
                pools: desk.pools,
                meta,
                max_ord,
            })
        })
    }

    fn conversation(&self, id: &str) -> Result<Option<(ConvRow, Vec<String>)>, StoreError> {
        Ok(self.conversations(&[id.to_owned()])?.pop())
    }

    fn conversations(&self, ids: &[String]) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached(&format!(
                    "SELECT {CONV_COLUMNS}, {FLUSHED} FROM conversations c WHERE id = ANY($1)"
                ))
                .await
                .map_err(pg_err)?;
            let rows = c.query(&st, &[&ids]).await.map_err(pg_err)?;
            Ok(rows.iter().map(conv_with_lines).collect())
        })
    }

    fn desk_rows(&self) -> Result<DeskRows, StoreError> {
        self.block(|pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            desk_rows(&c).await
        })
    }

    fn queue_ids(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached(
                    "SELECT id FROM conversations
                     WHERE desk = 'unassigned' AND NOT ended ORDER BY COALESCE((state::jsonb -> 'desk' ->> 'since')::bigint, 0), ord LIMIT $1",
                )
                .await
                .map_err(pg_err)?;
            Ok(c.query(&st, &[&limit])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| r.get(0))
                .collect())
        })
    }

    fn desk_queue(
        &self,
        agent: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError> {
        let agent = agent.map(str::to_owned);
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = match &agent {
                None => c
                    .query(
                        &format!(
                            "SELECT {CONV_COLUMNS}, {FLUSHED} FROM conversations c
                             WHERE desk = 'unassigned' AND NOT ended ORDER BY COALESCE((state::jsonb -> 'desk' ->> 'since')::bigint, 0), ord LIMIT $1"
                        ),
                        &[&limit],
                    )
                    .await
                    .map_err(pg_err)?,
                Some(a) => c
                    .query(
                        &format!(
                            "SELECT {CONV_COLUMNS}, {FLUSHED} FROM conversations c
                             WHERE desk = 'assigned' AND agent = $1 AND NOT ended ORDER BY ord LIMIT $2"
                        ),
                        &[a, &limit],
                    )
                    .await
                    .map_err(pg_err)?,
            };
            Ok(rows.iter().map(conv_with_lines).collect())
        })
    }

    fn claim_timers(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached(
                    "UPDATE conversations SET lease_until = $2 WHERE ord IN (
                         SELECT ord FROM conversations
                         WHERE next_due IS NOT NULL AND next_due <= $1
                           AND (lease_until IS NULL OR lease_until <= $1)
                         ORDER BY next_due LIMIT $3
                         FOR UPDATE SKIP LOCKED)
                     RETURNING id, ord, next_due",
                )
                .await
                .map_err(pg_err)?;
            let mut v: Vec<(String, i64, i64)> = c
                .query(&st, &[&now, &(now + lease_ms), &limit])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            v.sort_by_key(|(_, ord, at)| (*at, *ord));
            Ok(v)
        })
    }

    fn reserve_ords(&self, n: i64) -> Result<i64, StoreError> {
        if n > ORD_BLOCK {
            return Err(StoreError::Io(format!(
                "cannot reserve {n} start orders at once (at most {ORD_BLOCK})"
            )));
        }
        self.block(|pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let block: i64 = c
                .query_one("SELECT nextval('ord_blocks')", &[])
                .await
                .map_err(pg_err)?
                .get(0);
            Ok(block * ORD_BLOCK)
        })
    }

    fn desk_folder(
        &self,
        column: DeskColumn,
        limit: i64,
    ) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let rows = c
                .query(
                    &format!(
                        "SELECT {CONV_COLUMNS}, {FLUSHED} FROM conversations c WHERE desk = $1
                         ORDER BY updated_at DESC, ord DESC LIMIT $2"
                    ),
                    &[&column.as_str(), &limit],
                )
                .await
                .map_err(pg_err)?;
            Ok(rows.iter().map(conv_with_lines).collect())
        })
    }

    fn versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        self.block(|pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                "SELECT name, version, file, source FROM playbook_versions ORDER BY name, version",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| VersionRow {
                name: r.get(0),
                version: r.get(1),
                file: r.get(2),
                source: r.get(3),
            })
            .collect())
        })
    }

    fn records(&self, after: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                &format!("SELECT {RECORD_COLUMNS} FROM records WHERE id > $1 ORDER BY id LIMIT $2"),
                &[&after, &limit],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(record_of)
            .collect())
        })
    }

    fn records_of(&self, conversation: &str) -> Result<Vec<RecordRow>, StoreError> {
        let conversation = conversation.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM records WHERE conversation = $1 ORDER BY id"
                ),
                &[&conversation],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(record_of)
            .collect())
        })
    }

    fn due(&self, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            // The lease is the next attempt's time: another replica takes the record only
            // when this one has neither delivered it nor stored a failure by then.
            let mut v: Vec<RecordRow> = c
                .query(
                    &format!(
                        "UPDATE records SET next_attempt_at = $2 WHERE id IN (
                             SELECT id FROM records
                             WHERE delivered_at IS NULL AND next_attempt_at <= $1
                             ORDER BY id LIMIT $3
                             FOR UPDATE SKIP LOCKED)
                         RETURNING {RECORD_COLUMNS}"
                    ),
                    &[&now, &(now + lease_ms), &limit],
                )
                .await
                .map_err(pg_err)?
                .iter()
                .map(record_of)
                .collect();
            v.sort_by_key(|r| r.id);
            Ok(v)
        })
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.block(|pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query_one(
                "SELECT MIN(next_attempt_at) FROM records WHERE delivered_at IS NULL AND next_attempt_at < 9223372036854775807",
                &[],
            )
            .await
            .map_err(pg_err)?
            .get(0))
        })
    }

    fn take_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(
                c.query_opt("DELETE FROM meta WHERE key = $1 RETURNING value", &[&key])
                    .await
                    .map_err(pg_err)?
                    .map(|r| r.get(0)),
            )
        })
    }

    fn scan(&self, after: i64, upto: i64, limit: i64) -> Result<Vec<ConvRow>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                &format!(
                    "SELECT {CONV_COLUMNS} FROM conversations WHERE ord > $1 AND ord <= $2
                     ORDER BY ord LIMIT $3"
                ),
                &[&after, &upto, &limit],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(conv_of)
            .collect())
        })
    }

    fn stats(
        &self,
        playbook: &str,
        version: Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        let playbook = playbook.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            let st = c
                .prepare_cached(
                    "SELECT day, key, SUM(n)::bigint FROM stats
                     WHERE playbook = $1 AND day BETWEEN $2 AND $3
                       AND ($4::bigint IS NULL OR version = $4)
                     GROUP BY day, key ORDER BY day, key",
                )
                .await
                .map_err(pg_err)?;
            Ok(c.query(&st, &[&playbook, &from, &to, &version])
                .await
                .map_err(pg_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect())
        })
    }

    fn deliveries(&self, outcomes: &[(String, Delivery)]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let outcomes = outcomes.to_vec();
        self.block(move |pool| async move {
            let mut c = pool.get().await.map_err(pool_err)?;
            let tx = c.transaction().await.map_err(pg_err)?;
            for (key, outcome) in &outcomes {
                match outcome {
                    Ok(at) => tx
                        .execute(
                            "UPDATE records SET delivered_at = $2, attempts = attempts + 1, last_error = NULL
                             WHERE key = $1 AND delivered_at IS NULL",
                            &[key, at],
                        )
                        .await
                        .map_err(pg_err)?,
                    Err((err, next)) => tx
                        .execute(
                            "UPDATE records SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
                             WHERE key = $1 AND delivered_at IS NULL",
                            &[key, err, next],
                        )
                        .await
                        .map_err(pg_err)?,
                };
            }
            tx.commit().await.map_err(pg_err)
        })
    }

    fn crm_steps(&self, key: &str, connector: &str) -> Result<Vec<CrmStep>, StoreError> {
        let (key, connector) = (key.to_owned(), connector.to_owned());
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                "SELECT step, vendor_id FROM crm_steps WHERE record_key = $1 AND connector = $2",
                &[&key, &connector],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| CrmStep {
                step: r.get(0),
                vendor_id: r.get(1),
            })
            .collect())
        })
    }

    fn crm_step(
        &self,
        key: &str,
        connector: &str,
        step: &str,
        vendor_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let (key, connector, step) = (key.to_owned(), connector.to_owned(), step.to_owned());
        let vendor_id = vendor_id.map(str::to_owned);
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            // A done step keeps its id: a late "begun" never erases it.
            c.execute(
                "INSERT INTO crm_steps AS s (record_key, connector, step, vendor_id) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (record_key, connector, step) DO UPDATE
                 SET vendor_id = COALESCE(excluded.vendor_id, s.vendor_id)",
                &[&key, &connector, &step, &vendor_id],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn park(&self, key: &str, error: &str) -> Result<(), StoreError> {
        let (key, error) = (key.to_owned(), error.to_owned());
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute(
                "UPDATE records SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
                 WHERE key = $1 AND delivered_at IS NULL",
                &[&key, &error, &PARKED],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn channel_contact(&self, channel: &str, contact: &str) -> Result<Option<String>, StoreError> {
        let (channel, contact) = (channel.to_owned(), contact.to_owned());
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query_opt(
                "SELECT conversation FROM channel_contacts WHERE channel = $1 AND contact = $2",
                &[&channel, &contact],
            )
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0)))
        })
    }

    fn channel_message_seen(&self, channel: &str, id: &str) -> Result<bool, StoreError> {
        let (channel, id) = (channel.to_owned(), id.to_owned());
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query_opt(
                "SELECT 1 FROM channel_messages WHERE channel = $1 AND message_id = $2",
                &[&channel, &id],
            )
            .await
            .map_err(pg_err)?
            .is_some())
        })
    }

    fn channel_links(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                "SELECT channel, contact, conversation FROM channel_contacts ORDER BY linked_at",
                &[],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
        })
    }

    fn channel_sends(&self, conversation: &str) -> Result<Vec<ChannelSend>, StoreError> {
        let conversation = conversation.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query(
                "SELECT seq, status, attempts, last_error FROM channel_sends
                 WHERE conversation = $1 ORDER BY seq",
                &[&conversation],
            )
            .await
            .map_err(pg_err)?
            .iter()
            .map(|r| ChannelSend {
                seq: r.get(0),
                status: r.get(1),
                attempts: r.get(2),
                last_error: r.get(3),
            })
            .collect())
        })
    }

    fn channel_send(
        &self,
        conversation: &str,
        send: &ChannelSend,
        at: i64,
    ) -> Result<(), StoreError> {
        let conversation = conversation.to_owned();
        let send = send.clone();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute(
                "INSERT INTO channel_sends (conversation, seq, status, attempts, last_error, at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (conversation, seq) DO UPDATE SET status = excluded.status,
                     attempts = excluded.attempts, last_error = excluded.last_error, at = excluded.at",
                &[
                    &conversation,
                    &send.seq,
                    &send.status,
                    &send.attempts,
                    &send.last_error,
                    &at,
                ],
            )
            .await
            .map_err(pg_err)?;
            Ok(())
        })
    }

    fn channel_claim(
        &self,
        conversation: &str,
        seq: i64,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError> {
        let conversation = conversation.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            // One statement: of replicas racing for a line, one row update wins.
            let n = c
                .execute(
                    "INSERT INTO channel_sends AS s (conversation, seq, status, attempts, at)
                     VALUES ($1, $2, 'sending', 1, $3)
                     ON CONFLICT (conversation, seq) DO UPDATE SET status = 'sending',
                         attempts = s.attempts + 1, at = excluded.at
                     WHERE s.status = 'retry' OR (s.status = 'sending' AND s.at <= $3 - $4)",
                    &[&conversation, &seq, &now, &lease_ms],
                )
                .await
                .map_err(pg_err)?;
            Ok(n == 1)
        })
    }

    fn channel_link_of(&self, conversation: &str) -> Result<Option<(String, String)>, StoreError> {
        let conversation = conversation.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query_opt(
                "SELECT channel, contact FROM channel_contacts WHERE conversation = $1",
                &[&conversation],
            )
            .await
            .map_err(pg_err)?
            .map(|r| (r.get(0), r.get(1))))
        })
    }

    fn channel_code(&self, code: &str) -> Result<Option<LinkCode>, StoreError> {
        let code = code.to_owned();
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            Ok(c.query_opt(
                "SELECT channel, conversation, created_at, spent_at IS NOT NULL
                 FROM channel_codes WHERE code = $1",
                &[&code],
            )
            .await
            .map_err(pg_err)?
            .map(|r| LinkCode {
                channel: r.get(0),
                conversation: r.get(1),
                created_at: r.get(2),
                spent: r.get(3),
            }))
        })
    }

    fn unpark(&self, now: i64) -> Result<u64, StoreError> {
        self.block(move |pool| async move {
            let c = pool.get().await.map_err(pool_err)?;
            c.execute(
                "UPDATE records SET next_attempt_at = $1
                 WHERE next_attempt_at = $2 AND delivered_at IS NULL",
                &[&now, &PARKED],
            )
            .await
            .map_err(pg_err)
        })
    }
}

async fn desk_rows(c: &deadpool_postgres::Client) -> Result<DeskRows, StoreError> {
    // Both tables in one round trip: it is read before every group of a replica.
    let st = c
        .prepare_cached(
            "SELECT 0, name, presence, NULL::bigint, NULL::bigint FROM agents
             UNION ALL SELECT 1, name, NULL, next, NULL FROM pools
             UNION ALL SELECT 2, name, NULL, open, last FROM agent_load ORDER BY 1, 2",
        )
        .await
        .map_err(pg_err)?;
    let mut rows = DeskRows::default();
    for r in c.query(&st, &[]).await.map_err(pg_err)? {
        let name: String = r.get(1);
        match r.get::<_, i32>(0) {
            0 => rows.agents.push((name, r.get(2))),
            1 => rows.pools.push((name, r.get(3))),
            _ => rows.loads.push((name, r.get(3), r.get(4))),
        }
    }
    Ok(rows)
}

/// The channel rows of a commit: a message id or a new contact already stored is a
/// conflict (a unique violation), a link moves only from the conversation it replaces.
async fn write_channel_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    c: &Commit,
) -> Result<(), StoreError> {
    for (channel, id, conv) in &c.channel_messages {
        tx.execute(
            "INSERT INTO channel_messages (channel, message_id, conversation) VALUES ($1, $2, $3)",
            &[channel, id, conv],
        )
        .await
        .map_err(pg_err)?;
    }
    for l in &c.channel_links {
        let n = match (&l.conversation, &l.replaces) {
            (Some(conv), None) => tx
                .execute(
                    "INSERT INTO channel_contacts (channel, contact, conversation, linked_at)
                     VALUES ($1, $2, $3, $4)",
                    &[&l.channel, &l.contact, conv, &l.at],
                )
                .await
                .map_err(pg_err)?,
            (Some(conv), Some(old)) => tx
                .execute(
                    "UPDATE channel_contacts SET conversation = $3, linked_at = $4
                     WHERE channel = $1 AND contact = $2 AND conversation = $5",
                    &[&l.channel, &l.contact, conv, &l.at, old],
                )
                .await
                .map_err(pg_err)?,
            (None, Some(old)) => tx
                .execute(
                    "DELETE FROM channel_contacts
                     WHERE channel = $1 AND contact = $2 AND conversation = $3",
                    &[&l.channel, &l.contact, old],
                )
                .await
                .map_err(pg_err)?,
            (None, None) => 1,
        };
        if n != 1 {
            return Err(StoreError::Conflict(format!("{} contact", l.channel)));
        }
    }
    for change in &c.channel_codes {
        let n = match change {
            CodeChange::Issue {
                code,
                channel,
                conversation,
                at,
            } => tx
                .execute(
                    "INSERT INTO channel_codes (code, channel, conversation, created_at)
                     VALUES ($1, $2, $3, $4)",
                    &[code, channel, conversation, at],
                )
                .await
                .map_err(pg_err)?,
            CodeChange::Spend { code, at } => tx
                .execute(
                    "UPDATE channel_codes SET spent_at = $2 WHERE code = $1 AND spent_at IS NULL",
                    &[code, at],
                )
                .await
                .map_err(pg_err)?,
        };
        if n != 1 {
            return Err(StoreError::Conflict("link code".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_stay_under_the_limit() {
        let ids = (0..2000).map(|i| format!("c_{i:030}"));
        let n = notices("abcd", ids);
        assert!(n.len() > 1);
        assert!(n.iter().all(|p| p.len() < 8000 && p.starts_with("abcd|c|")));
        let back: usize = n
            .iter()
            .map(|p| match parse_notice(p, "me") {
                Some(Change::Conversations(ids)) => ids.len(),
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(back, 2000);
        assert!(notices("abcd", std::iter::empty()).is_empty());
        // One's own are not news; a notice keeps its `|`s.
        assert_eq!(parse_notice(&n[0], "abcd"), None);
        assert_eq!(
            parse_notice("x|n|{\"a\":\"b|c\"}", "me"),
            Some(Change::Notice("{\"a\":\"b|c\"}".into()))
        );
        assert_eq!(parse_notice("x|q|y", "me"), None);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema_name("t_0123abc").is_ok());
        for bad in ["", "A", "a;drop", "1a", "a-b", &"a".repeat(64)] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_echoing_it() {
        let e = PgOptions::new("postgres://u:s3cret@[bad")
            .config()
            .unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
