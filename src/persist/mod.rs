//! Durable storage of the server: each conversation's **current state** (one row, with a
//! revision number), its append-only transcript lines, its pending timers, the desk's agents
//! and pools, the playbook versions conversations run on, and the CRM records with their
//! outbox delivery state.
//!
//! **Design.** The server stores state, not inputs: an event is applied to a copy of the
//! conversation in memory, and everything it changed — the conversation's new row, its new
//! lines, its timers, new records, agents' presence, pool cursors — is written as ONE
//! [`Commit`] in one transaction. Only when that commit is durable does the caller keep the
//! new state, answer and push to sockets; a failed commit changes nothing anywhere. Nothing
//! is ever replayed, so a new config, binary or playbook file never reinterprets history.
//!
//! **Serialization per conversation.** Every conversation row carries `rev`; a commit writes
//! revision `rev` only over `rev - 1` (or inserts revision 1), so two writers that stepped the
//! same state can never both win ([`StoreError::Conflict`]). One process uses it as a
//! safety net; several replicas on one database (PostgreSQL) rely on it.
//!
//! **Few pages per turn.** A turn of a conversation that is still going writes ONE row: its
//! newest lines ride in the row (`tail`) and its earliest timer is a column (`next_due`,
//! indexed); the lines move to the append-only `lines` table in bulk when the tail is long or
//! the conversation ends. (Rows of lines and timers of their own cost 3–5 scattered pages per
//! turn and most of the write volume.)
//!
//! **Timers and the outbox are rows** any worker can claim: conversations by `next_due` (with
//! `lease_until` for a claim), and `records (…, next_attempt_at, delivered_at)`.
//!
//! The [`Storage`] trait is the interface a backend implements; [`sqlite::SqliteStore`] is the
//! embedded default (one file, WAL). Bodies are JSON text owned by the layer above (the
//! runtime): this module never parses a session or a line.
//!
//! Must not: know about HTTP or the engine, or decide anything about conversations. (tokio
//! only as the PostgreSQL client's runtime and the channel of [`Change`]s.)

pub mod postgres;
pub mod sqlite;

use serde::Serialize;

pub use postgres::{PgOptions, PgStore};
pub use sqlite::{SqliteOptions, SqliteStore};

/// The meta key a migration to analytics (version 5) leaves on a database that already held
/// conversations: the highest `ord` then, whose conversations a server counts once
/// ([`Storage::take_meta`] claims it).
pub const STATS_BACKFILL: &str = "stats_backfill";

/// The schema version this release writes. A database with a higher one is refused.
pub const SCHEMA_VERSION: i64 = 7;

/// A storage failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be read or written (unwritable path, full disk, a lock held
    /// too long by another process, a corrupt file).
    #[error("storage: {0}")]
    Io(String),
    /// Another writer changed it first (a conversation, a pool's cursor, a unique key):
    /// nothing was written. Says what.
    #[error("storage: {0} was changed by another writer")]
    Conflict(String),
    /// The database was written by a newer release.
    #[error(
        "storage: the database has schema version {found}, written by a newer release of playbook; this release reads version {SCHEMA_VERSION} (upgrade playbook, or point --data at another folder)"
    )]
    TooNew {
        /// The version found.
        found: i64,
    },
    /// Another process has the data folder open.
    #[error(
        "storage: the data folder {0} is in use by another `playbook serve` (only one server may use a data folder)"
    )]
    Locked(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Io(e.to_string())
    }
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

/// Where a conversation is on the desk, as a column (indexed: the open set is read by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeskColumn {
    /// Waiting in Unassigned.
    Unassigned,
    /// With an agent.
    Assigned,
    /// Closed by an agent.
    Closed,
    /// Nobody picked it up in time.
    TimedOut,
}

impl DeskColumn {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            DeskColumn::Unassigned => "unassigned",
            DeskColumn::Assigned => "assigned",
            DeskColumn::Closed => "closed",
            DeskColumn::TimedOut => "timed_out",
        }
    }

    fn parse(s: &str) -> Option<DeskColumn> {
        Some(match s {
            "unassigned" => DeskColumn::Unassigned,
            "assigned" => DeskColumn::Assigned,
            "closed" => DeskColumn::Closed,
            "timed_out" => DeskColumn::TimedOut,
            _ => return None,
        })
    }
}

