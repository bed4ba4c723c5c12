//! `playbook serve`: the HTTP and WebSocket API of `docs/api.md` over the one runtime
//! [`Driver`], with durable storage ([`crate::persist`]) and CRM delivery ([`outbox`] over
//! [`crate::crm`]'s connectors).
//!
//! The path of every change: a handler turns the request into a [`crate::runtime::Command`]
//! → the driver loads the conversation (memory or store), steps engine and desk on it inside
//! a unit of work, commits the unit's rows in one transaction → only then answers (2xx means
//! durable) and publishes; a forwarder task turns what was published into socket frames.
//!
//! [`router`] builds the axum app from an [`AppState`] (testable with `oneshot`, no socket);
//! [`open`] opens the data folder (migrating an old one) and loads what is open; [`serve`]
//! binds and runs the background tasks (forwarder, outbox, SIGHUP reload).
//! The listener with its timeouts and connection cap is [`edge`].
//!
//! Must not: decide anything the engine, desk or hub decides (it maps HTTP onto commands and
//! hub errors onto statuses), acknowledge a change before the store has it, or panic on input.

mod analytics;
pub mod channels;
pub mod config;
pub mod edge;
pub mod error;
mod handlers;
pub mod identity;
pub mod migrate;
pub mod outbox;
mod pages;
pub mod playbooks;
mod ratelimit;
pub mod redact;
#[cfg(test)]
mod reload_tests;
pub mod view;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

pub use self::config::Config;
pub use self::error::ApiError;
pub use self::handlers::router;
use self::playbooks::{Catalog, ReloadReport, Version, compile};
use crate::capture::Who;
use crate::desk::Notification;
use crate::persist::sqlite::{Opened, SqliteStore};
use crate::persist::{Commit, SqliteOptions, Storage, StoreError, VersionRow};
use crate::runtime::driver::{Clock, Driver, DriverError};
use crate::runtime::{Hub, HubError, Outputs, durable};

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What the handlers and tasks share.
pub struct Shared {
    driver: Driver,
    config: Arc<Config>,
    store: Arc<dyn Storage>,
    catalog: Arc<RwLock<Catalog>>,
    playbook_dir: PathBuf,
    /// One reload at a time (their version numbers must not race).
    reloading: tokio::sync::Mutex<()>,
    outbox_poke: Notify,
    /// Bumped by a reload: the outbox unparks records and unpauses connectors.
    outbox_generation: std::sync::atomic::AtomicU64,
    visitors: Mutex<HashMap<String, broadcast::Sender<String>>>,
    agents: Mutex<HashMap<String, broadcast::Sender<String>>>,
    /// Per conversation with a visitor socket: the last line sequence pushed to it, so a
    /// change another replica made is caught up from the store without repeats.
    seen: Mutex<HashMap<String, u64>>,
    /// Per conversation with a visitor socket that waits in Unassigned: the place in line
    /// last pushed to it.
    positions: Mutex<HashMap<String, usize>>,
    /// The social channels' delivery lock, links and sender queue.
    channels: Arc<channels::ChannelState>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks; if something did, the data is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

impl From<DriverError> for ApiError {
    fn from(e: DriverError) -> Self {
        match e {
            DriverError::Hub(e) => e.into(),
            DriverError::Storage(e) => e.into(),
            DriverError::Stopped => ApiError::Storage("the runtime driver stopped".into()),
        }
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        use crate::desk::DeskError as D;
        use crate::engine::EngineError as E;
        let msg = e.to_string();
        match e {
            HubError::UnknownConversation(_) => ApiError::NotFound(msg),
            HubError::UnknownPlaybook(_) | HubError::UnknownPlaybookName(_) => {
                ApiError::NotFound(msg)
            }
            HubError::ConversationExists(_) => ApiError::Conflict(msg),
            HubError::RateLimited(_) => ApiError::RateLimited(msg),
            HubError::Engine(E::TextTooLong { .. }) => ApiError::TooLarge(msg),
            HubError::Engine(E::NoSuchChoice { .. }) => ApiError::BadRequest(msg),
            HubError::Engine(E::WrongAgent { .. }) | HubError::Desk(D::NotHandler(_)) => {
                ApiError::Forbidden(msg)
            }
            HubError::Desk(D::UnknownAgent(_)) => ApiError::NotFound(msg),
            HubError::Engine(_) | HubError::Desk(_) => ApiError::Conflict(msg),
        }
    }
}

/// 128 random bits as 32 hex digits.
pub fn random_hex() -> Result<String, ApiError> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| ApiError::Internal(format!("no randomness: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl AppState {
    /// The driver every change goes through.
    pub fn driver(&self) -> &Driver {
        &self.0.driver
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.0.store
    }

    /// The served playbooks.
    pub fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        read(&self.0.catalog)
    }

    /// Runs a blocking store call on a blocking thread.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Storage) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = Arc::clone(&self.0.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("a storage task failed: {e}")))?
            .map_err(ApiError::from)
    }

