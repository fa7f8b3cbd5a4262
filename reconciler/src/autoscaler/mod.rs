//! The autoscaler (docs/DESIGN.md, decision 8: autoscaling like Ray, launching like
//! Karpenter). Its core is pure: a provider observes nodes, heartbeats and queue depths
//! into an [`Observation`], [`decide`] returns a [`Decision`] (launches, drains,
//! terminations, infeasible demand, each with its reason), and the provider executes it,
//! reporting launch failures back into the [`AutoscalerState`]'s capacity cache.
//!
//! - `model`: inputs, outputs and the state kept between rounds;
//! - `pack`: bin-packing of demand per resource shape onto node types;
//! - `capacity`: the insufficient-capacity cache and ordered offerings;
//! - `decide`: one round, and the named timeouts;
//! - `explain`: `fleetform status` (table and JSON);
//! - `provider`: the [`NodeProvider`] interface the providers implement;
//! - `run`: the one loop over any provider; `policy`: what follows a failed round.

pub mod capacity;
pub mod decide;
pub mod explain;
pub mod model;
pub mod pack;
pub mod policy;
pub mod provider;
pub mod run;

#[cfg(test)]
mod loop_tests;
#[cfg(test)]
mod tests;

pub use capacity::{CapacityCache, CapacityEntry, CapacityError, Offering, Offerings, Skip, CAPACITY_ERROR_TTL};
pub use decide::{decide, DRAIN_TIMEOUT, HEARTBEAT_GRACE, HEARTBEAT_LOST, LAUNCH_TIMEOUT, UPSCALING_INITIAL_NODES};
pub use policy::{error_policy, RoundFailures};
pub use provider::{FailedOffering, LaunchReport, LaunchedNode, NodeProvider};
pub use explain::{status, ClusterStatus, TypeStatus};
pub use model::{
    AutoscalerState, Blocked, Decision, Demand, Drain, HistoryEntry, Infeasible, Launch, NodeState, Observation,
    ObservedNode, Termination, TypePlan,
};
