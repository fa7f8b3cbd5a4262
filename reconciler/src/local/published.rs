//! What a running supervisor publishes for other processes: `supervisor.json` in the
//! cluster's state directory, with its pid and its agents. The supervisor (`local`) writes
//! it; `status` and the dashboard (`observe`), `chaos` and `submit`/`run` read it. A file
//! left by a supervisor that died counts as no cluster running.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};

use super::process::ProcessId;
use crate::cluster::Handles;

/// What `fleetform up`/`run` publishes for other commands (`chaos`, `status`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorFile {
    /// The supervisor (`pid` and `start_ticks` in the file).
    #[serde(flatten)]
    pub writer: ProcessId,
    pub nodes: Vec<LocalNode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalNode {
    pub node_id: String,
    pub node_type: String,
    pub pid: u32,
    /// Where the agent reads its spot, rebalance and maintenance notices.
    pub notice_file: PathBuf,
    pub log: PathBuf,
}

pub fn supervisor_file(handles: &Handles) -> PathBuf {
    handles.state_dir.join("supervisor.json")
}

/// The agents a live supervisor (this process or another) has published: the local
/// provider's launched nodes, including those without a heartbeat yet.
pub fn published_nodes(handles: &Handles) -> Vec<LocalNode> {
    let Some(f) = std::fs::read(supervisor_file(handles))
        .ok()
        .and_then(|b| serde_json::from_slice::<SupervisorFile>(&b).ok())
    else {
        return Vec::new();
    };
    if f.writer.is_running() {
        f.nodes
    } else {
        Vec::new()
    }
}

/// The supervisor of another process, if one is running for this cluster.
pub fn running_supervisor(handles: &Handles) -> Option<SupervisorFile> {
    let f: SupervisorFile =
        serde_json::from_slice(&std::fs::read(supervisor_file(handles)).ok()?).ok()?;
    (f.writer.is_running() && !f.writer.is_current()).then_some(f)
}

/// Find a local node by id among a live supervisor's nodes (a notice written for the
/// node of a supervisor that died would reach no agent).
pub fn find_node(handles: &Handles, node_id: &str) -> Result<LocalNode> {
    let nodes = published_nodes(handles);
    if nodes.is_empty() {
        bail!("no local cluster is running (start one with `fleetform up`)");
    }
    nodes
        .iter()
        .find(|n| n.node_id == node_id)
        .cloned()
        .ok_or_else(|| {
            anyhow!(
                "no node `{node_id}`; nodes: {}",
                nodes
                    .iter()
                    .map(|n| n.node_id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Publish this process's agents: written aside and renamed, so a reader never sees half
/// a file.
pub fn write(handles: &Handles, nodes: Vec<LocalNode>) -> Result<()> {
    let f = SupervisorFile { writer: ProcessId::current(), nodes };
    let path = supervisor_file(handles);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&f)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}