/// One conversation's row: what is queried by column, and its state as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvRow {
    /// The conversation id.
    pub id: String,
    /// Start order, unique: ties between timers due at the same instant break by it. Rows and
    /// lines are keyed by it.
    pub ord: i64,
    /// Playbook name.
    pub playbook: String,
    /// Playbook version.
    pub version: i64,
    /// The revision this row holds (1 for a new conversation, +1 per commit).
    pub rev: i64,
    /// Whether the conversation has ended (ended ones are never loaded at start).
    pub ended: bool,
    /// Where it is on the desk, if it ever reached it.
    pub desk: Option<DeskColumn>,
    /// The agent handling (or who closed) it.
    pub agent: Option<String>,
    /// The last change (ms since the epoch).
    pub updated_at: i64,
    /// How many transcript lines it has (in `lines` and in `tail`).
    pub lines: i64,
    /// Its newest lines, not yet in the `lines` table: `(seq, JSON)`, oldest first.
    pub tail: Vec<(i64, String)>,
    /// Its earliest pending timer (ms since the epoch), if any.
    pub next_due: Option<i64>,
    /// The rest of its state (session, counters, visitor token …), as JSON owned by the
    /// runtime.
    pub state: String,
}

/// A conversation's part of a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvWrite {
    /// The new row (its `rev` is the new revision).
    pub row: ConvRow,
    /// Lines moving from the tail to the `lines` table now: `(seq from 1, JSON)`.
    pub flush: Vec<(i64, String)>,
}

/// A record to write.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Everything one group of accepted events stores, written atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// Conversations changed or started.
    pub convs: Vec<ConvWrite>,
    /// Records made (an existing key is left alone).
    pub records: Vec<NewRecord>,
    /// Agents' presence: `(agent, presence)`.
    pub agents: Vec<(String, String)>,
    /// Agents' loads (open chats, last automatic assignment). A shared backend moves a load
    /// only from `before` (else [`StoreError::Conflict`]), so two replicas never both give an
    /// agent their last free place.
    pub loads: Vec<LoadChange>,
    /// Pools' round-robin cursors: `(pool, before, next)`. A shared backend moves a cursor
    /// only from `before` (else [`StoreError::Conflict`]), so replicas take turns a, b, c.
    pub pools: Vec<(String, i64, i64)>,
    /// Counters and settings: `(key, value)`.
    pub meta: Vec<(String, String)>,
    /// Analytics counters to add to: `(playbook, version, day, key, n)`.
    pub stats: Vec<(String, i64, i64, String, i64)>,
    /// New playbook versions.
    pub versions: Vec<VersionRow>,
    /// Opaque messages for the other replicas' listeners ([`Change::Notice`]), sent when the
    /// commit is (a store without replicas drops them).
    pub notices: Vec<String>,
    /// Social contacts linked to a conversation (schema version 6).
    pub channel_links: Vec<ChannelLink>,
    /// Social message ids applied: `(channel, message id, conversation)`. A message id
    /// already stored fails the whole commit ([`StoreError::Conflict`]), so one delivered
    /// twice is never applied twice, even by racing replicas.
    pub channel_messages: Vec<(String, String, String)>,
    /// Link codes issued and spent (schema version 7). Spending a code already spent fails
    /// the whole commit ([`StoreError::Conflict`]): a code links one contact, once.
    pub channel_codes: Vec<CodeChange>,
}

/// A change to the one-time codes that link a social contact to a web conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeChange {
    /// A new code for `conversation` on `channel`.
    Issue {
        /// The code.
        code: String,
        /// `whatsapp`, `messenger` or `instagram`.
        channel: String,
        /// The conversation it links to.
        conversation: String,
        /// When (ms since the epoch).
        at: i64,
    },
    /// The code made its link: it links nothing again.
    Spend {
        /// The code.
        code: String,
        /// When (ms since the epoch).
        at: i64,
    },
}

/// A link code as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// `whatsapp`, `messenger` or `instagram`.
    pub channel: String,
    /// The conversation it links to.
    pub conversation: String,
    /// When it was issued (ms since the epoch).
    pub created_at: i64,
    /// Whether it made its link already.
    pub spent: bool,
}

