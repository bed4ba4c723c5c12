//! Migration of a data folder written by the first server (schema 1: an event log replayed
//! at every start) to per-conversation state (schema 2).
//!
//! The log is replayed **once**, exactly as the first server replayed it at start (timers due
//! before an event fire before it; the same playbook versions; the desk seeded from the
//! config), inside one unit of work whose changes — every conversation with all its lines,
//! records, agents' presence, pools — are written in the same transaction that marks the file
//! as schema 2 and keeps the log as `events_v1`. A copy of the file is made first and kept
//! beside it. Timers still pending are not fired here: the server fires them when it starts.
//!
//! Must not: run on a file of schema 2, or write anything outside that one transaction.
//!
//! Also here: [`backfill_stats`], the one-time count of the conversations and records a
//! database held before it kept analytics (schema 5).

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::desk::Presence;
use crate::engine::{Channel, Instant};
use crate::persist::sqlite::SqliteStore;
use crate::persist::{Commit, StoreError};
use crate::runtime::{Command, Hub, durable};

/// One event of the first server's log.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Logged {
    Start {
        id: String,
        playbook: String,
        version: i64,
        token: String,
        channel: Channel,
        #[serde(default)]
        page_url: Option<String>,
    },
    Cmd {
        id: String,
        cmd: Command,
    },
    Presence {
        agent: String,
        presence: Presence,
    },
}

/// What the migration did.
#[derive(Debug, Clone, Default)]
pub struct Migrated {
    /// Events replayed.
    pub events: usize,
    /// Events the replay refused (logged; the first server refused them too).
    pub refused: usize,
    /// Conversations written.
    pub conversations: usize,
    /// Where the copy of the old file is.
    pub backup: PathBuf,
}

/// Replays the log of `store` (opened as needing migration) into `hub` — which holds the
/// stored playbook versions and the desk from the config — and commits the result.
pub fn migrate(store: &SqliteStore, hub: &mut Hub) -> Result<Migrated, StoreError> {
    let backup = backup_path(store.path());
    std::fs::copy(store.path(), &backup).map_err(|e| {
        StoreError::Io(format!(
            "cannot copy {} to {} before migrating it: {e}",
            store.path().display(),
            backup.display()
        ))
    })?;
    let events = store.legacy_events()?;
    let mut done = Migrated {
        events: events.len(),
        backup,
        ..Migrated::default()
    };
    hub.begin();
    for ev in &events {
        let at = Instant(u64::try_from(ev.at).unwrap_or(0));
        hub.advance(at);
        let logged: Logged = match serde_json::from_str(&ev.body) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(seq = ev.seq, error = %e, "unreadable event in the old log, skipped");
                done.refused += 1;
                continue;
            }
        };
        let r = match logged {
            Logged::Start {
                id,
                playbook,
                version,
                token,
                channel,
                page_url,
            } => match hub.playbook_id(&playbook, version) {
                Some(pid) => hub
                    .start(
                        &id,
                        crate::runtime::StartOptions {
                            playbook: pid,
                            channel,
                            page_url,
                            contact_owner: None,
                            token: Some(token),
                            visitor: Default::default(),
                            said: None,
                        },
                        at,
                    )
                    .map(drop)
                    .map_err(|e| e.to_string()),
                None => Err(format!("unknown playbook {playbook} v{version}")),
            },
            Logged::Cmd { id, cmd } => hub.apply(&id, cmd, at).map(drop).map_err(|e| e.to_string()),
            Logged::Presence { agent, presence } => hub
                .apply("", Command::Presence { agent, presence }, at)
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = r {
            tracing::warn!(seq = ev.seq, error = %e, "event refused on migration (as on replay)");
            done.refused += 1;
        }
    }
    let changes = hub.seal();
    done.conversations = changes.convs.len();
    let mut commit: Commit = durable::commit(&changes)?;
    // Every agent's presence as the replay left it, so the config never reinterprets it.
    for (agent, presence) in hub.desk().agents() {
        commit
            .agents
            .push((agent.to_owned(), durable::presence_name(presence)?));
    }
    match store.finish_migration(&commit) {
        Ok(()) => {
            hub.keep();
            Ok(done)
        }
        Err(e) => {
            hub.rollback();
            Err(e)
        }
    }
}

