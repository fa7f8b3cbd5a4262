//! `fleetform-agent` arguments, shared with `fleetform agent` (the local provider).
use std::path::PathBuf;

use fleetform_core::resources::CPU;
use fleetform_core::Resources;
use fleetform_runtime::Connections;

use crate::exec::AgentConfig;
use crate::imds::{ImdsClient, NoticeSource};

#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// This node's id in the cluster store (nodes/<id>.json).
    #[arg(long, env = "FLEETFORM_NODE_ID")]
    pub node_id: Option<String>,
    #[arg(long, env = "FLEETFORM_NODE_TYPE")]
    pub node_type: Option<String>,
    /// The cluster store: file:///dir or s3://bucket/prefix.
    #[arg(long, env = "FLEETFORM_STORE")]
    pub store: Option<String>,
    /// The task queue: sqlite:///path/queue.sqlite or sqs://<cluster>.
    #[arg(long, env = "FLEETFORM_QUEUE")]
    pub queue: Option<String>,
    /// The node's resources as JSON, e.g. {"CPU":8,"Intel":1}.
    #[arg(long, env = "FLEETFORM_RESOURCES")]
    pub resources: Option<String>,
    /// Where output files are staged before upload (local NVMe when the node has one).
    #[arg(long, env = "FLEETFORM_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,
    /// IMDS base URL, where spot, rebalance and maintenance notices come from (default: the
    /// EC2 IMDS; `none`: no notices).
    #[arg(long, env = "FLEETFORM_IMDS_ENDPOINT")]
    pub imds_endpoint: Option<String>,
    /// Read the notices from this file instead of IMDS: the same documents, under the IMDS
    /// paths' names (the local provider gives <node dir>/notice.json; a local machine has
    /// no IMDS, and `fleetform chaos interrupt` writes the file).
    #[arg(long, env = "FLEETFORM_NOTICE_FILE", value_name = "PATH", conflicts_with = "imds_endpoint")]
    pub notice_file: Option<PathBuf>,
    /// How often notices are polled, from IMDS or the notice file (default 2000; see
    /// imds::WATCH_INTERVAL for why).
    #[arg(long, env = "FLEETFORM_IMDS_POLL_MS")]
    pub imds_poll_ms: Option<u64>,
    /// Lease (queue visibility timeout) in seconds; heartbeats renew it.
    #[arg(long, env = "FLEETFORM_LEASE_SECONDS", default_value_t = fleetform_core::task::DEFAULT_LEASE_SECONDS)]
    pub lease_seconds: u64,
    /// A file the node's setup_commands write when one fails (user data sets it); its
    /// content goes into every heartbeat so `fleetform status` shows it.
    #[arg(long, env = "FLEETFORM_SETUP_FAILED_FILE")]
    pub setup_failed_file: Option<PathBuf>,
    /// Serve this agent's Prometheus metrics at http://ADDR/metrics (off by default; the
    /// cluster spec's `agent_metrics_port` sets it on every node).
    #[arg(long, env = "FLEETFORM_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<String>,
    /// The local provider's supervisor (`fleetform up`/`run`): this agent drains and exits
    /// when that process ends, however it ends (it never outlives it).
    #[arg(long, env = "FLEETFORM_SUPERVISOR_PID", hide = true)]
    pub supervisor_pid: Option<u32>,
    /// Only check the configuration and exit (systemd ExecStartPre).
    #[arg(long)]
    pub validate: bool,
}

/// Where output is staged when no spill directory is given (the systemd unit's
/// StateDirectory; user data points it at local NVMe when the instance has one).
pub const DEFAULT_SPILL_DIR: &str = "/var/lib/fleetform/spill";

