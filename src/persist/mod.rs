//! Durable storage of the server in one SQLite file (WAL mode): the event log every
//! conversation is rebuilt from, the playbook versions conversations run on, and the CRM
//! records with their outbox delivery state.
//!
//! **Design.** The server stores *inputs*, not state: every accepted event (a visitor
//! message, an agent action, a presence change, a fired timer) is appended to `events` with
//! the `now` it was applied at. The engine and desk are deterministic, so replaying the log in
//! order through the same playbook versions rebuilds every session, transcript, desk queue and
//! ledger exactly. Records are also written to `records` (keyed by their idempotency key,
//! `INSERT OR IGNORE`), so a replay can never duplicate one, and the outbox reads them from
//! there.
//!
//! **Group commit.** One writer thread owns the write connection. Callers hand it a [`Batch`]
//! and wait for the acknowledgement; the thread takes every batch waiting in its queue, writes
//! them in ONE transaction (one fsync) and then acknowledges them all. Under load many requests
//! share an fsync; alone, a request waits for just its own.
//!
//! Must not: know about HTTP, the engine or tokio tasks (acks are `tokio::sync::oneshot`
//! senders only because that is what async callers wait on).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use tokio::sync::oneshot;

/// How many queued batches the writer folds into one transaction at most.
const MAX_GROUP: usize = 512;

/// A storage failure (unwritable path, full disk, corrupt file).
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage: {0}")]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// One logged event, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Its position in the log (1, 2, 3, …).
    pub seq: i64,
    /// When it was applied (ms since the epoch).
    pub at: i64,
    /// The event, as JSON (the server owns its shape).
    pub body: String,
}

/// A playbook version, as stored: conversations keep running on the version they began on,
/// even after the file changed, so its source is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// The playbook's name (its file stem).
    pub name: String,
    /// 1, 2, 3, … per name.
    pub version: i64,
    /// The file name it was read from (picks the reader: DSL or JSON).
    pub file: String,
    /// The file's text.
    pub source: String,
}

/// A record and its delivery state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordRow {
    /// Position in the records table (`GET /api/records?after=N`).
    pub id: i64,
    /// The idempotency key.
    pub key: String,
    /// The conversation it came from.
    pub conversation: String,
    /// The stored record with its transcript, as JSON.
    pub body: serde_json::Value,
    /// When it was delivered to the webhook, if it was.
    pub delivered_at: Option<i64>,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The last delivery error.
    pub last_error: Option<String>,
}

/// A record to write.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Idempotency key (unique).
    pub key: String,
    /// Conversation id.
    pub conversation: String,
    /// The record with its transcript, as JSON text.
    pub body: String,
    /// When it was made.
    pub created_at: i64,
}

/// A delivery outcome: delivered at this time, or failed with this error and retried at
/// this time.
pub type Delivery = Result<i64, (String, i64)>;

/// Everything one accepted request stores, written atomically.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// Events to append, in order: `(at, json)`.
    pub events: Vec<(i64, String)>,
    /// Records to add (existing keys are left alone).
    pub records: Vec<NewRecord>,
    /// A new playbook version.
    pub versions: Vec<VersionRow>,
    /// Delivery outcomes: `(key, Ok(delivered_at) | Err((error, next_attempt_at)))`.
    pub deliveries: Vec<(String, Delivery)>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.records.is_empty()
            && self.versions.is_empty()
            && self.deliveries.is_empty()
    }
}

struct Job {
    batch: Batch,
    ack: oneshot::Sender<Result<(), StoreError>>,
}

/// The database: a writer thread for writes, one connection for reads.
pub struct Store {
    tx: mpsc::Sender<Job>,
    read: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    at   INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS playbook_versions (
    name    TEXT NOT NULL,
    version INTEGER NOT NULL,
    file    TEXT NOT NULL,
    source  TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
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
";

fn open_conn(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: a commit survives power loss, not just a process crash. Group commit pays for it.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

impl Store {
    /// Opens (or creates) the database file and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let write = open_conn(path)?;
        write.execute_batch(SCHEMA)?;
        let read = open_conn(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("playbook-store".into())
            .spawn(move || writer(write, rx))
            .map_err(|e| StoreError(format!("cannot start the writer thread: {e}")))?;
        Ok(Store {
            tx,
            read: Mutex::new(read),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hands a batch to the writer; the returned receiver resolves once it is durable.
    pub fn submit(&self, batch: Batch) -> oneshot::Receiver<Result<(), StoreError>> {
        let (ack, rx) = oneshot::channel();
        if batch.is_empty() {
            let _ = ack.send(Ok(()));
        } else if let Err(mpsc::SendError(job)) = self.tx.send(Job { batch, ack }) {
            let _ = job
                .ack
                .send(Err(StoreError("the writer thread stopped".into())));
        }
        rx
    }

    /// Writes a batch and waits until it is durable.
    pub async fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.submit(batch)
            .await
            .unwrap_or_else(|_| Err(StoreError("the writer thread stopped".into())))
    }

    /// Writes a batch from synchronous code (startup), waiting for it.
    pub fn write_blocking(&self, batch: Batch) -> Result<(), StoreError> {
        self.submit(batch)
            .blocking_recv()
            .unwrap_or_else(|_| Err(StoreError("the writer thread stopped".into())))
    }

    fn with_read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self
            .read
            .lock()
            .map_err(|_| StoreError("read connection poisoned".into()))?;
        Ok(f(&conn)?)
    }

    /// Every event, in log order.
    pub fn events(&self) -> Result<Vec<EventRow>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare("SELECT seq, at, body FROM events ORDER BY seq")?;
            st.query_map([], |r| {
                Ok(EventRow {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    body: r.get(2)?,
                })
            })?
            .collect()
        })
    }

    /// Every playbook version, oldest first per name.
    pub fn versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        self.with_read(|c| {
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
        })
    }

