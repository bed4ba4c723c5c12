//! The live-chat desk, in memory and deterministic: agents and their presence, teams,
//! distribution pools, the Unassigned / Mine / Closed queues, routing, and agent
//! notifications, and teams' availability hours ([`hours`]).
//!
//! Owns the desk's side of the live-chat rules: automatic assignment ([`Assignment`]: round
//! robin or least busy among the route's available agents, within each agent's capacity,
//! oldest waiting chat first — [`Desk::next_assignment`]); assign-to-self only while a
//! conversation waits (two agents racing: the first call wins, the second gets
//! [`DeskError::AlreadyAssigned`]); reassign only to an online agent; close once, never
//! reopen. Agent-made leads and deals are the hub's ([`crate::runtime::Hub::create_record`]):
//! it numbers them per conversation and commits them to the ledger. Must not: know about playbooks or sessions (the driver keeps desk and engine in step by
//! applying a desk change first and the matching engine event after it), read a clock, or do
//! I/O. Iteration orders are fixed (`BTreeMap`s, entry sequence numbers), so the same calls
//! give the same results.

pub mod hours;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use hours::{Hours, HoursError};

use crate::capture::Record;
use crate::engine::DeskView;
pub use crate::model::Assignment;
use crate::model::{Route, RouteTarget};

/// Whether an agent can take chats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Available: counts for routing, may pick up and receive reassigned chats.
    Online,
    /// Signed in but not taking chats.
    Away,
    /// Signed out.
    Offline,
}

/// An agent's open chats and when they were last given one automatically — what automatic
/// assignment decides on. Kept with the desk's rows, so every replica decides on the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Conversations assigned to the agent and not closed.
    pub open: u32,
    /// When (ms since the epoch) the agent was last given a chat automatically; 0: never.
    pub last: u64,
}

/// Where a conversation is on the desk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", content = "agent", rename_all = "snake_case")]
pub enum ConvState {
    /// In Unassigned, waiting for an agent.
    Unassigned,
    /// In this agent's Mine queue.
    Assigned(String),
    /// Closed by this agent; final.
    Closed(String),
    /// Left Unassigned because nobody picked it up in time; final.
    TimedOut,
}

/// A conversation the desk knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeskConversation {
    /// Where it is.
    pub state: ConvState,
    /// Who may take it.
    pub route: Route,
    /// The visitor's CRM owner, when known.
    pub contact_owner: Option<String>,
    /// When it entered Unassigned (0 in entries stored before this was kept).
    #[serde(default)]
    pub since: crate::engine::Instant,
    /// Order of entry, for queue order.
    seq: u64,
}