/// A social contact (a WhatsApp number, a page-scoped id) linked to a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelLink {
    /// `whatsapp`, `messenger` or `instagram`.
    pub channel: String,
    /// The contact's id on that channel.
    pub contact: String,
    /// The conversation it now continues; `None` unlinks the contact (its next message
    /// starts a new conversation).
    pub conversation: Option<String>,
    /// The conversation it was linked to before, which must still be the stored one (else
    /// [`StoreError::Conflict`]); `None` for a contact never linked (a stored link then
    /// conflicts): two racing deliveries never both start a conversation.
    pub replaces: Option<String>,
    /// When (ms since the epoch).
    pub at: i64,
}

/// The delivery state of one outbound line to a social channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSend {
    /// The line's sequence number in its conversation.
    pub seq: i64,
    /// `sent`, `held` (a channel rule kept it back), `failed` (refused for good) or
    /// `retry` (to be tried again).
    pub status: String,
    /// Attempts so far.
    pub attempts: i64,
    /// The last error or why it was held.
    pub last_error: Option<String>,
}

impl Commit {
    /// Whether it writes nothing.
    pub fn is_empty(&self) -> bool {
        self.convs.is_empty()
            && self.records.is_empty()
            && self.agents.is_empty()
            && self.loads.is_empty()
            && self.pools.is_empty()
            && self.meta.is_empty()
            && self.stats.is_empty()
            && self.versions.is_empty()
            && self.channel_links.is_empty()
            && self.channel_messages.is_empty()
            && self.channel_codes.is_empty()
    }

    /// Adds another commit's writes after this one's.
    pub fn extend(&mut self, other: Commit) {
        self.convs.extend(other.convs);
        self.records.extend(other.records);
        self.agents.extend(other.agents);
        self.loads.extend(other.loads);
        self.pools.extend(other.pools);
        self.meta.extend(other.meta);
        self.stats.extend(other.stats);
        self.versions.extend(other.versions);
        self.notices.extend(other.notices);
        self.channel_links.extend(other.channel_links);
        self.channel_messages.extend(other.channel_messages);
        self.channel_codes.extend(other.channel_codes);
    }
}

/// An agent's load moving: `(open, last)` before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadChange {
    /// The agent.
    pub agent: String,
    /// As read.
    pub before: (i64, i64),
    /// As written.
    pub after: (i64, i64),
}

/// What a server needs in memory at start: what is open, not what happened.
#[derive(Debug, Clone, Default)]
pub struct OpenSet {
    /// Conversations waiting in Unassigned or with an agent, with their lines.
    pub conversations: Vec<(ConvRow, Vec<String>)>,
    /// The other conversations with a pending timer, not loaded: `(id, ord, next_due)`,
    /// earliest first. A server loads each when its timer is due.
    pub parked: Vec<(String, i64, i64)>,
    /// Agents' stored presence: `(agent, presence)`.
    pub agents: Vec<(String, String)>,
    /// Agents' stored loads: `(agent, open, last)`.
    pub loads: Vec<(String, i64, i64)>,
    /// Pools' stored cursors.
    pub pools: Vec<(String, i64)>,
    /// Counters and settings.
    pub meta: Vec<(String, String)>,
    /// The highest `ord` given so far.
    pub max_ord: i64,
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
    /// Whether the record is parked: a CRM refused it (`last_error` says why) and it is not
    /// tried again until the server restarts or reloads ([`Storage::unpark`]).
    pub parked: bool,
}

/// The `next_attempt_at` of a parked record: never due, so no claim or replica takes it.
pub const PARKED: i64 = i64::MAX;

/// One step of a record's delivery to one CRM connector, as stored: `vendor_id` is `None`
/// while the step is begun but its answer was not stored (a crash or a timeout may have
/// created it at the vendor: the connector searches before creating again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmStep {
    /// The step (`person`, `lead`, `note` …), named by the connector.
    pub step: String,
    /// The vendor's id of what the step made, once known.
    pub vendor_id: Option<String>,
}

/// A delivery outcome: delivered at this time, or failed with this error and retried at
/// this time.
pub type Delivery = Result<i64, (String, i64)>;

