//! A running task's hold on the node: its share of the slots (`Slot`) and its attempt,
//! listed in the heartbeat with its lease renewed (`Attempt`), both released however the
//! attempt ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;
use fleetform_core::queue::{QueueError, Received, TaskQueue};
use fleetform_core::task::{HeldLease, TaskMessage};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tracing::warn;

use super::capacity::Held;
use super::task::TaskFlags;
use super::{is_cancelled, lock, Shared};

/// A running task's share of the node and its place in the busy count. Dropped on every
/// way out of the handler, unwinding from a panic included, so a share is never lost.
pub(super) struct Slot {
    pub(super) shared: Arc<Shared>,
    /// None once the task no longer computes (`computing_done`).
    held: Option<Held>,
    slots: usize,
    finishing: Option<OwnedSemaphorePermit>,
}

impl Slot {
    pub(super) fn claim(shared: Arc<Shared>, held: Held) -> Slot {
        let slots = held.slots();
        shared.busy.fetch_add(slots, Ordering::SeqCst);
        Slot { shared, held: Some(held), slots, finishing: None }
    }

    pub(super) fn computing(&self) -> bool {
        self.held.is_some()
    }

    /// The task has computed everything; only its last upload and its commit remain, which
    /// need no CPU. Its share of the node goes to the next task at once, so the upload
    /// overlaps that task's work, if a finishing place is free: at most as many tasks
    /// finish at once as the node has slots (each holds its last output chunk in memory).
    pub(super) fn computing_done(&mut self) {
        if let Ok(permit) = self.shared.finishing.clone().try_acquire_owned() {
            self.finishing = Some(permit);
            self.held = None;
            self.shared.busy.fetch_sub(self.slots, Ordering::SeqCst);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held.is_some() {
            self.shared.busy.fetch_sub(self.slots, Ordering::SeqCst);
        }
    }
}

/// Tasks that have computed and are uploading their last output and committing.
pub(super) fn finishing(shared: &Shared) -> usize {
    shared.cfg.slots - shared.finishing.available_permits()
}

/// Aborts a background task when dropped, unwinding included: a lease renewal must not
/// outlive the attempt it renews.
pub(super) struct AbortOnDrop(pub(super) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One attempt at a task: listed in the heartbeat's `tasks_in_flight`, its lease renewed.
/// Dropping it, however the attempt ends, stops the renewal and unlists the task.
pub(super) struct Attempt<'a> {
    shared: &'a Shared,
    key: String,
    renewal: Option<AbortOnDrop>,
}

impl<'a> Attempt<'a> {
    pub(super) fn start(shared: &'a Arc<Shared>, class: &str, received: &Received, msg: &TaskMessage, flags: &Arc<TaskFlags>) -> Attempt<'a> {
        let key = format!("{}/{}", msg.job_id, msg.task_id);
        let lease = HeldLease { task: key.clone(), class: class.to_string(), handle: received.handle.clone() };
        lock(&shared.in_flight).insert(key.clone(), lease);
        shared.beat_now.notify_one();
        *lock(&shared.last_work) = Utc::now();
        let renewal = tokio::spawn(renew_lease(shared.clone(), class.to_string(), received.handle.clone(), msg.job_id.clone(), flags.clone()));
        Attempt { shared, key, renewal: Some(AbortOnDrop(renewal)) }
    }

    /// The task ran: stop renewing before the message is deleted or handed on.
    pub(super) fn stop_renewing(&mut self) {
        self.renewal = None;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.renewal = None;
        lock(&self.shared.in_flight).remove(&self.key);
        *lock(&self.shared.last_work) = Utc::now();
    }
}

/// Keep the lease while the task runs; stop the task if the lease is lost or the job is
/// cancelled. Runs until its `Attempt` aborts it.
async fn renew_lease(shared: Arc<Shared>, class: String, handle: String, job_id: String, flags: Arc<TaskFlags>) {
    let every = shared.cfg.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match shared.queue.extend(&class, &handle, shared.cfg.lease).await {
            Ok(()) => crate::metrics::lease_renewal("ok"),
            Err(QueueError::LeaseLost) => {
                crate::metrics::lease_renewal("lost");
                warn!(%job_id, "lease lost; another node owns the task now");
                flags.stop.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                crate::metrics::lease_renewal("error");
                warn!("lease renewal failed: {e}");
            }
        }
        if is_cancelled(&shared, &job_id).await {
            flags.stop.store(true, Ordering::SeqCst);
            return;
        }
    }
}
