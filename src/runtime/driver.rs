//! The tokio driver — the one that runs conversations, in tests and in `playbook serve`: a
//! [`Hub`] owned by one task (actor style), fed by requests over an mpsc channel, answering
//! over oneshots, and publishing everything that happens.
//!
//! **Durable mode** ([`Driver::durable`]). Requests are taken in groups: everything waiting
//! in the channel (up to [`MAX_GROUP`]) is applied to the hub inside one unit of work, the
//! unit's [changes](Hub::changes) are written to the [`Storage`] as ONE commit (one
//! transaction, one fsync for the whole group), and only then is anything answered or
//! published. When the commit fails the hub [rolls back](Hub::rollback): every request of the
//! group gets [`DriverError::Storage`] and nothing changed anywhere, so the same request
//! retried behaves as if the first had never been made. A conversation the hub does not hold
//! is loaded from the store when a request names it; one that is over is dropped from memory
//! once its last change is stored, and one left idle for [`IDLE_AFTER_MS`] (not on the desk)
//! is dropped at the next sweep — its earliest timer is "parked" with the driver, which loads
//! the conversation back when that timer is due.
//!
//! **One timer for the whole hub.** The task holds a single [`tokio::time::Sleep`] set to the
//! hub's earliest deadline ([`Hub::next_deadline`]) and resets it whenever that deadline
//! changes. Waiting conversations cost an entry in the hub's ordered timer queue and nothing
//! in tokio. When the sleep fires, the hub fires every due timer ([`Hub::advance`]) — in
//! durable mode as a unit that is committed like any request. Before each group the hub is
//! advanced to "now", so a request never overtakes a due timer.
//!
//! **Time.** tokio's clock is mapped to the engine's virtual [`Instant`] by a [`Clock`] given
//! at construction, so tests run with `tokio::time::pause` and `advance` and see exact,
//! repeatable virtual times — the server's timers included.
//!
//! Must not: block the task on anything but short store reads (commits run on a blocking
//! thread), answer or publish before the store has a change, or hold a timer per
//! conversation.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Duration;

use super::durable;
use super::hub::{Hub, HubError};
use super::types::{Command, Outputs};
use crate::engine::{Effect, Instant};
use crate::persist::{Commit, Storage, StoreError};

/// How many waiting requests one group (one commit) takes at most.
pub const MAX_GROUP: usize = 512;

/// A conversation untouched this long (ms) leaves memory (durable mode); a pending timer of
/// it brings it back when due.
pub const IDLE_AFTER_MS: u64 = 5 * 60 * 1000;

/// How often (ms) the driver looks for idle conversations.
const SWEEP_EVERY_MS: u64 = 30 * 1000;

/// On a shared store: how often (ms) due timers are claimed from the database.
pub const CLAIM_EVERY_MS: u64 = 500;

/// On a shared store: how many of the oldest waiting chats a replica reads to give out by
/// automatic assignment.
const WAITING_BATCH: i64 = 64;

/// On a shared store: how long (ms) a claimed timer is this replica's alone. One that dies
/// holding it lets another fire it after this.
pub const TIMER_LEASE_MS: u64 = 30 * 1000;

/// On a shared store: how often a request is applied again after another replica changed
/// its conversation first (each time on the state just read).
const ATTEMPTS: u8 = 8;

/// Maps tokio time to virtual time: `anchor` is `virtual_at_anchor`, and both run at the
/// same rate (1 ms = 1 ms).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: tokio::time::Instant,
    virtual_at_anchor: Instant,
}

impl Clock {
    /// A clock whose "now" is `virtual_now`.
    pub fn starting_at(virtual_now: Instant) -> Self {
        Clock {
            anchor: tokio::time::Instant::now(),
            virtual_at_anchor: virtual_now,
        }
    }

    /// A clock that reads the real wall clock (milliseconds since the Unix epoch) at start.
    pub fn wall() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self::starting_at(Instant(ms))
    }

    /// The virtual time now.
    pub fn now(&self) -> Instant {
        self.to_virtual(tokio::time::Instant::now())
    }

    /// The virtual time of a tokio instant (never before the anchor).
    pub fn to_virtual(&self, t: tokio::time::Instant) -> Instant {
        let ms = t.saturating_duration_since(self.anchor).as_millis() as u64;
        self.virtual_at_anchor.after_ms(ms)
    }

    /// The tokio instant of a virtual time (the anchor for times before it).
    pub fn to_tokio(&self, v: Instant) -> tokio::time::Instant {
        let ms = v.0.saturating_sub(self.virtual_at_anchor.0);
        // Far-future deadlines are capped (about 30 years) so the addition cannot overflow.
        self.anchor + Duration::from_millis(ms.min(1 << 40))
    }
}

