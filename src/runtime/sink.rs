//! Where committed records go: out to the world.
//!
//! The hub's [`crate::capture::Ledger`] already deduplicates by idempotency key within one
//! process; a sink that outlives the process (a file, a CRM) must also refuse a key it took
//! before a restart. Must not: build or change records, or decide ownership.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::capture::Stored;

/// Why a sink did not take a record.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Reading or writing failed.
    #[error("record sink {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A record could not be encoded.
    #[error("record sink: cannot encode record: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Receives each record the ledger accepted as new, once.
pub trait RecordSink: Send {
    /// Delivers a record. Must be idempotent by `stored.record.key`.
    fn put(&mut self, stored: &Stored) -> Result<(), SinkError>;
}

/// Drops every record (the ledger still keeps them).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl RecordSink for NullSink {
    fn put(&mut self, _: &Stored) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Keeps records in memory, once per key; clones share the same store.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    inner: std::sync::Arc<std::sync::Mutex<(Vec<Stored>, HashSet<String>)>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The records taken so far, in order.
    pub fn records(&self) -> Vec<Stored> {
        self.lock().0.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Stored>, HashSet<String>)> {
        // A panic elsewhere while holding the lock leaves plain data intact: keep going.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RecordSink for MemorySink {
    fn put(&mut self, stored: &Stored) -> Result<(), SinkError> {
        let mut g = self.lock();
        if g.1.insert(stored.record.key.clone()) {
            g.0.push(stored.clone());
        }
        Ok(())
    }
}

/// Appends one JSON object per line (a [`Stored`]: `{"record":{…},"transcript":[…]}`) to a
/// file, flushing after each. On open it reads the keys already in the file, so a record
/// written before a restart is not written again. Lines it cannot parse (a torn last line
/// after a crash) are skipped when reading keys.
#[derive(Debug)]
pub struct JsonLinesSink {
    path: PathBuf,
    file: File,
    keys: HashSet<String>,
}

impl JsonLinesSink {
    /// Opens (or creates) the file and reads the keys it holds.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SinkError::Io {
            path: path.clone(),
            source,
        };
        let mut keys = HashSet::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(io)?;
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                        && let Some(k) = v.pointer("/record/key").and_then(|k| k.as_str())
                    {
                        keys.insert(k.to_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(JsonLinesSink { path, file, keys })
    }

    /// How many distinct keys the file holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the file holds no record.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl RecordSink for JsonLinesSink {
    fn put(&mut self, stored: &Stored) -> Result<(), SinkError> {
        if self.keys.contains(&stored.record.key) {
            return Ok(());
        }
        let mut line = serde_json::to_string(stored)?;
        line.push('\n');
        // One write per line keeps lines whole for readers that tail the file.
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| SinkError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.keys.insert(stored.record.key.clone());
        Ok(())
    }
}
