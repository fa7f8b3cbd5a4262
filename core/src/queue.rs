//! The task queue contract. Two implementations share one conformance suite: SQS (one
//! queue per resource class plus a dead-letter queue) and SQLite for the local provider.
//! The visibility timeout is the lease; heartbeats extend it.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// Receipt handle: valid for the lease it came with.
    pub handle: String,
    pub body: String,
    /// How many times this message was received, this time included.
    pub receive_count: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Waiting to be received.
    pub visible: u64,
    /// Received and leased, not yet deleted.
    pub in_flight: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The receipt handle no longer holds a lease (it expired and someone else took it).
    #[error("the lease on this message was lost")]
    LeaseLost,
    #[error("{0}")]
    Backend(String),
}

/// Every method takes the resource class slug (`default`, `intel`, ...) naming the queue.
#[allow(async_fn_in_trait)]
pub trait TaskQueue {
    /// Create the class's queue and its dead-letter queue if absent (idempotent).
    async fn ensure(&self, class: &str) -> Result<(), QueueError>;
    async fn send(&self, class: &str, bodies: &[String]) -> Result<(), QueueError>;
    async fn receive(&self, class: &str, max: usize, lease: Duration) -> Result<Vec<Received>, QueueError>;
    /// Extend a lease (a heartbeat). Fails with LeaseLost if the handle is stale and the
    /// backend can tell: SQS standard queues may accept an old handle, so exactly-once
    /// never depends on this (the done record's create-if-absent decides).
    async fn extend(&self, class: &str, handle: &str, lease: Duration) -> Result<(), QueueError>;
    /// Give a message back at once (visibility 0).
    async fn release(&self, class: &str, handle: &str) -> Result<(), QueueError>;
    async fn delete(&self, class: &str, handle: &str) -> Result<(), QueueError>;
    /// Move a message to the dead-letter queue with this body.
    async fn dead_letter(&self, class: &str, handle: &str, body: &str) -> Result<(), QueueError>;
    async fn depth(&self, class: &str) -> Result<Depth, QueueError>;
    /// Dead-lettered bodies (for reports); not removed.
    async fn dead_letters(&self, class: &str) -> Result<Vec<String>, QueueError>;
    /// Remove every message of a class. SQS allows one purge per queue per 60 s and takes
    /// up to 60 s to finish, so no job path relies on it (cancel deletes per message).
    async fn purge(&self, class: &str) -> Result<(), QueueError>;
}
