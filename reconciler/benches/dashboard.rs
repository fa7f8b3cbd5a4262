//! The dashboard's cost (docs/DESIGN.md, decision 26: one poller whatever the pages): store
//! and queue requests per second made by its one poller, with 1 and 100 unfinished jobs and
//! 100 nodes, and with 1 and 20 pages open; and the page's update latency (a store change
//! until a page polling like the real one, every second, sees it). The store is a local
//! directory and the queue SQLite, seeded with synthetic heartbeats and jobs; requests are
//! counted by decorators of this bench around the real store and queue, under the real
//! poller and HTTP server.
//!
//!   cargo bench -p fleetform --bench dashboard -- [--seconds S] [--interval S]

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;
use fleetform::cluster::Handles;
use fleetform::dashboard::{poller, server};
use fleetform::observe::{ClusterView, Observer};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::queue::{Depth, QueueError, Received, TaskQueue};
use fleetform_core::spec::ClusterSpec;
use fleetform_core::JobSpec;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const NODES: usize = 100;
/// Tasks per synthetic job (one done, the rest queued).
const TASKS_PER_JOB: usize = 10;
/// How often a simulated page polls, as the real page does (PAGE_POLL_MS).
const PAGE_POLL: Duration = Duration::from_secs(1);

/// Requests by kind, as S3 would bill them (a LIST page holds 1000 keys).
#[derive(Default)]
struct Counts {
    list: AtomicU64,
    list_pages: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    other: AtomicU64,
    depth: AtomicU64,
}

impl Counts {
    fn store(&self) -> u64 {
        self.list_pages.load(Ordering::Relaxed)
            + self.get.load(Ordering::Relaxed)
            + self.head.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }
    fn reset(&self) {
        for c in [&self.list, &self.list_pages, &self.get, &self.head, &self.other, &self.depth] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

/// The store, counted.
#[derive(Debug)]
struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    counts: Arc<Counts>,
}

impl fmt::Display for CountingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "counted({})", self.inner)
    }
}

impl fmt::Debug for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Counts")
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        let counter = if options.head { &self.counts.head } else { &self.counts.get };
        counter.fetch_add(1, Ordering::Relaxed);
        self.inner.get_opts(location, options).await
    }
    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.counts.get.fetch_add(ranges.len() as u64, Ordering::Relaxed);
        self.inner.get_ranges(location, ranges).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        use futures::StreamExt;
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        self.counts.list_pages.fetch_add(1, Ordering::Relaxed);
        let counts = self.counts.clone();
        let keys = Arc::new(AtomicU64::new(0));
        // Every further 1000 keys is one more LIST page on S3.
        self.inner
            .list(prefix)
            .inspect(move |_| {
                if keys.fetch_add(1, Ordering::Relaxed) % 1000 == 999 {
                    counts.list_pages.fetch_add(1, Ordering::Relaxed);
                }
            })
            .boxed()
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.counts.list.fetch_add(1, Ordering::Relaxed);
        let r = self.inner.list_with_delimiter(prefix).await?;
        let entries = (r.common_prefixes.len() + r.objects.len()) as u64;
        self.counts.list_pages.fetch_add(1 + entries / 1000, Ordering::Relaxed);
        Ok(r)
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.counts.other.fetch_add(1, Ordering::Relaxed);
        self.inner.copy_opts(from, to, options).await
    }
}

/// The queue, counted (depth is the only call the dashboard makes; SQS bills each).
struct CountingQueue {
    inner: Queue,
    counts: Arc<Counts>,
}

impl TaskQueue for CountingQueue {
    async fn ensure(&self, class: &str) -> Result<(), QueueError> {
        self.inner.ensure(class).await
    }
    async fn send(&self, class: &str, bodies: &[String]) -> Result<(), QueueError> {
        self.inner.send(class, bodies).await
    }
    async fn receive(&self, class: &str, max: usize, lease: Duration) -> Result<Vec<Received>, QueueError> {
        self.inner.receive(class, max, lease).await
    }
    async fn extend(&self, class: &str, handle: &str, lease: Duration) -> Result<(), QueueError> {
        self.inner.extend(class, handle, lease).await
    }
    async fn release(&self, class: &str, handle: &str) -> Result<(), QueueError> {
        self.inner.release(class, handle).await
    }
    async fn delete(&self, class: &str, handle: &str) -> Result<(), QueueError> {
        self.inner.delete(class, handle).await
    }
    async fn dead_letter(&self, class: &str, handle: &str, body: &str) -> Result<(), QueueError> {
        self.inner.dead_letter(class, handle, body).await
    }
    async fn depth(&self, class: &str) -> Result<Depth, QueueError> {
        self.counts.depth.fetch_add(1, Ordering::Relaxed);
        self.inner.depth(class).await
    }
    async fn dead_letters(&self, class: &str) -> Result<Vec<String>, QueueError> {
        self.inner.dead_letters(class).await
    }
    async fn purge(&self, class: &str) -> Result<(), QueueError> {
        self.inner.purge(class).await
    }
}