    /// Pushes what the driver published to the sockets that listen: each conversation's new
    /// messages and status to its visitor, notifications to agents.
    fn publish(&self, out: &Outputs) {
        if !out.updates.is_empty() {
            let mut subs = lock(&self.0.visitors);
            for u in &out.updates {
                let Some(tx) = subs.get(&u.conversation) else {
                    continue;
                };
                let mut after_visitor = false;
                for (i, line) in u.lines.iter().enumerate() {
                    // The bot's answer to a visitor message is announced first, so the
                    // widget can show its typing hint.
                    if matches!(line.from, Who::Bot(_)) && after_visitor {
                        let _ = tx.send(json!({"type": "typing"}).to_string());
                    }
                    after_visitor = line.from == Who::Visitor;
                    let m = view::message_json(u.first_seq + i as u64, line);
                    let _ = tx.send(json!({"type": "message", "message": m}).to_string());
                }
                let status = view::status_name(u.phase);
                let _ = tx.send(
                    json!({"type": "status", "status": status, "agent": u.agent}).to_string(),
                );
                if tx.receiver_count() == 0 {
                    subs.remove(&u.conversation);
                }
                if !u.lines.is_empty() {
                    let last = u.first_seq + u.lines.len() as u64 - 1;
                    let mut seen = lock(&self.0.seen);
                    let s = seen.entry(u.conversation.clone()).or_default();
                    *s = (*s).max(last);
                }
            }
        }
        if !out.notifications.is_empty() {
            let mut subs = lock(&self.0.agents);
            for n in &out.notifications {
                let (agent, v) = notification_json(n, out);
                let Some(tx) = subs.get(&agent) else { continue };
                let _ = tx.send(v.to_string());
                if tx.receiver_count() == 0 {
                    subs.remove(&agent);
                }
            }
        }
    }

    fn subscribe(
        map: &Mutex<HashMap<String, broadcast::Sender<String>>>,
        key: &str,
        capacity: usize,
    ) -> broadcast::Receiver<String> {
        lock(map)
            .entry(key.to_owned())
            .or_insert_with(|| broadcast::channel(capacity).0)
            .subscribe()
    }

    /// Frees a socket's channel once its last receiver is gone.
    fn unsubscribe(map: &Mutex<HashMap<String, broadcast::Sender<String>>>, key: &str) {
        let mut subs = lock(map);
        if subs.get(key).is_some_and(|tx| tx.receiver_count() == 0) {
            subs.remove(key);
        }
    }

    /// Messages pushed to a conversation's visitor. The channel is allocated in full per
    /// conversation with an open socket (256 slots cost ~14 KB), so it is kept to a step's
    /// worth of frames; a visitor that falls behind gets a `lagged` frame and refetches.
    pub fn subscribe_visitor(&self, id: &str) -> broadcast::Receiver<String> {
        Self::subscribe(&self.0.visitors, id, 32)
    }