/// What the driver's task reports about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverStats {
    /// Conversations in the hub.
    pub conversations: usize,
    /// Timers pending in the hub's queue, over all conversations.
    pub queued_timers: usize,
    /// tokio timers the driver has armed: 1 while any deadline is pending, else 0. By design
    /// never more (there is one `Sleep` for the whole hub).
    pub armed_sleeps: usize,
    /// How often the one sleep was reset to a new earliest deadline.
    pub sleep_resets: u64,
    /// Commits written (durable mode).
    pub commits: u64,
}

/// Why a request was not carried out. Nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DriverError {
    /// The hub refused it.
    #[error(transparent)]
    Hub(#[from] HubError),
    /// The store did not take the change (or could not load the conversation).
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// The driver task has stopped.
    #[error("the runtime driver has stopped")]
    Stopped,
}

/// The driver stopped (its task ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the runtime driver has stopped")]
pub struct Stopped;

impl From<Stopped> for DriverError {
    fn from(_: Stopped) -> Self {
        DriverError::Stopped
    }
}

/// What a job hands back to be finished once its change is stored (or was not).
type Finish = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn FnOnce(&mut Hub, Instant, &mut Outputs) -> Finish + Send>;
/// A read: given the hub, or why the conversation it needs could not be loaded.
type Read = Box<dyn FnOnce(Result<&Hub, StoreError>) + Send>;

enum Request {
    Apply {
        id: String,
        cmd: Box<Command>,
        /// The visitor's secret, when the caller must prove it.
        token: Option<String>,
        reply: oneshot::Sender<Result<Arc<Outputs>, DriverError>>,
        /// Attempts made before (a shared store's lost races).
        attempts: u8,
        /// Rows written in the same commit when the command is accepted.
        extra: Option<Box<Commit>>,
    },
    Call(Job),
    Read {
        /// A conversation to load first, when the hub does not hold it.
        id: Option<String>,
        f: Read,
    },
    Subscribe {
        id: String,
        tx: mpsc::UnboundedSender<Effect<'static>>,
    },
    Stats(oneshot::Sender<DriverStats>),
}

/// A handle to the driver task; cheap to clone. The task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Driver {
    tx: mpsc::Sender<Request>,
    all: broadcast::Sender<Arc<Outputs>>,
    clock: Clock,
}

impl Driver {
    /// Spawns the task that owns `hub`, in memory (nothing is stored), with `clock` mapping
    /// tokio time to virtual time.
    pub fn spawn(hub: Hub, clock: Clock) -> Self {
        Self::start(hub, clock, None, Vec::new())
    }

    /// Spawns the task in durable mode: every change is committed to `store` before it is
    /// answered or published. The hub must be made with [`Hub::durable`] and hold what the
    /// store says is open.
    ///
    /// On a [shared](Storage::shared) store (replicas) the hub holds a conversation only
    /// while a change of it is being stored: each group reads its conversations and the
    /// desk's presence and cursors fresh, a commit that loses a race to another replica is
    /// rolled back and its requests applied again on the state that won (up to a few
    /// times), start orders come from reserved blocks, and due timers are claimed from the
    /// store every [`CLAIM_EVERY_MS`].
    pub fn durable(hub: Hub, clock: Clock, store: Arc<dyn Storage>) -> Self {
        Self::start(hub, clock, Some(store), Vec::new())
    }

    /// [`Driver::durable`] with stored conversations that are not in the hub but have a
    /// pending timer: `(id, start order, earliest timer)`; each is loaded when its timer is
    /// due.
    pub fn durable_with_parked(
        hub: Hub,
        clock: Clock,
        store: Arc<dyn Storage>,
        parked: Vec<(String, u64, Instant)>,
    ) -> Self {
        Self::start(hub, clock, Some(store), parked)
    }

