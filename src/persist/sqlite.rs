//! The embedded backend: one SQLite file in WAL mode, one write connection and one read
//! connection, `synchronous = FULL` (a commit survives power loss). The caller batches many
//! events into one [`Commit`] (group commit), so one fsync serves them all.
//!
//! Opening takes an exclusive lock on `<file>.lock` for the life of the store: a second
//! server on the same data folder is refused instead of interleaving writes. The file, its
//! WAL and the lock are created readable by the owner only.
//!
//! Must not: parse the JSON bodies it stores.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    ChannelSend, CodeChange, Commit, ConvRow, CrmStep, Delivery, DeskColumn, DeskRows, LinkCode,
    OpenSet, PARKED, RecordRow, SCHEMA_VERSION, Storage, StoreError, VersionRow, decode_tail,
    encode_tail,
};

/// How to open the file.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a write waits for a lock another process holds before it fails.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The schema of version 6 (version 5 lacked the `channel_*` tables, version 4 `stats`, version 3 `crm_steps`, version 2
/// `agent_load`). `events` of version 1 is migrated by the runtime and renamed
/// `events_v1`.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS playbook_versions (
    name    TEXT NOT NULL,
    version INTEGER NOT NULL,
    file    TEXT NOT NULL,
    source  TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS conversations (
    ord        INTEGER PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    playbook   TEXT NOT NULL,
    version    INTEGER NOT NULL,
    rev        INTEGER NOT NULL,
    ended      INTEGER NOT NULL,
    desk       TEXT,
    agent      TEXT,
    updated_at INTEGER NOT NULL,
    lines      INTEGER NOT NULL,
    tail       TEXT NOT NULL,
    next_due   INTEGER,
    lease_until INTEGER,
    state      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_due ON conversations (next_due) WHERE next_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS conversations_desk ON conversations (desk, updated_at) WHERE desk IS NOT NULL;
-- The Unassigned line: by when each chat entered it (the desk entry time in its state).
CREATE INDEX IF NOT EXISTS conversations_line ON conversations
    (COALESCE(json_extract(state, '$.desk.since'), 0), ord) WHERE desk = 'unassigned';
CREATE TABLE IF NOT EXISTS lines (
    conv INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (conv, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agents (
    name     TEXT PRIMARY KEY,
    presence TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pools (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agent_load (
    name TEXT PRIMARY KEY,
    open INTEGER NOT NULL,
    last INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stats (
    playbook TEXT NOT NULL,
    version  INTEGER NOT NULL,
    day      INTEGER NOT NULL,
    key      TEXT NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (playbook, day, version, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    key             TEXT NOT NULL UNIQUE,
    conversation    TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL DEFAULT 0,
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
    linked_at    INTEGER NOT NULL,
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
    seq          INTEGER NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    at           INTEGER NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE TABLE IF NOT EXISTS channel_codes (
    code         TEXT PRIMARY KEY,
    channel      TEXT NOT NULL,
    conversation TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    spent_at     INTEGER
);
CREATE INDEX IF NOT EXISTS channel_contacts_conversation ON channel_contacts (conversation);
";

/// One logged event of a version-1 database, to migrate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyEvent {
    /// Its position in the log.
    pub seq: i64,
    /// When it was applied (ms since the epoch).
    pub at: i64,
    /// The event as JSON.
    pub body: String,
}

/// The SQLite store.
pub struct SqliteStore {
    write: Mutex<Connection>,
    read: Mutex<Connection>,
    path: PathBuf,
    /// Tells the checkpoint thread to stop when the store is dropped.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Held (locked) for the life of the store.
    _lock: File,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How often the checkpoint thread copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Checkpoints on a thread of its own, so a commit never pays for one: SQLite's automatic
/// checkpoint runs inside the commit that fills the WAL, which measured ~10 % of the server's
/// CPU and a long fsync on the driver's path. PASSIVE never blocks the writer or readers.
fn spawn_checkpointer(
    conn: Connection,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name("playbook-checkpoint".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_EVERY);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; the next one tries again");
                }
            }
        })
        .map(drop)
        .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn open_conn(path: &Path, opts: &SqliteOptions) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit survives power loss, not just a process crash. Group commit pays for it.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(opts.busy_timeout)?;
    Ok(conn)
}

/// Creates `path` (empty) readable by the owner only, unless it exists.
fn create_private(path: &Path) -> Result<File, StoreError> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .map_err(|e| StoreError::Io(format!("cannot open {}: {e}", path.display())))
}

fn lock_err(e: std::fs::TryLockError, dir: &Path) -> StoreError {
    match e {
        std::fs::TryLockError::WouldBlock => StoreError::Locked(dir.display().to_string()),
        std::fs::TryLockError::Error(e) => {
            StoreError::Io(format!("cannot lock {}: {e}", dir.display()))
        }
    }
}

/// What the file held when it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// A new file, or one of this schema.
    Current,
    /// A version-1 file whose event log must be migrated ([`SqliteStore::legacy_events`],
    /// then [`SqliteStore::finish_migration`]).
    NeedsMigration,
}

impl SqliteStore {
    /// Opens (or creates) the database file, refusing one of a newer schema or one another
    /// process has open.
    pub fn open(path: &Path, opts: SqliteOptions) -> Result<(SqliteStore, Opened), StoreError> {
        let lock_path = path.with_extension("lock");
        let lock = create_private(&lock_path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        lock.try_lock().map_err(|e| lock_err(e, dir))?;
        // Created 0600 before SQLite opens it, so no window where it is world-readable.
        drop(create_private(path)?);
        let write = open_conn(path, &opts)?;
        let version: Option<i64> = if table_exists(&write, "meta")? {
            write
                .query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok())
        } else {
            None
        };
        if let Some(found) = version
            && found > SCHEMA_VERSION
        {
            return Err(StoreError::TooNew { found });
        }
        let legacy = version.is_none() && table_exists(&write, "events")?;
        let had_loads = table_exists(&write, "agent_load")?;
        let had_stats = table_exists(&write, "stats")?;
        write.execute_batch(SCHEMA)?;
        if !had_stats {
            // Version 5: the conversations stored so far are counted once by the server.
            write.execute(
                "INSERT OR IGNORE INTO meta (key, value)
                 SELECT ?1, CAST(MAX(ord) AS TEXT) FROM conversations HAVING COUNT(*) > 0",
                [super::STATS_BACKFILL],
            )?;
        }
        if !had_loads {
            // Version 2 → 3: agents' open chats, counted once from the conversations.
            write.execute_batch(super::postgres::BACKFILL_LOADS)?;
        }
        if version.is_some_and(|v| v < SCHEMA_VERSION) || version.is_none() && !legacy {
            set_version(&write)?;
        }
        let read = open_conn(path, &opts)?;
        // Checkpoints run on their own thread, not inside a commit.
        write.pragma_update(None, "wal_autocheckpoint", 0)?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        spawn_checkpointer(open_conn(path, &opts)?, std::sync::Arc::clone(&stop))?;
        let store = SqliteStore {
            write: Mutex::new(write),
            read: Mutex::new(read),
            path: path.to_owned(),
            stop,
            _lock: lock,
        };
        let opened = if legacy {
            Opened::NeedsMigration
        } else {
            Opened::Current
        };
        Ok((store, opened))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The event log of a version-1 file, in order.
    pub fn legacy_events(&self) -> Result<Vec<LegacyEvent>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare("SELECT seq, at, body FROM events ORDER BY seq")?;
            st.query_map([], |r| {
                Ok(LegacyEvent {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    body: r.get(2)?,
                })
            })?
            .collect()
        })
    }

    /// Writes the migrated state and marks the file as version 2, in one transaction; the
    /// old log is kept as `events_v1`.
    pub fn finish_migration(&self, commit: &Commit) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            write_commit(tx, commit)?;
            tx.execute_batch("ALTER TABLE events RENAME TO events_v1;")?;
            set_version(tx)
        })
    }

    fn with_read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self
            .read
            .lock()
            .map_err(|_| StoreError::Io("read connection poisoned".into()))?;
        Ok(f(&conn)?)
    }

    fn write_tx(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self
            .write
            .lock()
            .map_err(|_| StoreError::Io("write connection poisoned".into()))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        f(&tx)?;
        tx.commit()?;
        Ok(())
    }
}

