//! fleetform-agent: runs on every worker node (a systemd unit on EC2, a child process of
//! the local supervisor). It receives tasks from the queue of every resource class its
//! node serves, streams parquet through the job's steps, checkpoints at row-group
//! boundaries, commits each task exactly once, and drains on spot notices and SIGTERM.

/// The error for an AWS location, queue or command in a build without the `aws` feature
/// (`--no-default-features`: the local provider only, a fraction of the compile time).
pub fn without_aws(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: this fleetform was built without the AWS provider (--no-default-features, for the local \
         provider only); build it with the default features for AWS: `cargo install --path reconciler`, \
         or `cargo run --release -p fleetform -- ...`"
    )
}

pub mod cli;
pub mod exec;
pub mod http;
pub mod imds;
pub mod input;
pub mod jobs;
pub mod leases;
pub mod metrics;
pub mod ops;
pub mod output;
pub mod queue;
pub mod storage;
pub mod store;
#[cfg(any(test, feature = "conformance"))]
pub mod store_conformance;

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