    /// Pushes one event to an agent's sockets on this replica, if they have any open.
    pub(crate) fn tell_agent(&self, agent: &str, event: &Value) {
        if let Some(tx) = lock(&self.0.agents).get(agent) {
            let _ = tx.send(event.to_string());
        }
    }

    /// Notifications pushed to an agent (few agents, bursts of many conversations).
    pub fn subscribe_agent(&self, agent: &str) -> broadcast::Receiver<String> {
        Self::subscribe(&self.0.agents, agent, 256)
    }

    /// Call when a visitor socket closed (after dropping its receiver).
    pub fn visitor_gone(&self, id: &str) {
        Self::unsubscribe(&self.0.visitors, id);
        if !lock(&self.0.visitors).contains_key(id) {
            lock(&self.0.seen).remove(id);
            lock(&self.0.positions).remove(id);
        }
    }

    /// The waiting conversations in line order (who entered Unassigned first; ties by start).
    pub async fn queue(&self) -> Result<Vec<String>, ApiError> {
        self.blocking(|s| s.queue_ids(QUEUE_LIMIT)).await
    }

    /// Pushes to each waiting visitor connected here their place in line when it changed:
    /// `{"type": "queue", "position": 2}`.
    pub(crate) async fn push_positions(&self) {
        if lock(&self.0.visitors).is_empty() {
            return;
        }
        let line = match self.queue().await {
            Ok(line) => line,
            Err(e) => return tracing::warn!(error = %e, "cannot read the queue"),
        };
        let subs = lock(&self.0.visitors);
        let mut positions = lock(&self.0.positions);
        positions.retain(|id, _| line.contains(id));
        for (i, id) in line.iter().enumerate() {
            let Some(tx) = subs.get(id) else { continue };
            if positions.get(id) != Some(&(i + 1)) {
                positions.insert(id.clone(), i + 1);
                let _ = tx.send(json!({"type": "queue", "position": i + 1}).to_string());
            }
        }
    }

    /// Whether these outputs may move the line for a visitor connected here: someone entered
    /// Unassigned, or anything changed while somebody here waits (who left the line is not
    /// known from the outputs alone).
    fn moves_queue(&self, out: &Outputs) -> bool {
        !out.updates.is_empty()
            && (!lock(&self.0.positions).is_empty()
                || out
                    .updates
                    .iter()
                    .any(|u| u.phase == crate::engine::Phase::Queued))
    }

    /// Tells a conversation's visitor socket that someone is typing (a frame, not a line).
    pub fn visitor_typing(&self, id: &str) {
        if let Some(tx) = lock(&self.0.visitors).get(id) {
            let _ = tx.send(json!({"type": "typing"}).to_string());
        }
    }

    /// A visitor socket opened when the conversation had `lines` lines: later ones are
    /// pushed.
    pub fn visitor_seen(&self, id: &str, lines: u64) {
        lock(&self.0.seen).entry(id.to_owned()).or_insert(lines);
    }

    /// Pushes to a conversation's visitor socket the lines another replica wrote since the
    /// last one pushed, read from the store.
    async fn catch_up(&self, id: &str) {
        let Some(after) = lock(&self.0.seen).get(id).copied() else {
            return;
        };
        let key = id.to_owned();
        let Ok(Some((status, messages))) = self
            .driver()
            .read(Some(id), move |hub| view::history(hub, &key, after))
            .await
        else {
            return;
        };
        let subs = lock(&self.0.visitors);
        let Some(tx) = subs.get(id) else { return };
        let mut seen = lock(&self.0.seen);
        let last = seen.entry(id.to_owned()).or_insert(after);
        for m in messages {
            let seq = m["seq"].as_u64().unwrap_or(0);
            if seq <= *last {
                continue;
            }
            *last = seq;
            let _ = tx.send(json!({"type": "message", "message": m}).to_string());
        }
        let _ = tx.send(json!({"type": "status", "status": status}).to_string());
    }

