//! fleetform: the reconciler and CLI. `cli` parses; `aws` observes, plans and applies on
//! EC2; `local` runs the cluster on this machine; `jobs` submits and follows work;
//! `autoscaler` decides how many nodes of each type the work needs.

pub mod autoscaler;
#[cfg(feature = "aws")]
pub mod aws;
pub mod chaos;
pub mod cli;
pub mod cluster;
pub mod errors;
pub mod import;
pub mod jobs;
pub mod local;
pub mod status;
pub mod validate;
