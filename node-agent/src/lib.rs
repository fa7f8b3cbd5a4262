//! fleetform-agent: runs on every worker node (a systemd unit on EC2, a child process of
//! the local supervisor). It receives tasks from the queue of every resource class its
//! node serves, streams parquet through the job's steps, checkpoints at row-group
//! boundaries, commits each task exactly once, and drains on spot notices and SIGTERM.

pub mod cli;
pub mod exec;
pub mod generate;
pub mod imds;
pub mod jobs;
pub mod ops;
pub mod queue;
pub mod storage;
pub mod store;
#[cfg(any(test, feature = "conformance"))]
pub mod store_conformance;
