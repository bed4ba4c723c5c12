//! The tokio driver: a [`Hub`] owned by one task (actor style), fed by commands over an mpsc
//! channel, answering over oneshots, and publishing everything that happens.
//!
//! **One timer for the whole hub.** The task holds a single [`tokio::time::Sleep`] set to the
//! hub's earliest deadline ([`Hub::next_deadline`]) and resets it whenever that deadline
//! changes. Waiting conversations cost an entry in the hub's ordered timer queue and nothing in
//! tokio: no task, no timer, no wake-up per conversation. When the sleep fires, the hub fires
//! every due timer in (deadline, conversation, kind) order ([`Hub::advance`]). Before each
//! command the hub is also advanced to "now", so a command never overtakes a due timer.
//!
//! **Time.** tokio's clock is mapped to the engine's virtual [`Instant`] by a [`Clock`] given at
//! construction (an anchor: this tokio instant is that virtual instant), so tests run with
//! `tokio::time::pause` and `advance` and see exact, repeatable virtual times.
//!
//! Must not: block the task (sinks should be fast; a slow CRM belongs behind its own queue),
//! or hold a timer per conversation.

use std::collections::HashMap;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Duration;

use super::hub::{Hub, HubError};
use super::types::{Command, Outputs};
use crate::engine::{Effect, Instant};

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
}

type Job = Box<dyn FnOnce(&mut Hub, Instant, &mut Outputs) + Send>;

enum Request {
    Apply {
        id: String,
        cmd: Box<Command>,
        reply: oneshot::Sender<Result<Outputs, HubError>>,
    },
    Call(Job),
    Subscribe {
        id: String,
        tx: mpsc::UnboundedSender<Effect<'static>>,
    },
    Stats(oneshot::Sender<DriverStats>),
}

/// The driver stopped (its task ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the runtime driver has stopped")]
pub struct Stopped;

/// A handle to the driver task; cheap to clone. The task ends when every handle is dropped.
#[derive(Debug, Clone)]
pub struct Driver {
    tx: mpsc::Sender<Request>,
    all: broadcast::Sender<Outputs>,
}

impl Driver {
    /// Spawns the task that owns `hub`, with `clock` mapping tokio time to virtual time.
    pub fn spawn(hub: Hub, clock: Clock) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        let (all, _) = broadcast::channel(1024);
        let task = Task {
            hub,
            clock,
            rx,
            all: all.clone(),
            subs: HashMap::new(),
            resets: 0,
        };
        tokio::spawn(task.run());
        Driver { tx, all }
    }

    /// Applies a command to a conversation at the clock's now; returns what it produced
    /// (due timers fired first are published, not returned).
    pub async fn apply(
        &self,
        id: &str,
        cmd: Command,
    ) -> Result<Result<Outputs, HubError>, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Apply {
                id: id.to_owned(),
                cmd: Box::new(cmd),
                reply,
            })
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Runs `f` on the hub inside the task, at the clock's now (for batch set-up, desk
    /// changes and queries). What `f` adds to the outputs is published.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Hub, Instant, &mut Outputs) -> R + Send + 'static,
    ) -> Result<R, Stopped> {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |hub, now, out| {
            let _ = reply.send(f(hub, now, out));
        });
        self.tx
            .send(Request::Call(job))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Every output of the hub (command replies, fired timers, notifications, records).
    pub fn subscribe_all(&self) -> broadcast::Receiver<Outputs> {
        self.all.subscribe()
    }

    /// The effects of one conversation, from now on.
    pub async fn subscribe(
        &self,
        id: &str,
    ) -> Result<mpsc::UnboundedReceiver<Effect<'static>>, Stopped> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx
            .send(Request::Subscribe {
                id: id.to_owned(),
                tx,
            })
            .await
            .map_err(|_| Stopped)?;
        Ok(rx)
    }

    /// The task's figures.
    pub async fn stats(&self) -> Result<DriverStats, Stopped> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Stats(reply))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }
}

struct Task {
    hub: Hub,
    clock: Clock,
    rx: mpsc::Receiver<Request>,
    all: broadcast::Sender<Outputs>,
    subs: HashMap<String, Vec<mpsc::UnboundedSender<Effect<'static>>>>,
    resets: u64,
}

impl Task {
    async fn run(mut self) {
        // The one timer. Parked far away until a deadline exists.
        let sleep = tokio::time::sleep_until(self.clock.to_tokio(Instant(u64::MAX)));
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let next = self.hub.next_deadline();
            if next != armed {
                if let Some(at) = next {
                    sleep.as_mut().reset(self.clock.to_tokio(at));
                    self.resets += 1;
                }
                armed = next;
            }
            tokio::select! {
                biased;
                () = &mut sleep, if armed.is_some() => {
                    let out = self.hub.advance(self.clock.now());
                    self.publish(out);
                }
                req = self.rx.recv() => {
                    let Some(req) = req else { break };
                    self.handle(req, armed.is_some());
                }
            }
        }
    }

    fn handle(&mut self, req: Request, armed: bool) {
        let now = self.clock.now();
        let due = self.hub.advance(now);
        self.publish(due);
        match req {
            Request::Apply { id, cmd, reply } => {
                let r = self.hub.apply(&id, *cmd, now);
                if let Ok(out) = &r {
                    self.publish(out.clone());
                }
                let _ = reply.send(r);
            }
            Request::Call(job) => {
                let mut out = Outputs::default();
                job(&mut self.hub, now, &mut out);
                self.publish(out);
            }
            Request::Subscribe { id, tx } => self.subs.entry(id).or_default().push(tx),
            Request::Stats(reply) => {
                let _ = reply.send(DriverStats {
                    conversations: self.hub.len(),
                    queued_timers: self.hub.timer_count(),
                    armed_sleeps: usize::from(armed || self.hub.next_deadline().is_some()),
                    sleep_resets: self.resets,
                });
            }
        }
    }

    fn publish(&mut self, out: Outputs) {
        if out.is_empty() {
            return;
        }
        for e in &out.effects {
            if let Some(subs) = self.subs.get_mut(&e.conversation) {
                subs.retain(|tx| tx.send(e.effect.clone()).is_ok());
            }
        }
        // No receiver is fine: nobody is listening.
        let _ = self.all.send(out);
    }
}
