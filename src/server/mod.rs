//! `playbook serve`: the HTTP and WebSocket API of `docs/api.md` over the runtime hub, with
//! durable SQLite storage ([`crate::persist`]) and CRM webhook delivery ([`outbox`]).
//!
//! [`router`] builds the axum app from an [`AppState`] (testable with `oneshot`, no socket);
//! [`serve`] opens the data folder, restores state, binds and runs the background tasks (the
//! timer task with ONE sleep for the hub's earliest deadline, the outbox, SIGHUP reload); the
//! listener with its timeouts and connection cap is [`edge`].
//!
//! Must not: decide anything the engine, desk or hub decides (it maps HTTP onto hub calls and
//! hub errors onto statuses), acknowledge a change before the store has it, or panic on input.

pub mod config;
pub mod core;
pub mod edge;
pub mod error;
mod handlers;
pub mod outbox;
mod pages;
pub mod playbooks;
mod ratelimit;
pub mod redact;
#[cfg(test)]
mod reload_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, broadcast};

pub use self::config::Config;
pub use self::core::Core;
use self::core::{Applied, Publish};
pub use self::error::ApiError;
pub use self::handlers::router;
use crate::persist::Store;

/// Shared server state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What the handlers and tasks share.
pub struct Shared {
    core: Mutex<Core>,
    config: Arc<Config>,
    store: Arc<Store>,
    timer_poke: Notify,
    outbox_poke: Notify,
    visitors: Mutex<HashMap<String, broadcast::Sender<String>>>,
    agents: Mutex<HashMap<String, broadcast::Sender<String>>>,
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

impl AppState {
    /// Wraps a restored core.
    pub fn new(core: Core) -> Self {
        let config = Arc::clone(core.config());
        let store = Arc::clone(core.store());
        AppState(Arc::new(Shared {
            core: Mutex::new(core),
            config,
            store,
            timer_poke: Notify::new(),
            outbox_poke: Notify::new(),
            visitors: Mutex::new(HashMap::new()),
            agents: Mutex::new(HashMap::new()),
        }))
    }

    /// The core, locked. Never hold it across an `.await`.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        lock(&self.0.core)
    }

    /// The config.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<Store> {
        &self.0.store
    }

    /// Waits until an applied change is durable, then pushes it to sockets and wakes the
    /// timer and outbox tasks. On a storage error nothing is pushed and the caller gets 503.
    pub async fn settle<T>(&self, applied: Applied<T>) -> Result<T, ApiError> {
        let Applied {
            value,
            ack,
            publish,
        } = applied;
        match ack.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(ApiError::Storage("the writer stopped".into())),
        }
        self.publish(publish);
        self.0.timer_poke.notify_one();
        self.0.outbox_poke.notify_one();
        Ok(value)
    }

    fn publish(&self, p: Publish) {
        if !p.visitor.is_empty() {
            let mut subs = lock(&self.0.visitors);
            for (id, msgs, status) in p.visitor {
                let Some(tx) = subs.get(&id) else { continue };
                let mut after_visitor = false;
                for m in msgs {
                    let role = m["from"]["role"].as_str().unwrap_or_default();
                    // The bot's answer to a visitor message is announced first, so the
                    // widget can show its typing hint.
                    if role == "bot" && after_visitor {
                        let _ = tx.send(serde_json::json!({"type": "typing"}).to_string());
                    }
                    after_visitor = role == "visitor";
                    let _ =
                        tx.send(serde_json::json!({"type": "message", "message": m}).to_string());
                }
                let _ =
                    tx.send(serde_json::json!({"type": "status", "status": status}).to_string());
                if tx.receiver_count() == 0 {
                    subs.remove(&id);
                }
            }
        }
        if !p.agents.is_empty() {
            let mut subs = lock(&self.0.agents);
            for (agent, v) in p.agents {
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

    /// Messages pushed to a conversation's visitor. The channel is allocated in full per
    /// conversation with an open socket (256 slots cost ~14 KB), so it is kept to a step's
    /// worth of frames; a visitor that falls behind gets a `lagged` frame and refetches.
    pub fn subscribe_visitor(&self, id: &str) -> broadcast::Receiver<String> {
        Self::subscribe(&self.0.visitors, id, 32)
    }

    /// Notifications pushed to an agent (few agents, bursts of many conversations).
    pub fn subscribe_agent(&self, agent: &str) -> broadcast::Receiver<String> {
        Self::subscribe(&self.0.agents, agent, 256)
    }

    /// Re-reads the playbook folder (admin API and SIGHUP).
    ///
    /// The reload work (reading, checking, rendering diagnostics) runs on a blocking thread:
    /// it is slow for a runtime thread, and a panic in it (a bug) fails this reload with a
    /// logged 500 instead of killing the SIGHUP task or the admin's connection.
    pub async fn reload(&self) -> Result<playbooks::ReloadReport, ApiError> {
        let state = self.clone();
        let (report, ack) = tokio::task::spawn_blocking(move || state.core().reload())
            .await
            .map_err(|e| ApiError::Internal(format!("the reload failed: {e}")))??;
        if let Some(ack) = ack {
            ack.await
                .map_err(|_| ApiError::Storage("the writer stopped".into()))??;
        }
        Ok(report)
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
}

/// Opens the data folder and restores every conversation. Blocking.
pub fn open(opts: &ServeOptions) -> Result<AppState, String> {
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
    std::fs::create_dir_all(&opts.data)
        .map_err(|e| format!("cannot create the data folder {}: {e}", opts.data.display()))?;
    let db = opts.data.join("playbook.sqlite");
    let store = Store::open(&db).map_err(|e| format!("{} ({})", e, db.display()))?;
    let (core, report) = Core::open(Arc::new(store), Arc::new(config), opts.playbooks.clone())?;
    for r in &report.refused {
        for d in &r.diagnostics {
            eprintln!("{d}");
        }
    }
    if core.playbooks_is_empty() {
        return Err(format!(
            "no playbook in {} passes `check`; nothing to serve",
            opts.playbooks.display()
        ));
    }
    Ok(AppState::new(core))
}

/// Runs the timer task: one sleep until the hub's earliest deadline, woken early by changes.
pub async fn run_timers(state: AppState) {
    loop {
        let (next, now) = {
            let mut core = state.core();
            (core.next_deadline(), core.now())
        };
        match next {
            Some(at) if at <= now => {
                let applied = state.core().advance();
                if let Err(e) = state.settle(applied).await {
                    tracing::error!(error = %e, "storing fired timers failed");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
            Some(at) => {
                let wait = std::time::Duration::from_millis(at - now);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = state.0.timer_poke.notified() => {}
                }
            }
            None => state.0.timer_poke.notified().await,
        }
    }
}

/// Binds, prints `listening on http://ADDR`, and serves until the process is stopped.
pub async fn serve(opts: ServeOptions) -> Result<(), String> {
    let o = opts.clone();
    let state = tokio::task::spawn_blocking(move || open(&o))
        .await
        .map_err(|e| e.to_string())??;
    let listener = tokio::net::TcpListener::bind(&opts.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    spawn_tasks(&state);
    println!("listening on http://{addr}");
    tracing::info!(%addr, "serving");
    let limits = edge::EdgeLimits::from(&state.config().limits);
    edge::run(listener, router(state), limits)
        .await
        .map_err(|e| e.to_string())
}

/// Starts the timer, outbox and signal tasks for a state.
pub fn spawn_tasks(state: &AppState) {
    tokio::spawn(run_timers(state.clone()));
    if let Some(w) = state.config().webhook.clone() {
        tokio::spawn(outbox::run(state.clone(), w));
    }
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
