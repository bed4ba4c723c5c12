//! The hub's changes as the store's rows, and stored rows as conversations to put back: the
//! one place that knows both the runtime's types and the storage layout.
//!
//! Must not: talk to a store (the driver does), or decide anything.

use super::hub::{Changes, ConvState, Hub, Loaded};
use crate::capture::Line;
use crate::desk::ConvState as DeskState;
use crate::engine::{Phase, TimerKind};
use crate::persist::{Commit, ConvRow, ConvWrite, DeskColumn, NewRecord, StoreError};

/// Meta keys the runtime keeps in the store.
pub mod meta {
    /// The desk's entry counter.
    pub const DESK_SEQ: &str = "desk_seq";
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Io(format!("cannot encode state: {e}")))
}

/// The stored name of a timer kind.
pub fn timer_kind(k: TimerKind) -> &'static str {
    match k {
        TimerKind::Wait => "wait",
        TimerKind::Idle => "idle",
        TimerKind::IdleCapture => "idle_capture",
    }
}

fn encode_lines(lines: &[(u64, Line)]) -> Result<Vec<(i64, String)>, StoreError> {
    lines
        .iter()
        .map(|(seq, l)| Ok((*seq as i64, encode(l)?)))
        .collect()
}

/// The rows a unit's changes become.
pub fn commit(ch: &Changes) -> Result<Commit, StoreError> {
    let mut c = Commit::default();
    for conv in &ch.convs {
        let desk = conv.state.desk.as_ref().map(|d| match &d.state {
            DeskState::Unassigned => (DeskColumn::Unassigned, None),
            DeskState::Assigned(a) => (DeskColumn::Assigned, Some(a.clone())),
            DeskState::Closed(a) => (DeskColumn::Closed, Some(a.clone())),
            DeskState::TimedOut => (DeskColumn::TimedOut, None),
        });
        let (column, agent) = match desk {
            Some((col, agent)) => (Some(col), agent),
            None => (None, None),
        };
        c.convs.push(ConvWrite {
            row: ConvRow {
                id: conv.id.clone(),
                ord: conv.ord as i64,
                playbook: conv.playbook.0.clone(),
                version: conv.playbook.1,
                rev: conv.rev as i64,
                ended: matches!(conv.state.session.phase(), Phase::Ended(_) | Phase::Failed),
                desk: column,
                agent,
                updated_at: conv.state.updated_at.0 as i64,
                lines: conv.line_count as i64,
                tail: encode_lines(&conv.tail)?,
                next_due: conv.next_due.map(|at| at.0 as i64),
                state: encode(&conv.state)?,
            },
            flush: encode_lines(&conv.flush)?,
        });
    }
    for s in &ch.records {
        c.records.push(NewRecord {
            key: s.record.key.clone(),
            conversation: s.record.conversation.clone(),
            body: encode(s)?,
            created_at: s.record.created_at.0 as i64,
        });
    }
    c.agents = ch
        .agents
        .iter()
        .map(|(a, p)| Ok((a.clone(), presence_name(*p)?)))
        .collect::<Result<_, StoreError>>()?;
    c.loads = ch
        .loads
        .iter()
        .map(|(a, b, n)| crate::persist::LoadChange {
            agent: a.clone(),
            before: load_row(*b),
            after: load_row(*n),
        })
        .collect();
    c.pools = ch
        .pools
        .iter()
        .map(|(p, b, n)| (p.clone(), *b as i64, *n as i64))
        .collect();
    c.stats = ch
        .stats
        .rows()
        .map(|(p, v, d, k, n)| (p.to_owned(), v, d, k.to_owned(), n))
        .collect();
    if let Some(seq) = ch.desk_seq {
        c.meta.push((meta::DESK_SEQ.to_owned(), seq.to_string()));
    }
    Ok(c)
}

/// An agent's load as stored: `(open, last)`.
pub fn load_row(l: crate::desk::Load) -> (i64, i64) {
    (i64::from(l.open), i64::try_from(l.last).unwrap_or(i64::MAX))
}

/// An agent's load from its stored `(open, last)`.
pub fn load_of((open, last): (i64, i64)) -> crate::desk::Load {
    crate::desk::Load {
        open: u32::try_from(open).unwrap_or(0),
        last: u64::try_from(last).unwrap_or(0),
    }
}

/// The stored text of a presence (`online`, `away`, `offline`).
pub fn presence_name(p: crate::desk::Presence) -> Result<String, StoreError> {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        _ => Err(StoreError::Io("cannot encode a presence".into())),
    }
}

/// A presence from its stored text.
pub fn presence_of(s: &str) -> Option<crate::desk::Presence> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}

/// Why a stored conversation cannot be put back.
fn unreadable(id: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("conversation `{id}` cannot be read back: {what}"))
}

/// A stored conversation, ready for [`Hub::insert`].
pub fn loaded(hub: &Hub, row: ConvRow, lines: Vec<String>) -> Result<Loaded, StoreError> {
    let playbook = hub.playbook_id(&row.playbook, row.version).ok_or_else(|| {
        unreadable(
            &row.id,
            format_args!(
                "its playbook {} version {} is not loaded",
                row.playbook, row.version
            ),
        )
    })?;
    let state: ConvState = serde_json::from_str(&row.state).map_err(|e| unreadable(&row.id, e))?;
    let lines = lines
        .iter()
        .map(|l| serde_json::from_str::<Line>(l))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&row.id, e))?;
    let flushed = (lines.len() - row.tail.len().min(lines.len())) as u64;
    Ok(Loaded {
        id: row.id,
        ord: u64::try_from(row.ord).unwrap_or(0),
        playbook,
        rev: u64::try_from(row.rev).unwrap_or(0),
        state,
        lines,
        flushed,
    })
}
