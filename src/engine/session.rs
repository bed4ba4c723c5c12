//! One conversation's state: small, plain, serde.
//!
//! Layout, chosen so that a parked session costs well under 128 bytes: card and counters are
//! integers, timers are two deadlines, and every string the session holds (conversation id,
//! page URL, contact owner, handling agent, the visitor's answers) lives in ONE packed heap
//! buffer ([`Vars`]) keyed by small integers. Keys and card indices refer to the compiled
//! playbook, so a stored session must be resumed with the same playbook.

use std::borrow::Cow;

use serde::de::{SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::{Channel, Instant, Timer, TimerKind};
use crate::CardIx;
use crate::model::Outcome;

/// Where a conversation is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started: only [`super::Event::Start`] is accepted.
    #[default]
    New,
    /// Waiting for the visitor to answer the question, ask or consent card at `card`.
    Asking,
    /// At a live-chat card, waiting in Unassigned for an agent to pick it up.
    Queued,
    /// An agent handles the conversation.
    Live,
    /// Over, with this outcome.
    Ended(Outcome),
    /// Stopped with an error (the step limit).
    Failed,
}

/// What a session is waiting for, as [`Session::status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started yet.
    New,
    /// Waiting for the visitor, an agent or a timer.
    Waiting,
    /// Ended with an outcome.
    Ended(Outcome),
    /// Ended with an error.
    Failed,
}

/// Bits of [`Session::flags`].
pub(crate) mod flag {
    /// An agent joined at some point: records say `Live chat`, the bot speaks as the agent.
    pub const HANDOFF: u8 = 1;
    /// The unfinished-conversation lead was captured.
    pub const IDLE_CAPTURED: u8 = 2;
    /// A lead was captured by a capture card.
    pub const LEAD: u8 = 4;
    /// The visitor gave explicit consent.
    pub const CONSENTED: u8 = 8;
    /// The visitor declined explicit consent (and has not agreed since).
    pub const DECLINED: u8 = 16;
}

/// Reserved keys of [`Vars`]; playbook variables start at [`FIRST_USER_KEY`].
pub(crate) mod key {
    pub const CONVERSATION: u32 = 0;
    pub const PAGE_URL: u32 = 1;
    pub const CONTACT_OWNER: u32 = 2;
    pub const AGENT: u32 = 3;
    pub const FIRST_USER_KEY: u32 = 4;
}

/// An optional deadline stored in 8 bytes (`u64::MAX` = none); serde sees an `Option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(u64);

impl Deadline {
    pub const NONE: Deadline = Deadline(u64::MAX);

    pub fn get(self) -> Option<Instant> {
        (self.0 != u64::MAX).then_some(Instant(self.0))
    }

    pub fn set(at: Instant) -> Deadline {
        // u64::MAX ms is half a billion years away; clamp so it stays representable.
        Deadline(at.0.min(u64::MAX - 1))
    }
}

impl Serialize for Deadline {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Option::<Instant>::deserialize(d)?.map_or(Deadline::NONE, Deadline::set))
    }
}

/// A conversation's state. Make one with [`Session::new`] and feed it
/// [`super::Event::Start`].
///
/// Serialized as an array of its fields in declaration order (`[card, phase, channel, flags,
/// tries, messages, started_at, card_timer, capture_timer, vars, captured]`), not an object:
/// a store writes and reads it on every turn, and field names were most of the JSON and of
/// the time spent on it. Deserialization accepts that array and the older object form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Session {
    pub(crate) card: CardIx,
    pub(crate) phase: Phase,
    pub(crate) channel: Channel,
    pub(crate) flags: u8,
    /// Invalid answers in a row at the current card.
    pub(crate) tries: u32,
    /// Transcript lines so far (visitor messages accepted + bot/agent/system messages), the
    /// cursor that records use to attach "the transcript so far".
    pub(crate) messages: u32,
    pub(crate) started_at: Instant,
    /// The Idle or Wait timer of the current card (its kind follows from the phase).
    pub(crate) card_timer: Deadline,
    pub(crate) capture_timer: Deadline,
    pub(crate) vars: Vars,
    /// Capture cards already run in this conversation (so a loop never captures twice, and an
    /// activity finds the lead or deal to link to).
    pub(crate) captured: Box<[CardIx]>,
}