fn table_exists(c: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(c.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )? > 0)
}

fn set_version(c: &Connection) -> Result<(), StoreError> {
    let row = [("schema_version".to_owned(), SCHEMA_VERSION.to_string())];
    upsert(c, "meta", "key", "value", &row)
}

fn write_commit(tx: &Connection, c: &Commit) -> Result<(), StoreError> {
    write_channel_rows(tx, c)?;
    // One statement for a new and a changed conversation: revision 1 inserts; revision n
    // replaces the row only over revision n - 1. No row written means another writer won.
    let mut write = tx.prepare_cached(
        "INSERT INTO conversations (id, ord, playbook, version, rev, ended, desk, agent, updated_at, lines, tail, next_due, state)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
         ON CONFLICT (ord) DO UPDATE SET rev = excluded.rev, ended = excluded.ended,
             desk = excluded.desk, agent = excluded.agent, updated_at = excluded.updated_at,
             lines = excluded.lines, tail = excluded.tail, next_due = excluded.next_due,
             state = excluded.state
         WHERE conversations.rev = excluded.rev - 1",
    )?;
    let mut line = tx.prepare_cached("INSERT INTO lines (conv, seq, body) VALUES (?1, ?2, ?3)")?;
    for w in &c.convs {
        let r = &w.row;
        let desk = r.desk.map(DeskColumn::as_str);
        let tail = encode_tail(&r.tail);
        let n = write
            .execute(params![
                r.id,
                r.ord,
                r.playbook,
                r.version,
                r.rev,
                r.ended,
                desk,
                r.agent,
                r.updated_at,
                r.lines,
                tail,
                r.next_due,
                r.state
            ])
            .map_err(|e| match e {
                // The same id under another start order: a second start of it.
                rusqlite::Error::SqliteFailure(f, _)
                    if f.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    StoreError::Conflict(format!("conversation `{}`", r.id))
                }
                e => e.into(),
            })?;
        if n != 1 {
            return Err(StoreError::Conflict(format!("conversation `{}`", r.id)));
        }
        for (seq, body) in &w.flush {
            line.execute(params![r.ord, seq, body])?;
        }
    }
    let mut rec = tx.prepare_cached(
        "INSERT OR IGNORE INTO records (key, conversation, body, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for r in &c.records {
        rec.execute(params![r.key, r.conversation, r.body, r.created_at])?;
    }
    upsert(tx, "agents", "name", "presence", &c.agents)?;
    // One process: its loads and cursors are the only ones, so `before` needs no check.
    let mut load = tx.prepare_cached(
        "INSERT INTO agent_load (name, open, last) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET open = excluded.open, last = excluded.last",
    )?;
    for l in &c.loads {
        load.execute(params![l.agent, l.after.0, l.after.1])?;
    }
    let pools: Vec<(String, i64)> = c.pools.iter().map(|(p, _, n)| (p.clone(), *n)).collect();
    upsert(tx, "pools", "name", "next", &pools)?;
    upsert(tx, "meta", "key", "value", &c.meta)?;
    let mut stat = tx.prepare_cached(
        "INSERT INTO stats (playbook, version, day, key, n) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (playbook, day, version, key) DO UPDATE SET n = n + excluded.n",
    )?;
    for (p, v, d, k, n) in &c.stats {
        stat.execute(params![p, v, d, k, n])?;
    }
    let mut ver = tx.prepare_cached(
        "INSERT OR IGNORE INTO playbook_versions (name, version, file, source) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for v in &c.versions {
        ver.execute(params![v.name, v.version, v.file, v.source])?;
    }
    Ok(())
}

