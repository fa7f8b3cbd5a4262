//! fleetform-testkit: test support that no shipped binary contains (docs/DESIGN.md,
//! decision 15).
//!
//! - [`imds`]: an IMDSv2 emulator on 127.0.0.1, with the real paths, documents and token
//!   rules, plus trigger endpoints that raise spot, rebalance and maintenance notices.
//! - [`netns`]: a network namespace joined to the host by a veth pair, where a booted
//!   node finds the emulator at 169.254.169.254 (root only).
//! - [`module_cycles`]: which file modules of a crate use each other in a ring; each
//!   shipped crate has a test that there are none (for fleetform-core it is below, since
//!   core cannot dev-depend on this crate, which depends on it).
//! - [`crate_layers`]: the workspace's crates depend downward only (core ← runtime ←
//!   agent ← fleetform), checked below.
//! - [`fn_lengths`]: the longest shipped functions of a directory (`--bin fn-lengths`).
//! - [`vendored_sdk`]: the pruned AWS SDK crates in `vendor/` against Cargo.lock's versions.
//!
//! The AWS fault injectors stay beside the tests that use them (`tests/e2e/faults.rs`):
//! SDK interceptors on the clients, so shipped code has no seam for them.

pub mod crate_layers;
pub mod fn_lengths;
pub mod imds;
pub mod module_cycles;
pub mod netns;
pub mod vendored_sdk;

#[cfg(test)]
mod layering {
    #[test]
    fn fleetform_core_has_no_module_cycles() {
        let core = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/src");
        crate::module_cycles::assert_no_module_cycles(&core);
    }

    /// The shipped crates form one stack and nothing reaches up: the control plane's
    /// library (the runtime) never depends on the agent, the agent never on the CLI.
    #[test]
    fn the_workspace_crates_depend_downward_only() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let layers = ["fleetform-core", "fleetform-runtime", "fleetform-agent", "fleetform"];
        crate::crate_layers::assert_crate_layers(&root, &layers, &["fleetform-testkit"]);
        // The manifests were read: the stack's own edges are there.
        let edges = crate::crate_layers::workspace_edges(&root).unwrap();
        for pair in layers.windows(2) {
            let edge = crate::crate_layers::CrateEdge { from: pair[1].into(), to: pair[0].into() };
            assert!(edges.contains(&edge), "{} does not depend on {}: {edges:?}", pair[1], pair[0]);
        }
    }
}
