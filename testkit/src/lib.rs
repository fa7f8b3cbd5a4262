//! fleetform-testkit: test support that no shipped binary contains (DESIGN.md decision 15).
//!
//! - [`imds`]: an IMDSv2 emulator on 127.0.0.1, with the real paths, documents and token
//!   rules, plus trigger endpoints that raise spot, rebalance and maintenance notices.
//!
//! The AWS fault injectors stay beside the tests that use them (`tests/e2e/faults.rs`),
//! behind the `FaultInjector` seam of `reconciler/src/aws/nodes.rs`.

pub mod imds;
