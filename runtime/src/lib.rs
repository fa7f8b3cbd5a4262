//! fleetform-runtime: the library the control plane (`fleetform`) and the node agent
//! share, below both (core ← runtime ← agent ← fleetform): data locations by URI, the
//! cluster store, the task queues, a job's lifecycle in the store (enqueue a planned job,
//! progress, finalize, cancel, list), giving back a dead agent's leases, the bounded HTTP
//! server, and the one AWS SDK configuration (the `aws` feature), reached through
//! [`Connections`] passed explicitly.

/// The error for an AWS location, queue or command in a build without the `aws` feature
/// (`--no-default-features`: the local provider only, a fraction of the compile time).
pub fn without_aws(what: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{what}: this fleetform was built without the AWS provider (--no-default-features, for the local \
         provider only); build it with the default features for AWS: `cargo install --path reconciler`, \
         or `cargo run --release -p fleetform -- ...`"
    )
}

#[cfg(feature = "aws")]
pub mod aws;
mod connections;
pub mod http;
pub mod jobs;
pub mod leases;
pub mod location;
pub mod queue;
pub mod store;
#[cfg(any(test, feature = "conformance"))]
pub mod store_conformance;

pub use connections::Connections;

#[cfg(test)]
mod layering {
    /// No two modules use each other, directly or through others: the failure lists each
    /// ring and the `use` lines that form it.
    #[test]
    fn fleetform_runtime_has_no_module_cycles() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        fleetform_testkit::module_cycles::assert_no_module_cycles(&src);
    }
}
