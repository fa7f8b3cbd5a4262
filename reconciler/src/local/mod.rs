//! The local provider: the whole cluster on this machine. Agents are child processes
//! (`fleetform agent ...`), each reading its notices from a file in its node directory
//! (a local machine has no IMDS; `fleetform chaos interrupt` writes a spot notice there);
//! a directory is the object store and one SQLite file the task queue.
//! The supervisor replaces agents that die or drain, as the reconciler replaces
//! terminated instances on AWS. `autoscale` is its autoscaler provider; `published` is
//! what the supervisor tells other processes (its pid and agents).

mod autoscale;
pub mod lock;
pub mod process;
pub mod runs;
pub mod published;

pub use autoscale::{autoscale, LocalProvider};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fleetform_agent::imds::notice_file;
use fleetform_core::spec::{ClusterSpec, ProviderKind};
use fleetform_core::Resources;

use crate::cluster::Handles;
use lock::ClusterLock;
use published::{supervisor_file, LocalNode};

/// How often the supervisor looks for dead agents: a replacement starts within this.
const SUPERVISE_EVERY: Duration = Duration::from_millis(300);
/// Agents drain within fleetform_agent's DRAIN_BUDGET (90 s); stopping waits that long
/// plus a margin before killing.
pub const STOP_GRACE: Duration = Duration::from_secs(95);

struct Slot {
    index: usize,
    generation: usize,
    launched_at: chrono::DateTime<chrono::Utc>,
    node_type: String,
    resources: Resources,
    child: Child,
    node_id: String,
    notice_file: PathBuf,
    log: PathBuf,
}

/// A running local cluster. Dropping it stops the agents.
pub struct LocalCluster {
    spec: ClusterSpec,
    handles: Handles,
    slots: Arc<Mutex<Vec<Slot>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    monitor: Option<std::thread::JoinHandle<()>>,
    lease_seconds: u64,
    next_index: std::sync::atomic::AtomicUsize,
    /// Held while the agents run: one local cluster per state directory.
    _lock: ClusterLock,
    /// Where agents are started (see `SpawnThread`).
    spawn_thread: SpawnThread,
}

/// A local agent as the autoscaler sees it.
#[derive(Debug, Clone)]
pub struct LocalAgent {
    pub node_id: String,
    pub node_type: String,
    pub slots: usize,
    pub launched_at: chrono::DateTime<chrono::Utc>,
}

impl LocalCluster {
    /// Take the cluster's lock (`lock::acquire`; `kind` is `up` or `run`), then start.
    pub fn start(spec: &ClusterSpec, handles: &Handles, kind: &str) -> Result<LocalCluster> {
        Self::start_locked(spec, handles, lock::acquire(handles, &spec.cluster_name, kind)?)
    }

