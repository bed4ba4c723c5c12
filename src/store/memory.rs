//! [`MemoryStore`]: sessions kept as values, laid out for a small per-session footprint.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use super::{SessionStore, StoreError};
use crate::engine::Session;

/// Sessions kept as plain values (never serialized).
///
/// Layout, chosen so that a parked session costs little more than the [`Session`] itself:
/// sessions live in one dense `Vec`; a conversation id is found through a table from a 32-bit
/// hash of the id to the session's slot, and the id itself is **not** stored again, because a
/// started session already holds its conversation id (a lookup compares against it). Ids
/// whose hash is taken by another id, and sessions put under an id other than their own
/// (e.g. one not started yet), go to a small overflow map keyed by the full id, so lookups
/// stay exact. The 32-bit hash is a fast keyed multiply-fold hash (a random key per store,
/// the mixing step of foldhash/wyhash) rather than SipHash: it costs a tenth as much, and
/// ids chosen to collide under it (without knowing the key) only land in the overflow map,
/// which keeps std's keyed SipHash, so lookups stay exact and cannot be made quadratic.
#[derive(Debug)]
pub struct MemoryStore {
    sessions: Vec<Session>,
    by_hash: HashMap<u32, u32, BuildHasherDefault<Spread>>,
    overflow: HashMap<Box<str>, u32>,
    /// The key of the 32-bit id hash (random per store).
    seed: [u64; 2],
    /// The id, hash and slot of the last `get`, valid until the next `put`: a driver puts
    /// back what it just got, so `put` can skip the second lookup (an id compare instead of a
    /// hash and a probe).
    last_id: String,
    last: Option<(u32, Option<Slot>)>,
}

/// Where a stored id was found.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// In `by_hash` under this hash: the session at the slot holds the id.
    Hashed(u32, usize),
    /// In `overflow`.
    Overflow(usize),
}

impl Default for MemoryStore {
    fn default() -> Self {
        // Two random words from std's per-process random keys.
        let r = RandomState::new();
        MemoryStore {
            sessions: Vec::new(),
            by_hash: HashMap::default(),
            overflow: HashMap::new(),
            seed: [r.hash_one(0x5eed_u64), r.hash_one(0xf00d_u64) | 1],
            last_id: String::new(),
            last: None,
        }
    }
}

/// The 128-bit product of `a` and `b`, its halves xor-ed: the mixing step of foldhash.
fn fold_mul(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn hash(&self, id: &str) -> u32 {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        let [k0, k1] = self.seed;
        let bytes = id.as_bytes();
        let mut h = k0 ^ bytes.len() as u64;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut b = [0u8; 8];
            b.copy_from_slice(w);
            h = fold_mul(h ^ u64::from_le_bytes(b), K);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            h = fold_mul(h ^ u64::from_le_bytes(b), K);
        }
        let h = fold_mul(h, k1);
        (h ^ (h >> 32)) as u32
    }

    fn find(&self, id: &str) -> (u32, Option<Slot>) {
        let h = self.hash(id);
        if let Some(&i) = self.by_hash.get(&h) {
            let i = i as usize;
            if self.sessions.get(i).is_some_and(|s| s.conversation() == id) {
                return (h, Some(Slot::Hashed(h, i)));
            }
        }
        let spilled = if self.overflow.is_empty() {
            None
        } else {
            self.overflow.get(id).map(|&i| Slot::Overflow(i as usize))
        };
        (h, spilled)
    }
}

impl SessionStore for MemoryStore {
    fn get(&mut self, id: &str) -> Result<Option<Session>, StoreError> {
        let (h, found) = self.find(id);
        self.last_id.clear();
        self.last_id.push_str(id);
        self.last = Some((h, found));
        Ok(match found {
            Some(Slot::Hashed(_, i) | Slot::Overflow(i)) => self.sessions.get(i).cloned(),
            None => None,
        })
    }

