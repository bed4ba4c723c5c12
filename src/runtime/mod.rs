//! The runtime: what turns the sans-I/O engine into running conversations.
//!
//! - [`Hub`] (synchronous, deterministic): many conversations over one or more engines, the
//!   desk, the ledger, transcripts, a timer queue, and a [`RecordSink`]. Every driver — the
//!   scenario runner, `playbook run`, the tokio [`driver`], a server — goes through it, so the
//!   rules for keeping engine, desk and ledger in step live in one place.
//! - [`Command`]: the one input vocabulary every driver feeds [`Hub::apply`] (visitor, agent
//!   and desk inputs, fully resolved); what comes out is [`Outputs`]: the engine's own
//!   [`crate::engine::Effect`]s made owned, desk notifications and new records.
//! - [`sink`]: where committed records go (memory, a JSON-lines file).
//! - [`driver`]: a tokio task holding a hub, with ONE real timer for the whole hub.
//!
//! Must not: decide anything the engine or the desk decides (the hub only orders calls and
//! routes effects), read a clock (the hub takes `now`; only the driver reads tokio time), or
//! use randomness (conversation ids come from the caller).

pub mod driver;
pub mod durable;
mod hub;
pub mod sink;
mod types;

pub use hub::{
    Changes, ConvChange, ConvState, Hub, HubError, Loaded, PlaybookId, RecordMemory, Snapshot,
    StartOptions, ct_eq,
};
pub use sink::{JsonLinesSink, MemorySink, NullSink, RecordSink, SinkError};
pub use types::{Command, ConvUpdate, Emitted, Outputs, Visitor};