/// Writes `(key, value)` rows into a two-column table, replacing the value of a known key.
/// The names are this module's constants, never input.
fn upsert<V: rusqlite::ToSql>(
    tx: &Connection,
    table: &str,
    key: &str,
    value: &str,
    rows: &[(String, V)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut st = tx.prepare_cached(&format!(
        "INSERT INTO {table} ({key}, {value}) VALUES (?1, ?2)
         ON CONFLICT ({key}) DO UPDATE SET {value} = excluded.{value}"
    ))?;
    for (k, v) in rows {
        st.execute(params![k, v])?;
    }
    Ok(())
}

/// The Unassigned line, oldest entry first: the `conversations_line` index's order (named in
/// the queries, so it is used without `ANALYZE` statistics: the state's JSON is then parsed
/// when a chat enters Unassigned, not at every read).
const LINE: &str = "WHERE desk = 'unassigned' AND NOT ended
     ORDER BY COALESCE(json_extract(state, '$.desk.since'), 0), ord";

const CONV_COLUMNS: &str =
    "id, ord, playbook, version, rev, ended, desk, agent, updated_at, lines, tail, next_due, state";

fn row_to_conv(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConvRow> {
    let desk: Option<String> = r.get(6)?;
    Ok(ConvRow {
        id: r.get(0)?,
        ord: r.get(1)?,
        playbook: r.get(2)?,
        version: r.get(3)?,
        rev: r.get(4)?,
        ended: r.get(5)?,
        desk: desk.as_deref().and_then(DeskColumn::parse),
        agent: r.get(7)?,
        updated_at: r.get(8)?,
        lines: r.get(9)?,
        tail: decode_tail(&r.get::<_, String>(10)?),
        next_due: r.get(11)?,
        state: r.get(12)?,
    })
}

/// Every line of a conversation: those in the `lines` table, then its tail.
fn lines_of(c: &Connection, row: &ConvRow) -> rusqlite::Result<Vec<String>> {
    let mut st = c.prepare_cached("SELECT body FROM lines WHERE conv = ?1 ORDER BY seq")?;
    let mut lines: Vec<String> = st
        .query_map([row.ord], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    lines.extend(row.tail.iter().map(|(_, l)| l.clone()));
    Ok(lines)
}

fn with_lines(c: &Connection, rows: Vec<ConvRow>) -> rusqlite::Result<Vec<(ConvRow, Vec<String>)>> {
    rows.into_iter()
        .map(|row| {
            let lines = lines_of(c, &row)?;
            Ok((row, lines))
        })
        .collect()
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordRow> {
    let body: String = r.get(3)?;
    Ok(RecordRow {
        id: r.get(0)?,
        key: r.get(1)?,
        conversation: r.get(2)?,
        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
        delivered_at: r.get(4)?,
        attempts: r.get(5)?,
        last_error: r.get(6)?,
        parked: r.get(7)?,
    })
}

const RECORD_COLUMNS: &str = "id, key, conversation, body, delivered_at, attempts, last_error,
     (next_attempt_at = 9223372036854775807) AS parked";

fn desk_rows(c: &Connection) -> rusqlite::Result<DeskRows> {
    let mut st = c.prepare_cached("SELECT name, presence FROM agents ORDER BY name")?;
    let agents = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut st = c.prepare_cached("SELECT name, next FROM pools ORDER BY name")?;
    let pools = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut st = c.prepare_cached("SELECT name, open, last FROM agent_load ORDER BY name")?;
    let loads = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(DeskRows {
        agents,
        loads,
        pools,
    })
}

fn stats_rows(
    c: &Connection,
    playbook: &str,
    version: Option<i64>,
    from: i64,
    to: i64,
) -> rusqlite::Result<Vec<(i64, String, i64)>> {
    let mut st = c.prepare_cached(
        "SELECT day, key, SUM(n) FROM stats
         WHERE playbook = ?1 AND day BETWEEN ?2 AND ?3 AND (?4 IS NULL OR version = ?4)
         GROUP BY day, key ORDER BY day, key",
    )?;
    st.query_map(params![playbook, from, to, version], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?
    .collect()
}

fn version_rows(c: &Connection) -> rusqlite::Result<Vec<VersionRow>> {
    let mut st = c.prepare(
        "SELECT name, version, file, source FROM playbook_versions ORDER BY name, version",
    )?;
    st.query_map([], |r| {
        Ok(VersionRow {
            name: r.get(0)?,
            version: r.get(1)?,
            file: r.get(2)?,
            source: r.get(3)?,
        })
    })?
    .collect()
}

/// A data folder's database opened read-only, beside a server that may be running on it
/// (no lock is taken; SQLite readers never block its writer): what `playbook stats` reads.
pub struct SqliteReader(Connection);

impl SqliteReader {
    /// Opens the database at `path` for reading.
    pub fn open(path: &Path) -> Result<SqliteReader, StoreError> {
        if !path.exists() {
            return Err(StoreError::Io(format!("no database at {}", path.display())));
        }
        let c = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        c.busy_timeout(Duration::from_secs(5))?;
        if !table_exists(&c, "stats")? {
            return Err(StoreError::Io(format!(
                "{} was written by an older release: start `playbook serve` on it once to upgrade it",
                path.display()
            )));
        }
        Ok(SqliteReader(c))
    }

    /// The playbook versions stored.
    pub fn versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        Ok(version_rows(&self.0)?)
    }

    /// As [`Storage::stats`].
    pub fn stats(
        &self,
        playbook: &str,
        version: Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        Ok(stats_rows(&self.0, playbook, version, from, to)?)
    }
}

impl Storage for SqliteStore {
    fn take_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self
            .write
            .lock()
            .map_err(|_| StoreError::Io("write connection poisoned".into()))?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let v = tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        tx.execute("DELETE FROM meta WHERE key = ?1", [key])?;
        tx.commit()?;
        Ok(v)
    }

    fn scan(&self, after: i64, upto: i64, limit: i64) -> Result<Vec<ConvRow>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CONV_COLUMNS} FROM conversations WHERE ord > ?1 AND ord <= ?2
                 ORDER BY ord LIMIT ?3"
            ))?;
            st.query_map(params![after, upto, limit], row_to_conv)?
                .collect()
        })
    }

    fn stats(
        &self,
        playbook: &str,
        version: Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError> {
        self.with_read(|c| stats_rows(c, playbook, version, from, to))
    }

    fn desk_rows(&self) -> Result<DeskRows, StoreError> {
        self.with_read(desk_rows)
    }

    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        self.write_tx(|tx| write_commit(tx, commit))
    }

    fn open_set(&self) -> Result<OpenSet, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare(&format!(
                "SELECT {CONV_COLUMNS} FROM conversations
                 WHERE desk IN ('unassigned', 'assigned') AND NOT ended ORDER BY ord"
            ))?;
            let rows: Vec<ConvRow> = st.query_map([], row_to_conv)?.collect::<Result<_, _>>()?;
            let conversations = with_lines(c, rows)?;
            let mut st = c.prepare(
                "SELECT id, ord, next_due FROM conversations
                 WHERE next_due IS NOT NULL
                   AND NOT (desk IS NOT NULL AND desk IN ('unassigned', 'assigned') AND NOT ended)
                 ORDER BY next_due, ord",
            )?;
            let parked = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let pairs = |sql: &str| -> rusqlite::Result<Vec<(String, String)>> {
                let mut st = c.prepare(sql)?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
            };
            let DeskRows {
                agents,
                loads,
                pools,
            } = desk_rows(c)?;
            let meta = pairs("SELECT key, value FROM meta ORDER BY key")?;
            let max_ord =
                c.query_row("SELECT COALESCE(MAX(ord), 0) FROM conversations", [], |r| {
                    r.get(0)
                })?;
            Ok(OpenSet {
                conversations,
                parked,
                agents,
                loads,
                pools,
                meta,
                max_ord,
            })
        })
    }

    fn conversation(&self, id: &str) -> Result<Option<(ConvRow, Vec<String>)>, StoreError> {
        self.with_read(|c| {
            let row = c
                .prepare_cached(&format!(
                    "SELECT {CONV_COLUMNS} FROM conversations WHERE id = ?1"
                ))?
                .query_row([id], row_to_conv)
                .optional()?;
            match row {
                Some(row) => {
                    let lines = lines_of(c, &row)?;
                    Ok(Some((row, lines)))
                }
                None => Ok(None),
            }
        })
    }

    fn desk_folder(
        &self,
        column: DeskColumn,
        limit: i64,
    ) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {CONV_COLUMNS} FROM conversations WHERE desk = ?1
                 ORDER BY updated_at DESC, ord DESC LIMIT ?2"
            ))?;
            let rows: Vec<ConvRow> = st
                .query_map(params![column.as_str(), limit], row_to_conv)?
                .collect::<Result<_, _>>()?;
            with_lines(c, rows)
        })
    }

    fn versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        self.with_read(version_rows)
    }

    fn records(&self, after: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE id > ?1 ORDER BY id LIMIT ?2"
            ))?;
            st.query_map(params![after, limit], row_to_record)?
                .collect()
        })
    }

    fn records_of(&self, conversation: &str) -> Result<Vec<RecordRow>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records WHERE conversation = ?1 ORDER BY id"
            ))?;
            st.query_map([conversation], row_to_record)?.collect()
        })
    }

    fn due(&self, now: i64, _lease_ms: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError> {
        // One process delivers (the data folder is locked): nothing to claim. A claim would
        // only outlive a crash and hold the records back after the restart.
        self.with_read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT {RECORD_COLUMNS} FROM records
                 WHERE delivered_at IS NULL AND next_attempt_at <= ?1 ORDER BY id LIMIT ?2"
            ))?;
            st.query_map(params![now, limit], row_to_record)?.collect()
        })
    }

    fn queue_ids(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(&format!(
                "SELECT id FROM conversations INDEXED BY conversations_line {LINE} LIMIT ?1"
            ))?;
            st.query_map(params![limit], |r| r.get(0))?.collect()
        })
    }

    fn desk_queue(
        &self,
        agent: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError> {
        self.with_read(|c| {
            let rows: Vec<ConvRow> = match agent {
                None => c
                    .prepare_cached(&format!(
                        "SELECT {CONV_COLUMNS} FROM conversations INDEXED BY conversations_line
                         {LINE} LIMIT ?1"
                    ))?
                    .query_map(params![limit], row_to_conv)?
                    .collect::<Result<_, _>>()?,
                Some(a) => c
                    .prepare_cached(&format!(
                        "SELECT {CONV_COLUMNS} FROM conversations
                         WHERE desk = 'assigned' AND agent = ?1 AND NOT ended ORDER BY ord LIMIT ?2"
                    ))?
                    .query_map(params![a, limit], row_to_conv)?
                    .collect::<Result<_, _>>()?,
            };
            with_lines(c, rows)
        })
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.with_read(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_at) FROM records WHERE delivered_at IS NULL AND next_attempt_at < 9223372036854775807",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }

    fn deliveries(&self, outcomes: &[(String, Delivery)]) -> Result<(), StoreError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.write_tx(|tx| {
            let mut ok = tx.prepare_cached(
                "UPDATE records SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
                 WHERE key = ?1 AND delivered_at IS NULL",
            )?;
            let mut fail = tx.prepare_cached(
                "UPDATE records SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                 WHERE key = ?1 AND delivered_at IS NULL",
            )?;
            for (key, outcome) in outcomes {
                match outcome {
                    Ok(at) => ok.execute(params![key, at])?,
                    Err((err, next)) => fail.execute(params![key, err, next])?,
                };
            }
            Ok(())
        })
    }

    fn crm_steps(&self, key: &str, connector: &str) -> Result<Vec<CrmStep>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(
                "SELECT step, vendor_id FROM crm_steps WHERE record_key = ?1 AND connector = ?2",
            )?;
            st.query_map(params![key, connector], |r| {
                Ok(CrmStep {
                    step: r.get(0)?,
                    vendor_id: r.get(1)?,
                })
            })?
            .collect()
        })
    }

    fn crm_step(
        &self,
        key: &str,
        connector: &str,
        step: &str,
        vendor_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            // A done step keeps its id: a late "begun" never erases it.
            tx.prepare_cached(
                "INSERT INTO crm_steps (record_key, connector, step, vendor_id) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (record_key, connector, step) DO UPDATE
                 SET vendor_id = COALESCE(excluded.vendor_id, crm_steps.vendor_id)",
            )?
            .execute(params![key, connector, step, vendor_id])?;
            Ok(())
        })
    }

    fn park(&self, key: &str, error: &str) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            tx.prepare_cached(
                "UPDATE records SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
                 WHERE key = ?1 AND delivered_at IS NULL",
            )?
            .execute(params![key, error, PARKED])?;
            Ok(())
        })
    }

    fn channel_contact(&self, channel: &str, contact: &str) -> Result<Option<String>, StoreError> {
        self.with_read(|c| {
            c.prepare_cached(
                "SELECT conversation FROM channel_contacts WHERE channel = ?1 AND contact = ?2",
            )?
            .query_row([channel, contact], |r| r.get(0))
            .optional()
        })
    }

    fn channel_message_seen(&self, channel: &str, id: &str) -> Result<bool, StoreError> {
        self.with_read(|c| {
            c.prepare_cached(
                "SELECT 1 FROM channel_messages WHERE channel = ?1 AND message_id = ?2",
            )?
            .query_row([channel, id], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
        })
    }

    fn channel_links(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(
                "SELECT channel, contact, conversation FROM channel_contacts ORDER BY linked_at",
            )?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
    }

    fn channel_sends(&self, conversation: &str) -> Result<Vec<ChannelSend>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(
                "SELECT seq, status, attempts, last_error FROM channel_sends
                 WHERE conversation = ?1 ORDER BY seq",
            )?;
            st.query_map([conversation], |r| {
                Ok(ChannelSend {
                    seq: r.get(0)?,
                    status: r.get(1)?,
                    attempts: r.get(2)?,
                    last_error: r.get(3)?,
                })
            })?
            .collect()
        })
    }

    fn channel_send(
        &self,
        conversation: &str,
        send: &ChannelSend,
        at: i64,
    ) -> Result<(), StoreError> {
        self.write_tx(|tx| {
            tx.prepare_cached(
                "INSERT INTO channel_sends (conversation, seq, status, attempts, last_error, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (conversation, seq) DO UPDATE SET status = excluded.status,
                     attempts = excluded.attempts, last_error = excluded.last_error, at = excluded.at",
            )?
            .execute(params![
                conversation,
                send.seq,
                send.status,
                send.attempts,
                send.last_error,
                at
            ])?;
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
        let mut n = 0;
        self.write_tx(|tx| {
            n = tx
                .prepare_cached(
                    "INSERT INTO channel_sends (conversation, seq, status, attempts, at)
                 VALUES (?1, ?2, 'sending', 1, ?3)
                 ON CONFLICT (conversation, seq) DO UPDATE SET status = 'sending',
                     attempts = channel_sends.attempts + 1, at = excluded.at
                 WHERE channel_sends.status = 'retry'
                    OR (channel_sends.status = 'sending' AND channel_sends.at <= ?3 - ?4)",
                )?
                .execute(params![conversation, seq, now, lease_ms])?;
            Ok(())
        })?;
        Ok(n == 1)
    }

    fn channel_link_of(&self, conversation: &str) -> Result<Option<(String, String)>, StoreError> {
        self.with_read(|c| {
            c.prepare_cached(
                "SELECT channel, contact FROM channel_contacts WHERE conversation = ?1",
            )?
            .query_row([conversation], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
    }

    fn channel_code(&self, code: &str) -> Result<Option<LinkCode>, StoreError> {
        self.with_read(|c| {
            c.prepare_cached(
                "SELECT channel, conversation, created_at, spent_at IS NOT NULL
                 FROM channel_codes WHERE code = ?1",
            )?
            .query_row([code], |r| {
                Ok(LinkCode {
                    channel: r.get(0)?,
                    conversation: r.get(1)?,
                    created_at: r.get(2)?,
                    spent: r.get(3)?,
                })
            })
            .optional()
        })
    }

    fn unpark(&self, now: i64) -> Result<u64, StoreError> {
        let mut n = 0;
        self.write_tx(|tx| {
            n = tx
                .prepare_cached(
                    "UPDATE records SET next_attempt_at = ?1
                     WHERE next_attempt_at = ?2 AND delivered_at IS NULL",
                )?
                .execute(params![now, PARKED])? as u64;
            Ok(())
        })?;
        Ok(n)
    }
}

/// The channel rows of a commit: a message id or a new contact already stored is a
/// conflict (the commit is refused), a link moves only from the conversation it replaces.
fn write_channel_rows(tx: &Connection, c: &Commit) -> Result<(), StoreError> {
    let conflict = |what: String| {
        move |e: rusqlite::Error| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                StoreError::Conflict(what)
            }
            e => e.into(),
        }
    };
    for (channel, id, conv) in &c.channel_messages {
        tx.prepare_cached(
            "INSERT INTO channel_messages (channel, message_id, conversation) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![channel, id, conv])
        .map_err(conflict(format!("{channel} message")))?;
    }
    for l in &c.channel_links {
        let n = match (&l.conversation, &l.replaces) {
            (Some(conv), None) => tx
                .prepare_cached(
                    "INSERT INTO channel_contacts (channel, contact, conversation, linked_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![l.channel, l.contact, conv, l.at])
                .map_err(conflict(format!("{} contact", l.channel)))?,
            (Some(conv), Some(old)) => tx
                .prepare_cached(
                    "UPDATE channel_contacts SET conversation = ?3, linked_at = ?4
                     WHERE channel = ?1 AND contact = ?2 AND conversation = ?5",
                )?
                .execute(params![l.channel, l.contact, conv, l.at, old])?,
            (None, Some(old)) => tx
                .prepare_cached(
                    "DELETE FROM channel_contacts
                     WHERE channel = ?1 AND contact = ?2 AND conversation = ?3",
                )?
                .execute(params![l.channel, l.contact, old])?,
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
                .prepare_cached(
                    "INSERT INTO channel_codes (code, channel, conversation, created_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![code, channel, conversation, at])
                .map_err(conflict("link code".into()))?,
            CodeChange::Spend { code, at } => tx
                .prepare_cached(
                    "UPDATE channel_codes SET spent_at = ?2 WHERE code = ?1 AND spent_at IS NULL",
                )?
                .execute(params![code, at])?,
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
    use crate::persist::{ConvWrite, NewRecord};

    fn row(id: &str, rev: i64) -> ConvRow {
        ConvRow {
            id: id.into(),
            ord: 1,
            playbook: "demo".into(),
            version: 1,
            rev,
            ended: false,
            desk: Some(DeskColumn::Unassigned),
            agent: None,
            updated_at: 10,
            lines: 1,
            tail: Vec::new(),
            next_due: None,
            state: "{}".into(),
        }
    }

    fn write(id: &str, rev: i64, seq: i64) -> Commit {
        Commit {
            convs: vec![ConvWrite {
                row: ConvRow {
                    lines: seq,
                    next_due: Some(100 + seq),
                    ..row(id, rev)
                },
                flush: vec![(seq, format!("\"line {seq}\""))],
            }],
            records: vec![NewRecord {
                key: format!("{id}/lead"),
                conversation: id.into(),
                body: r#"{"x":1}"#.into(),
                created_at: 5,
            }],
            ..Default::default()
        }
    }

    /// Version 2 → 3: a database without agents' loads gets them counted from its assigned
    /// conversations, once, and is marked version 3; loads then move with commits.
    #[test]
    fn a_version_2_database_gets_its_loads_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let (store, _) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            for (i, (id, agent)) in [("c1", "ana"), ("c2", "ana"), ("c3", "bob")]
                .into_iter()
                .enumerate()
            {
                let mut w = write(id, 1, 1);
                w.convs[0].row.ord = i as i64 + 1;
                w.convs[0].row.desk = Some(DeskColumn::Assigned);
                w.convs[0].row.agent = Some(agent.into());
                w.records.clear();
                store.commit(&w).unwrap();
            }
        }
        let c = Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE agent_load; UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .unwrap();
        drop(c);
        let (store, opened) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(opened, Opened::Current);
        let rows = store.desk_rows().unwrap();
        assert_eq!(rows.loads, [("ana".into(), 2, 0), ("bob".into(), 1, 0)]);
        let version: String = store
            .with_read(|c| {
                c.query_row(
                    "SELECT value FROM meta WHERE key = 'schema_version'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION.to_string());
        store
            .commit(&Commit {
                loads: vec![crate::persist::LoadChange {
                    agent: "ana".into(),
                    before: (2, 0),
                    after: (1, 0),
                }],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.desk_rows().unwrap().loads[0], ("ana".into(), 1, 0));
    }

    #[test]
    fn state_lines_timers_records_and_revisions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (store, opened) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(opened, Opened::Current);
        store.commit(&write("c1", 1, 1)).unwrap();
        // A second writer of revision 1 (or a stale revision 2) loses; nothing is written.
        assert!(matches!(
            store.commit(&write("c1", 1, 2)),
            Err(StoreError::Conflict(_))
        ));
        store.commit(&write("c1", 2, 2)).unwrap();
        assert!(matches!(
            store.commit(&write("c1", 2, 3)),
            Err(StoreError::Conflict(_))
        ));
        let (row, lines) = store.conversation("c1").unwrap().unwrap();
        assert_eq!((row.rev, row.lines), (2, 2));
        assert_eq!(lines, ["\"line 1\"", "\"line 2\""]);
        let open = store.open_set().unwrap();
        assert_eq!(open.conversations.len(), 1);
        // Open means on the desk (loaded) or with a timer (parked); ended without one is neither.
        let mut idle = write("c2", 1, 1);
        idle.convs[0].row.desk = None;
        // Its newest lines ride in its row: read back after those in the lines table.
        idle.convs[0].row.tail = vec![(2, r#"{"t":2}"#.into()), (3, r#"{"t":3}"#.into())];
        idle.convs[0].row.lines = 3;
        idle.convs[0].row.ord = 2;
        idle.records.clear();
        let mut over = write("c3", 1, 1);
        over.convs[0].row.desk = None;
        over.convs[0].row.ended = true;
        over.convs[0].row.ord = 3;
        over.convs[0].row.next_due = None;
        over.records.clear();
        store.commit(&idle).unwrap();
        store.commit(&over).unwrap();
        let open = store.open_set().unwrap();
        let ids: Vec<String> = open.conversations.into_iter().map(|(r, _)| r.id).collect();
        assert_eq!(ids, ["c1"], "only desk conversations are loaded");
        assert_eq!(
            open.parked,
            [("c2".to_owned(), 2, 101)],
            "c2 is parked with its timer"
        );
        let (row, lines) = store.conversation("c2").unwrap().unwrap();
        assert_eq!(lines, ["\"line 1\"", r#"{"t":2}"#, r#"{"t":3}"#]);
        assert_eq!(row.tail.len(), 2);
        assert_eq!(store.records(0, 10).unwrap().len(), 1);
        store
            .deliveries(&[("c1/lead".into(), Err(("503".into(), 100)))])
            .unwrap();
        assert!(store.due(50, 1_000, 10).unwrap().is_empty());
        assert_eq!(store.next_due().unwrap(), Some(100));
        // Due at 100, and not held by a claim (one process: a crash must not hold it back).
        assert_eq!(store.due(100, 1_000, 10).unwrap().len(), 1);
        assert_eq!(store.due(100, 1_000, 10).unwrap().len(), 1);
        assert_eq!(store.next_due().unwrap(), Some(100));
        drop(store);
        let (store, _) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        assert_eq!(store.records_of("c1").unwrap()[0].attempts, 1);
    }

    #[test]
    fn a_second_store_on_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (_first, _) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(err.to_string().contains("in use by another"), "{err}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        {
            let (store, _) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
            let meta = Commit {
                meta: vec![("schema_version".into(), "99".into())],
                ..Default::default()
            };
            store.commit(&meta).unwrap();
        }
        let err = SqliteStore::open(&path, SqliteOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { found: 99 }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let (store, _) = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store.commit(&write("c1", 1, 1)).unwrap();
        for f in ["db.sqlite", "db.lock", "db.sqlite-wal"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{f} is {mode:o}");
        }
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let err = SqliteStore::open(
            Path::new("/nonexistent-dir/x/db.sqlite"),
            SqliteOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().starts_with("storage:"), "{err}");
    }
}