    fn put(&mut self, id: &str, session: Session) -> Result<(), StoreError> {
        let own_id = session.conversation() == id;
        let (h, found) = match self.last.take() {
            Some(last) if self.last_id == id => last,
            _ => self.find(id),
        };
        match found {
            Some(Slot::Hashed(h, i)) => {
                if !own_id {
                    // The hashed entry relies on the session holding its id; keep it exact.
                    self.by_hash.remove(&h);
                    self.overflow.insert(id.into(), i as u32);
                }
                self.sessions[i] = session;
            }
            Some(Slot::Overflow(i)) => self.sessions[i] = session,
            None => {
                // More than u32::MAX sessions would not fit in memory anyway.
                let i = u32::try_from(self.sessions.len()).unwrap_or(u32::MAX);
                self.sessions.push(session);
                if own_id && !self.by_hash.contains_key(&h) {
                    self.by_hash.insert(h, i);
                } else {
                    self.overflow.insert(id.into(), i);
                }
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.sessions.len()
    }

    fn serializes(&self) -> bool {
        false
    }

    /// In place: no copy of the session, one lookup.
    fn update<R>(
        &mut self,
        id: &str,
        f: impl FnOnce(Option<&mut Session>) -> R,
    ) -> Result<R, StoreError> {
        self.last = None;
        let (_, found) = self.find(id);
        let i = match found {
            Some(Slot::Hashed(_, i) | Slot::Overflow(i)) => i,
            None => return Ok(f(None)),
        };
        let r = f(self.sessions.get_mut(i));
        if let Some(Slot::Hashed(h, i)) = found
            && self.sessions[i].conversation() != id
        {
            // `f` gave the session another id (started a stored blank one): keep it exact.
            self.by_hash.remove(&h);
            self.overflow.insert(id.into(), i as u32);
        }
        Ok(r)
    }
}

/// A hasher for keys that are already hashes: spreads the 32 bits over the 64 the table
/// uses (it takes its bucket from the low bits and a tag from the high ones).
#[derive(Debug, Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u32` keys are hashed; fold anything else in anyway.
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).rotate_left(5);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Channel, Engine, Event, Instant, NoDesk};
    use std::borrow::Cow;

    fn started(engine: &Engine, id: &str) -> Session {
        let mut s = Session::new();
        let start = Event::Start {
            conversation: Cow::Borrowed(id),
            channel: Channel::Web,
            page_url: None,
            contact_owner: None,
            said: None,
        };
        engine
            .step_vec(&mut s, start, Instant(0), &NoDesk)
            .expect("starts");
        s
    }

    fn engine() -> Engine {
        let text = "playbook \"T\" { start q }\nquestion q \"Q?\" {\n  \"A\" -> bye\n}\nmessage bye \"Bye\" end\n";
        let (pb, _) = crate::syntax::parse(text).expect("parses");
        Engine::new(crate::check::check(pb).program.expect("checks"))
    }

    #[test]
    fn exact_by_id_even_when_hashes_collide() {
        let e = engine();
        let mut store = MemoryStore::new();
        for i in 0..2000 {
            let id = format!("c-{i}");
            store.put(&id, started(&e, &id)).unwrap();
        }
        let first = store.sessions[0].clone();
        for i in 0..2000 {
            let id = format!("c-{i}");
            assert_eq!(store.get(&id).unwrap().unwrap().conversation(), id);
        }
        assert_eq!(store.get("nope").unwrap(), None);
        // A session put under another id than its own is still found by that id only.
        store.put("alias", first.clone()).unwrap();
        assert_eq!(store.get("alias").unwrap(), Some(first.clone()));
        assert_eq!(store.len(), 2001);
        // Replacing a hashed entry with a session that does not hold the id keeps it exact.
        store.put("c-5", Session::new()).unwrap();
        assert_eq!(store.get("c-5").unwrap(), Some(Session::new()));
        store.put("c-5", started(&e, "c-5")).unwrap();
        assert_eq!(store.get("c-5").unwrap().unwrap().conversation(), "c-5");
        assert_eq!(store.len(), 2001);
    }

    #[test]
    fn update_changes_in_place_and_keeps_lookups_exact() {
        let e = engine();
        let mut store = MemoryStore::new();
        store.put("a", started(&e, "a")).unwrap();
        assert!(store.update("nope", |s| s.is_none()).unwrap());
        assert_eq!(store.len(), 1);
        let before = store.get("a").unwrap().unwrap();
        let text = Event::VisitorText {
            text: Cow::Borrowed("A"),
            channel: Channel::Web,
        };
        store
            .update("a", |s| {
                e.step_vec(s.expect("stored"), text, Instant(1), &NoDesk)
                    .expect("steps")
            })
            .unwrap();
        let after = store.get("a").unwrap().unwrap();
        assert_ne!(after, before);
        assert_eq!(after.messages(), before.messages() + 2);
        // A blank session stored under "b" and started in place as "c" stays under "b".
        store.put("b", Session::new()).unwrap();
        store.put("b", started(&e, "b")).unwrap();
        store
            .update("b", |s| *s.unwrap() = started(&e, "c"))
            .unwrap();
        assert_eq!(store.get("b").unwrap().unwrap().conversation(), "c");
        assert_eq!(store.get("c").unwrap(), None);
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn colliding_ids_spill_to_the_overflow_map() {
        let e = engine();
        let mut store = MemoryStore::new();
        store.put("a", started(&e, "a")).unwrap();
        // Simulate a second id whose 32-bit hash is taken by "a".
        let ia = store.by_hash[&store.hash("a")];
        let hb = store.hash("b");
        store.by_hash.insert(hb, ia);
        store.put("b", started(&e, "b")).unwrap();
        assert_eq!(store.get("a").unwrap().unwrap().conversation(), "a");
        assert_eq!(store.get("b").unwrap().unwrap().conversation(), "b");
        assert!(store.overflow.contains_key("b"));
    }
}