    /// Call when an agent socket closed (after dropping its receiver).
    pub fn agent_gone(&self, agent: &str) {
        Self::unsubscribe(&self.0.agents, agent);
    }

    /// How many socket channels are open (visitors, agents).
    pub fn socket_channels(&self) -> (usize, usize) {
        (lock(&self.0.visitors).len(), lock(&self.0.agents).len())
    }

    /// Re-reads the playbook folder (admin API and SIGHUP): files are parsed and checked on a
    /// blocking thread, off the driver; new versions are stored, then served.
    pub async fn reload(&self) -> Result<ReloadReport, ApiError> {
        let _one = self.0.reloading.lock().await;
        let catalog = Arc::clone(&self.0.catalog);
        let dir = self.0.playbook_dir.clone();
        let (cands, mut report) = tokio::task::spawn_blocking(move || read(&catalog).scan(&dir))
            .await
            .map_err(|e| ApiError::Internal(format!("the reload task failed: {e}")))?
            .map_err(|e| ApiError::BadRequest(format!("cannot read the playbook folder: {e}")))?;
        let mut rows = Vec::new();
        let mut versions = Vec::new();
        for c in cands {
            let version = self.catalog().latest(&c.name).map_or(1, |v| v.version + 1);
            rows.push(VersionRow {
                name: c.name.clone(),
                version,
                file: c.file.clone(),
                source: c.source.clone(),
            });
            versions.push((c, version));
        }
        if !rows.is_empty() {
            let commit = Commit {
                versions: rows,
                ..Commit::default()
            };
            self.blocking(move |s| s.commit(&commit)).await?;
        }
        let mut new = Vec::new();
        for (c, version) in versions {
            tracing::info!(playbook = %c.name, version, "playbook version loaded");
            report.loaded.push((c.name.clone(), version));
            new.push((c.name, version, c.file, c.source, c.engine, c.playbook));
        }
        self.serve_versions(new).await?;
        for r in &report.refused {
            tracing::warn!(file = %r.file, diagnostics = r.diagnostics.len(), "playbook refused; the old version keeps serving");
        }
        report.warnings = self.unknown_refs();
        for w in &report.warnings {
            tracing::warn!("{w}");
        }
        // The CRM may have been fixed meanwhile: parked records and paused connectors get
        // another chance.
        outbox::reset(self);
        Ok(report)
    }
}

/// A compiled playbook version to serve: name, version, file, source, engine, playbook.
type NewVersion = (
    String,
    i64,
    String,
    String,
    crate::engine::Engine,
    crate::model::Playbook,
);