/// How many fields [`Session`] serializes.
const SESSION_FIELDS: usize = 11;

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(SESSION_FIELDS)?;
        t.serialize_element(&self.card)?;
        t.serialize_element(&self.phase)?;
        t.serialize_element(&self.channel)?;
        t.serialize_element(&self.flags)?;
        t.serialize_element(&self.tries)?;
        t.serialize_element(&self.messages)?;
        t.serialize_element(&self.started_at)?;
        t.serialize_element(&self.card_timer)?;
        t.serialize_element(&self.capture_timer)?;
        t.serialize_element(&self.vars)?;
        t.serialize_element(&self.captured)?;
        t.end()
    }
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session that has not started.
    pub fn new() -> Self {
        Session {
            card: 0,
            phase: Phase::New,
            channel: Channel::Web,
            flags: 0,
            tries: 0,
            messages: 0,
            started_at: Instant(0),
            card_timer: Deadline::NONE,
            capture_timer: Deadline::NONE,
            vars: Vars::default(),
            captured: Box::new([]),
        }
    }

    /// What the session waits for, or how it ended.
    pub fn status(&self) -> Status {
        match self.phase {
            Phase::New => Status::New,
            Phase::Asking | Phase::Queued | Phase::Live => Status::Waiting,
            Phase::Ended(o) => Status::Ended(o),
            Phase::Failed => Status::Failed,
        }
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The index of the current card (where it waits, or where it ended).
    pub fn card(&self) -> CardIx {
        self.card
    }

    /// The channel the visitor used last.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The page the conversation started on, when the widget said.
    pub fn page_url(&self) -> Option<&str> {
        self.vars.get(key::PAGE_URL)
    }

    /// The conversation id given at start.
    pub fn conversation(&self) -> &str {
        self.vars.get(key::CONVERSATION).unwrap_or("")
    }

    /// The agent handling (or who last handled) the conversation.
    pub fn agent(&self) -> Option<&str> {
        self.vars.get(key::AGENT)
    }

    /// The agent handling the conversation now (while it is live), whose name the bot's
    /// lines carry meanwhile.
    pub fn handler(&self) -> Option<&str> {
        (self.phase == Phase::Live).then(|| self.agent()).flatten()
    }

    /// How many transcript lines the conversation has so far.
    pub fn messages(&self) -> u32 {
        self.messages
    }

    /// The timers the driver must have armed: after a restart, re-arm exactly these.
    pub fn timers(&self) -> impl Iterator<Item = Timer> + '_ {
        let card_kind = match self.phase {
            Phase::Queued => Some(TimerKind::Wait),
            Phase::Asking => Some(TimerKind::Idle),
            _ => None,
        };
        let card = card_kind.and_then(|kind| self.card_timer.get().map(|at| Timer { kind, at }));
        let capture = self.capture_timer.get().map(|at| Timer {
            kind: TimerKind::IdleCapture,
            at,
        });
        card.into_iter().chain(capture)
    }

    pub(crate) fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// Strings keyed by small integers, packed in one heap buffer: per entry a key, a length and
/// the UTF-8 bytes. Small sessions thus cost one allocation for all their strings.
/// Serialized as a list of `[key, text]` pairs.
///
/// Keys and lengths are varints of 6 bits per byte with `0x40` as the continuation bit, so
/// every header byte is ASCII and the whole buffer is a `str`: reading a value is a slice of
/// it (a char-boundary check), not a UTF-8 validation per entry per lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars(Box<str>);

/// Payload bits per header byte; the next bit says "more bytes follow". Both stay below
/// 0x80, so header bytes are ASCII.
const VARINT_BITS: u32 = 6;
const VARINT_MORE: u8 = 0x40;

fn put_varint(out: &mut String, mut n: u64) {
    let mask = (1u64 << VARINT_BITS) - 1;
    loop {
        let b = (n & mask) as u8;
        n >>= VARINT_BITS;
        if n == 0 {
            out.push(char::from(b));
            return;
        }
        out.push(char::from(b | VARINT_MORE));
    }
}

/// How many bytes [`put_varint`] writes for `n`.
fn varint_len(n: u64) -> usize {
    let bits = (u64::BITS - n.leading_zeros()).max(1);
    bits.div_ceil(VARINT_BITS) as usize
}

fn get_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut n: u64 = 0;
    let mut shift = 0;
    while shift < 64 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        n |= u64::from(b & (VARINT_MORE - 1)) << shift;
        if b & VARINT_MORE == 0 {
            return Some(n);
        }
        shift += VARINT_BITS;
    }
    None
}

fn put_entry(out: &mut String, key: u32, value: &str) {
    put_varint(out, u64::from(key));
    put_varint(out, value.len() as u64);
    out.push_str(value);
}