/// Something another replica committed, or a sign that some such news may have been missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These conversations changed (read them from the store).
    Conversations(Vec<String>),
    /// A commit's [notice](Commit::notices).
    Notice(String),
    /// The listening connection was (re)opened: changes made meanwhile were not announced,
    /// so whatever is shown should be read again.
    Resync,
}

/// The desk-wide rows: agents' presence and loads, and pools' cursors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeskRows {
    /// `(agent, presence)`.
    pub agents: Vec<(String, String)>,
    /// `(agent, open, last)`.
    pub loads: Vec<(String, i64, i64)>,
    /// `(pool, next)`.
    pub pools: Vec<(String, i64)>,
}

/// A storage backend. Every method is blocking; async callers run them on a blocking thread.
pub trait Storage: Send + Sync + 'static {
    /// Whether other processes may write the same database at the same time (replicas on
    /// PostgreSQL). A driver on a shared store keeps nothing in memory between commits, reads
    /// every conversation fresh, reserves start orders, and claims due timers.
    fn shared(&self) -> bool {
        false
    }
    /// What other replicas commit, as they commit it; `None` for a store nobody else writes.
    /// (A wake-up only: what changed is read from the store.)
    fn changes(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Change>> {
        None
    }
    /// Checks the database answers (`/healthz`).
    fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Several conversations with their lines (those stored; any order).
    fn conversations(&self, ids: &[String]) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.conversation(id)?);
        }
        Ok(out)
    }
    /// Agents' presence and pools' cursors as stored now.
    fn desk_rows(&self) -> Result<DeskRows, StoreError>;
    /// The ids of the conversations waiting in Unassigned, in line order (as
    /// [`Storage::desk_queue`] lists them), at most `limit`: the queue positions.
    fn queue_ids(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(self
            .desk_queue(None, limit)?
            .into_iter()
            .map(|(row, _)| row.id)
            .collect())
    }
    /// Conversations waiting in Unassigned, or with `agent`, in start order (oldest first),
    /// at most `limit`.
    fn desk_queue(
        &self,
        agent: Option<&str>,
        limit: i64,
    ) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError>;
    /// Claims conversations whose earliest timer is due at `now` and that no other worker
    /// holds: each is held until `now + lease_ms` (a worker that dies lets go when the lease
    /// runs out; the next commit of the conversation clears it). Returns `(id, ord,
    /// next_due)`, earliest first. A store that is not shared has nothing to claim.
    fn claim_timers(
        &self,
        _now: i64,
        _lease_ms: i64,
        _limit: i64,
    ) -> Result<Vec<(String, i64, i64)>, StoreError> {
        Ok(Vec::new())
    }
    /// Reserves `n` start orders for this process alone; returns the first. Only shared stores
    /// need it (one process numbers its own starts).
    fn reserve_ords(&self, n: i64) -> Result<i64, StoreError> {
        let _ = n;
        Err(StoreError::Io(
            "this store does not reserve start orders".into(),
        ))
    }
    /// Writes a commit in one transaction: all of it or nothing.
    fn commit(&self, commit: &Commit) -> Result<(), StoreError>;
    /// What a server loads at start.
    fn open_set(&self) -> Result<OpenSet, StoreError>;
    /// One conversation with its lines, if stored.
    fn conversation(&self, id: &str) -> Result<Option<(ConvRow, Vec<String>)>, StoreError>;
    /// Conversations in a desk column (Closed, say), newest change first, at most `limit`.
    fn desk_folder(
        &self,
        column: DeskColumn,
        limit: i64,
    ) -> Result<Vec<(ConvRow, Vec<String>)>, StoreError>;
    /// Every playbook version, oldest first per name.
    fn versions(&self) -> Result<Vec<VersionRow>, StoreError>;
    /// Records with `id > after`, oldest first, at most `limit`.
    fn records(&self, after: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError>;
    /// The records of one conversation, oldest first.
    fn records_of(&self, conversation: &str) -> Result<Vec<RecordRow>, StoreError>;
    /// Undelivered records whose next attempt is due at `now`, oldest first. A shared store
    /// claims them: their next attempt moves to `now + lease_ms`, so no other replica takes
    /// them meanwhile (one that dies lets go when the lease runs out).
    fn due(&self, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<RecordRow>, StoreError>;
    /// The earliest next attempt of an undelivered record.
    fn next_due(&self) -> Result<Option<i64>, StoreError>;
    /// Stores delivery outcomes: `(key, outcome)`.
    fn deliveries(&self, outcomes: &[(String, Delivery)]) -> Result<(), StoreError>;
    /// Removes a meta key and returns its value, atomically: of replicas racing, one gets it
    /// (a one-time job's claim).
    fn take_meta(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Conversations with `after < ord <= upto`, by `ord`, at most `limit`, without lines.
    fn scan(&self, after: i64, upto: i64, limit: i64) -> Result<Vec<ConvRow>, StoreError>;
    /// A playbook's analytics counters (one version, or all) of days `from..=to`:
    /// `(day, key, n)`, summed over versions, ordered by day and key.
    fn stats(
        &self,
        playbook: &str,
        version: Option<i64>,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String, i64)>, StoreError>;
    /// The stored steps of record `key` at CRM connector `connector` (schema version 4).
    fn crm_steps(&self, key: &str, connector: &str) -> Result<Vec<CrmStep>, StoreError>;
    /// Stores one step of record `key` at `connector` in one write: begun (`vendor_id`
    /// `None`, written before the vendor is asked) or done with the vendor's id. A done step
    /// is never changed back.
    fn crm_step(
        &self,
        key: &str,
        connector: &str,
        step: &str,
        vendor_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Parks an undelivered record with this error: counted as an attempt, never due
    /// until [`Storage::unpark`].
    fn park(&self, key: &str, error: &str) -> Result<(), StoreError>;
    /// Makes every parked record due at `now` (a restart or reload: the mapping or the CRM
    /// may have been fixed); returns how many.
    fn unpark(&self, now: i64) -> Result<u64, StoreError>;
    /// The conversation a social contact is linked to (schema version 6).
    fn channel_contact(&self, channel: &str, contact: &str) -> Result<Option<String>, StoreError>;
    /// Whether a social message id was applied already.
    fn channel_message_seen(&self, channel: &str, id: &str) -> Result<bool, StoreError>;
    /// Every link: `(channel, contact, conversation)`, oldest first.
    fn channel_links(&self) -> Result<Vec<(String, String, String)>, StoreError>;
    /// The delivery state of a conversation's outbound lines, by `seq`.
    fn channel_sends(&self, conversation: &str) -> Result<Vec<ChannelSend>, StoreError>;
    /// Stores one line's delivery state, replacing the one stored.
    fn channel_send(
        &self,
        conversation: &str,
        send: &ChannelSend,
        at: i64,
    ) -> Result<(), StoreError>;
    /// Claims line `seq` of a conversation for sending at `now`: `true` when this worker may
    /// send it — it was never tried, is to be retried, or was being sent by a worker whose
    /// claim is older than `lease_ms` (a crash). Marks it `sending`, one attempt more.
    fn channel_claim(
        &self,
        conversation: &str,
        seq: i64,
        now: i64,
        lease_ms: i64,
    ) -> Result<bool, StoreError>;
    /// The channel and contact a conversation is linked to, if any.
    fn channel_link_of(&self, conversation: &str) -> Result<Option<(String, String)>, StoreError>;
    /// A link code, if issued (schema version 7).
    fn channel_code(&self, code: &str) -> Result<Option<LinkCode>, StoreError>;
}

/// The tail as stored: a JSON array of `[seq, line]` pairs, the lines being JSON already.
pub(crate) fn encode_tail(tail: &[(i64, String)]) -> String {
    let mut out = String::from("[");
    for (i, (seq, body)) in tail.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        out.push_str(&seq.to_string());
        out.push(',');
        out.push_str(body);
        out.push(']');
    }
    out.push(']');
    out
}

pub(crate) fn decode_tail(text: &str) -> Vec<(i64, String)> {
    // Each element is `[seq, line]`; the line is kept as its JSON text.
    serde_json::from_str::<Vec<(i64, Box<serde_json::value::RawValue>)>>(text)
        .map(|v| {
            v.into_iter()
                .map(|(s, l)| (s, l.get().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
