//! The status model: one [`ClusterView`] of a cluster, computed from live observation
//! (heartbeats, queue depths, job records, the autoscaler's persisted round), every figure
//! with the time it was read. `fleetform status` (text and `--json`), `status --watch`,
//! the dashboard's `/api/status`, `/metrics` and page all show this one value, so their
//! figures cannot disagree.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::autoscaler::policy::RoundError;
use crate::autoscaler::ClusterStatus;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    pub cluster: String,
    /// `local` or `aws`.
    pub provider: String,
    /// `file:///…` or `s3://bucket/prefix`.
    pub store: String,
    /// `sqlite:///…` or `sqs://<cluster>`.
    pub queue: String,
    /// When this observation finished.
    pub observed_at: DateTime<Utc>,
    /// Problems reading the store or the queues. A failed section keeps the figures of
    /// the last observation that read it, with that observation's time (`*_at`), and says
    /// so here: never zeros that look like an empty cluster.
    pub errors: Vec<String>,
    /// When the heartbeats (nodes, slots) were read.
    pub nodes_at: Option<DateTime<Utc>>,
    pub nodes: Vec<NodeView>,
    /// Per node type: nodes by state and slots, from the heartbeats.
    pub node_types: Vec<TypeView>,
    pub slots: Slots,
    pub queues_at: Option<DateTime<Utc>>,
    pub queues: Vec<QueueView>,
    pub jobs_at: Option<DateTime<Utc>>,
    /// Newest first.
    pub jobs: Vec<JobView>,
    pub autoscaler: Option<AutoscalerView>,
    /// The autoscaler's latest rounds failed (shown even before any round succeeded).
    #[serde(default)]
    pub autoscaler_failing: Option<AutoscalerFailing>,
    /// Spot notices, rebalance recommendations, drains and scheduled events, newest first.
    pub events: Vec<NodeEvent>,
    /// Nodes seen draining, per reason (`spot-interruption`, `rebalance`, `sigterm`, ...),
    /// since this observer started: the `fleetform_interruptions_total` counter.
    pub interruptions: BTreeMap<String, u64>,
}

/// A node's state, from its heartbeat (or, before the first one, from its launcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Launched, no heartbeat yet.
    Pending,
    Running,
    /// Takes no new work: a rebalance recommendation, SIGTERM, or the autoscaler's drain.
    Draining,
    /// Draining after a spot interruption notice.
    Interrupted,
    /// No heartbeat for [`super::SILENT_AFTER_SECONDS`]: crashed, or cut off.
    Silent,
    /// The agent exited after draining (its final heartbeat).
    Stopped,
}