impl AppState {
    /// Serves stored versions: in the catalog (new conversations, the graph view) and in the
    /// hub (conversations on them).
    async fn serve_versions(&self, new: Vec<NewVersion>) -> Result<(), ApiError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut engines = Vec::new();
        {
            let mut catalog = self.0.catalog.write().unwrap_or_else(|e| e.into_inner());
            for (name, version, file, source, engine, playbook) in new {
                engines.push((name.clone(), version, Arc::new(engine)));
                catalog.add(
                    &name,
                    Version {
                        version,
                        file,
                        source,
                        playbook: Arc::new(playbook),
                    },
                );
            }
        }
        self.driver()
            .call(move |hub, _, _| {
                for (name, version, engine) in engines {
                    hub.add_named_playbook(&name, version, engine);
                }
            })
            .await?;
        Ok(())
    }

    /// What the newest version of each served playbook names that the config lacks (W004),
    /// and what a CRM connector cannot map (W005).
    fn unknown_refs(&self) -> Vec<String> {
        let catalog = self.catalog();
        let mut out: Vec<String> = catalog
            .latest_all()
            .flat_map(|(name, v)| {
                crate::check::desk_names(&v.playbook, |r| self.config().has(r))
                    .into_iter()
                    .map(move |d| format!("{} in playbook `{name}`: {}", d.code, d.message))
            })
            .collect();
        let config = self.config();
        let playbooks: Vec<(&str, &crate::model::Playbook)> = catalog
            .latest_all()
            .map(|(name, v)| (name, v.playbook.as_ref()))
            .collect();
        let agents: Vec<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
        let pools = config
            .pools
            .iter()
            .map(|p| (p.name.clone(), p.members.clone()))
            .collect();
        for c in &config.crm {
            out.extend(crate::crm::warnings(c, &playbooks, &agents, &pools));
        }
        out
    }

    /// Serves the playbook versions another replica stored (its reload) that this one does
    /// not have yet; returns how many.
    pub async fn adopt_stored_versions(&self) -> Result<usize, ApiError> {
        let _one = self.0.reloading.lock().await;
        let rows = self.blocking(|s| s.versions()).await?;
        let missing: Vec<VersionRow> = {
            let catalog = self.catalog();
            rows.into_iter()
                .filter(|v| catalog.get(&v.name, v.version).is_none())
                .collect()
        };
        if missing.is_empty() {
            return Ok(0);
        }
        let compiled = tokio::task::spawn_blocking(move || {
            missing
                .into_iter()
                .filter_map(|v| match compile(&v.file, &v.source) {
                    Ok((engine, playbook)) => {
                        Some((v.name, v.version, v.file, v.source, engine, playbook))
                    }
                    Err(d) => {
                        tracing::error!(playbook = %v.name, version = v.version, diagnostics = ?d, "a stored playbook version does not compile here");
                        None
                    }
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| ApiError::Internal(format!("a version task failed: {e}")))?;
        let n = compiled.len();
        for v in &compiled {
            tracing::info!(playbook = %v.0, version = v.1, "playbook version adopted from another replica");
        }
        self.serve_versions(compiled).await?;
        Ok(n)
    }
}

/// The longest line a queue position is counted in (beyond it, no position is shown).
const QUEUE_LIMIT: i64 = 1000;

/// How often a replica looks for playbook versions another one stored.
const VERSION_SYNC: std::time::Duration = std::time::Duration::from_secs(2);

/// On a shared store: serves what other replicas' reloads stored, so a conversation started
/// on a new version anywhere can be continued here, and new ones start on the newest.
async fn sync_versions(state: AppState) {
    loop {
        tokio::time::sleep(VERSION_SYNC).await;
        if let Err(e) = state.adopt_stored_versions().await {
            tracing::warn!(error = %e, "cannot read the stored playbook versions");
        }
    }
}

fn notification_json(n: &Notification, out: &Outputs) -> (String, Value) {
    match n {
        Notification::EnteredUnassigned {
            agent,
            conversation,
        } => (
            agent.clone(),
            json!({"type": "unassigned", "conversation": conversation}),
        ),
        Notification::MessageArrived {
            agent,
            conversation,
        } => {
            // The visitor's message is the last visitor line of this conversation's update.
            let message = out
                .updates
                .iter()
                .filter(|u| &u.conversation == conversation)
                .flat_map(|u| {
                    u.lines
                        .iter()
                        .enumerate()
                        .map(move |(i, l)| (u.first_seq + i as u64, l))
                })
                .rfind(|(_, l)| l.from == Who::Visitor)
                .map(|(seq, l)| view::message_json(seq, l));
            (
                agent.clone(),
                json!({"type": "message", "conversation": conversation, "message": message}),
            )
        }
        Notification::AssignedToYou {
            agent,
            conversation,
            by,
        } => (
            agent.clone(),
            json!({"type": "assigned", "conversation": conversation, "by": by}),
        ),
    }
}

/// How `playbook serve` was asked to run.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The playbook folder.
    pub playbooks: PathBuf,
    /// The data folder (created).
    pub data: PathBuf,
    /// Where to listen.
    pub addr: String,
    /// The config file, if any.
    pub config: Option<PathBuf>,
    /// PostgreSQL instead of SQLite in `data` (replicas share it).
    pub database: Option<crate::persist::PgOptions>,
}

/// A hub holding every stored playbook version and the desk of the config.
fn new_hub(config: &Config, versions: &[VersionRow], catalog: &mut Catalog) -> Hub {
    let mut hub = Hub::durable(config.desk());
    for v in versions {
        match compile(&v.file, &v.source) {
            Ok((engine, playbook)) => {
                hub.add_named_playbook(&v.name, v.version, engine);
                catalog.add(
                    &v.name,
                    Version {
                        version: v.version,
                        file: v.file.clone(),
                        source: v.source.clone(),
                        playbook: Arc::new(playbook),
                    },
                );
            }
            Err(d) => tracing::error!(
                playbook = %v.name, version = v.version, diagnostics = ?d,
                "a stored playbook version no longer compiles; its conversations cannot resume"
            ),
        }
    }
    hub
}

/// Opens the data folder, migrating a first-release one, and loads what is open. Blocking:
/// call it before serving, or from `spawn_blocking`. Then [`start`] runs it.
pub fn open(opts: &ServeOptions) -> Result<Opening, String> {
    let config = match &opts.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if !opts.playbooks.is_dir() {
        return Err(format!(
            "the playbook folder {} does not exist",
            opts.playbooks.display()
        ));
    }
    if let Some(pg) = &opts.database {
        let store = crate::persist::PgStore::open(pg).map_err(|e| e.to_string())?;
        return open_store(Arc::new(store), config, opts.playbooks.clone())
            .map_err(|e| e.to_string());
    }
    create_private_dir(&opts.data)?;
    let db = opts.data.join("playbook.sqlite");
    let (store, opened) = SqliteStore::open(&db, SqliteOptions::default())
        .map_err(|e| format!("{e} ({})", db.display()))?;
    open_with(store, opened, config, opts.playbooks.clone()).map_err(|e| e.to_string())
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), String> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
        .map_err(|e| format!("cannot create the data folder {}: {e}", dir.display()))
}