/// Something an agent should be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notification", rename_all = "snake_case")]
pub enum Notification {
    /// A conversation this agent may take entered Unassigned.
    EnteredUnassigned {
        /// Who is told.
        agent: String,
        /// Which conversation.
        conversation: String,
    },
    /// The visitor wrote in a conversation this agent handles.
    MessageArrived {
        /// Who is told.
        agent: String,
        /// Which conversation.
        conversation: String,
    },
    /// A conversation was assigned to this agent by someone else.
    AssignedToYou {
        /// Who is told.
        agent: String,
        /// Which conversation.
        conversation: String,
        /// The agent who passed it on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// Why the desk refused a request. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeskError {
    /// No agent of that name.
    #[error("no agent named `{0}`")]
    UnknownAgent(String),
    /// The desk has never seen the conversation.
    #[error("no conversation `{0}` on the desk")]
    UnknownConversation(String),
    /// The conversation is already on the desk.
    #[error("conversation `{0}` is already on the desk")]
    AlreadyQueued(String),
    /// Someone else already picked it up.
    #[error("`{agent}` already picked up this conversation")]
    AlreadyAssigned {
        /// Who has it.
        agent: String,
    },
    /// The conversation is closed (or timed out) and can't change any more.
    #[error("the conversation is over on the desk")]
    Closed,
    /// The conversation is not assigned to anyone.
    #[error("nobody handles this conversation yet")]
    NotAssigned,
    /// The agent is not the one handling it.
    #[error("`{0}` does not handle this conversation")]
    NotHandler(String),
    /// The agent is not online.
    #[error("`{0}` is not online")]
    NotOnline(String),
    /// The route does not name this agent.
    #[error("`{0}` is not among the agents this conversation is routed to")]
    NotRouted(String),
    /// Reassigning to the agent who has it.
    #[error("`{0}` already handles this conversation")]
    SameAgent(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Agent {
    presence: Presence,
    /// The most open chats automatic assignment gives them; `None`: no limit.
    capacity: Option<u32>,
    load: Load,
}

impl Agent {
    fn has_room(&self) -> bool {
        self.capacity.is_none_or(|c| self.load.open < c)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pool {
    members: Vec<String>,
    next: usize,
}

/// What [`Desk::diff`] found: what changed that is not part of a conversation's entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeskDiff {
    /// Agents whose presence changed.
    pub agents: Vec<(String, Presence)>,
    /// Agents whose load changed: `(agent, before, after)`.
    pub loads: Vec<(String, Load, Load)>,
    /// Pools whose round robin moved: `(pool, before, next)`.
    pub pools: Vec<(String, usize, usize)>,
    /// The entry counter, if it moved.
    pub seq: Option<u64>,
}

/// The desk.
#[derive(Debug, Clone, Default)]
pub struct Desk {
    agents: BTreeMap<String, Agent>,
    teams: BTreeMap<String, Vec<String>>,
    pools: BTreeMap<String, Pool>,
    conversations: BTreeMap<String, DeskConversation>,
    notifications: Vec<Notification>,
    seq: u64,
    /// Teams' availability hours; a team without is always open.
    hours: BTreeMap<String, Hours>,
    /// Teams' assignment; a team not listed (and every other route) uses `assignment`.
    team_assignment: BTreeMap<String, Assignment>,
    assignment: Assignment,
    /// Some playbook's live-chat card asks for automatic assignment itself.
    cards_assign: bool,
    /// The time routing is decided at (set by the caller before each step).
    now: crate::engine::Instant,
}

impl Desk {
    /// An empty desk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or updates) an agent.
    pub fn add_agent(&mut self, name: &str, presence: Presence) {
        let (capacity, load) = self
            .agents
            .get(name)
            .map_or((None, Load::default()), |a| (a.capacity, a.load));
        self.agents.insert(
            name.to_owned(),
            Agent {
                presence,
                capacity,
                load,
            },
        );
    }

    /// Limits how many open chats automatic assignment gives an agent (`None`: no limit).
    /// Agents may still pick up more themselves.
    pub fn set_capacity(&mut self, agent: &str, capacity: Option<u32>) -> Result<(), DeskError> {
        self.agent_mut(agent)?.capacity = capacity;
        Ok(())
    }

    /// Sets an agent's load as stored.
    pub fn set_load(&mut self, agent: &str, load: Load) -> Result<(), DeskError> {
        self.agent_mut(agent)?.load = load;
        Ok(())
    }

    /// An agent's load.
    pub fn load(&self, agent: &str) -> Option<Load> {
        self.agents.get(agent).map(|a| a.load)
    }

    /// How a team's chats are assigned (`None`: the default for routes that name no team).
    pub fn set_assignment(&mut self, team: Option<&str>, assignment: Assignment) {
        match team {
            Some(t) => {
                self.team_assignment.insert(t.to_owned(), assignment);
            }
            None => self.assignment = assignment,
        }
    }

    /// Notes that a playbook's live-chat card assigns automatically whatever the config says
    /// (so a driver that reads waiting chats from a shared store knows to).
    pub fn note_card_assignment(&mut self) {
        self.cards_assign = true;
    }

    /// How a route's chats are assigned: the live-chat card's own `assign`, else its team's
    /// setting, else the desk's default.
    pub fn assignment_of(&self, route: &Route) -> Assignment {
        if let Some(a) = route.assign {
            return a;
        }
        match &route.to {
            RouteTarget::Team(t) => self
                .team_assignment
                .get(t)
                .copied()
                .unwrap_or(self.assignment),
            _ => self.assignment,
        }
    }

    fn agent_mut(&mut self, name: &str) -> Result<&mut Agent, DeskError> {
        self.agents
            .get_mut(name)
            .ok_or_else(|| DeskError::UnknownAgent(name.to_owned()))
    }

    fn open_delta(&mut self, agent: &str, up: bool) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.load.open = if up {
                a.load.open.saturating_add(1)
            } else {
                a.load.open.saturating_sub(1)
            };
        }
    }

    /// Changes an agent's presence.
    pub fn set_presence(&mut self, name: &str, presence: Presence) -> Result<(), DeskError> {
        self.agent_mut(name)?.presence = presence;
        Ok(())
    }

    /// An agent's presence.
    pub fn presence(&self, name: &str) -> Option<Presence> {
        self.agents.get(name).map(|a| a.presence)
    }

    /// Defines a team; every member must be an agent.
    pub fn add_team(&mut self, name: &str, members: &[&str]) -> Result<(), DeskError> {
        self.known(members)?;
        self.teams.insert(
            name.to_owned(),
            members.iter().map(|m| (*m).to_owned()).collect(),
        );
        Ok(())
    }

    /// Gives a team availability hours: outside them its agents do not count as available
    /// for routing (they can still pick up a chat that waits).
    pub fn set_hours(&mut self, team: &str, hours: Hours) {
        self.hours.insert(team.to_owned(), hours);
    }

    /// The time routing is decided at: hours are read at this instant.
    pub fn set_now(&mut self, now: crate::engine::Instant) {
        self.now = now;
    }

    /// Whether a team is within its hours now (a team without hours always is).
    pub fn team_open(&self, team: &str) -> bool {
        self.hours.get(team).is_none_or(|h| h.open_at(self.now))
    }

    /// Whether an agent counts for a route now: online, and within hours — the route's team's
    /// for a team route, else at least one of their teams' (an agent in no team with hours
    /// always is).
    fn available_for(&self, agent: &str, route: &Route) -> bool {
        if !self.is(agent, Presence::Online) {
            return false;
        }
        match &route.to {
            RouteTarget::Team(t) => self.team_open(t),
            _ => {
                let mut with_hours = self
                    .teams
                    .iter()
                    .filter(|(t, members)| {
                        self.hours.contains_key(*t) && members.iter().any(|m| m == agent)
                    })
                    .peekable();
                with_hours.peek().is_none() || with_hours.any(|(t, _)| self.team_open(t))
            }
        }
    }

    /// Defines a distribution pool; its members own records in turn (round robin). Members
    /// are CRM users and need not be agents.
    pub fn add_pool(&mut self, name: &str, members: &[&str]) {
        self.pools.insert(
            name.to_owned(),
            Pool {
                members: members.iter().map(|m| (*m).to_owned()).collect(),
                next: 0,
            },
        );
    }

    fn known(&self, names: &[&str]) -> Result<(), DeskError> {
        match names.iter().find(|m| !self.agents.contains_key(**m)) {
            Some(m) => Err(DeskError::UnknownAgent((*m).to_owned())),
            None => Ok(()),
        }
    }

    /// The agents a route names (whatever their presence), in name order.
    pub fn route_agents(&self, route: &Route, contact_owner: Option<&str>) -> Vec<&str> {
        match &route.to {
            RouteTarget::Anyone => self.agents.keys().map(String::as_str).collect(),
            RouteTarget::Agents(names) => {
                let mut v: Vec<&str> = names
                    .iter()
                    .filter_map(|n| {
                        self.agents
                            .get_key_value(n.as_str())
                            .map(|(k, _)| k.as_str())
                    })
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            RouteTarget::Team(t) => {
                let mut v: Vec<&str> = self
                    .teams
                    .get(t)
                    .map(|m| m.iter().map(String::as_str).collect())
                    .unwrap_or_default();
                v.sort_unstable();
                v.dedup();
                v
            }
            RouteTarget::Owner => contact_owner
                .and_then(|o| self.agents.get_key_value(o))
                .map(|(k, _)| vec![k.as_str()])
                .unwrap_or_default(),
        }
    }

    fn is(&self, agent: &str, p: Presence) -> bool {
        self.agents.get(agent).is_some_and(|a| a.presence == p)
    }

    /// Puts a conversation in Unassigned and notifies the route's agents who are online:
    /// only they may pick it up ([`Desk::assign_self`]), so only they are told. With
    /// `availability: anyone` the chat waits even when none is online; an agent who comes
    /// online later finds it in Unassigned (the inbox reloads its folders on going online)
    /// rather than being told while away or offline of a chat they could not take.
    pub fn enqueue(
        &mut self,
        conversation: &str,
        route: &Route,
        contact_owner: Option<&str>,
    ) -> Result<(), DeskError> {
        if self.conversations.contains_key(conversation) {
            return Err(DeskError::AlreadyQueued(conversation.to_owned()));
        }
        let notify: Vec<String> = self
            .route_agents(route, contact_owner)
            .into_iter()
            .filter(|a| self.is(a, Presence::Online))
            .map(str::to_owned)
            .collect();
        for agent in notify {
            self.notifications.push(Notification::EnteredUnassigned {
                agent,
                conversation: conversation.to_owned(),
            });
        }
        self.seq += 1;
        self.conversations.insert(
            conversation.to_owned(),
            DeskConversation {
                state: ConvState::Unassigned,
                route: route.clone(),
                contact_owner: contact_owner.map(str::to_owned),
                since: self.now,
                seq: self.seq,
            },
        );
        Ok(())
    }

    fn conv_mut(&mut self, id: &str) -> Result<&mut DeskConversation, DeskError> {
        self.conversations
            .get_mut(id)
            .ok_or_else(|| DeskError::UnknownConversation(id.to_owned()))
    }

    /// A conversation on the desk.
    pub fn conversation(&self, id: &str) -> Option<&DeskConversation> {
        self.conversations.get(id)
    }

    /// A conversation that waits in Unassigned, or why it does not.
    fn waiting(&self, conversation: &str) -> Result<&DeskConversation, DeskError> {
        let conv = self
            .conversations
            .get(conversation)
            .ok_or_else(|| DeskError::UnknownConversation(conversation.to_owned()))?;
        match &conv.state {
            ConvState::Unassigned => Ok(conv),
            ConvState::Assigned(a) => Err(DeskError::AlreadyAssigned { agent: a.clone() }),
            ConvState::Closed(_) | ConvState::TimedOut => Err(DeskError::Closed),
        }
    }

    /// An agent assigns a waiting conversation to themselves. Of two agents racing, the first
    /// call wins.
    pub fn assign_self(&mut self, conversation: &str, agent: &str) -> Result<(), DeskError> {
        self.known(&[agent])?;
        if !self.is(agent, Presence::Online) {
            return Err(DeskError::NotOnline(agent.to_owned()));
        }
        let conv = self.waiting(conversation)?;
        if !self
            .route_agents(&conv.route, conv.contact_owner.as_deref())
            .contains(&agent)
        {
            return Err(DeskError::NotRouted(agent.to_owned()));
        }
        self.conv_mut(conversation)?.state = ConvState::Assigned(agent.to_owned());
        self.open_delta(agent, true);
        Ok(())
    }

    /// The waiting chat automatic assignment gives out next, and to whom: the oldest
    /// conversation in Unassigned (by the time it entered) whose route assigns automatically and has an agent who is
    /// available for it (online, within hours) and below capacity; `skip` lists conversations
    /// not to consider. `None` when nothing can be given out now.
    pub fn next_assignment(
        &self,
        skip: &std::collections::BTreeSet<String>,
    ) -> Option<(&str, &str)> {
        // It runs after every step: on a desk that assigns nothing automatically, or where
        // nobody has room, answer without walking the queue.
        if !self.may_assign() {
            return None;
        }
        // Oldest by when it entered Unassigned: entry counters are per replica, so on a shared
        // store only the time orders chats that entered on different replicas.
        let mut waiting: Vec<(u64, u64, &str, &DeskConversation)> = self
            .conversations
            .iter()
            .filter(|(id, c)| c.state == ConvState::Unassigned && !skip.contains(*id))
            .map(|(id, c)| (c.since.0, c.seq, id.as_str(), c))
            .collect();
        waiting.sort_unstable_by_key(|(since, seq, id, _)| (*since, *seq, *id));
        waiting.into_iter().find_map(|(_, _, id, c)| {
            let agent = self.pick(&c.route, c.contact_owner.as_deref())?;
            Some((id, agent))
        })
    }

    /// Whether some route's chats are assigned automatically.
    pub fn assigns_automatically(&self) -> bool {
        self.cards_assign
            || self.assignment != Assignment::Manual
            || self
                .team_assignment
                .values()
                .any(|a| *a != Assignment::Manual)
    }

    /// Whether automatic assignment could give out a chat now if one waited: some route
    /// assigns automatically and some online agent has room.
    pub fn may_assign(&self) -> bool {
        self.assigns_automatically()
            && self
                .agents
                .values()
                .any(|a| a.presence == Presence::Online && a.has_room())
    }

    /// The agent automatic assignment would give a chat of this route to now.
    fn pick(&self, route: &Route, contact_owner: Option<&str>) -> Option<&str> {
        let mode = self.assignment_of(route);
        if mode == Assignment::Manual {
            return None;
        }
        self.route_agents(route, contact_owner)
            .into_iter()
            .filter(|a| self.available_for(a, route) && self.agents[*a].has_room())
            .min_by_key(|a| {
                let l = self.agents[*a].load;
                match mode {
                    Assignment::LeastBusy => (l.open, l.last, *a),
                    _ => (0, l.last, *a),
                }
            })
    }

    /// Automatic assignment gives a waiting conversation to `agent` (as
    /// [`Desk::next_assignment`] chose), who is notified.
    pub fn auto_assign(&mut self, conversation: &str, agent: &str) -> Result<(), DeskError> {
        let conv = self.waiting(conversation)?;
        if self.pick(&conv.route, conv.contact_owner.as_deref()) != Some(agent) {
            return Err(DeskError::NotRouted(agent.to_owned()));
        }
        self.conv_mut(conversation)?.state = ConvState::Assigned(agent.to_owned());
        let now = self.now.0;
        let a = self.agent_mut(agent)?;
        a.load.open = a.load.open.saturating_add(1);
        a.load.last = now;
        self.notifications.push(Notification::AssignedToYou {
            agent: agent.to_owned(),
            conversation: conversation.to_owned(),
            by: None,
        });
        Ok(())
    }

    /// When the desk next needs a look although nothing happens: teams' hours open on whole
    /// minutes, so while a chat that may be assigned automatically waits and some team has
    /// hours, the next minute.
    pub fn wake_at(&self, now: crate::engine::Instant) -> Option<crate::engine::Instant> {
        // The driver asks before every wait: answer at once for a desk that never gives out.
        if self.hours.is_empty()
            || !self.assigns_automatically()
            || !self.conversations.values().any(|c| {
                c.state == ConvState::Unassigned
                    && self.assignment_of(&c.route) != Assignment::Manual
            })
        {
            return None;
        }
        Some(crate::engine::Instant((now.0 / 60_000 + 1) * 60_000))
    }

    /// Nobody picked the conversation up in time: it leaves Unassigned for good.
    pub fn time_out(&mut self, conversation: &str) -> Result<(), DeskError> {
        let conv = self.conv_mut(conversation)?;
        match &conv.state {
            ConvState::Unassigned => {
                conv.state = ConvState::TimedOut;
                Ok(())
            }
            ConvState::Assigned(a) => Err(DeskError::AlreadyAssigned { agent: a.clone() }),
            ConvState::Closed(_) | ConvState::TimedOut => Err(DeskError::Closed),
        }
    }

    fn handler_check(&self, conversation: &str, agent: &str) -> Result<(), DeskError> {
        let conv = self
            .conversations
            .get(conversation)
            .ok_or_else(|| DeskError::UnknownConversation(conversation.to_owned()))?;
        match &conv.state {
            ConvState::Assigned(a) if a == agent => Ok(()),
            ConvState::Assigned(_) => Err(DeskError::NotHandler(agent.to_owned())),
            ConvState::Unassigned => Err(DeskError::NotAssigned),
            ConvState::Closed(_) | ConvState::TimedOut => Err(DeskError::Closed),
        }
    }

    /// The handling agent passes the conversation to another online agent, who is notified.
    pub fn reassign(&mut self, conversation: &str, by: &str, to: &str) -> Result<(), DeskError> {
        self.handler_check(conversation, by)?;
        self.known(&[to])?;
        if by == to {
            return Err(DeskError::SameAgent(to.to_owned()));
        }
        if !self.is(to, Presence::Online) {
            return Err(DeskError::NotOnline(to.to_owned()));
        }
        self.conv_mut(conversation)?.state = ConvState::Assigned(to.to_owned());
        self.open_delta(by, false);
        self.open_delta(to, true);
        self.notifications.push(Notification::AssignedToYou {
            agent: to.to_owned(),
            conversation: conversation.to_owned(),
            by: Some(by.to_owned()),
        });
        Ok(())
    }

    /// The handling agent closes the conversation, for good.
    pub fn close(&mut self, conversation: &str, by: &str) -> Result<(), DeskError> {
        self.handler_check(conversation, by)?;
        self.conv_mut(conversation)?.state = ConvState::Closed(by.to_owned());
        self.open_delta(by, false);
        Ok(())
    }

    /// The visitor wrote: the handling agent is notified.
    pub fn visitor_message(&mut self, conversation: &str) -> Result<(), DeskError> {
        let conv = self
            .conversations
            .get(conversation)
            .ok_or_else(|| DeskError::UnknownConversation(conversation.to_owned()))?;
        match &conv.state {
            ConvState::Assigned(a) => {
                let agent = a.clone();
                self.notifications.push(Notification::MessageArrived {
                    agent,
                    conversation: conversation.to_owned(),
                });
                Ok(())
            }
            ConvState::Unassigned => Ok(()),
            ConvState::Closed(_) | ConvState::TimedOut => Err(DeskError::Closed),
        }
    }

    fn queue(&self, pred: impl Fn(&ConvState) -> bool) -> Vec<&str> {
        let mut v: Vec<(u64, &str)> = self
            .conversations
            .iter()
            .filter(|(_, c)| pred(&c.state))
            .map(|(id, c)| (c.seq, id.as_str()))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// The Unassigned queue, oldest first.
    pub fn unassigned(&self) -> Vec<&str> {
        self.queue(|s| *s == ConvState::Unassigned)
    }

    /// An agent's Mine queue, oldest first.
    pub fn mine(&self, agent: &str) -> Vec<&str> {
        self.queue(|s| matches!(s, ConvState::Assigned(a) if a == agent))
    }

    /// Closed conversations, oldest first.
    pub fn closed(&self) -> Vec<&str> {
        self.queue(|s| matches!(s, ConvState::Closed(_)))
    }

    /// Puts back a conversation's entry as stored (a durable driver loading it).
    pub fn restore(&mut self, conversation: &str, entry: DeskConversation) {
        self.seq = self.seq.max(entry.seq);
        self.conversations.insert(conversation.to_owned(), entry);
    }

    /// Forgets a conversation's entry (it was dropped from memory; the store keeps it).
    pub fn forget(&mut self, conversation: &str) {
        self.conversations.remove(conversation);
    }

    /// The entry counter (queue order), to store.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Continues the entry counter from a stored value.
    pub fn set_seq(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }

    /// Sets a pool's round-robin position (as stored).
    pub fn set_pool_next(&mut self, pool: &str, next: usize) {
        if let Some(p) = self.pools.get_mut(pool) {
            p.next = if p.members.is_empty() {
                0
            } else {
                next % p.members.len()
            };
        }
    }

    /// What changed since `before` that is not part of a conversation's entry: agents whose
    /// presence or load changed, pools whose round robin moved, and the entry counter if it
    /// moved.
    pub fn diff(&self, before: &Desk) -> DeskDiff {
        let agents = self
            .agents
            .iter()
            .filter(|(n, a)| before.agents.get(*n).map(|b| b.presence) != Some(a.presence))
            .map(|(n, a)| (n.clone(), a.presence))
            .collect();
        let loads = self
            .agents
            .iter()
            .filter_map(|(n, a)| {
                let was = before.agents.get(n).map(|b| b.load).unwrap_or_default();
                (was != a.load).then(|| (n.clone(), was, a.load))
            })
            .collect();
        let pools = self
            .pools
            .iter()
            .filter_map(|(n, p)| {
                let was = before.pools.get(n).map_or(0, |b| b.next);
                (was != p.next).then(|| (n.clone(), was, p.next))
            })
            .collect();
        let seq = (self.seq != before.seq).then_some(self.seq);
        DeskDiff {
            agents,
            loads,
            pools,
            seq,
        }
    }

    /// Every agent with their presence, in name order.
    pub fn agents(&self) -> impl Iterator<Item = (&str, Presence)> {
        self.agents.iter().map(|(n, a)| (n.as_str(), a.presence))
    }

    /// Notifications since the last call, in order.
    pub fn take_notifications(&mut self) -> Vec<Notification> {
        std::mem::take(&mut self.notifications)
    }

    /// Moves a pool's round robin on after the ledger accepted a new record owned through it.
    pub fn note_capture(&mut self, record: &Record) {
        if let Some(p) = record.pool.as_ref().and_then(|p| self.pools.get_mut(p))
            && !p.members.is_empty()
        {
            p.next = (p.next + 1) % p.members.len();
        }
    }
}

impl DeskView for Desk {
    fn available(&self, route: &Route, contact_owner: Option<&str>) -> bool {
        self.route_agents(route, contact_owner)
            .iter()
            .any(|a| self.available_for(a, route))
    }

    fn is_online(&self, agent: &str) -> bool {
        self.is(agent, Presence::Online)
    }

    fn pool_owner(&self, pool: &str) -> Option<&str> {
        let p = self.pools.get(pool)?;
        p.members
            .get(p.next % p.members.len().max(1))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture;
    use crate::engine::{Channel, Instant};
    use crate::model::Availability;

    fn desk() -> Desk {
        let mut d = Desk::new();
        d.add_agent("ana", Presence::Online);
        d.add_agent("bob", Presence::Online);
        d.add_agent("cy", Presence::Away);
        d.add_agent("dee", Presence::Offline);
        d.add_team("Sales", &["ana", "cy"]).unwrap();
        d.add_pool("SDRs", &["sam", "tia"]);
        d
    }

    fn team(t: &str) -> Route {
        Route {
            to: RouteTarget::Team(t.into()),
            availability: Availability::Available,
            assign: None,
        }
    }

    #[test]
    fn routing_and_availability() {
        let d = desk();
        assert_eq!(d.route_agents(&team("Sales"), None), ["ana", "cy"]);
        assert!(d.available(&team("Sales"), None));
        let owner = Route {
            to: RouteTarget::Owner,
            availability: Availability::Available,
            assign: None,
        };
        assert!(!d.available(&owner, None));
        assert!(d.available(&owner, Some("bob")));
        assert!(!d.available(&owner, Some("dee")));
        let named = Route {
            to: RouteTarget::Agents(vec!["cy".into(), "dee".into(), "ghost".into()]),
            availability: Availability::Available,
            assign: None,
        };
        assert_eq!(d.route_agents(&named, None), ["cy", "dee"]);
        assert!(!d.available(&named, None));
        assert!(d.available(&Route::default(), None));
        assert!(!DeskView::available(&Desk::new(), &Route::default(), None));
    }

    #[test]
    fn queues_pickup_race_reassign_close() {
        let mut d = desk();
        d.enqueue("c1", &Route::default(), None).unwrap();
        d.enqueue("c2", &team("Sales"), None).unwrap();
        assert_eq!(
            d.enqueue("c1", &Route::default(), None),
            Err(DeskError::AlreadyQueued("c1".into()))
        );
        // Only online agents the route names are told: ana and bob (cy is away, dee
        // offline); for Sales, ana.
        let n = d.take_notifications();
        assert_eq!(n.len(), 2 + 1);
        assert_eq!(d.unassigned(), ["c1", "c2"]);
        assert_eq!(
            d.assign_self("c2", "bob"),
            Err(DeskError::NotRouted("bob".into()))
        );
        assert_eq!(
            d.assign_self("c1", "cy"),
            Err(DeskError::NotOnline("cy".into()))
        );
        d.assign_self("c1", "ana").unwrap();
        assert_eq!(
            d.assign_self("c1", "bob"),
            Err(DeskError::AlreadyAssigned {
                agent: "ana".into()
            })
        );
        assert_eq!(d.mine("ana"), ["c1"]);
        assert_eq!(
            d.reassign("c1", "bob", "ana"),
            Err(DeskError::NotHandler("bob".into()))
        );
        assert_eq!(
            d.reassign("c1", "ana", "dee"),
            Err(DeskError::NotOnline("dee".into()))
        );
        d.reassign("c1", "ana", "bob").unwrap();
        d.visitor_message("c1").unwrap();
        assert_eq!(
            d.take_notifications(),
            [
                Notification::AssignedToYou {
                    agent: "bob".into(),
                    conversation: "c1".into(),
                    by: Some("ana".into())
                },
                Notification::MessageArrived {
                    agent: "bob".into(),
                    conversation: "c1".into()
                }
            ]
        );
        d.close("c1", "bob").unwrap();
        assert_eq!(d.close("c1", "bob"), Err(DeskError::Closed));
        assert_eq!(d.reassign("c1", "bob", "ana"), Err(DeskError::Closed));
        assert_eq!(d.assign_self("c1", "ana"), Err(DeskError::Closed));
        assert_eq!(d.closed(), ["c1"]);
        d.time_out("c2").unwrap();
        assert_eq!(d.assign_self("c2", "ana"), Err(DeskError::Closed));
        assert!(d.unassigned().is_empty());
    }

    #[test]
    fn only_agents_who_may_pick_up_are_notified() {
        let told = |availability| {
            let mut d = desk();
            let route = Route {
                to: RouteTarget::Team("Sales".into()),
                availability,
                assign: None,
            };
            d.enqueue("c1", &route, None).unwrap();
            d.take_notifications()
        };
        let ana = vec![Notification::EnteredUnassigned {
            agent: "ana".into(),
            conversation: "c1".into(),
        }];
        // cy (Sales, away) cannot pick up, whatever the route's availability.
        assert_eq!(told(Availability::Available), ana);
        assert_eq!(told(Availability::Anyone), ana);
    }

    /// A route that waits even when nobody is available, assigned automatically, for a team
    /// open Monday to Friday 09:00-17:00 UTC: a chat that arrives at night waits; the desk
    /// asks to be woken on the next minute while it does, and gives the chat out once the
    /// hours start.
    #[test]
    fn hours_starting_give_out_waiting_chats() {
        let mut d = desk();
        d.set_assignment(Some("Sales"), Assignment::LeastBusy);
        d.set_hours(
            "Sales",
            Hours::parse("UTC", &["mon-fri 09:00-17:00".into()], &[]).unwrap(),
        );
        // Monday 5 January 2026, 08:58:30 UTC.
        let night = Instant(1_767_603_510_000);
        d.set_now(night);
        let route = Route {
            to: RouteTarget::Team("Sales".into()),
            availability: Availability::Anyone,
            assign: None,
        };
        d.enqueue("c1", &route, None).unwrap();
        let none = std::collections::BTreeSet::new();
        assert_eq!(d.next_assignment(&none), None);
        assert_eq!(d.wake_at(night), Some(Instant(1_767_603_540_000)));
        d.set_now(Instant(1_767_603_540_000));
        assert_eq!(d.next_assignment(&none), None, "08:59 is still outside");
        let nine = Instant(1_767_603_600_000);
        d.set_now(nine);
        assert_eq!(d.next_assignment(&none), Some(("c1", "ana")));
        // Only the route's agents: bob is online but not in Sales.
        d.auto_assign("c1", "ana").unwrap();
        assert_eq!(
            d.load("ana"),
            Some(Load {
                open: 1,
                last: nine.0
            })
        );
        assert_eq!(d.wake_at(nine), None, "nothing waits");
        // A manual route is never given out.
        d.enqueue("c2", &Route::default(), None).unwrap();
        assert_eq!(d.next_assignment(&none), None);
        assert_eq!(
            d.auto_assign("c2", "bob"),
            Err(DeskError::NotRouted("bob".into()))
        );
    }

    #[test]
    fn capacity_limits_only_automatic_assignment() {
        let mut d = desk();
        d.set_assignment(None, Assignment::RoundRobin);
        d.set_capacity("bob", Some(0)).unwrap();
        d.enqueue("c1", &Route::default(), None).unwrap();
        let none = std::collections::BTreeSet::new();
        // bob has no room; cy is away and dee offline: ana.
        assert_eq!(d.next_assignment(&none), Some(("c1", "ana")));
        // bob may still pick it up himself, and it counts.
        d.assign_self("c1", "bob").unwrap();
        assert_eq!(d.load("bob").unwrap().open, 1);
        d.reassign("c1", "bob", "ana").unwrap();
        assert_eq!(
            (d.load("bob").unwrap().open, d.load("ana").unwrap().open),
            (0, 1)
        );
        d.close("c1", "ana").unwrap();
        assert_eq!(d.load("ana").unwrap().open, 0);
        // Loads are part of what the desk diff reports.
        let before = d.clone();
        d.enqueue("c2", &Route::default(), None).unwrap();
        d.auto_assign("c2", "ana").unwrap();
        let diff = d.diff(&before);
        assert_eq!(diff.loads.len(), 1);
        assert_eq!(diff.loads[0].0, "ana");
        assert_eq!(diff.loads[0].2.open, 1);
    }

    #[test]
    fn pools_round_robin_on_new_records_only() {
        let mut d = desk();
        assert_eq!(d.pool_owner("SDRs"), Some("sam"));
        let rec = Record {
            key: "k".into(),
            conversation: "c".into(),
            created_at: Instant(0),
            channel: Channel::Web,
            owner: Some("sam".into()),
            pool: Some("SDRs".into()),
            data: capture::RecordData::Lead(Default::default()),
            messages: 0,
            supersedes: None,
            consent: None,
        };
        d.note_capture(&rec);
        assert_eq!(d.pool_owner("SDRs"), Some("tia"));
        d.note_capture(&rec);
        assert_eq!(d.pool_owner("SDRs"), Some("sam"));
        assert_eq!(d.pool_owner("nope"), None);
    }
}