impl Vars {
    /// Every `(key, value)` pair, in insertion order.
    pub fn iter(&self) -> VarsIter<'_> {
        VarsIter {
            buf: &self.0,
            pos: 0,
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: u32) -> Option<&str> {
        self.iter().find(|&(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key` to `value`, replacing any earlier value.
    pub fn set(&mut self, key: u32, value: &str) {
        if self.get(key).is_none() {
            // A new key goes at the end: grow the buffer to its exact new size (a `realloc`,
            // often in place) instead of copying it into a fresh one.
            let header = varint_len(u64::from(key)) + varint_len(value.len() as u64);
            let mut out = String::from(std::mem::take(&mut self.0));
            out.reserve_exact(header + value.len());
            put_entry(&mut out, key, value);
            self.0 = out.into_boxed_str();
            return;
        }
        let mut out = String::with_capacity(self.0.len() + value.len() + 4);
        for (k, v) in self.iter().filter(|&(k, _)| k != key) {
            put_entry(&mut out, k, v);
        }
        put_entry(&mut out, key, value);
        self.0 = out.into_boxed_str();
    }

    /// The bytes used on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

/// Iterator over [`Vars`]. A malformed buffer (impossible through the API) just ends it.
pub struct VarsIter<'a> {
    buf: &'a str,
    pos: usize,
}

impl<'a> Iterator for VarsIter<'a> {
    type Item = (u32, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.buf.as_bytes();
        let key = u32::try_from(get_varint(bytes, &mut self.pos)?).ok()?;
        let len = usize::try_from(get_varint(bytes, &mut self.pos)?).ok()?;
        let end = self.pos.checked_add(len)?;
        // `str::get` checks only that both ends are char boundaries.
        let value = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some((key, value))
    }
}

impl Serialize for Vars {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for pair in self.iter() {
            seq.serialize_element(&pair)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Vars {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vars;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of [key, text] pairs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vars, A::Error> {
                let mut out = String::new();
                while let Some((k, v)) = seq.next_element::<(u32, Cow<'de, str>)>()? {
                    put_entry(&mut out, k, &v);
                }
                Ok(Vars(out.into_boxed_str()))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_pack_replace_and_round_trip() {
        let mut v = Vars::default();
        v.set(0, "conv-1");
        v.set(300, "11-200");
        v.set(0, "conv-2");
        assert_eq!(v.get(0), Some("conv-2"));
        assert_eq!(v.get(300), Some("11-200"));
        assert_eq!(v.get(5), None);
        assert_eq!(v.heap_bytes(), 1 + 1 + 6 + 2 + 1 + 6);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"[[300,"11-200"],[0,"conv-2"]]"#);
        let back: Vars = serde_json::from_str(&json).unwrap();
        assert_eq!(back.get(300), Some("11-200"));
    }

    #[test]
    fn vars_long_and_non_ascii_values() {
        let long = "é".repeat(5000);
        let mut v = Vars::default();
        v.set(1, "ü");
        v.set(70_000, &long);
        v.set(2, "");
        assert_eq!(v.get(1), Some("ü"));
        assert_eq!(v.get(70_000), Some(long.as_str()));
        assert_eq!(v.get(2), Some(""));
        let pairs: Vec<_> = v.iter().map(|(k, _)| k).collect();
        assert_eq!(pairs, [1, 70_000, 2]);
        let back: Vars = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
        for n in [0, 1, 63, 64, 4095, 4096, 70_000, u64::MAX] {
            let mut s = String::new();
            put_varint(&mut s, n);
            assert_eq!(varint_len(n), s.len(), "{n}");
        }
    }

    #[test]
    fn session_json_is_an_array_and_the_object_form_still_reads() {
        let mut s = Session::new();
        s.card = 5;
        s.phase = Phase::Ended(Outcome::Qualified);
        s.messages = 6;
        s.card_timer = Deadline::set(Instant(9));
        s.vars.set(key::CONVERSATION, "conv-1");
        s.captured = Box::new([3]);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"[5,{"ended":"qualified"},"web",0,0,6,0,9,null,[[0,"conv-1"]],[3]]"#
        );
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
        let object = r#"{"card":5,"phase":{"ended":"qualified"},"channel":"web","flags":0,"tries":0,"messages":6,"started_at":0,"card_timer":9,"capture_timer":null,"vars":[[0,"conv-1"]],"captured":[3]}"#;
        assert_eq!(serde_json::from_str::<Session>(object).unwrap(), s);
    }

    #[test]
    fn session_is_small() {
        assert!(
            std::mem::size_of::<Session>() <= 72,
            "{}",
            std::mem::size_of::<Session>()
        );
    }
}
