//! The autoscaler's inputs ([`Observation`]), outputs ([`Decision`]) and the state it
//! keeps between rounds ([`AutoscalerState`]). Plain data: a provider fills the
//! observation, [`decide`](super::decide) returns the decision, the provider executes it.
//! Everything serialises, so a round can be recorded, replayed and shown with `--json`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use chrono::{DateTime, Utc};
use fleetform_core::resources::Resources;
use fleetform_core::spec::Market;
use fleetform_core::task::NodeHeartbeat;
use serde::{Deserialize, Serialize};

use super::capacity::{CapacityCache, CapacityError, Offering, Skip};

/// How many decision lines `fleetform status` can look back on: at one round a minute a
/// busy cluster writes a few lines a round, so this is the last hour or so, and the state
/// stays a few tens of KiB when stored as JSON.
pub const HISTORY_LEN: usize = 200;

/// Where a node is in its life, as the provider sees it (EC2 state, or the local process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NodeState {
    /// Launch requested, the instance is not running yet (EC2 `pending`).
    Pending { since: DateTime<Utc> },
    /// The instance runs; its agent may or may not have sent a heartbeat yet.
    Running,
    /// Asked to drain (by the autoscaler or a spot notice): it takes no new work.
    Draining,
    /// Shutting down or gone: shown in the status, otherwise ignored.
    Terminating,
}

/// One node as observed this round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservedNode {
    /// EC2 instance id, or `local-<pid>` on the local provider.
    pub id: String,
    pub node_type: String,
    pub market: Market,
    pub instance_type: String,
    /// Availability zone; None on the local provider.
    pub zone: Option<String>,
    pub state: NodeState,
    pub launched_at: DateTime<Utc>,
    /// The agent's latest heartbeat (`nodes/<node>.json`), if it has written one.
    pub heartbeat: Option<NodeHeartbeat>,
}

impl ObservedNode {
    /// Draining by our request, by its own agent (spot notice, SIGTERM), or stopped.
    pub fn is_draining(&self) -> bool {
        self.state == NodeState::Draining
            || self.heartbeat.as_ref().is_some_and(|h| h.draining.is_some() || h.stopped)
    }
    /// No task running and none held: safe to terminate without losing a lease.
    pub fn is_quiet(&self) -> bool {
        self.heartbeat.as_ref().is_none_or(|h| h.busy_slots == 0 && h.tasks_in_flight.is_empty())
    }
    pub fn tasks_in_flight(&self) -> usize {
        self.heartbeat.as_ref().map_or(0, |h| h.tasks_in_flight.len().max(h.busy_slots))
    }
}

/// Demand of one resource shape: the tasks waiting in its queue plus those in flight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demand {
    pub resources: Resources,
    pub queued: u64,
    pub in_flight: u64,
}

/// Everything one round decides from. `now` is injected, so tests need no clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub now: DateTime<Utc>,
    pub nodes: Vec<ObservedNode>,
    pub demand: Vec<Demand>,
}

/// Launch `count` nodes of a type. The provider tries `offerings` in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    pub node_type: String,
    pub count: u32,
    /// The market asked for first; `offerings` ends with on-demand ones when the type
    /// may fall back.
    pub market: Market,
    pub offerings: Vec<Offering>,
    /// Offerings left out because of a recent capacity error.
    pub skipped: Vec<Skip>,
    pub reason: String,
    /// This launch decision's number in the cluster's persisted sequence
    /// ([`AutoscalerState::number_launches`]); 0 until numbered. Part of the launch's EC2
    /// ClientToken: EC2 keeps a token for at least 24 hours after the instance it launched
    /// is gone, while DescribeInstances forgets that instance within about an hour, so a
    /// token made only from what is observed would repeat after a scale-down to zero and
    /// launch nothing for up to a day.
    #[serde(default)]
    pub decision: u64,
}

impl fmt::Display for Launch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "launch {} {}: {}", self.count, self.node_type, self.reason)
    }
}

/// Terminate a node now (it is idle, drained, broken or stuck).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Termination {
    pub node_id: String,
    pub node_type: String,
    pub reason: String,
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "terminate {} {}", self.node_id, self.reason)
    }
}

/// Ask a node to stop taking work and finish (or checkpoint) what it holds; a later round
/// terminates it once it is quiet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    pub node_id: String,
    pub node_type: String,
    pub reason: String,
}

impl fmt::Display for Drain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "drain {} {}", self.node_id, self.reason)
    }
}

/// Demand no node type can run. Reported once, not retried, until it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Infeasible {
    pub resources: Resources,
    pub count: u64,
    pub reason: String,
    pub since: DateTime<Utc>,
}

impl fmt::Display for Infeasible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot place {} tasks needing {}: {}", self.count, self.resources, self.reason)
    }
}

/// Nodes the plan wants but cannot launch this round: every offering is cached as
/// unavailable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocked {
    pub node_type: String,
    pub count: u32,
    pub reason: String,
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hold {} {}: {}", self.count, self.node_type, self.reason)
    }
}

