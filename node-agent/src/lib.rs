//! fleetform-agent: runs on every worker node (a systemd unit on EC2, a child process of
//! the local supervisor). It receives tasks from the queue of every resource class its
//! node serves, streams parquet through the job's steps, checkpoints at row-group
//! boundaries, commits each task exactly once, and drains on spot notices and SIGTERM.
//!
//! Its planning API (`plan`: check a job against its data, fix its tasks) is what the
//! control plane calls before the runtime (`fleetform_runtime`) enqueues the job.

pub mod cli;
pub mod exec;
pub mod imds;
pub mod input;
pub mod metrics;
pub mod ops;
pub mod output;
pub mod plan;

#[cfg(test)]
mod layering {
    /// No two modules use each other, directly or through others: the failure lists each
    /// ring and the `use` lines that form it.
    #[test]
    fn fleetform_agent_has_no_module_cycles() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        fleetform_testkit::module_cycles::assert_no_module_cycles(&src);
    }
}
