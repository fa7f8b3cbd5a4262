//! The agent's main loop: one slot per CPU, each receiving tasks from the queues of the
//! resource classes this node serves; leases renewed while a task runs; drain on a spot
//! notice or SIGTERM (checkpoint at the next row-group boundary, hand the task back);
//! soft drain on a rebalance recommendation (finish current tasks, take no new ones).

mod capacity;
mod handle;
mod receive;
mod slot;
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
use fleetform_core::queue::{Received, TaskQueue};
use fleetform_core::task::{HeldLease, NodeHeartbeat};
use fleetform_core::Resources;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{info, warn};

use crate::imds::{NodeSignals, NoticeSource};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_runtime::Connections;
use capacity::{Claim, Capacity, Held};
use handle::handle_message;
use receive::Receiver;
use slot::{finishing, Slot};
use task::{JobContext, NodeContext};

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

/// Run until drained. Returns the drain reason. Everything the agent opens by URI (the
/// store, the queue, each job's input and output) goes through `conn`.
pub async fn run(cfg: AgentConfig, conn: Connections) -> Result<String> {
    serve(open(cfg, conn).await?).await
}

/// Open the store and queue and build the state the loop, the slots and the heartbeat share.
async fn open(cfg: AgentConfig, conn: Connections) -> Result<Arc<Shared>> {
    let store = Store::open(&conn, &cfg.store_uri).await?;
    let queue = Queue::open(&conn, &cfg.queue_uri).await?;
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
                    warn!("task handling failed: {}", fleetform_core::error_chain::render(e.as_ref()));
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
            warn!("heartbeat failed: {}", fleetform_core::error_chain::render(e.as_ref()));
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

/// A lock that survives poisoning, the one way `Shared`'s mutexes are taken: they hold
/// plain bookkeeping that a panic cannot leave half-written, and the guards of `slot` take
/// them while unwinding.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