impl NodeStatus {
    pub const ALL: [NodeStatus; 6] =
        [NodeStatus::Pending, NodeStatus::Running, NodeStatus::Draining, NodeStatus::Interrupted, NodeStatus::Silent, NodeStatus::Stopped];
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Pending => "pending",
            NodeStatus::Running => "running",
            NodeStatus::Draining => "draining",
            NodeStatus::Interrupted => "interrupted",
            NodeStatus::Silent => "silent",
            NodeStatus::Stopped => "stopped",
        }
    }
    /// Counts toward the cluster's capacity (its slots are usable or in use).
    pub fn is_up(self) -> bool {
        matches!(self, NodeStatus::Running | NodeStatus::Draining | NodeStatus::Interrupted)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub node_id: String,
    pub node_type: String,
    /// `x86_64` / `arm64`; `unknown` when the spec does not say (no instance type).
    pub arch: String,
    /// `spot` / `on-demand`: the node type's market in the spec (the local provider is
    /// on-demand). A spot type's on-demand fallbacks show in the autoscaler's table.
    pub market: String,
    pub status: NodeStatus,
    /// Why it drains or stopped (`spot-interruption`, `rebalance`, `sigterm`, ...).
    pub reason: Option<String>,
    pub slots: u64,
    pub busy_slots: u64,
    pub tasks_in_flight: Vec<String>,
    pub tasks_done: u64,
    pub rows_done: u64,
    /// Seconds since its latest heartbeat was written (None: pending, none yet).
    pub heartbeat_age_seconds: Option<f64>,
    /// Seconds since it last finished work (idle time when nothing runs).
    pub idle_seconds: Option<f64>,
    pub scheduled_events: Vec<String>,
    pub setup_failed: Option<String>,
    /// Local provider: the node still says it is up, but no live `fleetform up`/`run`
    /// started it (its supervisor is gone): an orphan, or the stale heartbeat of one.
    #[serde(default)]
    pub supervisor_gone: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slots {
    /// Slots of nodes that are up (running, draining, interrupted).
    pub total: u64,
    pub busy: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TypeView {
    pub node_type: String,
    pub head: bool,
    pub arch: String,
    pub market: String,
    pub min_workers: Option<u32>,
    pub max_workers: Option<u32>,
    /// Nodes per state (only states with nodes).
    pub nodes: BTreeMap<NodeStatus, u32>,
    pub slots: Slots,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    /// The resource class (`default`, `intel`, ...): one queue each.
    pub class: String,
    /// Waiting to be received (the queue's own figure).
    pub queued: u64,
    /// Received and leased, not yet deleted (the queue's own figure).
    pub in_flight: u64,
    /// Tasks of unfinished jobs of this class neither done nor failed (the store's
    /// figure). It equals queued + in_flight once the agents' latest commits settle.
    pub tasks_remaining: u64,
    /// Tasks of this class that node heartbeats report running.
    pub running_on_nodes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    /// Some task failed: nothing was published.
    FinishedWithFailures,
    /// Every task succeeded, but the output was not published (superseded, too many
    /// skipped records).
    NotPublished,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::FinishedWithFailures => "failed (not published)",
            JobState::NotPublished => "not published",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Succeeded | JobState::FinishedWithFailures | JobState::NotPublished | JobState::Cancelled)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub job_id: String,
    pub name: String,
    pub class: String,
    pub state: JobState,
    pub submitted_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub tasks: u64,
    pub done: u64,
    pub failed: u64,
    /// Tasks node heartbeats report running.
    pub running: u64,
    pub total_rows: u64,
    /// Input rows of the tasks done.
    pub rows_done: u64,
    /// Rows per second over the observer's recent window (`rate_window_seconds`), or
    /// over the job's life when there is no window yet (a one-shot `status`).
    pub rows_per_second: Option<f64>,
    pub rate_window_seconds: Option<f64>,
    /// Seconds until done at `rows_per_second`.
    pub eta_seconds: Option<f64>,
    pub failures: Vec<FailureView>,
    /// The job's task events, oldest first (the last [`super::LOG_LINES`]).
    pub log: Vec<LogLine>,
}

impl JobView {
    /// Done or failed, of all tasks: 0..=1.
    pub fn progress(&self) -> f64 {
        if self.tasks == 0 {
            return 1.0;
        }
        (self.done + self.failed) as f64 / self.tasks as f64
    }
    pub fn remaining(&self) -> u64 {
        self.tasks.saturating_sub(self.done + self.failed)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureView {
    pub task_id: String,
    pub input: String,
    pub error: String,
    pub node_id: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerFailing {
    /// Failed rounds in a row.
    pub rounds: u32,
    pub last: RoundError,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoscalerView {
    /// When its latest round ran.
    pub at: DateTime<Utc>,
    pub age_seconds: f64,
    /// No round for longer than a few rounds: the figures below are history, not now.
    pub stale: bool,
    /// What to do about a stale autoscaler.
    pub note: Option<String>,
    /// Nodes launched since the cluster's state began, per `node_type/market`.
    pub launches: BTreeMap<String, u64>,
    pub round: ClusterStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeEvent {
    /// When this observer first saw it.
    pub at: DateTime<Utc>,
    pub node_id: String,
    pub node_type: String,
    /// `spot-interruption`, `rebalance`, `sigterm`, `scheduled`, ...
    pub kind: String,
    pub detail: String,
}
