//! The agent's main loop: one slot per CPU, each receiving tasks from the queues of the
//! resource classes this node serves; leases renewed while a task runs; drain on a spot
//! notice or SIGTERM (checkpoint at the next row-group boundary, hand the task back);
//! soft drain on a rebalance recommendation (finish current tasks, take no new ones).

mod capacity;
mod receive;
pub mod task;
mod task_log;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use fleetform_core::layout;
use fleetform_core::queue::{QueueError, Received, TaskQueue};
use fleetform_core::task::{FailureRecord, HeldLease, JobRecord, NodeHeartbeat, TaskMessage};
use fleetform_core::Resources;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::imds::{NodeSignals, NoticeSource};
use crate::ops::Stages;
use crate::queue::Queue;
use crate::store::Store;
use capacity::{Claim, Capacity, Held};
use receive::Receiver;
use task::{JobContext, NodeContext, Outcome, TaskFlags};

/// A spot notice comes 2 minutes before reclaim; the drain must finish well inside it,
/// leaving time for the final heartbeat and the OS shutdown.
pub const DRAIN_BUDGET: Duration = Duration::from_secs(90);
/// Heartbeats feed the autoscaler's idle and liveness decisions; 5 s keeps them fresh
/// at one small PUT per node every 5 s.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A Python worker idle this long is stopped: long enough to carry a job's workers from
/// one task to the next (starting pandas costs about half a second), short enough that a
/// finished job's workers do not hold memory for long.
const PYTHON_WORKER_IDLE: Duration = Duration::from_secs(60);
/// How long a job's cancel marker is trusted before looking again.
const CANCEL_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Attempts for a task whose job record cannot be read at all (missing or corrupt), so
/// its own `max_failures` is unknown. Submit writes the record before sending any task,
/// so a missing one is not a race: five attempts, a lease apart, ride out a store outage
/// of a few minutes and then report the task instead of circulating it for ever.
/// Kept below the SQS redrive policy's `maxReceiveCount` (10, docs/aws.md), so the agent,
/// not the redrive, dead-letters the task and writes its failure record.
pub const UNREADABLE_JOB_MAX_FAILURES: u32 = 5;

pub struct AgentConfig {
    pub node_id: String,
    pub node_type: String,
    pub instance: String,
    pub store_uri: String,
    pub queue_uri: String,
    pub resources: Resources,
    pub slots: usize,
    pub spill_dir: PathBuf,
    /// Where spot, rebalance and maintenance notices come from: IMDS on EC2, the notice file
    /// on the local provider; None for none.
    pub notices: Option<NoticeSource>,
    pub notice_poll: Duration,
    pub lease: Duration,
    /// Read once at start: setup_commands run before the agent starts (user data).
    pub setup_failed_file: Option<PathBuf>,
}

/// State shared by the loop, the slots and the heartbeat.
struct Shared {
    cfg: AgentConfig,
    store: Store,
    queue: Queue,
    node: NodeContext,
    jobs: Mutex<HashMap<String, Arc<JobContext>>>,
    cancelled: Mutex<HashMap<String, (bool, Instant)>>,
    /// Attempts running now, by `<job>/<task>`, with the lease each holds.
    in_flight: Mutex<BTreeMap<String, HeldLease>>,
    /// Wakes the heartbeat early: a task started, so its lease must be on record.
    beat_now: tokio::sync::Notify,
    busy: AtomicUsize,
    /// Places for tasks that computed and are finishing (`Slot::computing_done`).
    finishing: Arc<tokio::sync::Semaphore>,
    tasks_done: AtomicU64,
    last_work: Mutex<DateTime<Utc>>,
    /// Why the node stopped taking work (spot-interruption, rebalance, sigterm).
    draining: Mutex<Option<String>>,
    soft_drain: AtomicBool,
    scheduled: Mutex<Vec<String>>,
    started: DateTime<Utc>,
    setup_failed: Option<String>,
}

/// Run until drained. Returns the drain reason.
pub async fn run(cfg: AgentConfig) -> Result<String> {
    serve(open(cfg).await?).await
}

/// Open the store and queue and build the state the loop, the slots and the heartbeat share.
async fn open(cfg: AgentConfig) -> Result<Arc<Shared>> {
    let store = Store::open(&cfg.store_uri).await?;
    let queue = Queue::open(&cfg.queue_uri).await?;
    share(cfg, store, queue)
}

