//! `fleetform chaos`: the workshop's fault-injection chapter (C8). On the local provider
//! a spot notice goes through the node's IMDS emulator and a crash is kill -9.

use std::path::Path;

use anyhow::{bail, Result};
use fleetform_agent::imds::{trigger, Trigger};
use fleetform_core::spec::ProviderKind;

use crate::cli::ChaosCommand;
use crate::cluster::{self, Handles};
use crate::local;

/// A real spot notice gives two minutes.
const SPOT_NOTICE: std::time::Duration = std::time::Duration::from_secs(120);

pub async fn command(file: &Path, command: ChaosCommand) -> Result<i32> {
    let spec = cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    if spec.provider.kind == ProviderKind::Aws {
        // WIRING PENDING: TerminateInstances through the aws module's node functions.
        bail!("chaos on the aws provider is not wired yet");
    }
    match command {
        ChaosCommand::Interrupt { node } => {
            let n = local::find_node(&handles, &node)?;
            trigger(&n.imds, Trigger::SpotInterruption { action: "terminate".into(), after: SPOT_NOTICE })?;
            println!("spot interruption notice raised on {node} (IMDS {}); it drains and is replaced", n.imds);
        }
        ChaosCommand::Terminate { node_type, count } => {
            let f = local::running_supervisor(&handles)
                .ok_or_else(|| anyhow::anyhow!("no local cluster is running (start one with `fleetform up`)"))?;
            let victims: Vec<_> = f.nodes.iter().filter(|n| n.node_type == node_type).take(count).collect();
            if victims.is_empty() {
                bail!("no running node of type `{node_type}`");
            }
            for v in victims {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(v.pid as i32), nix::sys::signal::Signal::SIGKILL)?;
                println!("killed {} (pid {}) with SIGKILL", v.node_id, v.pid);
            }
        }
    }
    Ok(0)
}
