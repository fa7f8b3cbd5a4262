//! Giving back the leases of an agent known to be dead. An agent lists the leases it holds
//! in its heartbeat as soon as a task starts; when its process is seen to exit (local
//! provider) or its instance to terminate (AWS), the observer makes those messages
//! visible again at once, so another agent resumes the task from its checkpoint within
//! seconds instead of after the lease (60 s by default).
//!
//! Exactly-once does not depend on this: a task's output is committed by the
//! create-if-absent `done/<task>` record. On SQLite a stale handle releases nothing (the
//! message has a new receipt once someone else received it). SQS may accept a stale
//! handle on a standard queue, which can at worst make a message visible that another
//! agent holds: that task then runs twice and commits once.

use anyhow::Result;
use fleetform_core::layout;
use fleetform_core::queue::TaskQueue;
use fleetform_core::task::NodeHeartbeat;

use crate::queue::Queue;
use crate::store::Store;

/// Release every lease the dead node's last heartbeat lists, and record that it holds
/// none any more (the heartbeat is marked stopped). Returns the tasks given back.
pub async fn give_back(store: &Store, queue: &Queue, node_id: &str, why: &str) -> Result<Vec<String>> {
    let key = layout::node(node_id);
    let Some(mut hb) = store.get_json::<NodeHeartbeat>(&key).await? else { return Ok(Vec::new()) };
    let mut released = Vec::new();
    for lease in &hb.leases {
        match queue.release(&lease.class, &lease.handle).await {
            Ok(()) => released.push(lease.task.clone()),
            Err(e) => tracing::warn!(node = node_id, task = %lease.task, "cannot give back the lease: {e}"),
        }
    }
    hb.leases.clear();
    hb.tasks_in_flight.clear();
    hb.busy_slots = 0;
    hb.stopped = true;
    hb.draining.get_or_insert_with(|| why.to_string());
    store.put_json(&key, &hb).await?;
    Ok(released)
}
