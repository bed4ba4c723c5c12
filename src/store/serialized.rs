//! [`SerializedStore`]: every session serialized (JSON) on put and deserialized on get.

use std::collections::HashMap;

use super::{SessionStore, StoreError};
use crate::engine::Session;

/// Sessions kept as JSON bytes (serde_json), as a store that persists them would keep them:
/// every `put` serializes the session, every `get` deserializes it again. Nothing of a
/// [`Session`] value survives between two turns, so a driver using this store pays what a
/// durable store pays for encoding (the I/O aside).
#[derive(Debug, Default)]
pub struct SerializedStore {
    sessions: HashMap<Box<str>, Box<[u8]>>,
    /// Reused encoding buffer; each stored session is copied out at its exact size.
    scratch: Vec<u8>,
}

impl SerializedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The stored JSON of a conversation, for inspection.
    pub fn raw(&self, id: &str) -> Option<&[u8]> {
        self.sessions.get(id).map(|b| &b[..])
    }
}

impl SessionStore for SerializedStore {
    fn get(&mut self, id: &str) -> Result<Option<Session>, StoreError> {
        let Some(bytes) = self.sessions.get(id) else {
            return Ok(None);
        };
        serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|source| StoreError::Decode {
                id: id.to_owned(),
                source,
            })
    }

    fn put(&mut self, id: &str, session: Session) -> Result<(), StoreError> {
        self.scratch.clear();
        serde_json::to_writer(&mut self.scratch, &session).map_err(|source| {
            StoreError::Encode {
                id: id.to_owned(),
                source,
            }
        })?;
        match self.sessions.get_mut(id) {
            // Same size as before (common: a turn changes a few digits): overwrite in place.
            Some(slot) if slot.len() == self.scratch.len() => slot.copy_from_slice(&self.scratch),
            Some(slot) => *slot = self.scratch.as_slice().into(),
            None => {
                self.sessions
                    .insert(id.into(), self.scratch.as_slice().into());
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.sessions.len()
    }

    fn serializes(&self) -> bool {
        true
    }
}
