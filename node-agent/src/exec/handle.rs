//! One received message, start to end: load its job, run the task on a blocking thread,
//! and act on the outcome (delete, hand back, retry, dead-letter).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use chrono::Utc;
use fleetform_core::layout;
use fleetform_core::queue::{QueueError, Received, TaskQueue};
use fleetform_core::task::{FailureRecord, JobRecord, TaskMessage};
use tracing::{info, warn};

use super::slot::{Attempt, Slot};
use super::task::{self, JobContext, NodeContext, Outcome, TaskFlags};
use super::{is_cancelled, lock, Shared, UNREADABLE_JOB_MAX_FAILURES};
use crate::ops::Stages;
use fleetform_runtime::location::Location;

/// Why a job's context could not be built, and its `max_failures` if the record was read.
struct JobLoadError {
    max_failures: Option<u32>,
    error: anyhow::Error,
}

async fn job_context(shared: &Shared, job_id: &str) -> Result<Arc<JobContext>, JobLoadError> {
    if let Some(j) = lock(&shared.jobs).get(job_id) {
        return Ok(j.clone());
    }
    let unreadable = |error| JobLoadError { max_failures: None, error };
    let record: JobRecord = shared
        .store
        .get_json(&layout::job(job_id))
        .await
        .map_err(unreadable)?
        .ok_or_else(|| unreadable(anyhow!("job {job_id} has no job.json in the store")))?;
    let unusable = |error| JobLoadError { max_failures: Some(record.spec.max_failures), error };
    let stages = Stages::compile(&record.spec.steps).map_err(unusable)?;
    // Tasks write into the job's staging directory; finalize publishes (fleetform_runtime::jobs::finalize).
    let staging = format!("{}/{}", record.spec.output.uri, layout::staging_dir(job_id));
    let output = Location::open(&shared.store.conn, &staging).await.map_err(unusable)?;
    let input = crate::input::JobInput::for_job(&record).map_err(unusable)?;
    let python = crate::ops::python::job_pool(&shared.store, &record, &stages, &shared.cfg.spill_dir, &shared.cfg.node_id)
        .await
        .map_err(unusable)?;
    let ctx = Arc::new(JobContext { record, stages, python, output, input });
    lock(&shared.jobs).insert(job_id.to_string(), ctx.clone());
    Ok(ctx)
}

pub(super) async fn handle_message(shared: &Arc<Shared>, slot: &mut Slot, class: &str, received: Received) -> Result<()> {
    let msg: TaskMessage = match serde_json::from_str(&received.body) {
        Ok(m) => m,
        Err(e) => {
            warn!("dead-lettering a message that is not a task: {e}");
            shared.queue.dead_letter(class, &received.handle, &received.body).await?;
            return Ok(());
        }
    };
    if is_cancelled(shared, &msg.job_id).await {
        shared.queue.delete(class, &received.handle).await?;
        return Ok(());
    }
    let job = match job_context(shared, &msg.job_id).await {
        Ok(j) => j,
        Err(e) => return retry_unloadable(shared, class, &received, &msg, e).await,
    };
    let flags = Arc::new(TaskFlags::default());
    let mut attempt = Attempt::start(shared, class, &received, &msg, &flags);
    let run = run_blocking(&shared.node, &job, &msg, &flags);
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = flags.computed.notified(), if slot.computing() => slot.computing_done(),
        }
    };
    attempt.stop_renewing();

    let outcome = match result {
        Ok(o) => o,
        Err(e) => return fail(shared, class, &received, &msg, &fleetform_core::error_chain::render(e.as_ref()), job.record.spec.max_failures).await,
    };
    match outcome {
        Outcome::Done(rec) => {
            shared.tasks_done.fetch_add(1, Ordering::Relaxed);
            info!(task = %msg.task_id, rows = rec.rows_out, secs = rec.seconds, "task done");
            shared.queue.delete(class, &received.handle).await?;
            fleetform_runtime::jobs::finalize(&shared.store, &msg.job_id).await?;
        }
        Outcome::AlreadyDone => {
            shared.queue.delete(class, &received.handle).await?;
            fleetform_runtime::jobs::finalize(&shared.store, &msg.job_id).await?;
        }
        Outcome::Interrupted(cp) => {
            // Hand the task back with its failure count unchanged: an interruption is not
            // the task's fault. A fresh message also resets SQS's receive counter.
            info!(task = %msg.task_id, next_unit = cp.next_unit, "task checkpointed for drain");
            shared.queue.send(class, std::slice::from_ref(&received.body)).await?;
            shared.queue.delete(class, &received.handle).await?;
        }
        Outcome::Stopped => {
            if is_cancelled(shared, &msg.job_id).await {
                shared.queue.delete(class, &received.handle).await?;
            }
        }
    }
    Ok(())
}

