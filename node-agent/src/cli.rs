//! `fleetform-agent` arguments, shared with `fleetform agent` (the local provider).
use std::path::PathBuf;

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
    /// IMDS base URL (default: the EC2 IMDS; the local provider gives its emulator's).
    #[arg(long, env = "FLEETFORM_IMDS_ENDPOINT")]
    pub imds_endpoint: Option<String>,
    /// Lease (queue visibility timeout) in seconds; heartbeats renew it.
    #[arg(long, env = "FLEETFORM_LEASE_SECONDS", default_value_t = 60)]
    pub lease_seconds: u64,
    /// Only check the configuration and exit (systemd ExecStartPre).
    #[arg(long)]
    pub validate: bool,
}

pub fn run_agent(_args: AgentArgs) -> i32 {
    eprintln!("todo");
    1
}