    fn start(
        hub: Hub,
        clock: Clock,
        store: Option<Arc<dyn Storage>>,
        parked: Vec<(String, u64, Instant)>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let next_claim = clock.now();
        let shared = store.as_ref().is_some_and(|s| s.shared());
        let writer = store.as_ref().map(|s| Writer {
            store: Arc::clone(s),
        });
        let (all, _) = broadcast::channel(1024);
        let task = Task {
            hub,
            clock,
            rx,
            all: all.clone(),
            subs: HashMap::new(),
            resets: 0,
            commits: 0,
            store,
            writer,
            inflight: None,
            staged: None,
            reads: Vec::new(),
            retry: None,
            parked: parked
                .into_iter()
                .map(|(id, ord, at)| ((at, ord), id))
                .collect(),
            last_sweep: None,
            shared,
            next_claim,
            again: Vec::new(),
        };
        tokio::spawn(task.run());
        Driver { tx, all, clock }
    }

    async fn send(&self, r: Request) -> Result<(), Stopped> {
        self.tx.send(r).await.map_err(|_| Stopped)
    }

    /// The time now, as the driver's conversations see it (virtual in tests).
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Applies a command to a conversation at the clock's now; returns what it produced
    /// (due timers fired first are published, not returned).
    pub async fn apply(&self, id: &str, cmd: Command) -> Result<Arc<Outputs>, DriverError> {
        self.apply_as(id, cmd, None).await
    }

    /// [`Driver::apply`] for a visitor who must hold the conversation's secret: a wrong or
    /// missing one is [`HubError::UnknownConversation`] (the conversation's existence is not
    /// revealed).
    pub async fn apply_as(
        &self,
        id: &str,
        cmd: Command,
        token: Option<&str>,
    ) -> Result<Arc<Outputs>, DriverError> {
        self.request(id, cmd, token, None).await
    }

    /// [`Driver::apply`] that also writes `extra` in the same commit when the hub accepts the
    /// command (durable mode): what a caller must store if and only if the change is stored,
    /// e.g. the id of a social message it applied. A refused command writes none of it.
    pub async fn apply_with(
        &self,
        id: &str,
        cmd: Command,
        extra: Commit,
    ) -> Result<Arc<Outputs>, DriverError> {
        self.request(id, cmd, None, Some(Box::new(extra))).await
    }

    async fn request(
        &self,
        id: &str,
        cmd: Command,
        token: Option<&str>,
        extra: Option<Box<Commit>>,
    ) -> Result<Arc<Outputs>, DriverError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Apply {
            id: id.to_owned(),
            cmd: Box::new(cmd),
            token: token.map(str::to_owned),
            reply,
            attempts: 0,
            extra,
        })
        .await?;
        rx.await.map_err(|_| DriverError::Stopped)?
    }

    /// Runs `f` on the hub inside the task, at the clock's now, as part of a group: what it
    /// changes is committed with the group, and its result comes back once stored. What `f`
    /// adds to the outputs is published.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hub, Instant, &mut Outputs) -> R + Send + 'static,
    ) -> Result<R, DriverError> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |hub, now, out| {
            let r = f(hub, now, out);
            Box::new(move |stored: Result<(), StoreError>| {
                let _ = reply.send(stored.map(|()| r));
            })
        });
        self.send(Request::Call(job)).await?;
        Ok(rx.await.map_err(|_| DriverError::Stopped)??)
    }

    /// Reads the hub between groups (it sees only stored state). With `id`, that
    /// conversation is loaded first if the hub does not hold it.
    pub async fn read<R: Send + 'static>(
        &self,
        id: Option<&str>,
        f: impl FnOnce(&Hub) -> R + Send + 'static,
    ) -> Result<R, DriverError> {
        let (reply, rx) = oneshot::channel();
        let f: Read = Box::new(move |hub| {
            let _ = reply.send(hub.map(f));
        });
        self.send(Request::Read {
            id: id.map(str::to_owned),
            f,
        })
        .await?;
        Ok(rx.await.map_err(|_| DriverError::Stopped)??)
    }

    /// Every output of the hub, once stored (command replies, fired timers, notifications,
    /// records).
    pub fn subscribe_all(&self) -> broadcast::Receiver<Arc<Outputs>> {
        self.all.subscribe()
    }

    /// The effects of one conversation, from now on.
    pub async fn subscribe(
        &self,
        id: &str,
    ) -> Result<mpsc::UnboundedReceiver<Effect<'static>>, Stopped> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.send(Request::Subscribe {
            id: id.to_owned(),
            tx,
        })
        .await?;
        Ok(rx)
    }

    /// The task's figures.
    pub async fn stats(&self) -> Result<DriverStats, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Stats(reply)).await?;
        rx.await.map_err(|_| Stopped)
    }
}