/// The real observer on the counted store and queue.
struct Counted {
    observer: Observer,
    store: Store,
    queue: CountingQueue,
}

impl poller::Rounds for Counted {
    fn initial(&self) -> ClusterView {
        self.observer.last().clone()
    }
    async fn round(&mut self) -> ClusterView {
        self.observer.observe(Ok(&self.store), Ok(&self.queue)).await
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    spec: ClusterSpec,
    handles: Handles,
    store: Store,
    jobs: Vec<String>,
}

/// A local store with `NODES` fresh heartbeats (refreshed by a writer task, as agents do
/// every 5 s) and `jobs` unfinished jobs of `TASKS_PER_JOB` tasks, one done each.
async fn seed(jobs: usize) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "cluster_name: bench\nprovider: {{type: local}}\nstorage: {{path: {}}}\nhead_node_type: head\n\
         available_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  worker: {{resources: {{CPU: 4}}, max_workers: {NODES}}}\nmax_workers: {NODES}\n",
        dir.path().join("state/store").display()
    );
    let spec = ClusterSpec::from_yaml("bench.yaml", &yaml).unwrap();
    let handles = Handles::of(&spec).await.unwrap();
    let store = handles.store().await.unwrap();
    let queue = handles.queue().await.unwrap();
    let mut ids = Vec::new();
    for j in 0..jobs {
        let out = dir.path().join(format!("out/{j}"));
        let y = format!(
            "name: j{j}\ninput: {{generate: {{rows: {}, seed: 1}}}}\noutput: {{uri: {}}}\nsplit: {{rows_per_task: 1000}}\n",
            TASKS_PER_JOB * 1000,
            out.display()
        );
        let id = fleetform_agent::plan::submit(&store, &queue, JobSpec::from_yaml("j.yaml", &y).unwrap()).await.unwrap().job_id;
        done(&store, &id, 0).await;
        ids.push(id);
    }
    write_heartbeats(&store).await;
    Cluster { _dir: dir, spec, handles, store, jobs: ids }
}

async fn done(store: &Store, job: &str, task: usize) {
    let t = layout::task_id(task);
    let record = serde_json::json!({
        "task_id": t, "node_id": "n000", "chunks": [], "rows_in": 1000, "rows_out": 1000,
        "units_processed": 1, "units_from_checkpoint": 0, "seconds": 0.1, "finished_at": Utc::now(),
    });
    store.put_json(&layout::done(job, &t), &record).await.unwrap();
}

async fn write_heartbeats(store: &Store) {
    let now = Utc::now();
    for n in 0..NODES {
        let id = format!("n{n:03}");
        let hb = serde_json::json!({
            "node_id": id, "node_type": "worker", "instance": "local-1", "resources": {"CPU": 4}, "slots": 4, "busy_slots": 0,
            "tasks_in_flight": [], "draining": null, "last_work_at": now, "started_at": now, "updated_at": now, "tasks_done": 0, "rows_done": 0,
        });
        store.put_json(&layout::node(&id), &hb).await.unwrap();
    }
}