    /// Start `min_workers` agents of every worker type, under a lock already taken.
    pub fn start_locked(spec: &ClusterSpec, handles: &Handles, lock: ClusterLock) -> Result<LocalCluster> {
        if spec.provider.kind != ProviderKind::Local {
            bail!("`{}` uses the {:?} provider; the local cluster needs `provider: {{type: local}}`", spec.cluster_name, spec.provider.kind);
        }
        std::fs::create_dir_all(&handles.state_dir)?;
        let lease_seconds = std::env::var("FLEETFORM_LEASE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(fleetform_core::task::DEFAULT_LEASE_SECONDS);
        let mut cluster = LocalCluster {
            spec: spec.clone(),
            handles: handles.clone(),
            slots: Default::default(),
            stop: Default::default(),
            monitor: None,
            lease_seconds,
            next_index: Default::default(),
            _lock: lock,
            spawn_thread: SpawnThread::start()?,
        };
        for (name, t) in spec.worker_types() {
            cluster.launch(name, t.min_workers)?;
        }
        cluster.publish()?;
        let (slots, stop) = (cluster.slots.clone(), cluster.stop.clone());
        let me = cluster.spawner();
        cluster.monitor = Some(std::thread::spawn(move || supervise(slots, stop, me)));
        Ok(cluster)
    }

    fn spawner(&self) -> Spawner {
        Spawner {
            thread: self.spawn_thread.clone(),
            handles: self.handles.clone(),
            cluster: self.spec.cluster_name.clone(),
            lease_seconds: self.lease_seconds,
            metrics_port: self.spec.agent_metrics_port,
        }
    }

    /// Start `count` more agents of a worker type. Returns their node ids.
    pub fn launch(&self, node_type: &str, count: u32) -> Result<Vec<String>> {
        self.spec.available_node_types.get(node_type).ok_or_else(|| anyhow!("no node type `{node_type}`"))?;
        let resources = self.spec.node_offer(node_type);
        let mut ids = Vec::new();
        for _ in 0..count {
            let index = self.next_index.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let slot = self.spawner().spawn(index, 0, node_type, &resources)?;
            ids.push(slot.node_id.clone());
            self.slots.lock().expect("slots").push(slot);
        }
        if !ids.is_empty() && self.monitor.is_some() {
            self.publish()?;
        }
        Ok(ids)
    }

    /// Stop an agent for good (it is not replaced): SIGTERM, so it drains, then reaped.
    pub fn terminate(&self, node_id: &str) -> Result<()> {
        let mut slots = self.slots.lock().expect("slots");
        let pos = slots.iter().position(|s| s.node_id == node_id).ok_or_else(|| anyhow!("no local node `{node_id}`"))?;
        let mut slot = slots.remove(pos);
        publish(&self.handles, &slots)?;
        drop(slots);
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(slot.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        std::thread::spawn(move || {
            let deadline = Instant::now() + STOP_GRACE;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = slot.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = slot.child.kill();
            let _ = slot.child.wait();
        });
        Ok(())
    }

    /// The agents running now.
    pub fn agents(&self) -> Vec<LocalAgent> {
        self.slots
            .lock()
            .expect("slots")
            .iter()
            .map(|s| LocalAgent {
                node_id: s.node_id.clone(),
                node_type: s.node_type.clone(),
                slots: s.resources.cpu().max(1.0) as usize,
                launched_at: s.launched_at,
            })
            .collect()
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    pub fn handles(&self) -> &Handles {
        &self.handles
    }

    fn publish(&self) -> Result<()> {
        publish(&self.handles, &self.slots.lock().expect("slots"))
    }

    pub fn nodes(&self) -> Vec<LocalNode> {
        self.slots.lock().expect("slots").iter().map(describe).collect()
    }

    /// Drain every agent (SIGTERM), wait for them, kill what is left after the grace.
    /// The process ids of the agents running now (to force them down: `stop` drains).
    pub fn agent_pids(&self) -> Vec<i32> {
        self.slots.lock().expect("slots").iter().map(|s| s.child.id() as i32).collect()
    }

    pub fn stop(mut self) -> Result<()> {
        self.shutdown();
        Ok(())
    }

    fn shutdown(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(m) = self.monitor.take() {
            let _ = m.join();
        }
        let mut slots = self.slots.lock().expect("slots");
        for s in slots.iter() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_GRACE;
        for s in slots.iter_mut() {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        let _ = std::fs::remove_file(supervisor_file(&self.handles));
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.monitor.is_some() {
            self.shutdown();
        }
    }
}

pub use fleetform_core::spec::local_resources;

/// The one thread that starts agents, alive until the cluster is dropped. An agent asks
/// the kernel for SIGTERM when its parent dies (PR_SET_PDEATHSIG, set by the agent itself
/// from FLEETFORM_SUPERVISOR_PID): "parent" is the thread that started it, so agents
/// started from a short-lived thread (tokio's blocking pool retires idle threads after
/// 10 s) would be stopped for nothing. From this thread they are stopped exactly when
/// this process ends, however it ends (`kill -9` included): no agent outlives it.
#[derive(Clone)]
struct SpawnThread {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl SpawnThread {
    fn start() -> Result<SpawnThread> {
        let (jobs, queue) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("agent-spawner".into())
            .spawn(move || queue.into_iter().for_each(|job| job()))
            .context("cannot start the thread that starts agents")?;
        Ok(SpawnThread { jobs })
    }

    /// Run `f` on the spawn thread and return what it returns.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.jobs.send(Box::new(move || drop(tx.send(f())))).map_err(|_| anyhow!("the agent-spawning thread has stopped"))?;
        rx.recv().map_err(|_| anyhow!("the agent-spawning thread has stopped"))?
    }
}

#[derive(Clone)]
struct Spawner {
    thread: SpawnThread,
    handles: Handles,
    cluster: String,
    lease_seconds: u64,
    /// The spec's `agent_metrics_port`: agent N serves its metrics on port + N.
    metrics_port: Option<u16>,
}

impl Spawner {
    /// Start an agent, from the spawn thread.
    fn spawn(&self, index: usize, generation: usize, node_type: &str, resources: &Resources) -> Result<Slot> {
        let (me, node_type, resources) = (self.clone(), node_type.to_string(), resources.clone());
        self.thread.run(move || me.spawn_here(index, generation, &node_type, &resources))
    }

    fn spawn_here(&self, index: usize, generation: usize, node_type: &str, resources: &Resources) -> Result<Slot> {
        let node_id = format!("{}-w{index}-{generation}", self.cluster);
        let node_dir = self.handles.state_dir.join("nodes").join(&node_id);
        std::fs::create_dir_all(&node_dir)?;
        // A node id comes back in the next `fleetform up`: its last run's notices are not
        // this agent's.
        let notice_file = node_dir.join(notice_file::FILE_NAME);
        match std::fs::remove_file(&notice_file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("cannot remove the previous run's notice file {}: {e}", notice_file.display())
            }
            _ => {}
        }
        let log = node_dir.join("agent.log");
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let exe = std::env::current_exe().context("cannot find the fleetform executable")?;
        let mut command = Command::new(exe);
        match self.metrics_port {
            Some(port) => command.env("FLEETFORM_METRICS_LISTEN", format!("127.0.0.1:{}", port as usize + index)),
            None => command.env_remove("FLEETFORM_METRICS_LISTEN"),
        };
        let child = command
            .arg("agent")
            .args(["--node-id", &node_id, "--node-type", node_type])
            .args(["--store", &self.handles.store_uri, "--queue", &self.handles.queue_uri])
            .args(["--resources", &serde_json::to_string(resources)?])
            .arg("--spill-dir")
            .arg(node_dir.join("spill"))
            .arg("--notice-file")
            .arg(&notice_file)
            // --notice-file and an IMDS endpoint exclude each other.
            .env_remove("FLEETFORM_IMDS_ENDPOINT")
            // The agent stops (drains) when this process ends (see SpawnThread).
            .env("FLEETFORM_SUPERVISOR_PID", std::process::id().to_string())
            .args(["--lease-seconds", &self.lease_seconds.to_string()])
            .stdin(Stdio::null())
            // Own process group: a Ctrl-C in the terminal reaches the supervisor only,
            // which then drains its agents in order (instead of all at once, and then
            // "replacing" them while it shuts down).
            .process_group(0)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("cannot start an agent process")?;
        Ok(Slot {
            index,
            generation,
            launched_at: chrono::Utc::now(),
            node_type: node_type.to_string(),
            resources: resources.clone(),
            child,
            node_id,
            notice_file,
            log,
        })
    }
}

fn publish(handles: &Handles, slots: &[Slot]) -> Result<()> {
    published::write(handles, slots.iter().map(describe).collect())
}

fn describe(s: &Slot) -> LocalNode {
    LocalNode { node_id: s.node_id.clone(), node_type: s.node_type.clone(), pid: s.child.id(), notice_file: s.notice_file.clone(), log: s.log.clone() }
}

/// Replace agents that exited (crashed, killed, or drained after a spot notice), and give
/// back at once the leases a dead agent held (`fleetform_runtime::leases`).
fn supervise(slots: Arc<Mutex<Vec<Slot>>>, stop: Arc<std::sync::atomic::AtomicBool>, spawner: Spawner) {
    let recovery = Recovery::open(&spawner.handles);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(SUPERVISE_EVERY);
        let mut guard = slots.lock().expect("slots");
        let mut changed = false;
        for slot in guard.iter_mut() {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let Ok(Some(status)) = slot.child.try_wait() else { continue };
            if let Some(r) = &recovery {
                r.give_back(&slot.node_id, &status);
            }
            let next = slot.generation + 1;
            match spawner.spawn(slot.index, next, &slot.node_type.clone(), &slot.resources.clone()) {
                Ok(new) => {
                    eprintln!("fleetform: node {} exited ({status}); replaced by {}", slot.node_id, new.node_id);
                    *slot = new;
                    changed = true;
                }
                Err(e) => eprintln!("fleetform: node {} exited ({status}) and cannot be replaced: {}", slot.node_id, crate::errors::render(&e)),
            }
        }
        if changed {
            let _ = publish(&spawner.handles, &guard);
        }
    }
}

/// The store and queue, for giving back the leases of agents that died.
struct Recovery {
    rt: tokio::runtime::Runtime,
    store: fleetform_runtime::store::Store,
    queue: fleetform_runtime::queue::Queue,
}

impl Recovery {
    fn open(handles: &Handles) -> Option<Recovery> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
        let opened = rt.block_on(async { Ok::<_, anyhow::Error>((handles.store().await?, handles.queue().await?)) });
        match opened {
            Ok((store, queue)) => Some(Recovery { rt, store, queue }),
            Err(e) => {
                eprintln!("fleetform: dead agents' tasks will wait out their lease: {}", crate::errors::render(&e));
                None
            }
        }
    }

    fn give_back(&self, node_id: &str, status: &std::process::ExitStatus) {
        let why = format!("exited ({status})");
        match self.rt.block_on(fleetform_runtime::leases::give_back(&self.store, &self.queue, node_id, &why)) {
            Ok(tasks) if !tasks.is_empty() => eprintln!("fleetform: node {node_id} exited; its tasks {} are queued again", tasks.join(", ")),
            Ok(_) => {}
            Err(e) => eprintln!("fleetform: node {node_id} exited; its leases could not be given back: {}", crate::errors::render(&e)),
        }
    }
}

/// `fleetform up`: run the local cluster in the foreground until Ctrl-C / SIGTERM.
/// `dashboard` is the address to serve the dashboard on, None for none.
pub async fn up(file: &Path, dashboard: Option<&str>) -> Result<i32> {
    let spec = crate::cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    let lock = lock::acquire(&handles, &spec.cluster_name, "up")?;
    crate::local::runs::refuse_interrupted(&handles, None).await?;
    let cluster = LocalCluster::start_locked(&spec, &handles, lock)?;
    crate::cluster::remember(file);
    println!("local cluster `{}` is up: {} agents", spec.cluster_name, cluster.nodes().len());
    for n in cluster.nodes() {
        println!("  {}  pid {}  log {}", n.node_id, n.pid, n.log.display());
    }
    println!("store {}  queue {}", handles.store_uri, handles.queue_uri);
    let _dashboard = match dashboard.map(|listen| crate::dashboard::start_for_up(&spec, &handles, listen)).transpose()? {
        Some((d, taken)) => {
            let why = taken.map(|t| format!(" ({t})")).unwrap_or_default();
            println!("dashboard {}{why}", d.url);
            Some(d)
        }
        None => None,
    };
    println!("Submit with `fleetform submit -f {} JOB`; Ctrl-C drains and stops.", file.display());
    let cluster = std::sync::Arc::new(cluster);
    let autoscaler = tokio::spawn(autoscale(cluster.clone()));
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    autoscaler.abort();
    let _ = autoscaler.await;
    let cluster = std::sync::Arc::try_unwrap(cluster).map_err(|_| anyhow!("the autoscaler still holds the cluster"))?;
    println!("draining agents...");
    tokio::task::spawn_blocking(move || cluster.stop()).await??;
    Ok(0)
}