/// One request of a group, waiting for the group's commit.
enum Pending {
    Apply {
        reply: oneshot::Sender<Result<Arc<Outputs>, DriverError>>,
        result: Result<Arc<Outputs>, DriverError>,
        /// On a shared store: the request, to apply again if another replica wins the race.
        again: Option<Box<Retry>>,
    },
    Call(Finish),
}

/// A request kept to be applied again, with the attempts made so far.
struct Retry {
    id: String,
    cmd: Command,
    token: Option<String>,
    attempts: u8,
    extra: Option<Box<Commit>>,
}

/// A group applied to the hub (a sealed unit), with what waits for its commit.
struct Group {
    pending: Vec<Pending>,
    out: Outputs,
}

/// A group's desk notifications as JSON, for the other replicas.
fn notices(group: &Group) -> Vec<String> {
    let each = group.pending.iter().filter_map(|p| match p {
        Pending::Apply { result: Ok(o), .. } => Some(&o.notifications),
        _ => None,
    });
    std::iter::once(&group.out.notifications)
        .chain(each)
        .flatten()
        .filter_map(|n| serde_json::to_string(n).ok())
        .collect()
}

/// Writes commits on tokio's blocking pool, one at a time in the order handed over. (Not a
/// thread of its own: tokio knows a blocking task is running and does not auto-advance a
/// paused clock meanwhile, which the virtual-time tests rely on.)
struct Writer {
    store: Arc<dyn Storage>,
}

impl Writer {
    fn submit(&self, commit: Commit) -> oneshot::Receiver<Result<(), StoreError>> {
        let (done, rx) = oneshot::channel();
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let _ = done.send(store.commit(&commit));
        });
        rx
    }
}

struct Task {
    hub: Hub,
    clock: Clock,
    rx: mpsc::Receiver<Request>,
    all: broadcast::Sender<Arc<Outputs>>,
    subs: HashMap<String, Vec<mpsc::UnboundedSender<Effect<'static>>>>,
    resets: u64,
    commits: u64,
    store: Option<Arc<dyn Storage>>,
    writer: Option<Writer>,
    /// The group whose commit is being written.
    inflight: Option<(Group, oneshot::Receiver<Result<(), StoreError>>)>,
    /// A group applied on top of the one in flight, with its rows, waiting to be written.
    staged: Option<(Group, Commit)>,
    /// Reads wait until the hub holds only stored state.
    reads: Vec<(Option<String>, Read)>,
    /// After a failed commit: when to fire timers again, and the next delay.
    retry: Option<(tokio::time::Instant, Duration)>,
    /// Conversations out of memory with a pending timer: (earliest timer, start order) → id.
    parked: std::collections::BTreeMap<(Instant, u64), String>,
    /// When idle conversations were last looked for.
    last_sweep: Option<Instant>,
    /// Whether other replicas write the store too (see [`Driver::durable`]).
    shared: bool,
    /// On a shared store: when due timers are next claimed.
    next_claim: Instant,
    /// On a shared store: requests that lost a race, applied first in the next group.
    again: Vec<Request>,
}

