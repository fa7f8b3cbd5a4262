//! How a worker learns that it is about to be taken away: EC2's instance metadata service
//! (IMDSv2) on AWS, a notice file on the local provider.
//!
//! - [`client`]: [`ImdsClient`], IMDSv2 over hyper with what a daemon needs: a cached
//!   session token, 404 means "absent" (`Ok(None)`), a 401 throws the cached token away,
//!   bounded retries and timeouts, errors that name the path.
//! - [`notice_file`]: the local provider's stand-in for IMDS (a local machine has none):
//!   `<node dir>/notice.json` holds the same documents, and `fleetform chaos interrupt`
//!   writes it atomically.
//! - [`watcher`]: polls a [`NoticeSource`] (IMDS or the notice file) for the three
//!   interruption notices and publishes [`NodeSignals`] on a `tokio::sync::watch`
//!   channel, so the executor reacts to a change instead of polling, and drains the same
//!   way whichever source raised the notice.
//!
//! The documents themselves (and the IMDS paths and headers) are `fleetform_core::imds`,
//! shared with the test-support IMDS emulator (`fleetform-testkit`), which is not part of
//! any shipped binary.

pub mod client;
pub mod notice_file;
pub mod watcher;

pub use client::{ImdsClient, ImdsError};
pub use fleetform_core::imds::{
    format_scheduled_time, headers, notice_time, paths, Rebalance, ScheduledEvent, SpotAction, SCHEDULED_EVENT_TIME_FORMAT,
    SPOT_NOTICE_LEAD,
};
pub use notice_file::Notices;
pub use watcher::{spawn_watcher, spawn_watcher_with_interval, NodeSignals, NoticeSource, WATCH_INTERVAL};