    /// Records with `id > after`, oldest first, at most `limit`.
    pub fn records(&self, after: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, key, conversation, body, delivered_at, attempts, last_error
                 FROM records WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            st.query_map(params![after, limit], row_to_record)?
                .collect()
        })
    }

    /// Records not yet delivered whose next attempt is due at `now`, oldest first.
    pub fn due(&self, now: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError> {
        self.with_read(|c| {
            let mut st = c.prepare_cached(
                "SELECT id, key, conversation, body, delivered_at, attempts, last_error
                 FROM records WHERE delivered_at IS NULL AND next_attempt_at <= ?1
                 ORDER BY id LIMIT ?2",
            )?;
            st.query_map(params![now, limit], row_to_record)?.collect()
        })
    }

    /// The earliest next attempt of an undelivered record.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.with_read(|c| {
            c.query_row(
                "SELECT MIN(next_attempt_at) FROM records WHERE delivered_at IS NULL",
                [],
                |r| r.get::<_, Option<i64>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
    }
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
    })
}

/// The writer thread: group commit until every sender is gone.
fn writer(mut conn: Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let result = write_group(&mut conn, &jobs);
        if let Err(e) = &result {
            tracing::error!(error = %e, batches = jobs.len(), "storage write failed");
        }
        for j in jobs {
            let _ = j.ack.send(result.clone());
        }
    }
}

fn write_group(conn: &mut Connection, jobs: &[Job]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut ev = tx.prepare_cached("INSERT INTO events (at, body) VALUES (?1, ?2)")?;
        let mut rec = tx.prepare_cached(
            "INSERT OR IGNORE INTO records (key, conversation, body, created_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut ver = tx.prepare_cached(
            "INSERT OR IGNORE INTO playbook_versions (name, version, file, source) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut ok = tx.prepare_cached(
            "UPDATE records SET delivered_at = ?2, attempts = attempts + 1, last_error = NULL
             WHERE key = ?1 AND delivered_at IS NULL",
        )?;
        let mut fail = tx.prepare_cached(
            "UPDATE records SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
             WHERE key = ?1 AND delivered_at IS NULL",
        )?;
        for j in jobs {
            for v in &j.batch.versions {
                ver.execute(params![v.name, v.version, v.file, v.source])?;
            }
            for (at, body) in &j.batch.events {
                ev.execute(params![at, body])?;
            }
            for r in &j.batch.records {
                rec.execute(params![r.key, r.conversation, r.body, r.created_at])?;
            }
            for (key, outcome) in &j.batch.deliveries {
                match outcome {
                    Ok(at) => ok.execute(params![key, at])?,
                    Err((err, next)) => fail.execute(params![key, err, next])?,
                };
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_records_and_deliveries_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let rec = |key: &str| NewRecord {
            key: key.into(),
            conversation: "c1".into(),
            body: r#"{"x":1}"#.into(),
            created_at: 5,
        };
        store
            .write_blocking(Batch {
                events: vec![(1, "a".into()), (2, "b".into())],
                records: vec![rec("c1/lead"), rec("c1/lead")],
                ..Default::default()
            })
            .unwrap();
        // Replays write the same key again: still one record.
        store
            .write_blocking(Batch {
                records: vec![rec("c1/lead"), rec("c1/deal")],
                ..Default::default()
            })
            .unwrap();
        let events = store.events().unwrap();
        assert_eq!(
            events.iter().map(|e| e.body.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(store.records(0, 10).unwrap().len(), 2);
        assert_eq!(store.due(0, 10).unwrap().len(), 2);
        store
            .write_blocking(Batch {
                deliveries: vec![
                    ("c1/lead".into(), Ok(9)),
                    ("c1/deal".into(), Err(("503".into(), 100))),
                ],
                ..Default::default()
            })
            .unwrap();
        let due = store.due(50, 10).unwrap();
        assert!(due.is_empty());
        assert_eq!(store.next_due().unwrap(), Some(100));
        let due = store.due(100, 10).unwrap();
        assert_eq!(due[0].key, "c1/deal");
        assert_eq!(due[0].attempts, 1);
        assert_eq!(due[0].last_error.as_deref(), Some("503"));
        let all = store.records(0, 10).unwrap();
        assert_eq!(all[0].delivered_at, Some(9));
        assert_eq!(all[0].body["x"], 1);
        drop(store);
        // Reopened: everything is still there.
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        assert_eq!(store.events().unwrap().len(), 2);
        assert_eq!(store.records(1, 10).unwrap().len(), 1);
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let err = Store::open(Path::new("/nonexistent-dir/x/db.sqlite")).unwrap_err();
        assert!(err.to_string().starts_with("storage:"), "{err}");
    }
}