impl Task {
    async fn run(mut self) {
        // The one timer. Parked far away until a deadline exists.
        let sleep = tokio::time::sleep_until(self.clock.to_tokio(Instant(u64::MAX)));
        tokio::pin!(sleep);
        let mut armed: Option<tokio::time::Instant> = None;
        loop {
            if self.inflight.is_none() && self.staged.is_none() {
                for (id, f) in std::mem::take(&mut self.reads) {
                    self.read(id, f);
                }
                self.sweep(self.clock.now());
                if !self.again.is_empty() {
                    let reqs = std::mem::take(&mut self.again);
                    self.group(reqs);
                    continue;
                }
            }
            let parked = self.parked.keys().next().map(|(at, _)| *at);
            let claim = self.shared.then_some(self.next_claim);
            let due = [self.hub.next_deadline(), parked, claim]
                .into_iter()
                .flatten()
                .min();
            let next = due.map(|at| {
                let t = self.clock.to_tokio(at);
                match self.retry {
                    Some((after, _)) => t.max(after),
                    None => t,
                }
            });
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(at);
                    self.resets += 1;
                }
                armed = next;
            }
            // A new group may be applied while one commit is in flight, but not a third, and
            // not while reads wait for the hub to hold only stored state.
            let can_apply =
                self.staged.is_none() && (self.inflight.is_none() || self.reads.is_empty());
            tokio::select! {
                biased;
                stored = async {
                    match &mut self.inflight {
                        Some((_, rx)) => rx.await,
                        None => std::future::pending().await,
                    }
                } => {
                    let stored = stored.unwrap_or_else(|_| {
                        Err(StoreError::Io("the commit task failed".into()))
                    });
                    self.finish(stored);
                }
                () = &mut sleep, if armed.is_some() && can_apply => {
                    self.group(Vec::new());
                }
                req = self.rx.recv(), if can_apply => {
                    let Some(req) = req else { break };
                    let mut reqs = vec![req];
                    while reqs.len() < MAX_GROUP {
                        match self.rx.try_recv() {
                            Ok(r) => reqs.push(r),
                            Err(_) => break,
                        }
                    }
                    self.group(reqs);
                }
            }
        }
    }

    /// Applies a group of requests (and the timers due now) to the hub. In memory it is
    /// answered at once; in durable mode it is sealed as a unit and its rows go to the writer
    /// (or wait for the commit in flight).
    fn group(&mut self, reqs: Vec<Request>) {
        let now = self.clock.now();
        let durable = self.store.is_some();
        let timers_due = self
            .retry
            .is_none_or(|(after, _)| tokio::time::Instant::now() >= after);
        if self.shared {
            self.prepare_shared(&reqs, now, timers_due);
        }
        if durable {
            self.hub.begin();
        }
        let mut out = Outputs::default();
        let mut pending = Vec::new();
        let mut extras = Commit::default();
        if timers_due {
            self.unpark(now);
            out.extend(self.hub.advance(now));
        }
        for req in reqs {
            match req {
                Request::Apply {
                    id,
                    cmd,
                    token,
                    reply,
                    attempts,
                    extra,
                } => {
                    let again = self.shared.then(|| {
                        Box::new(Retry {
                            id: id.clone(),
                            cmd: (*cmd).clone(),
                            token: token.clone(),
                            attempts,
                            extra: extra.clone(),
                        })
                    });
                    // Shared, not copied: the reply and the subscribers read the same outputs.
                    let result = self.apply(&id, *cmd, token.as_deref(), now).map(Arc::new);
                    if let (Ok(_), Some(extra)) = (&result, extra) {
                        extras.extend(*extra);
                    }
                    pending.push(Pending::Apply {
                        reply,
                        result,
                        again,
                    });
                }
                Request::Call(job) => {
                    let mut o = Outputs::default();
                    let finish = job(&mut self.hub, now, &mut o);
                    out.extend(o);
                    pending.push(Pending::Call(finish));
                }
                Request::Read { id, f } => self.reads.push((id, f)),
                Request::Subscribe { id, tx } => self.subs.entry(id).or_default().push(tx),
                Request::Stats(reply) => {
                    let _ = reply.send(DriverStats {
                        conversations: self.hub.len(),
                        queued_timers: self.hub.timer_count(),
                        armed_sleeps: usize::from(self.hub.next_deadline().is_some()),
                        sleep_resets: self.resets,
                        commits: self.commits,
                    });
                }
            }
        }
        let group = Group { pending, out };
        if !durable {
            self.answer(group, Ok(()));
            return;
        }
        let changes = self.hub.seal();
        if changes.is_empty() && extras.is_empty() && self.inflight.is_none() {
            // Nothing to write and nothing written before it is pending: done now.
            self.hub.keep();
            self.answer(group, Ok(()));
            self.release(false);
            return;
        }
        match durable::commit(&changes) {
            Ok(mut commit) => {
                commit.extend(extras);
                if self.shared {
                    // Agents connected to other replicas hear of it through the store.
                    commit.notices = notices(&group);
                }
                self.staged = Some((group, commit));
                self.submit_staged();
            }
            Err(e) => {
                // Cannot happen for the runtime's own types; fail this group alone.
                self.hub.rollback_last();
                self.answer(group, Err(e));
            }
        }
    }

    /// On a shared store, before a group: the desk's presence and cursors as stored (unless a
    /// commit of this replica is still pending: the hub is newer then), enough reserved start
    /// orders, the timers due now claimed, and the group's conversations read in one go.
    fn prepare_shared(&mut self, reqs: &[Request], now: Instant, timers_due: bool) {
        let Some(store) = self.store.clone() else {
            return;
        };
        if self.inflight.is_none() && self.staged.is_none() {
            self.refresh_desk();
        }
        if self.hub.ords_left().is_none_or(|n| n < MAX_GROUP as u64) {
            match store.reserve_ords(crate::persist::postgres::ORD_BLOCK) {
                Ok(first) => {
                    let first = u64::try_from(first).unwrap_or(0);
                    self.hub
                        .use_ords(first, first + crate::persist::postgres::ORD_BLOCK as u64);
                }
                Err(e) => tracing::error!(error = %e, "cannot reserve start orders"),
            }
        }
        let tick = timers_due && now >= self.next_claim;
        // Automatic assignment gives out waiting chats, which a replica does not hold: read
        // the oldest on each tick and whenever the group may free a place.
        let frees = reqs.iter().any(|r| {
            matches!(r, Request::Apply { cmd, .. }
                if matches!(**cmd, Command::Close { .. } | Command::Presence { .. } | Command::Reassign { .. }))
        });
        let desk = self.hub.desk();
        if tick && desk.may_assign() || frees && desk.assigns_automatically() {
            match store.desk_queue(None, WAITING_BATCH) {
                Ok(rows) => self.insert_rows(rows),
                Err(e) => tracing::warn!(error = %e, "cannot read the waiting chats"),
            }
        }
        if tick {
            self.next_claim = now.after_ms(CLAIM_EVERY_MS);
            match store.claim_timers(now.0 as i64, TIMER_LEASE_MS as i64, MAX_GROUP as i64) {
                Ok(due) => {
                    for (id, ord, at) in due {
                        let at = Instant(u64::try_from(at).unwrap_or(0));
                        self.parked
                            .insert((at, u64::try_from(ord).unwrap_or(0)), id);
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot claim due timers"),
            }
        }
        let ids: Vec<String> = reqs
            .iter()
            .filter_map(|r| match r {
                Request::Apply { id, cmd, .. }
                    if !matches!(**cmd, Command::Start { .. } | Command::Presence { .. })
                        && !self.hub.contains(id) =>
                {
                    Some(id.clone())
                }
                _ => None,
            })
            .collect();
        if ids.is_empty() {
            return;
        }
        match store.conversations(&ids) {
            Ok(rows) => self.insert_rows(rows),
            // Each request loads its own conversation again and reports the failure.
            Err(e) => tracing::warn!(error = %e, "cannot read a group's conversations"),
        }
    }

    /// Puts stored conversations into the hub (those it holds already are newer there).
    fn insert_rows(&mut self, rows: Vec<(crate::persist::ConvRow, Vec<String>)>) {
        for (row, lines) in rows {
            if self.hub.contains(&row.id) {
                continue;
            }
            let id = row.id.clone();
            let loaded = durable::loaded(&self.hub, row, lines).and_then(|l| {
                self.hub
                    .insert(l)
                    .map_err(|e| StoreError::Io(e.to_string()))
            });
            if let Err(e) = loaded {
                tracing::error!(conversation = %id, error = %e, "a conversation cannot be loaded");
            }
        }
    }

    /// The desk's presence and pool cursors as the store has them now (other replicas change
    /// them).
    fn refresh_desk(&mut self) {
        let Some(store) = &self.store else { return };
        match store.desk_rows() {
            Ok(rows) => {
                for (agent, p) in rows.agents {
                    if let Some(p) = durable::presence_of(&p) {
                        // An agent of the store but not of this config is not this desk's.
                        let _ = self.hub.set_presence(&agent, p);
                    }
                }
                for (agent, open, last) in rows.loads {
                    let _ = self
                        .hub
                        .desk_mut()
                        .set_load(&agent, durable::load_of((open, last)));
                }
                for (pool, next) in rows.pools {
                    self.hub
                        .desk_mut()
                        .set_pool_next(&pool, usize::try_from(next).unwrap_or(0));
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the desk's presence"),
        }
    }

    /// On a shared store: drops every conversation no pending commit touched, so the next
    /// request reads what the store holds (another replica may change it meanwhile). After a
    /// failed commit (`park`), their due timers are kept to fire again soon: this replica
    /// holds their claim.
    fn release(&mut self, park: bool) {
        if !self.shared {
            return;
        }
        let ids: Vec<String> = self
            .hub
            .conversations()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for id in ids {
            let timer = self.hub.next_timer(&id);
            if self.hub.evict(&id)
                && park
                && let Some((at, ord)) = timer
            {
                self.parked.insert((at, ord), id);
            }
        }
    }

    /// A group that lost a race: its requests go again (up to [`ATTEMPTS`]); the rest are
    /// answered with the conflict.
    fn again_or_answer(&mut self, group: Group, stored: &Result<(), StoreError>) {
        let Group { pending, .. } = group;
        let mut rest = Vec::new();
        for p in pending {
            match p {
                Pending::Apply {
                    reply,
                    again: Some(r),
                    ..
                } if r.attempts + 1 < ATTEMPTS => self.again.push(Request::Apply {
                    id: r.id,
                    cmd: Box::new(r.cmd),
                    token: r.token,
                    reply,
                    attempts: r.attempts + 1,
                    extra: r.extra,
                }),
                p => rest.push(p),
            }
        }
        self.answer(
            Group {
                pending: rest,
                out: Outputs::default(),
            },
            stored.clone(),
        );
    }

    /// Loads the parked conversations whose timer is due, so the hub fires it.
    fn unpark(&mut self, now: Instant) {
        while let Some(entry) = self.parked.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            if let Err(e) = self.load(&id) {
                tracing::error!(conversation = %id, error = %e, "a conversation whose timer is due cannot be loaded");
            }
        }
    }

    /// Drops idle conversations from memory (every [`SWEEP_EVERY_MS`]); those with a pending
    /// timer are parked until it is due.
    fn sweep(&mut self, now: Instant) {
        if self.store.is_none()
            || self
                .last_sweep
                .is_some_and(|t| t.after_ms(SWEEP_EVERY_MS) > now)
        {
            return;
        }
        self.last_sweep = Some(now);
        for id in self.hub.idle(now, IDLE_AFTER_MS) {
            let timer = self.hub.next_timer(&id);
            if self.hub.evict(&id)
                && let Some((at, ord)) = timer
            {
                self.parked.insert((at, ord), id);
            }
        }
    }

    /// Hands the staged group to the writer once nothing is in flight (commits are written in
    /// the order their groups were applied).
    fn submit_staged(&mut self) {
        if self.inflight.is_some() {
            return;
        }
        if let (Some((group, commit)), Some(writer)) = (self.staged.take(), &self.writer) {
            let rx = writer.submit(commit);
            self.inflight = Some((group, rx));
        }
    }

    /// The commit in flight is done: keep or roll back, answer, publish.
    fn finish(&mut self, stored: Result<(), StoreError>) {
        let Some((group, _)) = self.inflight.take() else {
            return;
        };
        match &stored {
            Ok(()) => {
                self.commits += 1;
                self.retry = None;
                self.hub.keep();
                self.answer(group, Ok(()));
                self.submit_staged();
                self.release(false);
            }
            Err(StoreError::Conflict(what)) if self.shared => {
                // Another replica changed a conversation of this group (or the staged one
                // built on it) first: nothing was written; the requests are applied again on
                // what the store holds now.
                tracing::debug!(changed = %what, "lost a race to another replica; applying again");
                self.hub.rollback();
                let staged = self.staged.take().map(|(g, _)| g);
                for g in std::iter::once(group).chain(staged) {
                    self.again_or_answer(g, &stored);
                }
                self.release(true);
            }
            Err(e) => {
                tracing::error!(error = %e, "a change was not stored; nothing of it was kept");
                // The staged group was applied on top of the failed one: it goes too.
                self.hub.rollback();
                self.answer(group, stored.clone());
                if let Some((staged, _)) = self.staged.take() {
                    self.answer(staged, stored.clone());
                }
                self.release(true);
                // Timers that fired in a failed unit are due again: retry with a backoff so a
                // full disk is not hammered.
                let delay = self.retry.map_or(Duration::from_millis(100), |(_, d)| {
                    (d * 2).min(Duration::from_secs(5))
                });
                self.retry = Some((tokio::time::Instant::now() + delay, delay));
            }
        }
    }

    /// Answers a group's requests (after its commit, or at once in memory) and publishes what
    /// it did when stored.
    fn answer(&mut self, group: Group, stored: Result<(), StoreError>) {
        let Group { pending, out } = group;
        if stored.is_ok() {
            let out = Arc::new(out);
            let each = pending.iter().filter_map(|p| match p {
                Pending::Apply { result: Ok(o), .. } => Some(Arc::clone(o)),
                _ => None,
            });
            let published: Vec<Arc<Outputs>> = std::iter::once(out).chain(each).collect();
            for o in published {
                if self.store.is_some() {
                    self.evict_over(&o);
                }
                self.publish(o);
            }
        }
        for p in pending {
            match p {
                Pending::Apply { reply, result, .. } => {
                    let r = match (&stored, result) {
                        (Ok(()), r) => r,
                        // A refusal changed nothing either way: it stays a refusal.
                        (Err(_), Err(e)) => Err(e),
                        (Err(e), Ok(_)) => Err(DriverError::Storage(e.clone())),
                    };
                    let _ = reply.send(r);
                }
                Pending::Call(finish) => finish(stored.clone()),
            }
        }
    }

    fn apply(
        &mut self,
        id: &str,
        cmd: Command,
        token: Option<&str>,
        now: Instant,
    ) -> Result<Outputs, DriverError> {
        match &cmd {
            // A start under an id the store has is a duplicate.
            // (On a shared store the unique id refuses it at commit, and the retry lands here
            // with the stored conversation loaded.)
            Command::Start { .. } => {
                if let Some(store) = &self.store
                    && !self.shared
                    && !self.hub.contains(id)
                    && store.conversation(id)?.is_some()
                {
                    return Err(HubError::ConversationExists(id.to_owned()).into());
                }
            }
            // Desk-wide: no conversation to load.
            Command::Presence { .. } => {}
            _ => self.load(id)?,
        }
        if let Some(token) = token
            && !self.hub.token_matches(id, token)
        {
            return Err(HubError::UnknownConversation(id.to_owned()).into());
        }
        Ok(self.hub.apply(id, cmd, now)?)
    }

    /// Makes sure the hub holds conversation `id`, loading it from the store.
    fn load(&mut self, id: &str) -> Result<(), DriverError> {
        if self.hub.contains(id) {
            return Ok(());
        }
        let Some(store) = &self.store else {
            return Ok(());
        };
        let Some((row, lines)) = store.conversation(id)? else {
            return Ok(());
        };
        let loaded = durable::loaded(&self.hub, row, lines)?;
        self.hub.insert(loaded)?;
        Ok(())
    }

    /// Drops from memory the conversations of this group that are over (stored already).
    fn evict_over(&mut self, out: &Outputs) {
        // Records cover changes without new lines (an agent's record on a closed chat).
        let touched = out
            .updates
            .iter()
            .map(|u| &u.conversation)
            .chain(out.records.iter().map(|r| &r.record.conversation));
        for id in touched {
            if self.hub.is_over(id) {
                self.hub.evict(id);
            }
        }
    }

    fn read(&mut self, id: Option<String>, f: Read) {
        // A desk-wide read (presence, say) needs the desk as stored now; a conversation's
        // read needs only the conversation, which it loads.
        if self.shared && id.is_none() {
            self.refresh_desk();
        }
        if let Some(id) = &id {
            match self.load(id) {
                Ok(()) => {}
                Err(DriverError::Storage(e)) => return f(Err(e)),
                Err(e) => return f(Err(StoreError::Io(e.to_string()))),
            }
        }
        f(Ok(&self.hub));
        if self.shared {
            self.release(false);
            return;
        }
        // A conversation loaded only to be read goes again if it is over.
        if self.store.is_some()
            && let Some(id) = &id
            && self.hub.is_over(id)
        {
            self.hub.evict(id);
        }
    }

    fn publish(&mut self, out: Arc<Outputs>) {
        if out.is_empty() && out.notifications.is_empty() {
            return;
        }
        for e in &out.effects {
            if let Some(subs) = self.subs.get_mut(&e.conversation) {
                subs.retain(|tx| tx.send(e.effect.clone()).is_ok());
                if subs.is_empty() {
                    self.subs.remove(&e.conversation);
                }
            }
        }
        // No receiver is fine: nobody is listening.
        let _ = self.all.send(out);
    }
}