/// The shared state on an open store and queue (the spill directory created).
fn share(cfg: AgentConfig, store: Store, queue: Queue) -> Result<Arc<Shared>> {
    std::fs::create_dir_all(&cfg.spill_dir)
        .map_err(|e| anyhow!("cannot create the spill directory {}: {e}", cfg.spill_dir.display()))?;
    let node = NodeContext {
        store: store.clone(),
        node_id: cfg.node_id.clone(),
        spill_dir: cfg.spill_dir.clone(),
        handle: tokio::runtime::Handle::current(),
        drain: Arc::new(AtomicBool::new(false)),
        rows_done: Arc::new(AtomicU64::new(0)),
        units_done: Arc::new(AtomicU64::new(0)),
    };
    let shared = Arc::new(Shared {
        store,
        queue,
        node,
        jobs: Default::default(),
        cancelled: Default::default(),
        in_flight: Default::default(),
        beat_now: tokio::sync::Notify::new(),
        busy: AtomicUsize::new(0),
        finishing: Arc::new(tokio::sync::Semaphore::new(cfg.slots)),
        tasks_done: AtomicU64::new(0),
        last_work: Mutex::new(Utc::now()),
        draining: Mutex::new(None),
        soft_drain: AtomicBool::new(false),
        scheduled: Default::default(),
        started: Utc::now(),
        setup_failed: cfg.setup_failed_file.as_deref().and_then(read_setup_failure),
        cfg,
    });
    Ok(shared)
}

/// The receive loop, until a hard drain; then wait for the slots to hand back.
async fn serve(shared: Arc<Shared>) -> Result<String> {
    heartbeat(&shared, false).await?;
    tokio::spawn(heartbeat_loop(shared.clone()));
    tokio::spawn(signal_watch(shared.clone()));
    if let Some(source) = shared.cfg.notices.clone() {
        tokio::spawn(notice_watch(shared.clone(), crate::imds::spawn_watcher_with_interval(source, shared.cfg.notice_poll)));
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    info!(node = %shared.cfg.node_id, slots = shared.cfg.slots, "agent ready");

    let capacity = Capacity::new(shared.cfg.slots, &shared.cfg.resources);
    let classes: Vec<String> = shared.cfg.resources.served_classes().iter().map(|c| c.slug()).collect();
    let mut receiver = Receiver::new(shared.queue.clone(), classes, shared.cfg.lease);
    // Until a drain of either kind: a receive waits as long as the queue is empty, so the
    // drains are watched while it waits, not only between receives.
    while !takes_no_work(&shared) {
        let permit = tokio::select! {
            biased;
            _ = wait_until_taking_no_work(&shared) => break,
            p = capacity.one_slot() => p?,
        };
        if takes_no_work(&shared) {
            break; // a slot freed up because its task drained: take nothing new
        }
        // A batch for every free slot; the loop holds one of them.
        let want = 1 + capacity.free_slots();
        let got = tokio::select! {
            biased;
            _ = wait_until_taking_no_work(&shared) => break,
            got = receiver.next(want) => got,
        };
        let mut first = Some(permit);
        let mut messages = got.into_iter();
        while let Some((class, msg)) = messages.next() {
            let Some(slot) = first.take().or_else(|| capacity.try_one_slot()) else {
                receiver.give_back(&class, vec![msg]);
                continue;
            };
            let Some(held) = claim_for_task(&shared, &capacity, slot, &class, &msg).await else {
                // Handed back and waited for room: the rest of the batch waited too long.
                for (class, msg) in messages.by_ref() {
                    receiver.give_back(&class, vec![msg]);
                }
                break;
            };
            // Counted as busy before the handler starts, so a drain that begins now
            // waits for this message to be handed back instead of abandoning its lease.
            let mut slot = Slot::claim(shared.clone(), held);
            tokio::spawn(async move {
                let shared = slot.shared.clone();
                if let Err(e) = handle_message(&shared, &mut slot, &class, msg).await {
                    warn!("task handling failed: {e:#}");
                }
                drop(slot);
            });
        }
    }
    // Receives in flight answer within their long poll: what they bring goes back.
    let closing = tokio::spawn(receiver.close());
    // A soft drain (rebalance recommendation, the autoscaler's drain) lets running tasks
    // finish and keeps the node up, taking nothing new, until a hard one.
    wait_for_drain(&shared).await;
    // Drain: wait for in-flight tasks to checkpoint and hand back, within the budget.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let deadline = Instant::now() + DRAIN_BUDGET;
    while (shared.busy.load(Ordering::SeqCst) > 0 || finishing(&shared) > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), closing).await;
    // Job contexts own the Python workers: dropping them stops the idle ones now.
    lock(&shared.jobs).clear();
    let reason = lock(&shared.draining).clone().unwrap_or_else(|| "stopped".into());
    heartbeat(&shared, true).await?;
    info!(node = %shared.cfg.node_id, %reason, "agent drained");
    Ok(reason)
}

