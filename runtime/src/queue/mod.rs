//! Task queues: SQS on AWS, SQLite on the local provider, behind one contract
//! (`fleetform_core::queue::TaskQueue`) and one conformance suite (`conformance`).

pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::time::Duration;

use anyhow::{bail, Result};
use fleetform_core::queue::{Depth, QueueError, Received, TaskQueue};

use crate::Connections;

/// A queue chosen by URI: `sqlite:///path/queue.sqlite` or `sqs://<cluster>`.
#[derive(Clone)]
pub enum Queue {
    Sqlite(sqlite::SqliteQueue),
    #[cfg(feature = "aws")]
    Sqs(sqs::SqsQueue),
}

impl Queue {
    /// Open a queue; SQS goes through `conn`'s AWS configuration.
    pub async fn open(conn: &Connections, uri: &str) -> Result<Queue> {
        if let Some(path) = uri.strip_prefix("sqlite://") {
            return Ok(Queue::Sqlite(sqlite::SqliteQueue::open(std::path::Path::new(path))?));
        }
        if let Some(cluster) = uri.strip_prefix("sqs://") {
            return Self::open_sqs(conn, cluster).await;
        }
        bail!("`{uri}` is not a queue URI: use sqlite:///path/queue.sqlite or sqs://<cluster>")
    }

    #[cfg(feature = "aws")]
    async fn open_sqs(conn: &Connections, cluster: &str) -> Result<Queue> {
        Ok(Queue::Sqs(sqs::SqsQueue::new(conn.aws().await, cluster)))
    }

    #[cfg(not(feature = "aws"))]
    async fn open_sqs(_conn: &Connections, cluster: &str) -> Result<Queue> {
        Err(crate::without_aws(&format!("the queue sqs://{cluster}")))
    }
}

impl Queue {
    /// How long one receive may wait for a message to arrive: SQS's long polling (20 s,
    /// its maximum); zero for SQLite, where asking again costs nothing.
    pub fn long_poll(&self) -> Duration {
        match self {
            Queue::Sqlite(_) => Duration::ZERO,
            #[cfg(feature = "aws")]
            Queue::Sqs(_) => LONG_POLL,
        }
    }

    /// Receive, waiting up to `long_poll()` for a message to arrive.
    pub async fn receive_waiting(&self, class: &str, max: usize, lease: Duration) -> Result<Vec<Received>, QueueError> {
        match self {
            Queue::Sqlite(q) => q.receive(class, max, lease).await,
            #[cfg(feature = "aws")]
            Queue::Sqs(q) => q.receive_waiting(class, max, lease, LONG_POLL).await,
        }
    }
}

/// SQS's longest receive wait: an idle agent asks once per class per 20 s.
#[cfg(feature = "aws")]
pub const LONG_POLL: Duration = Duration::from_secs(20);

macro_rules! delegate {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            Queue::Sqlite($q) => $e,
            #[cfg(feature = "aws")]
            Queue::Sqs($q) => $e,
        }
    };
}

impl TaskQueue for Queue {
    async fn ensure(&self, class: &str) -> Result<(), QueueError> {
        delegate!(self, q => q.ensure(class).await)
    }
    async fn send(&self, class: &str, bodies: &[String]) -> Result<(), QueueError> {
        delegate!(self, q => q.send(class, bodies).await)
    }
    async fn receive(&self, class: &str, max: usize, lease: Duration) -> Result<Vec<Received>, QueueError> {
        delegate!(self, q => q.receive(class, max, lease).await)
    }
    async fn extend(&self, class: &str, handle: &str, lease: Duration) -> Result<(), QueueError> {
        delegate!(self, q => q.extend(class, handle, lease).await)
    }
    async fn release(&self, class: &str, handle: &str) -> Result<(), QueueError> {
        delegate!(self, q => q.release(class, handle).await)
    }
    async fn delete(&self, class: &str, handle: &str) -> Result<(), QueueError> {
        delegate!(self, q => q.delete(class, handle).await)
    }
    async fn dead_letter(&self, class: &str, handle: &str, body: &str) -> Result<(), QueueError> {
        delegate!(self, q => q.dead_letter(class, handle, body).await)
    }
    async fn depth(&self, class: &str) -> Result<Depth, QueueError> {
        delegate!(self, q => q.depth(class).await)
    }
    async fn dead_letters(&self, class: &str) -> Result<Vec<String>, QueueError> {
        delegate!(self, q => q.dead_letters(class).await)
    }
    async fn purge(&self, class: &str) -> Result<(), QueueError> {
        delegate!(self, q => q.purge(class).await)
    }
}