/// The plan for one worker node type this round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypePlan {
    pub node_type: String,
    /// Nodes with a heartbeat (they count for `upscaling_speed`).
    pub running: u32,
    /// Launched, no heartbeat yet.
    pub pending: u32,
    pub draining: u32,
    pub min_workers: u32,
    pub max_workers: u32,
    /// Tasks of the demand placed on this type.
    pub queued: u64,
    pub in_flight: u64,
    /// Nodes the placed demand needs (with headroom), never below `min_workers`.
    pub needed: u32,
    /// Nodes after this round: alive + launched - removed.
    pub desired: u32,
    pub launching: u32,
}

/// What one round decided. Every entry carries its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at: DateTime<Utc>,
    pub launches: Vec<Launch>,
    pub terminations: Vec<Termination>,
    pub drains: Vec<Drain>,
    /// Newly infeasible demand (already reported demand is in the state, not here).
    pub infeasible: Vec<Infeasible>,
    pub blocked: Vec<Blocked>,
    pub plan: Vec<TypePlan>,
    /// Every line of this round for a human: the actions and the context behind them.
    pub explanations: Vec<String>,
}

impl Decision {
    pub fn new(at: DateTime<Utc>) -> Self {
        Decision {
            at,
            launches: Vec::new(),
            terminations: Vec::new(),
            drains: Vec::new(),
            infeasible: Vec::new(),
            blocked: Vec::new(),
            plan: Vec::new(),
            explanations: Vec::new(),
        }
    }
    /// Does the round ask the provider to do anything?
    pub fn has_actions(&self) -> bool {
        !(self.launches.is_empty() && self.terminations.is_empty() && self.drains.is_empty())
    }
    /// Nodes launched this round, all types.
    pub fn launched(&self) -> u32 {
        self.launches.iter().map(|l| l.count).sum()
    }
    /// The lines worth keeping in the history: actions, skips, holds, infeasible demand.
    pub fn decision_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for l in &self.launches {
            lines.extend(l.skipped.iter().map(|s| s.to_string()));
            lines.push(l.to_string());
        }
        lines.extend(self.blocked.iter().map(|b| b.to_string()));
        lines.extend(self.terminations.iter().map(|t| t.to_string()));
        lines.extend(self.drains.iter().map(|d| d.to_string()));
        lines.extend(self.infeasible.iter().map(|i| i.to_string()));
        lines
    }
}

/// One line of the decision history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub line: String,
}

/// What the autoscaler remembers between rounds. Losing it is safe (a restart forgets
/// capacity errors for a few minutes and re-reports infeasible demand once), so it can
/// live in memory or be stored as JSON beside the cluster's other records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerState {
    pub capacity: CapacityCache,
    /// The latest decision lines, oldest first, at most [`HISTORY_LEN`].
    pub history: VecDeque<HistoryEntry>,
    /// Infeasible demand already reported, keyed by its resources (`{CPU: 1, GPU: 1}`).
    pub infeasible: BTreeMap<String, Infeasible>,
    /// When each quiet node became idle (node id -> time).
    pub idle_since: BTreeMap<String, DateTime<Utc>>,
    /// When each draining node started draining (node id -> time).
    pub draining_since: BTreeMap<String, DateTime<Utc>>,
    /// Nodes launched, per `node_type/market`, since this state began: the dashboard's
    /// `fleetform_autoscaler_launches_total` counter (kept here so it survives restarts).
    #[serde(default)]
    pub launches: BTreeMap<String, u64>,
    /// The last launch decision number given out ([`Self::number_launches`]).
    #[serde(default)]
    pub launch_decisions: u64,
}

impl AutoscalerState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append a line to the history ring buffer.
    pub fn remember(&mut self, at: DateTime<Utc>, line: String) {
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(HistoryEntry { at, line });
    }

    /// Drop the history lines written at or after `at` (a round rewriting its own lines).
    pub fn forget_since(&mut self, at: DateTime<Utc>) {
        while self.history.back().is_some_and(|h| h.at >= at) {
            self.history.pop_back();
        }
    }

    /// The provider reports a failed launch: cache the offering as unavailable so the next
    /// round tries the next one, and keep the failure in the history.
    pub fn launch_failed(&mut self, now: DateTime<Utc>, offering: Offering, error: CapacityError) {
        let until = self.capacity.record(offering.clone(), error, now);
        self.remember(now, format!("launch on {offering} failed: {error}; skipping it until {}", until.format("%H:%M")));
    }

    /// Number the launches about to be executed, each with the next number of the
    /// cluster's sequence (saved with the state). A retry of one request keeps its number
    /// (the SDK resends it unchanged); a new decision never reuses one. Two reconcilers
    /// that loaded the same state give the same numbers to the same decision, so their
    /// identical requests still carry one token and EC2 launches once.
    pub fn number_launches(&mut self, launches: &mut [Launch]) {
        for l in launches {
            self.launch_decisions += 1;
            l.decision = self.launch_decisions;
        }
    }

    /// Count nodes the provider really launched (not those asked for).
    pub fn count_launches(&mut self, node_type: &str, market: Market, count: u64) {
        if count > 0 {
            *self.launches.entry(format!("{node_type}/{}", market.as_str())).or_default() += count;
        }
    }

    /// The latest `n` history lines, oldest first.
    pub fn recent(&self, n: usize) -> impl Iterator<Item = &HistoryEntry> {
        self.history.iter().skip(self.history.len().saturating_sub(n))
    }
}