/// A data folder opened and loaded, not yet running (no task spawned).
pub struct Opening {
    hub: Hub,
    /// Conversations with a pending timer, loaded when it is due.
    parked: Vec<(String, u64, crate::engine::Instant)>,
    config: Arc<Config>,
    store: Arc<dyn Storage>,
    catalog: Catalog,
    playbook_dir: PathBuf,
}

impl std::fmt::Debug for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opening")
            .field("hub", &self.hub)
            .finish_non_exhaustive()
    }
}

/// [`open`] on a SQLite store opened by the caller (tests choose its options), migrating a
/// first-release file.
pub fn open_with(
    store: SqliteStore,
    opened: Opened,
    config: Config,
    playbook_dir: PathBuf,
) -> Result<Opening, StoreError> {
    if opened == Opened::NeedsMigration {
        let versions = store.versions()?;
        let mut scratch = Catalog::default();
        let mut hub = new_hub(&config, &versions, &mut scratch);
        let m = migrate::migrate(&store, &mut hub)?;
        tracing::info!(
            events = m.events,
            refused = m.refused,
            conversations = m.conversations,
            backup = %m.backup.display(),
            "the data folder was migrated to per-conversation state; the old file is kept as the backup"
        );
    }
    open_store(Arc::new(store), config, playbook_dir)
}