/// Pages polling the server like the real page; each returns when it first saw `job`
/// with `want` tasks done (or None at the end).
fn tabs(base: &str, n: usize, stop: Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<u64>> {
    (0..n)
        .map(|_| {
            let (base, stop) = (base.to_string(), stop.clone());
            std::thread::spawn(move || {
                let mut polls = 0;
                while !stop.load(Ordering::Relaxed) {
                    get(&format!("{base}api/status"));
                    get(&format!("{base}api/history"));
                    polls += 1;
                    std::thread::sleep(PAGE_POLL);
                }
                polls
            })
        })
        .collect()
}

fn get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(s, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

struct Run {
    store_per_s: f64,
    queue_per_s: f64,
    lists: u64,
    gets: u64,
    heads: u64,
    page_polls: u64,
}

/// The poller and server for `seconds`, with `n_tabs` pages; requests counted after the
/// first round (which reads every job record once).
async fn measure(c: &Cluster, counts: &Arc<Counts>, n_tabs: usize, every: Duration, seconds: f64) -> Run {
    let (shared, task, base, srv) = serve(c, counts, every).await;
    wait_rounds(&shared, 1).await;
    counts.reset();
    let stop = Arc::new(AtomicBool::new(false));
    let pages = tabs(&base, n_tabs, stop.clone());
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (store, queue) = (counts.store(), counts.depth.load(Ordering::Relaxed));
    let secs = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let page_polls = pages.into_iter().map(|p| p.join().unwrap()).sum();
    task.abort();
    drop(srv);
    Run {
        store_per_s: store as f64 / secs,
        queue_per_s: queue as f64 / secs,
        lists: counts.list_pages.load(Ordering::Relaxed),
        gets: counts.get.load(Ordering::Relaxed),
        heads: counts.head.load(Ordering::Relaxed),
        page_polls,
    }
}

async fn serve(c: &Cluster, counts: &Arc<Counts>, every: Duration) -> (poller::Shared, tokio::task::JoinHandle<()>, String, fleetform_runtime::http::Serving) {
    let mut store = c.store.clone();
    store.loc.store = Arc::new(CountingStore { inner: store.loc.store.clone(), counts: counts.clone() });
    let queue = CountingQueue { inner: c.handles.queue().await.unwrap(), counts: counts.clone() };
    let rounds = Counted { observer: Observer::new(&c.spec, &c.handles), store, queue };
    let (shared, task) = poller::start(rounds, every);
    let srv = server::serve(server::bind("127.0.0.1:0", false).unwrap(), shared.clone()).unwrap();
    let base = format!("http://{}/", srv.addr);
    (shared, task, base, srv)
}

async fn wait_rounds(shared: &poller::Shared, n: u64) {
    while shared.read().unwrap().rounds < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A task commits; how long until a page polling every second shows it.
async fn latency(c: &Cluster, counts: &Arc<Counts>, every: Duration, samples: usize) -> Vec<f64> {
    let (shared, task, base, srv) = serve(c, counts, every).await;
    wait_rounds(&shared, 1).await;
    let job = c.jobs[0].clone();
    let mut out = Vec::new();
    for i in 1..=samples {
        // A page's poll lands anywhere in its second: start it at a random phase.
        tokio::time::sleep(Duration::from_millis((i as u64 * 373) % 1000)).await;
        let page_base = base.clone();
        let job2 = job.clone();
        let page = tokio::task::spawn_blocking(move || loop {
            let v: serde_json::Value = serde_json::from_str(get(&format!("{page_base}api/status")).split("\r\n\r\n").nth(1).unwrap()).unwrap();
            let done = v["jobs"].as_array().unwrap().iter().find(|j| j["job_id"] == job2.as_str()).map(|j| j["done"].as_u64().unwrap()).unwrap_or(0);
            if done as usize > i {
                return;
            }
            std::thread::sleep(PAGE_POLL);
        });
        let committed = Instant::now();
        done(&c.store, &job, i).await;
        page.await.unwrap();
        out.push(committed.elapsed().as_secs_f64());
    }
    task.abort();
    drop(srv);
    out
}

fn main() {
    let mut seconds = 20.0;
    let mut interval = 2.0;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds S"),
            "--interval" => interval = it.next().and_then(|v| v.parse().ok()).expect("--interval S"),
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let every = Duration::from_secs_f64(interval);
        println!("dashboard: {NODES} nodes, poller every {interval}s, {seconds}s per run, pages poll every {}s", PAGE_POLL.as_secs());
        println!("| unfinished jobs | pages open | store requests/s | queue requests/s | LIST pages / GET / HEAD in the run | page polls served |");
        println!("|---|---|---|---|---|---|");
        for jobs in [1, 100] {
            let c = seed(jobs).await;
            let beats = tokio::spawn(refresh_heartbeats(c.store.clone()));
            for n_tabs in [1, 20] {
                let counts = Arc::new(Counts::default());
                let r = measure(&c, &counts, n_tabs, every, seconds).await;
                println!(
                    "| {jobs} | {n_tabs} | {:.1} | {:.2} | {} / {} / {} | {} |",
                    r.store_per_s, r.queue_per_s, r.lists, r.gets, r.heads, r.page_polls
                );
            }
            beats.abort();
        }
        let c = seed(1).await;
        let counts = Arc::new(Counts::default());
        let l = latency(&c, &counts, every, 8).await;
        let mean = l.iter().sum::<f64>() / l.len() as f64;
        let max = l.iter().cloned().fold(0.0, f64::max);
        println!("\npage update latency (task committed → a page polling every {}s shows it), {} samples: mean {mean:.2}s, max {max:.2}s (bound: poller interval {interval}s + page poll {}s)", PAGE_POLL.as_secs(), l.len(), PAGE_POLL.as_secs());
    });
}

/// Agents rewrite their heartbeats every 5 s; so does this.
async fn refresh_heartbeats(store: Store) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        write_heartbeats(&store).await;
    }
}