/// Run the task on a blocking thread. A panic in it is the task's error like any other:
/// it counts one failure toward `max_failures` and is reported with its message.
async fn run_blocking(node: &NodeContext, job: &Arc<JobContext>, msg: &TaskMessage, flags: &Arc<TaskFlags>) -> Result<Outcome> {
    let (node, job, msg, flags) = (node.clone(), job.clone(), msg.clone(), flags.clone());
    match tokio::task::spawn_blocking(move || task::run_task(&node, &job, &msg, &flags)).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(anyhow!("the task panicked: {}", panic_message(e.into_panic().as_ref()))),
        Err(e) => Err(anyhow!("the task's thread was cancelled: {e}")),
    }
}

/// The text a `panic!` carries (a &str or a String), or a placeholder for other payloads.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(a panic payload that is not text)".into(),
    }
}

/// The task's job could not be loaded. Leave the message leased for one lease (the
/// visibility timeout is the backoff: releasing it at once would spin on it), and
/// dead-letter it once its receives reach the job's `max_failures`, or
/// `UNREADABLE_JOB_MAX_FAILURES` when the record itself cannot be read. The body is not
/// rewritten on a retry, so attempts are the failures it came with plus this message's
/// receives (a fresh message is sent after every other kind of failure).
async fn retry_unloadable(shared: &Shared, class: &str, received: &Received, msg: &TaskMessage, e: JobLoadError) -> Result<()> {
    let key = layout::job(&msg.job_id);
    let limit = e.max_failures.unwrap_or(UNREADABLE_JOB_MAX_FAILURES);
    let attempts = msg.failures.saturating_add(received.receive_count);
    let error = format!("cannot load job {} ({}/{key}): {}", msg.job_id, shared.store.uri(), fleetform_core::error_chain::render(e.error.as_ref()));
    warn!(job = %msg.job_id, %key, store = %shared.store.uri(), task = %msg.task_id, attempts, limit, "{error}");
    if attempts < limit {
        return Ok(shared.queue.extend(class, &received.handle, shared.cfg.lease).await.or_else(lease_lost_ok)?);
    }
    let last = TaskMessage { failures: attempts, ..msg.clone() };
    dead_letter(shared, class, received, &last, &error).await?;
    if e.max_failures.is_some() {
        fleetform_runtime::jobs::finalize(&shared.store, &msg.job_id).await?;
    }
    Ok(())
}

/// A failed attempt: retry with the count raised, or dead-letter and record why.
async fn fail(shared: &Shared, class: &str, received: &Received, msg: &TaskMessage, error: &str, max_failures: u32) -> Result<()> {
    let mut next = msg.clone();
    next.failures += 1;
    warn!(task = %msg.task_id, failures = next.failures, "task failed: {error}");
    if next.failures >= max_failures {
        dead_letter(shared, class, received, &next, error).await?;
        fleetform_runtime::jobs::finalize(&shared.store, &msg.job_id).await?;
    } else {
        shared.queue.send(class, &[serde_json::to_string(&next)?]).await?;
        shared.queue.delete(class, &received.handle).await?;
    }
    Ok(())
}

/// Record why the task failed (the job's report reads it) and move it to the DLQ.
async fn dead_letter(shared: &Shared, class: &str, received: &Received, last: &TaskMessage, error: &str) -> Result<()> {
    let rec = FailureRecord {
        task_id: last.task_id.clone(),
        input: last.source.describe(),
        error: error.to_string(),
        failures: last.failures,
        node_id: shared.cfg.node_id.clone(),
        at: Utc::now(),
    };
    shared.store.put_json(&layout::failed(&last.job_id, &last.task_id), &rec).await?;
    shared.queue.dead_letter(class, &received.handle, &serde_json::to_string(last)?).await.or_else(lease_lost_ok)?;
    Ok(())
}

fn lease_lost_ok(e: QueueError) -> Result<(), QueueError> {
    match e {
        QueueError::LeaseLost => Ok(()),
        other => Err(other),
    }
}