/// [`open`] on any store. On a [shared](Storage::shared) one nothing is loaded: the driver
/// reads each conversation when it is needed and claims due timers.
pub fn open_store(
    store: Arc<dyn Storage>,
    config: Config,
    playbook_dir: PathBuf,
) -> Result<Opening, StoreError> {
    let versions = store.versions()?;
    let mut catalog = Catalog::default();
    let mut hub = new_hub(&config, &versions, &mut catalog);
    let open = store.open_set()?;
    // Stored presence wins over the config; agents the store has not seen are stored with
    // the config's presence now, so a later config never reinterprets them.
    let stored: HashMap<&str, &str> = open
        .agents
        .iter()
        .map(|(a, p)| (a.as_str(), p.as_str()))
        .collect();
    let mut seed = Commit::default();
    let agents: Vec<(String, crate::desk::Presence)> = hub
        .desk()
        .agents()
        .map(|(a, p)| (a.to_owned(), p))
        .collect();
    for (agent, presence) in agents {
        match stored
            .get(agent.as_str())
            .and_then(|p| durable::presence_of(p))
        {
            Some(p) => {
                let _ = hub.set_presence(&agent, p);
            }
            None => seed
                .agents
                .push((agent.clone(), durable::presence_name(presence)?)),
        }
    }
    for (pool, next) in &open.pools {
        hub.desk_mut()
            .set_pool_next(pool, usize::try_from(*next).unwrap_or(0));
    }
    for (agent, open, last) in &open.loads {
        // An agent of the store but not of this config is not this desk's.
        let _ = hub
            .desk_mut()
            .set_load(agent, durable::load_of((*open, *last)));
    }
    if let Some((_, seq)) = open.meta.iter().find(|(k, _)| k == durable::meta::DESK_SEQ) {
        hub.desk_mut().set_seq(seq.parse().unwrap_or(0));
    }
    hub.set_next_ord(u64::try_from(open.max_ord).unwrap_or(0) + 1);
    let (conversations, parked) = if store.shared() {
        (Vec::new(), Vec::new())
    } else {
        (open.conversations, open.parked)
    };
    let loaded = conversations.len();
    let parked: Vec<(String, u64, crate::engine::Instant)> = parked
        .into_iter()
        .map(|(id, ord, at)| {
            let at = crate::engine::Instant(u64::try_from(at).unwrap_or(0));
            (id, u64::try_from(ord).unwrap_or(0), at)
        })
        .collect();
    for (row, lines) in conversations {
        let id = row.id.clone();
        match durable::loaded(&hub, row, lines)
            .and_then(|l| hub.insert(l).map_err(|e| StoreError::Io(e.to_string())))
        {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(conversation = %id, error = %e, "an open conversation cannot be loaded")
            }
        }
    }
    store.commit(&seed)?;
    let counted = migrate::backfill_stats(store.as_ref(), &hub)?;
    if counted > 0 {
        tracing::info!(
            conversations = counted,
            "analytics: counted the conversations stored before"
        );
    }
    hub.set_turn_limit(Some(config.limits.turns_per_minute));
    hub.set_analytics(config.analytics.enabled);
    tracing::info!(
        open = loaded,
        timers = hub.timer_count(),
        parked = parked.len(),
        "open conversations loaded"
    );
    Ok(Opening {
        hub,
        parked,
        config: Arc::new(config),
        store,
        catalog,
        playbook_dir,
    })
}

/// Spawns the driver over an opened data folder, reads the playbook folder (new versions are
/// stored), and returns the state with its forwarder and outbox tasks running. Needs a tokio
/// runtime; time runs from `clock`.
pub async fn start(opening: Opening, clock: Clock) -> Result<(AppState, ReloadReport), String> {
    let Opening {
        hub,
        parked,
        config,
        store,
        catalog,
        playbook_dir,
    } = opening;
    let driver = Driver::durable_with_parked(hub, clock, Arc::clone(&store), parked);
    let state = AppState(Arc::new(Shared {
        driver,
        config,
        store,
        catalog: Arc::new(RwLock::new(catalog)),
        playbook_dir,
        reloading: tokio::sync::Mutex::new(()),
        outbox_poke: Notify::new(),
        outbox_generation: std::sync::atomic::AtomicU64::new(0),
        visitors: Mutex::new(HashMap::new()),
        agents: Mutex::new(HashMap::new()),
        seen: Mutex::new(HashMap::new()),
        positions: Mutex::new(HashMap::new()),
        channels: Arc::new(channels::ChannelState::new()),
    }));
    tokio::spawn(forward(state.clone()));
    if let Some(rx) = state.store().changes() {
        tokio::spawn(remote(state.clone(), rx));
    }
    if state.store().shared() {
        tokio::spawn(sync_versions(state.clone()));
    }
    let report = state.reload().await.map_err(|e| e.to_string())?;
    if channels::any(&state) {
        tokio::spawn(channels::run(state.clone()));
    }
    let connectors = outbox::connectors(state.config());
    if !connectors.is_empty() {
        tokio::spawn(outbox::run(state.clone(), connectors));
    }
    Ok((state, report))
}

