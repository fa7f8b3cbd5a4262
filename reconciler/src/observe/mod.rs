//! One status model of a cluster (docs/DESIGN.md, decision 14): an [`Observer`]
//! reads the cluster store and the queues into a [`ClusterView`], each section with the
//! time it was read, and everything that shows the cluster renders that one value:
//! `fleetform status` (`text`), `status --json` and the dashboard's `/api/status` (serde),
//! `status --watch` (`text` again, every interval), `/metrics` (`metrics`) and the page.
//!
//! - `model`: the view's types;
//! - `observer`: one round of reads, and what is remembered between rounds;
//! - `nodes`, `jobs`: the sections;
//! - `text`, `metrics`: renderings.

pub mod jobs;
pub mod metrics;
pub mod model;
pub mod nodes;
pub mod observer;
pub mod text;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use model::*;
pub use observer::Observer;

/// A heartbeat older than this marks the node silent (3 missed 5 s heartbeats).
pub const SILENT_AFTER_SECONDS: f64 = 15.0;
/// Task log lines kept per job in the view.
pub const LOG_LINES: usize = 30;
/// Node events (notices, drains) kept in the view.
pub const EVENTS_KEPT: usize = 50;
/// Rows/s is measured over this many seconds of recent rounds.
pub const RATE_WINDOW_SECONDS: f64 = 30.0;
/// One section's reads may take this long: object_store retries an unreachable endpoint
/// for minutes, and a dashboard must say "unreachable" long before that.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