/// Turn arguments into a configuration, naming the argument that is wrong.
pub fn config(args: &AgentArgs) -> anyhow::Result<AgentConfig> {
    use anyhow::Context;
    let store_uri = args.store.clone().context("--store (FLEETFORM_STORE) is required: the cluster store URI")?;
    let queue_uri = args.queue.clone().context("--queue (FLEETFORM_QUEUE) is required: sqlite:///path or sqs://<cluster>")?;
    let mut resources: Resources = match &args.resources {
        Some(json) => serde_json::from_str(json).with_context(|| format!("--resources `{json}` is not a JSON object of numbers"))?,
        None => Resources::new(),
    };
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    if resources.get(CPU).is_none() {
        resources = resources.with(CPU, cpus as f64);
    }
    let slots = resources.cpu().floor() as usize;
    if slots == 0 {
        anyhow::bail!("the node offers CPU {} : an agent needs at least 1 slot", resources.cpu());
    }
    let notices = match (&args.notice_file, args.imds_endpoint.as_deref()) {
        (Some(file), _) => Some(NoticeSource::File(file.clone())),
        (None, Some("none")) => None,
        (None, other) => Some(NoticeSource::Imds(ImdsClient::new(other).map_err(|e| anyhow::anyhow!("--imds-endpoint: {e}"))?)),
    };
    let node_id = args.node_id.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    Ok(AgentConfig {
        instance: if node_id.starts_with("i-") { node_id.clone() } else { format!("local-{}", std::process::id()) },
        node_id,
        node_type: args.node_type.clone().unwrap_or_else(|| "worker".into()),
        store_uri,
        queue_uri,
        resources,
        slots,
        spill_dir: args.spill_dir.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_SPILL_DIR)),
        notices,
        notice_poll: args.imds_poll_ms.map(std::time::Duration::from_millis).unwrap_or(crate::imds::WATCH_INTERVAL),
        lease: std::time::Duration::from_secs(args.lease_seconds.max(3)),
        setup_failed_file: args.setup_failed_file.clone(),
    })
}

/// Ask the kernel for SIGTERM (the drain signal: tasks are checkpointed and handed back)
/// when the process that started this agent ends, then check that it has not already
/// ended before the request was made (then this agent's parent is no longer `pid`).
fn follow_supervisor(pid: u32) -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(|e| format!("cannot follow the supervisor (pid {pid}): prctl: {e}"))?;
    let parent = nix::unistd::getppid().as_raw() as u32;
    if parent != pid {
        return Err(format!("the supervisor (pid {pid}) that started this agent has exited; not starting"));
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "node".into())
}

/// The agent's whole life: configure, run until drained, exit 0 (1 on error).
pub fn run_agent(args: AgentArgs) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("FLEETFORM_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    if let Some(pid) = args.supervisor_pid {
        if let Err(e) = follow_supervisor(pid) {
            eprintln!("fleetform-agent: {e}");
            return 1;
        }
    }
    let cfg = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fleetform-agent: {}", fleetform_core::error_chain::render(e.as_ref()));
            return 1;
        }
    };
    if args.validate {
        if let Err(e) = std::fs::create_dir_all(&cfg.spill_dir) {
            eprintln!("fleetform-agent: the spill directory {} is not usable: {e}", cfg.spill_dir.display());
            return 1;
        }
        println!("fleetform-agent: configuration is valid ({} slots, resources {})", cfg.slots, cfg.resources);
        return 0;
    }
    if let Some(listen) = &args.metrics_listen {
        if let Err(e) = crate::metrics::serve(listen) {
            eprintln!("fleetform-agent: {}", fleetform_core::error_chain::render(e.as_ref()));
            return 1;
        }
    }
    // Slots do CPU work on blocking threads; the async workers only do I/O and timers.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleetform-agent: cannot start the runtime: {e}");
            return 1;
        }
    };
    // The process's one way to S3 and SQS: the standard AWS chain (on a node, its
    // environment carries the region), read at the first s3:// or sqs:// opened, so a
    // local agent never reads it.
    match runtime.block_on(crate::exec::run(cfg, Connections::from_env())) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("fleetform-agent: {}", fleetform_core::error_chain::render(e.as_ref()));
            1
        }
    }
}