fn backup_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".v1-backup");
    db.with_file_name(name)
}

/// Counts, once, what a database held before it kept analytics (schema 5): the
/// conversations up to the `ord` the migration noted ([`crate::persist::STATS_BACKFILL`],
/// claimed so that of replicas starting together one counts) and their records. What a stored
/// conversation still tells is counted: its start (by its last channel), how it ended (at its
/// card, with its outcome), its live chat's course (requested, queued, picked up and by whom,
/// timed out, closed) and its records by kind. Cards entered and links taken before the
/// migration were never stored, so those counts begin at the migration; durations too.
pub fn backfill_stats(store: &dyn crate::persist::Storage, hub: &Hub) -> Result<usize, StoreError> {
    use crate::desk::ConvState as Desk;
    use crate::engine::Phase;
    use crate::stats::{Key, Tally};
    let Some(upto) = store.take_meta(crate::persist::STATS_BACKFILL)? else {
        return Ok(0);
    };
    let upto: i64 = upto.parse().unwrap_or(0);
    let mut tally = Tally::default();
    let mut of: std::collections::HashMap<String, (String, i64)> = Default::default();
    let mut after = 0;
    loop {
        let rows = store.scan(after, upto, 1000)?;
        let Some(last) = rows.last() else { break };
        after = last.ord;
        for row in rows {
            let Ok(state) = serde_json::from_str::<crate::runtime::ConvState>(&row.state) else {
                continue;
            };
            let (pb, v) = (row.playbook.as_str(), row.version);
            let s = &state.session;
            tally.add(
                pb,
                v,
                s.started_at,
                &Key::Started(s.channel().name().into()),
            );
            if let Phase::Ended(o) = s.phase()
                && let Some(engine) = hub.playbook_id(pb, v).and_then(|id| hub.engine(id))
            {
                let card = engine.card_id(s).to_owned();
                tally.add(pb, v, state.updated_at, &Key::Ended(card, o));
                let channel = s.channel().name().into();
                tally.add(pb, v, state.updated_at, &Key::EndedOn(channel, o));
            }
            if let Some(d) = &state.desk {
                let at = if d.since.0 > 0 {
                    d.since
                } else {
                    state.updated_at
                };
                let mut keys = vec![Key::LiveRequested, Key::LiveQueued];
                match &d.state {
                    Desk::Unassigned => {}
                    Desk::Assigned(a) => {
                        keys.extend([Key::LivePickedUp, Key::Handled(a.clone())]);
                    }
                    Desk::Closed(a) => {
                        keys.extend([Key::LivePickedUp, Key::Handled(a.clone()), Key::LiveClosed])
                    }
                    Desk::TimedOut => keys.push(Key::LiveTimedOut),
                }
                for k in &keys {
                    tally.add(pb, v, at, k);
                }
            }
            of.insert(row.id, (row.playbook, row.version));
        }
    }
    let counted = of.len();
    let mut after = 0;
    loop {
        let rows = store.records(after, 1000)?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for r in rows {
            let (Some((pb, v)), Ok(stored)) = (
                of.get(&r.conversation),
                serde_json::from_value::<crate::capture::Stored>(r.body),
            ) else {
                continue;
            };
            let kind = match stored.record.data {
                crate::capture::RecordData::Lead(_) => "lead",
                crate::capture::RecordData::Deal(_) => "deal",
                crate::capture::RecordData::Activity(_) => "activity",
            };
            tally.add(pb, *v, stored.record.created_at, &Key::Record(kind.into()));
        }
    }
    let stats = tally
        .rows()
        .map(|(p, v, d, k, n)| (p.to_owned(), v, d, k.to_owned(), n))
        .collect();
    store.commit(&Commit {
        stats,
        ..Commit::default()
    })?;
    Ok(counted)
}
