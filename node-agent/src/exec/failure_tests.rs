//! A task that panics and a task whose job cannot be loaded, run by an agent in this
//! process on a SQLite queue and a local store: the least that shows leases, retries and
//! the dead-letter queue for real.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fleetform_core::layout;
use fleetform_core::queue::{Depth, TaskQueue};
use fleetform_core::resources::CPU;
use fleetform_core::task::{FailureRecord, TaskMessage, TaskSource};
use fleetform_core::{JobSpec, Resources};

use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::slot::AbortOnDrop;
use super::{lock, AgentConfig, Shared, UNREADABLE_JOB_MAX_FAILURES};
use crate::imds::NoticeSource;
use crate::plan;
use fleetform_runtime::jobs::{self, JobProgress};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_runtime::Connections;

/// Every task of a job of this name panics on its own thread (`PanicsOnDone`), so the tests
/// can check that a panicking task frees its slot and lease.
const PANICKING_JOB: &str = "panics-in-test";

/// The agent's store, except that looking for the done marker of a `PANICKING_JOB` task
/// panics: the first thing a task does, on the task's thread (`run_task`).
#[derive(Debug)]
struct PanicsOnDone(Arc<dyn ObjectStore>);

impl std::fmt::Display for PanicsOnDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PanicsOnDone({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for PanicsOnDone {
    async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
        self.0.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(&self, p: &Path, o: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        let key = p.as_ref();
        if o.head && key.contains(&format!("jobs/{PANICKING_JOB}-")) && key.contains("/done/") {
            panic!("test hook: every task of `{PANICKING_JOB}` panics");
        }
        self.0.get_opts(p, o).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, o).await
    }
}

/// Short, so retries a lease apart fit in a test; renewals run every third of it.
const LEASE: Duration = Duration::from_millis(600);
/// Queue of jobs with the default resources.
const CLASS: &str = "default";

/// An agent in this process, on a SQLite queue and a store in `dir`.
pub(super) struct TestAgent {
    pub(super) dir: PathBuf,
    pub(super) shared: Arc<Shared>,
    serving: tokio::task::JoinHandle<anyhow::Result<String>>,
}

impl TestAgent {
    pub(super) async fn start() -> TestAgent {
        Self::start_with_lease(LEASE, 1).await
    }

    pub(super) async fn start_with_lease(lease: Duration, slots: usize) -> TestAgent {
        Self::start_in_with(std::env::temp_dir().join(format!("fleetform-exec-{}", uuid::Uuid::new_v4())), lease, slots).await
    }

    /// An agent of one slot on the store and queue in `dir` (a second agent after one drained).
    pub(super) async fn start_in(dir: PathBuf) -> TestAgent {
        Self::start_in_with(dir, LEASE, 1).await
    }

    async fn start_in_with(dir: PathBuf, lease: Duration, slots: usize) -> TestAgent {
        Self::start_in_watching(dir, lease, slots, None).await
    }

    /// An agent of one slot that polls `notices` every `poll`.
    pub(super) async fn start_watching(notices: NoticeSource, poll: Duration) -> TestAgent {
        let dir = std::env::temp_dir().join(format!("fleetform-exec-{}", uuid::Uuid::new_v4()));
        Self::start_in_watching(dir, LEASE, 1, Some((notices, poll))).await
    }

    async fn start_in_watching(dir: PathBuf, lease: Duration, slots: usize, notices: Option<(NoticeSource, Duration)>) -> TestAgent {
        let shared = super::open(Self::config(&dir, lease, slots, notices), Connections::from_env()).await.expect("open the agent");
        Self::serving(dir, shared)
    }

    /// An agent of one slot whose store makes every task of `PANICKING_JOB` panic.
    async fn start_panicking() -> TestAgent {
        let dir = std::env::temp_dir().join(format!("fleetform-exec-{}", uuid::Uuid::new_v4()));
        let cfg = Self::config(&dir, LEASE, 1, None);
        let mut store = Store::open(&Connections::from_env(), &cfg.store_uri).await.expect("open the store");
        store.loc.store = Arc::new(PanicsOnDone(store.loc.store));
        let queue = Queue::open(&Connections::from_env(), &cfg.queue_uri).await.expect("open the queue");
        let shared = super::share(cfg, store, queue).expect("open the agent");
        Self::serving(dir, shared)
    }

    fn serving(dir: PathBuf, shared: Arc<Shared>) -> TestAgent {
        let serving = tokio::spawn(super::serve(shared.clone()));
        TestAgent { dir, shared, serving }
    }

    fn config(dir: &std::path::Path, lease: Duration, slots: usize, notices: Option<(NoticeSource, Duration)>) -> AgentConfig {
        let (notices, notice_poll) = match notices {
            Some((source, poll)) => (Some(source), poll),
            None => (None, Duration::from_secs(1)),
        };
        AgentConfig {
            node_id: "test-node".into(),
            node_type: "worker".into(),
            instance: "local-test".into(),
            store_uri: dir.join("store").display().to_string(),
            queue_uri: format!("sqlite://{}", dir.join("queue.sqlite").display()),
            resources: Resources::new().with(CPU, 1.0),
            slots,
            spill_dir: dir.join("spill"),
            notices,
            notice_poll,
            lease,
            setup_failed_file: None,
        }
    }

    async fn submit(&self, name: &str, max_failures: u32) -> String {
        let yaml = format!(
            "name: {name}\ninput: {{generate: {{rows: 1000, seed: 1, text_length: 20}}}}\n\
             output: {{uri: {}}}\nsplit: {{rows_per_task: 1000}}\nmax_failures: {max_failures}\n",
            self.dir.join(name).display()
        );
        self.submit_yaml(&yaml).await
    }

    pub(super) async fn submit_yaml(&self, yaml: &str) -> String {
        let spec = JobSpec::from_yaml("test.yaml", yaml).expect("a valid job");
        plan::submit(&self.shared.store, &self.shared.queue, spec).await.expect("submit").job_id
    }

    pub(super) async fn finished(&self, job_id: &str) -> JobProgress {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p = jobs::progress(&self.shared.store, job_id).await.expect("progress");
            if p.manifest.is_some() {
                return p;
            }
            assert!(Instant::now() < deadline, "job {job_id} did not finish: {p:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node looks idle: no busy slot, nothing in flight, no lease held on the queue.
    async fn assert_idle(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        // The slot and the attempt (its in-flight entry) are separate guards, dropped one
        // after the other: wait for both.
        let settled = || self.shared.busy.load(Ordering::SeqCst) == 0 && lock(&self.shared.in_flight).is_empty();
        while !settled() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(self.shared.busy.load(Ordering::SeqCst), 0, "every slot is free");
        assert!(lock(&self.shared.in_flight).is_empty(), "no task is listed in flight");
        assert_eq!(self.shared.queue.depth(CLASS).await.unwrap(), Depth { visible: 0, in_flight: 0 }, "no lease is held");
    }

    pub(super) async fn stop(self) {
        let dir = self.dir.clone();
        self.drain().await;
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Waits until the agent drains by itself (on a notice, not [`TestAgent::drain`]) and
    /// returns why; the directory stays.
    pub(super) async fn drained_within(&mut self, limit: Duration) -> String {
        let ended = tokio::time::timeout(limit, &mut self.serving).await;
        ended.expect("the agent drains in time").expect("the loop ends").expect("the loop ends cleanly")
    }

    /// Drain as on a spot notice (running tasks checkpoint), keeping the directory.
    pub(super) async fn drain(self) {
        self.shared.node.drain.store(true, Ordering::SeqCst);
        self.serving.await.expect("the loop ends").expect("the loop ends cleanly");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_fails_like_any_error_and_the_agent_takes_the_next_task() {
    let agent = TestAgent::start_panicking().await;
    let id = agent.submit(PANICKING_JOB, 2).await;
    let p = agent.finished(&id).await;
    assert_eq!(p.failed.len(), 1, "the task is reported failed: {p:?}");
    let f = &p.failed[0];
    assert_eq!(f.failures, 2, "retried once, then dead-lettered at max_failures: {f:?}");
    assert!(f.error.contains("the task panicked: test hook: every task of"), "the report carries the panic message: {}", f.error);
    assert_eq!(p.manifest.unwrap().failed_tasks, vec![f.task_id.clone()]);
    let dlq = agent.shared.queue.dead_letters(CLASS).await.unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    let last: TaskMessage = serde_json::from_str(&dlq[0]).unwrap();
    assert_eq!((last.job_id.as_str(), last.failures), (id.as_str(), 2));
    // Renewals would keep the message leased; none is, for several renewal periods.
    tokio::time::sleep(LEASE * 2).await;
    agent.assert_idle().await;

    let next = agent.submit("after-the-panic", 2).await;
    let p = agent.finished(&next).await;
    assert_eq!((p.done.len(), p.failed.len()), (1, 0), "the same slot runs the next task: {p:?}");
    agent.assert_idle().await;
    agent.stop().await;
}

#[tokio::test]
async fn a_panic_while_a_renewal_is_held_aborts_the_renewal() {
    let sentinel = Arc::new(());
    let held = sentinel.clone();
    let renewal = tokio::spawn(async move {
        let _held = held;
        std::future::pending::<()>().await
    });
    let attempt = tokio::spawn(async move {
        let _guard = AbortOnDrop(renewal);
        panic!("the attempt panics");
    });
    assert!(attempt.await.unwrap_err().is_panic());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&sentinel) > 1 {
        assert!(Instant::now() < deadline, "the renewal still runs after the attempt panicked");
        tokio::task::yield_now().await;
    }
}

/// A task whose job record is absent: each receive waits out a lease (no hot loop), and
/// after `UNREADABLE_JOB_MAX_FAILURES` receives it is dead-lettered and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_a_missing_job_backs_off_and_is_dead_lettered() {
    let agent = TestAgent::start().await;
    let msg = TaskMessage {
        job_id: "no-such-job".into(),
        task_id: layout::task_id(0),
        source: TaskSource::Generate { first_row: 0, rows: 10 },
        resources: Resources::new().with(CPU, 1.0),
        failures: 0,
    };
    let sent = Instant::now();
    agent.shared.queue.send(CLASS, &[serde_json::to_string(&msg).unwrap()]).await.unwrap();
    let failed_key = layout::failed(&msg.job_id, &msg.task_id);
    let deadline = sent + LEASE * (UNREADABLE_JOB_MAX_FAILURES + 10);
    let rec: FailureRecord = loop {
        if let Some(r) = agent.shared.store.get_json(&failed_key).await.unwrap() {
            break r;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = sent.elapsed();
    // Each receive is counted in the record; between two of them a full lease passes.
    assert_eq!(rec.failures, UNREADABLE_JOB_MAX_FAILURES, "{rec:?}");
    let least = LEASE * (UNREADABLE_JOB_MAX_FAILURES - 1);
    assert!(took >= least, "{} receives in {took:?}: not backed off by a lease each", rec.failures);
    assert!(rec.error.contains("no-such-job") && rec.error.contains("jobs/no-such-job/job.json"), "names the job and key: {}", rec.error);
    let dlq = agent.shared.queue.dead_letters(CLASS).await.unwrap();
    assert_eq!(dlq.len(), 1, "{dlq:?}");
    agent.assert_idle().await;
    agent.stop().await;
}

/// A job record that is there but corrupt: the same path, with the default limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_of_a_corrupt_job_record_is_dead_lettered_not_resent_at_once() {
    let agent = TestAgent::start().await;
    let job_id = "corrupt-job";
    let path = agent.dir.join("store").join(layout::job(job_id));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"{ not json").unwrap();
    let msg = TaskMessage {
        job_id: job_id.into(),
        task_id: layout::task_id(0),
        source: TaskSource::Generate { first_row: 0, rows: 10 },
        resources: Resources::new().with(CPU, 1.0),
        failures: 0,
    };
    agent.shared.queue.send(CLASS, &[serde_json::to_string(&msg).unwrap()]).await.unwrap();
    // Over two leases at most three receives happen (one at once, one per lease).
    tokio::time::sleep(LEASE * 2 + LEASE / 2).await;
    let receives = receive_count(&agent.dir).await;
    assert!((1..=3).contains(&receives), "{receives} receives in 2.5 leases");
    let deadline = Instant::now() + LEASE * (UNREADABLE_JOB_MAX_FAILURES + 10);
    while agent.shared.queue.dead_letters(CLASS).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last: TaskMessage = serde_json::from_str(&agent.shared.queue.dead_letters(CLASS).await.unwrap()[0]).unwrap();
    assert_eq!(last.failures, UNREADABLE_JOB_MAX_FAILURES);
    agent.assert_idle().await;
    agent.stop().await;
}

/// How many times the class's one message has been received (read from the SQLite file).
async fn receive_count(dir: &std::path::Path) -> u32 {
    let c = rusqlite::Connection::open(dir.join("queue.sqlite")).unwrap();
    c.query_row("SELECT receive_count FROM messages WHERE queue = ?1", [CLASS], |r| r.get(0)).unwrap()
}

/// A task holds `max(1, ceil(CPU))` slots, as the autoscaler packs it: on a node of 2
/// slots, tasks of `{CPU: 2}` run one at a time, tasks of `{CPU: 1}` two at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_holds_as_many_slots_as_the_cpu_it_asks_for() {
    let agent = TestAgent::start_with_lease(Duration::from_secs(30), 2).await;
    let windows = |p: &JobProgress, store: &fleetform_runtime::store::Store, id: &str| {
        let (store, id, done) = (store.clone(), id.to_string(), p.done.clone());
        async move {
            let mut w = Vec::new();
            for t in done {
                let d: fleetform_core::task::DoneRecord = store.get_json(&layout::done(&id, &t)).await.unwrap().unwrap();
                let end = d.finished_at.timestamp_micros() as f64 / 1e6;
                w.push((end - d.seconds, end));
            }
            w.sort_by(|a, b| a.0.total_cmp(&b.0));
            w
        }
    };
    let overlaps = |w: &[(f64, f64)]| w.windows(2).any(|p| p[1].0 < p[0].1);
    let job = |name: &str, cpu: u32| {
        format!(
            "name: {name}\ninput: {{generate: {{rows: 120000, seed: 1, text_length: 100}}}}\n\
             output: {{uri: {}}}\nsplit: {{rows_per_task: 30000}}\nbatch_size: 1000\nresources: {{CPU: {cpu}}}\n",
            agent.dir.join(name).display()
        )
    };
    let wide = agent.submit_yaml(&job("wide", 2)).await;
    let p = agent.finished(&wide).await;
    let w = windows(&p, &agent.shared.store, &wide).await;
    assert_eq!(w.len(), 4);
    assert!(!overlaps(&w), "{{CPU: 2}} tasks on 2 slots never run together: {w:?}");
    let narrow = agent.submit_yaml(&job("narrow", 1)).await;
    let p = agent.finished(&narrow).await;
    let w = windows(&p, &agent.shared.store, &narrow).await;
    assert!(overlaps(&w), "{{CPU: 1}} tasks on 2 slots run two at a time: {w:?}");
    agent.assert_idle().await;
    agent.stop().await;
}
