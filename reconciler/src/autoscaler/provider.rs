//! The one interface the autoscaler loop drives (docs/DESIGN.md, decision 11): a provider
//! observes its worker nodes, launches exactly a [`Launch`] of the decision (its count
//! over its offerings, in their order) and terminates nodes. `aws::provider` implements
//! it over EC2, `local` over child processes; the loop in [`super::run`] is the same.

use std::collections::HashMap;
use std::future::Future;

use anyhow::Result;
use chrono::{DateTime, Utc};
use fleetform_core::spec::{ClusterSpec, Market};
use fleetform_core::task::NodeHeartbeat;
use serde::{Deserialize, Serialize};

use super::capacity::{CapacityError, Offering};
use super::model::{Decision, Launch, NodeState, ObservedNode};

/// A node a launch started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchedNode {
    pub id: String,
    pub market: Market,
    pub instance_type: String,
    pub zone: Option<String>,
}

/// An offering of the launch that had no capacity: the loop caches it (persisted), so the
/// next round, or the next one-shot `fleetform reconcile`, skips it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedOffering {
    pub offering: Offering,
    pub error: CapacityError,
    /// The provider's own code (`InsufficientInstanceCapacity`), for the operator.
    pub code: String,
}

/// What a launch did. A launch that found no capacity anywhere is still `Ok`: its failed
/// offerings are the news. `Err` is kept for failures that are not about capacity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchReport {
    pub launched: Vec<LaunchedNode>,
    pub failed: Vec<FailedOffering>,
    /// What happened, in order, for the operator (and the history in `fleetform status`).
    pub messages: Vec<String>,
    /// A failure that is not about capacity, after what the launch did before it (spot
    /// nodes launched, then RunInstances refused): the round fails, but what was launched
    /// and cached is kept.
    #[serde(default)]
    pub error: Option<LaunchFailure>,
}

/// A launch's failure that is not about capacity, kept with its kind for the error policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaunchFailure {
    pub message: String,
    pub kind: super::policy::FailureKind,
}

impl LaunchFailure {
    pub fn of(err: &anyhow::Error) -> Self {
        LaunchFailure { message: crate::errors::render(err), kind: super::policy::kind_of(err) }
    }
}

/// A place nodes come from. The futures are `Send` so a loop over any provider can run on
/// a spawned task.
pub trait NodeProvider: Sync {
    /// The spec the autoscaler plans with (the local provider gives the slots its agents
    /// really get).
    fn spec(&self) -> &ClusterSpec;

    /// The worker nodes alive now (the head excluded), joined with their heartbeats
    /// (see [`observed`]).
    fn observe(
        &self,
        beats: &HashMap<String, NodeHeartbeat>,
    ) -> impl Future<Output = Result<Vec<ObservedNode>>> + Send;

    /// Bound the decision by what the provider can host before it is executed. Default:
    /// the decision as it is. Returns whether anything changed.
    fn admit(&self, _decision: &mut Decision) -> bool {
        false
    }

    /// Launch `launch.count` nodes over `launch.offerings`, in order, and nothing else.
    fn launch(&self, launch: &Launch) -> impl Future<Output = Result<LaunchReport>> + Send;

    /// Terminate nodes at once (already gone ones are fine).
    fn terminate(&self, node_ids: &[String]) -> impl Future<Output = Result<()>> + Send;
}

/// What the provider knows of a node.
#[derive(Debug, Clone)]
pub struct ProviderNode<'a> {
    pub id: &'a str,
    pub node_type: &'a str,
    pub market: Market,
    pub instance_type: &'a str,
    pub zone: Option<String>,
    pub launched_at: DateTime<Utc>,
    /// Shutting down (EC2 `stopping`, `shutting-down`, ...).
    pub terminating: bool,
}

/// A provider's node joined with its heartbeat: draining when the agent says so, pending
/// until its first heartbeat, running after.
pub fn observed(n: ProviderNode<'_>, beats: &HashMap<String, NodeHeartbeat>) -> ObservedNode {
    let heartbeat = beats.get(n.id).cloned();
    let state = if n.terminating {
        NodeState::Terminating
    } else if heartbeat.as_ref().is_some_and(|h| h.draining.is_some()) {
        NodeState::Draining
    } else if heartbeat.is_none() {
        NodeState::Pending {
            since: n.launched_at,
        }
    } else {
        NodeState::Running
    };
    ObservedNode {
        id: n.id.to_string(),
        node_type: n.node_type.to_string(),
        market: n.market,
        instance_type: n.instance_type.to_string(),
        zone: n.zone,
        state,
        launched_at: n.launched_at,
        heartbeat,
    }
}