/// Turn the one slot the loop waited for into all the task asks for (`capacity`). When
/// that is not free, the message goes back to the queue and the loop waits until it is
/// (taking nothing new meanwhile, so small tasks cannot starve a large one), then
/// receives again. None: the message was handed back.
async fn claim_for_task(shared: &Arc<Shared>, capacity: &Capacity, slot: OwnedSemaphorePermit, class: &str, msg: &Received) -> Option<Held> {
    let claim = Claim::of_message(&msg.body);
    match capacity.try_complete(slot, claim) {
        Ok(held) => return Some(held),
        Err(slot) => drop(slot),
    }
    if let Err(e) = shared.queue.release(class, &msg.handle).await {
        warn!(%class, "cannot hand a task back: {e}");
    }
    match capacity.never_fits(claim) {
        None => {
            tokio::select! {
                _ = wait_for_drain(shared) => {}
                _ = capacity.wait_until_free(claim) => {}
            }
        }
        Some(why) => {
            // Submit refuses jobs no node type fits (`ClusterSpec::feasible`); a node of
            // another type may fit this one, so it goes back rather than failing here.
            warn!(%class, "a task does not fit this node ({why}): handed back");
            tokio::time::sleep(receive::IDLE_POLL_MAX).await;
        }
    }
    None
}

