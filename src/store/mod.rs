//! Session stores: where a driver keeps each conversation's [`Session`] between two events.
//!
//! A server loads a conversation's session when an event for it arrives, feeds the event to
//! the engine and stores the session again; other conversations run in between. This module
//! owns that get/put contract ([`SessionStore`]) and two in-memory stores:
//!
//! - [`MemoryStore`] keeps sessions **as values** (no serialization): a `get` clones the stored
//!   session, a `put` moves the new one in, an `update` changes it in place.
//! - [`SerializedStore`] keeps each session **serialized as JSON** (serde_json): a `put`
//!   serializes, a `get` deserializes, as a store that persists state must.
//!
//! **Must not:** touch files, sockets or clocks, or know about playbooks beyond the
//! [`Session`] type. Durable stores (SQLite) implement the same trait elsewhere.

mod memory;
mod serialized;

pub use memory::MemoryStore;
pub use serialized::SerializedStore;

use crate::engine::Session;

/// Why a store could not load or save a session.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A stored session could not be read back (corrupt or from another version).
    #[error("the session of `{id}` cannot be decoded: {source}")]
    Decode {
        /// The conversation id.
        id: String,
        /// What the decoder said.
        source: serde_json::Error,
    },
    /// A session could not be encoded.
    #[error("the session of `{id}` cannot be encoded: {source}")]
    Encode {
        /// The conversation id.
        id: String,
        /// What the encoder said.
        source: serde_json::Error,
    },
}

/// Sessions by conversation id.
///
/// `get` returns the session as last `put` (an independent value: changing it changes nothing
/// in the store until it is `put` back); `None` for an id never stored.
pub trait SessionStore {
    /// The session stored under `id`, if any.
    fn get(&mut self, id: &str) -> Result<Option<Session>, StoreError>;
    /// Stores `session` under `id`, replacing what was there.
    fn put(&mut self, id: &str, session: Session) -> Result<(), StoreError>;
    /// How many conversations are stored.
    fn len(&self) -> usize;
    /// Whether nothing is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether this store serializes sessions (as a durable store would).
    fn serializes(&self) -> bool;

    /// Lets `f` change the session stored under `id` in place (`None` if there is none:
    /// nothing is stored then; new sessions go in with [`put`](Self::put)). The same as a
    /// `get`, `f` and a `put` of the result, which is what the default does; a store that
    /// keeps values skips the copy and the second lookup.
    fn update<R>(
        &mut self,
        id: &str,
        f: impl FnOnce(Option<&mut Session>) -> R,
    ) -> Result<R, StoreError>
    where
        Self: Sized,
    {
        match self.get(id)? {
            None => Ok(f(None)),
            Some(mut s) => {
                let r = f(Some(&mut s));
                self.put(id, s)?;
                Ok(r)
            }
        }
    }
}
