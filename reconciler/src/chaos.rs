//! `fleetform chaos`: the workshop's fault-injection chapter (C8). On the local provider
//! a spot notice goes into the node's notice file (where its agent looks for notices, as
//! an EC2 instance's looks at IMDS) and a crash is kill -9.

use std::path::Path;

use anyhow::{bail, Result};
use fleetform_agent::imds::{notice_file, notice_time, SpotAction, SPOT_NOTICE_LEAD};
use fleetform_core::spec::ProviderKind;

use crate::cluster::{self, Handles};
use crate::local;

/// `fleetform chaos interrupt --node NODE`: a spot interruption notice for one node.
pub async fn interrupt(file: &Path, node: &str) -> Result<i32> {
    let spec = cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    if spec.provider.kind == ProviderKind::Aws {
        #[cfg(feature = "aws")]
        return aws_interrupt(node);
        #[cfg(not(feature = "aws"))]
        return Err(fleetform_runtime::without_aws("`fleetform chaos` on the aws provider"));
    }
    let n = local::published::find_node(&handles, node)?;
    // A real spot notice gives two minutes.
    let spot = SpotAction { action: "terminate".into(), time: notice_time(chrono::Utc::now(), SPOT_NOTICE_LEAD) };
    notice_file::update(&n.notice_file, |notices| notices.spot = Some(spot))?;
    println!("spot interruption notice raised on {node} (written to {}); it drains and is replaced", n.notice_file.display());
    Ok(0)
}

/// `fleetform chaos terminate --node-type TYPE --count N`: kill up to `count` nodes of a
/// type without warning.
pub async fn terminate(file: &Path, node_type: &str, count: usize) -> Result<i32> {
    let spec = cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    if spec.provider.kind == ProviderKind::Aws {
        #[cfg(feature = "aws")]
        return aws_terminate(&spec, &handles, node_type, count).await;
        #[cfg(not(feature = "aws"))]
        return Err(fleetform_runtime::without_aws("`fleetform chaos` on the aws provider"));
    }
    let f = local::published::running_supervisor(&handles)
        .ok_or_else(|| anyhow::anyhow!("no local cluster is running (start one with `fleetform up`)"))?;
    let victims: Vec<_> = f.nodes.iter().filter(|n| n.node_type == node_type).take(count).collect();
    if victims.is_empty() {
        bail!("no running node of type `{node_type}`");
    }
    for v in victims {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(v.pid as i32), nix::sys::signal::Signal::SIGKILL)?;
        println!("killed {} (pid {}) with SIGKILL", v.node_id, v.pid);
    }
    Ok(0)
}

/// On AWS, spot notices would need an AWS FIS experiment
/// (`aws:ec2:send-spot-instance-interruptions`) with its own IAM role; fleetform does not
/// create one and moto has no FIS to test it against, so `chaos interrupt` says so instead
/// of pretending.
#[cfg(feature = "aws")]
fn aws_interrupt(node: &str) -> Result<i32> {
    bail!(
        "chaos interrupt is not supported on the aws provider: a real spot notice for {node} needs an AWS FIS experiment \
         (action aws:ec2:send-spot-instance-interruptions), which fleetform does not create; run one from the FIS console, \
         or use `fleetform chaos terminate` to test recovery from a lost node"
    )
}

/// On AWS: TerminateInstances on this cluster's tagged workers.
#[cfg(feature = "aws")]
async fn aws_terminate(spec: &fleetform_core::ClusterSpec, handles: &Handles, node_type: &str, count: usize) -> Result<i32> {
    if !spec.available_node_types.contains_key(node_type) || node_type == spec.head_node_type {
        bail!("`{node_type}` is not a worker node type of cluster `{}`", spec.cluster_name);
    }
    let ctx = handles.aws_context(spec).await?;
    let live = crate::aws::stages::live::instances(&ctx, Some(node_type)).await?;
    let victims: Vec<String> = live.iter().filter(|i| i.state == "running").take(count).map(|i| i.id.clone()).collect();
    if victims.is_empty() {
        bail!("no running {node_type} instance tagged for cluster `{}`", spec.cluster_name);
    }
    crate::aws::resources::nodes::terminate(&ctx, &victims).await?;
    for v in &victims {
        println!("terminated {v} ({node_type}); `fleetform apply` or the autoscaler replaces it");
    }
    Ok(0)
}