async fn wait_for_drain(shared: &Shared) {
    while !shared.node.drain.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A drain of either kind has begun: the node takes no new task.
fn takes_no_work(shared: &Shared) -> bool {
    shared.node.drain.load(Ordering::SeqCst) || shared.soft_drain.load(Ordering::SeqCst)
}

async fn wait_until_taking_no_work(shared: &Shared) {
    while !takes_no_work(shared) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn start_drain(shared: &Shared, reason: &str, hard: bool) {
    let mut d = lock(&shared.draining);
    if d.is_none() || hard {
        if d.as_deref() != Some(reason) {
            info!(node = %shared.cfg.node_id, %reason, hard, "draining");
        }
        *d = Some(reason.to_string());
    }
    if hard {
        shared.node.drain.store(true, Ordering::SeqCst);
    } else {
        shared.soft_drain.store(true, Ordering::SeqCst);
    }
}

async fn signal_watch(shared: Arc<Shared>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        warn!("cannot install signal handlers; SIGTERM will not drain");
        return;
    };
    tokio::select! {
        _ = term.recv() => start_drain(&shared, "sigterm", true),
        _ = int.recv() => start_drain(&shared, "sigint", true),
    }
}

/// Acts on the notice source's signals, whichever source it is: a spot notice is a hard
/// drain, a rebalance recommendation a soft one; scheduled events go into the heartbeat.
async fn notice_watch(shared: Arc<Shared>, mut rx: tokio::sync::watch::Receiver<NodeSignals>) {
    loop {
        {
            let s = rx.borrow_and_update().clone();
            if let Some(spot) = &s.spot {
                info!(action = %spot.action, time = %spot.time, "spot interruption notice");
                start_drain(&shared, "spot-interruption", true);
            }
            if s.rebalance.is_some() {
                start_drain(&shared, "rebalance", false);
            }
            *lock(&shared.scheduled) =
                s.scheduled.iter().map(|e| format!("{} at {} ({})", e.code, e.not_before, e.state)).collect();
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
            _ = shared.beat_now.notified() => {}
        }
        // The autoscaler asks a node to drain before removing it: finish, take nothing new.
        if !shared.soft_drain.load(Ordering::SeqCst) && shared.store.exists(&layout::node_drain(&shared.cfg.node_id)).await.unwrap_or(false) {
            start_drain(&shared, "autoscaler", false);
        }
        if let Err(e) = heartbeat(&shared, false).await {
            warn!("heartbeat failed: {e:#}");
        }
        reap_python_workers(&shared);
    }
}

/// Stop Python workers idle for `PYTHON_WORKER_IDLE`, and forget finished jobs whose
/// workers are all gone (their context is rebuilt if a task of theirs comes back).
fn reap_python_workers(shared: &Shared) {
    let mut jobs = lock(&shared.jobs);
    for (id, job) in jobs.iter() {
        if let Some(pool) = &job.python {
            let n = pool.reap_idle(PYTHON_WORKER_IDLE);
            if n > 0 {
                info!(job = %id, workers = n, "stopped idle python workers");
            }
        }
    }
    // A context no task holds (only the map's reference) and with no idle worker left.
    jobs.retain(|_, job| job.python.as_ref().is_none_or(|p| p.idle_workers() > 0 || Arc::strong_count(job) > 1));
}

/// What the failed setup command left in `path`, or None when setup succeeded (no file).
pub fn read_setup_failure(path: &std::path::Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Ok(_) => Some(format!("setup_commands failed ({} is empty)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("cannot read {}: {e}", path.display())),
    }
}

async fn heartbeat(shared: &Shared, stopped: bool) -> Result<()> {
    // One look at the attempts (a guard held across both fields, dropped before awaiting).
    let in_flight = lock(&shared.in_flight).clone();
    let hb = NodeHeartbeat {
        node_id: shared.cfg.node_id.clone(),
        node_type: shared.cfg.node_type.clone(),
        instance: shared.cfg.instance.clone(),
        resources: shared.cfg.resources.clone(),
        slots: shared.cfg.slots,
        busy_slots: shared.busy.load(Ordering::SeqCst),
        tasks_in_flight: in_flight.keys().cloned().collect(),
        leases: in_flight.values().cloned().collect(),
        draining: lock(&shared.draining).clone(),
        scheduled_events: lock(&shared.scheduled).clone(),
        last_work_at: *lock(&shared.last_work),
        started_at: shared.started,
        updated_at: Utc::now(),
        tasks_done: shared.tasks_done.load(Ordering::Relaxed),
        rows_done: shared.node.rows_done.load(Ordering::Relaxed),
        stopped,
        setup_failed: shared.setup_failed.clone(),
    };
    shared.store.put_json(&layout::node(&shared.cfg.node_id), &hb).await
}

/// A running task's share of the node and its place in the busy count. Dropped on every
/// way out of the handler, unwinding from a panic included, so a share is never lost.
struct Slot {
    shared: Arc<Shared>,
    /// None once the task no longer computes (`computing_done`).
    held: Option<Held>,
    slots: usize,
    finishing: Option<OwnedSemaphorePermit>,
}

impl Slot {
    fn claim(shared: Arc<Shared>, held: Held) -> Slot {
        let slots = held.slots();
        shared.busy.fetch_add(slots, Ordering::SeqCst);
        Slot { shared, held: Some(held), slots, finishing: None }
    }

    fn computing(&self) -> bool {
        self.held.is_some()
    }

    /// The task has computed everything; only its last upload and its commit remain, which
    /// need no CPU. Its share of the node goes to the next task at once, so the upload
    /// overlaps that task's work, if a finishing place is free: at most as many tasks
    /// finish at once as the node has slots (each holds its last output chunk in memory).
    fn computing_done(&mut self) {
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
fn finishing(shared: &Shared) -> usize {
    shared.cfg.slots - shared.finishing.available_permits()
}

/// Aborts a background task when dropped, unwinding included: a lease renewal must not
/// outlive the attempt it renews.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One attempt at a task: listed in the heartbeat's `tasks_in_flight`, its lease renewed.
/// Dropping it, however the attempt ends, stops the renewal and unlists the task.
struct Attempt<'a> {
    shared: &'a Shared,
    key: String,
    renewal: Option<AbortOnDrop>,
}

impl<'a> Attempt<'a> {
    fn start(shared: &'a Arc<Shared>, class: &str, received: &Received, msg: &TaskMessage, flags: &Arc<TaskFlags>) -> Attempt<'a> {
        let key = format!("{}/{}", msg.job_id, msg.task_id);
        let lease = HeldLease { task: key.clone(), class: class.to_string(), handle: received.handle.clone() };
        lock(&shared.in_flight).insert(key.clone(), lease);
        shared.beat_now.notify_one();
        *lock(&shared.last_work) = Utc::now();
        let renewal = tokio::spawn(renew_lease(shared.clone(), class.to_string(), received.handle.clone(), msg.job_id.clone(), flags.clone()));
        Attempt { shared, key, renewal: Some(AbortOnDrop(renewal)) }
    }

    /// The task ran: stop renewing before the message is deleted or handed on.
    fn stop_renewing(&mut self) {
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

/// A lock that survives poisoning, the one way `Shared`'s mutexes are taken: they hold
/// plain bookkeeping that a panic cannot leave half-written, and the guards above take
/// them while unwinding.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

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
    // Tasks write into the job's staging directory; finalize publishes (jobs::finalize).
    let staging = format!("{}/{}", record.spec.output.uri, layout::staging_dir(job_id));
    let output = crate::storage::open(&staging).await.map_err(unusable)?;
    let input = crate::input::JobInput::for_job(&record).map_err(unusable)?;
    let python = crate::ops::python::job_pool(&shared.store, &record, &stages, &shared.cfg.spill_dir, &shared.cfg.node_id)
        .await
        .map_err(unusable)?;
    let ctx = Arc::new(JobContext { record, stages, python, output, input });
    lock(&shared.jobs).insert(job_id.to_string(), ctx.clone());
    Ok(ctx)
}

async fn is_cancelled(shared: &Shared, job_id: &str) -> bool {
    if let Some((c, at)) = lock(&shared.cancelled).get(job_id) {
        if *c || at.elapsed() < CANCEL_CHECK_EVERY {
            return *c;
        }
    }
    let c = shared.store.exists(&layout::cancel(job_id)).await.unwrap_or(false);
    lock(&shared.cancelled).insert(job_id.to_string(), (c, Instant::now()));
    c
}

async fn handle_message(shared: &Arc<Shared>, slot: &mut Slot, class: &str, received: Received) -> Result<()> {
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
        Err(e) => return fail(shared, class, &received, &msg, &format!("{e:#}"), job.record.spec.max_failures).await,
    };
    match outcome {
        Outcome::Done(rec) => {
            shared.tasks_done.fetch_add(1, Ordering::Relaxed);
            info!(task = %msg.task_id, rows = rec.rows_out, secs = rec.seconds, "task done");
            shared.queue.delete(class, &received.handle).await?;
            crate::jobs::finalize(&shared.store, &msg.job_id).await?;
        }
        Outcome::AlreadyDone => {
            shared.queue.delete(class, &received.handle).await?;
            crate::jobs::finalize(&shared.store, &msg.job_id).await?;
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
    let error = format!("cannot load job {} ({}/{key}): {:#}", msg.job_id, shared.store.uri(), e.error);
    warn!(job = %msg.job_id, %key, store = %shared.store.uri(), task = %msg.task_id, attempts, limit, "{error}");
    if attempts < limit {
        return Ok(shared.queue.extend(class, &received.handle, shared.cfg.lease).await.or_else(lease_lost_ok)?);
    }
    let last = TaskMessage { failures: attempts, ..msg.clone() };
    dead_letter(shared, class, received, &last, &error).await?;
    if e.max_failures.is_some() {
        crate::jobs::finalize(&shared.store, &msg.job_id).await?;
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
        crate::jobs::finalize(&shared.store, &msg.job_id).await?;
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

#[cfg(test)]
mod setup_failure_tests {
    use super::read_setup_failure;

    #[test]
    fn absent_file_means_setup_succeeded_and_content_is_reported() {
        let dir = std::env::temp_dir().join(format!("fleetform-setup-failed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("setup-failed");
        let _ = std::fs::remove_file(&f);
        assert_eq!(read_setup_failure(&f), None);
        std::fs::write(&f, "exit 1: pip install pandas\n").unwrap();
        assert_eq!(read_setup_failure(&f).as_deref(), Some("exit 1: pip install pandas"));
        std::fs::write(&f, "").unwrap();
        assert!(read_setup_failure(&f).unwrap().contains("is empty"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod failure_tests;
#[cfg(test)]
mod notice_tests;
#[cfg(test)]
mod python_tests;
#[cfg(test)]
mod input_job_tests;