/// Turns what the driver published into socket frames, and wakes the outbox for new records.
async fn forward(state: AppState) {
    let mut rx = state.driver().subscribe_all();
    loop {
        match rx.recv().await {
            Ok(out) => {
                state.publish(&out);
                if !out.records.is_empty() {
                    state.poke_outbox();
                }
                if state.moves_queue(&out) {
                    state.push_positions().await;
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    skipped = n,
                    "socket pushes were skipped; clients catch up from the history"
                );
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Turns what other replicas committed into socket frames here: their conversations' new
/// lines (read from the store) to visitors connected to this replica, their notices to agents.
/// After the listening connection was reopened, every connected visitor is caught up.
async fn remote(
    state: AppState,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<crate::persist::Change>,
) {
    use crate::persist::Change;
    while let Some(change) = rx.recv().await {
        match change {
            Change::Conversations(ids) => {
                for id in ids {
                    state.catch_up(&id).await;
                }
                // Another replica's change may have moved the line.
                state.push_positions().await;
            }
            Change::Resync => {
                let ids: Vec<String> = lock(&state.0.seen).keys().cloned().collect();
                for id in ids {
                    state.catch_up(&id).await;
                }
            }
            Change::Notice(text) => match serde_json::from_str::<Notification>(&text) {
                Ok(n) => state.publish(&Outputs {
                    notifications: vec![n],
                    ..Outputs::default()
                }),
                Err(e) => tracing::warn!(error = %e, "an unreadable notice from another replica"),
            },
        }
    }
}

/// [`open`] (on a blocking thread) then [`start`]: a running state, not yet listening.
pub async fn launch(opts: &ServeOptions, clock: Clock) -> Result<(AppState, ReloadReport), String> {
    let o = opts.clone();
    let opening = tokio::task::spawn_blocking(move || open(&o))
        .await
        .map_err(|e| e.to_string())??;
    start(opening, clock).await
}

/// Binds, prints `listening on http://ADDR`, and serves until the process is stopped.
pub async fn serve(opts: ServeOptions) -> Result<(), String> {
    let (state, report) = launch(&opts, Clock::wall()).await?;
    for r in &report.refused {
        for d in &r.diagnostics {
            eprintln!("{d}");
        }
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if state.catalog().latest_all().next().is_none() {
        return Err(format!(
            "no playbook in {} passes `check`; nothing to serve",
            opts.playbooks.display()
        ));
    }
    let listener = tokio::net::TcpListener::bind(&opts.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    spawn_signals(&state);
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let limits = edge::EdgeLimits::from(&state.config().limits);
    edge::run(listener, router(state), limits)
        .await
        .map_err(|e| e.to_string())
}

/// Reloads the playbook folder on SIGHUP; a failed reload is logged and the next SIGHUP
/// tries again.
fn spawn_signals(state: &AppState) {
    #[cfg(unix)]
    {
        let s = state.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                return;
            };
            while hup.recv().await.is_some() {
                match s.reload().await {
                    Ok(r) => tracing::info!(
                        loaded = r.loaded.len(),
                        refused = r.refused.len(),
                        "reloaded on SIGHUP"
                    ),
                    Err(e) => tracing::error!(error = %e, "reload on SIGHUP failed"),
                }
            }
        });
    }
}

impl AppState {
    /// Pokes the outbox (tests and after writes).
    pub fn poke_outbox(&self) {
        self.0.outbox_poke.notify_one();
    }

    pub(crate) fn outbox_notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.0.outbox_poke.notified()
    }
}
