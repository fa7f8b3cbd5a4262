//! Execute exactly a plan, in dependency order: stacks (network, data, IAM), queues,
//! store artifacts, launch templates, nodes; then removals in reverse order. Each step
//! is idempotent, so an apply killed halfway converges when run again.
//!
//! [`execute`] is the list of steps. Each step walks the desired resources of its layer
//! and asks the [`Plan`] whether it changes them ([`Plan::change_for`],
//! [`Plan::deletes`], ...): `layers.rs` holds the steps before the nodes,
//! `node_groups.rs` the nodes, `removals.rs` what goes.

mod layers;
mod node_groups;
mod removals;

use std::time::{Duration, Instant};

use anyhow::Result;

use self::layers::{artifacts, launch_templates, queues, stacks};
use self::node_groups::{nodes, orphan_nodes};
use self::removals::removals;
use crate::aws::context::AwsContext;
use crate::aws::stages::state::{Desired, Live};
use crate::aws::stages::plan::Plan;
use crate::autoscaler::LaunchReport;

/// Terminations take a minute or two on real AWS; the network stack cannot go before.
pub const TERMINATE_WAIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub launches: Vec<LaunchReport>,
    /// Things the operator must know (e.g. capacity shortfalls); apply exits 1 if any.
    pub warnings: Vec<String>,
}

/// What the node steps pass on: the report, and the instances terminated so far (the
/// removals wait for them before deleting what they use).
#[derive(Default)]
struct Progress {
    report: ApplyReport,
    terminated: Vec<String>,
}

pub async fn execute(
    ctx: &AwsContext,
    plan: &Plan,
    desired: &Desired,
    live: &Live,
) -> Result<ApplyReport> {
    let mut progress = Progress::default();
    stacks(ctx, plan, desired, live).await?;
    queues(ctx, plan, desired, live).await?;
    artifacts(ctx, plan, desired).await?;
    launch_templates(ctx, plan, desired, live).await?;
    for group in &desired.node_groups {
        nodes(ctx, plan, group, live, &mut progress).await?;
    }
    orphan_nodes(ctx, plan, desired, &mut progress).await?;
    removals(ctx, plan, desired, live, &progress.terminated).await?;
    Ok(progress.report)
}

/// Print that a long step starts; pass the result to [`done`].
fn step(what: &str) -> Instant {
    println!("{what} ...");
    Instant::now()
}

fn done(what: &str, t: Instant) {
    println!("{what}: done ({} s)", t.elapsed().as_secs());
}
