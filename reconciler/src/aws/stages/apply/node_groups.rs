//! Nodes: per node group, launch what is missing, then terminate what is replaced; then
//! the nodes whose type is gone from the spec.

use std::collections::BTreeSet;

use anyhow::Result;

use super::{done, step, ApplyReport, Progress, TERMINATE_WAIT};
use crate::autoscaler::LaunchReport;
use crate::aws::context::AwsContext;
use crate::aws::stages::state::{Desired, DesiredNodeGroup, Live, LiveInstance};
use crate::aws::resources::nodes;
use crate::aws::stages::live;
use crate::aws::stages::plan::{Action, Change, Plan, Target};
use crate::aws::provider::apply_launch;

/// The plan's changes to one node group.
struct GroupChanges {
    /// Nodes to add.
    creates: u32,
    /// Instances to replace: one new node each, then the old one goes.
    replaced: Vec<String>,
    /// Instances to terminate for good.
    deleted: Vec<String>,
    /// The distinct reasons of the changes, sorted, for the launch.
    reason: String,
}

impl GroupChanges {
    /// None when the plan does not touch the group.
    fn of(plan: &Plan, node_type: &str) -> Option<GroupChanges> {
        let mine: Vec<&Change> = plan.node_changes(node_type).collect();
        if mine.is_empty() {
            return None;
        }
        let ids_of = |a: Action| -> Vec<String> {
            mine.iter()
                .filter(|c| c.action == a)
                .filter_map(|c| match &c.target {
                    Target::Node {
                        instance_id: Some(id),
                        ..
                    } => Some(id.clone()),
                    _ => None,
                })
                .collect()
        };
        let reasons: BTreeSet<&str> = mine.iter().map(|c| c.reason.as_str()).collect();
        Some(GroupChanges {
            creates: mine.iter().filter(|c| c.action == Action::Create).count() as u32,
            replaced: ids_of(Action::Replace),
            deleted: ids_of(Action::Delete),
            reason: reasons.into_iter().collect::<Vec<_>>().join("; "),
        })
    }

    /// The instances on their way out, which do not count as the group's nodes.
    fn leaving(&self) -> BTreeSet<&String> {
        self.replaced.iter().chain(self.deleted.iter()).collect()
    }
}

/// One node group: a replaced head goes first, then the launches, then the terminations.
pub(super) async fn nodes(
    ctx: &AwsContext,
    plan: &Plan,
    g: &DesiredNodeGroup,
    live: &Live,
    progress: &mut Progress,
) -> Result<()> {
    let Some(changes) = GroupChanges::of(plan, &g.node_type) else {
        return Ok(());
    };
    if g.is_head && !changes.replaced.is_empty() {
        // Never two heads at once: two reconcilers would both scale the cluster.
        nodes::terminate(ctx, &changes.replaced).await?;
        nodes::wait_terminated(ctx, &changes.replaced, TERMINATE_WAIT).await?;
        println!(
            "node {}: terminated {}",
            g.node_type,
            changes.replaced.join(", ")
        );
    }
    launch(ctx, g, &changes, live, &mut progress.report).await?;
    let to_terminate: Vec<String> = if g.is_head {
        changes.deleted.clone()
    } else {
        changes
            .replaced
            .iter()
            .chain(changes.deleted.iter())
            .cloned()
            .collect()
    };
    if !to_terminate.is_empty() {
        nodes::terminate(ctx, &to_terminate).await?;
        println!(
            "node {}: terminating {}",
            g.node_type,
            to_terminate.join(", ")
        );
        progress.terminated.extend(to_terminate);
    }
    Ok(())
}

/// Launch the group's new and replacement nodes, less those that appeared since the plan.
async fn launch(
    ctx: &AwsContext,
    g: &DesiredNodeGroup,
    changes: &GroupChanges,
    live: &Live,
    report: &mut ApplyReport,
) -> Result<()> {
    let wanted = changes.creates + changes.replaced.len() as u32;
    if wanted == 0 {
        return Ok(());
    }
    let appeared = appeared_since_plan(ctx, g, changes, live).await?;
    let count = wanted.saturating_sub(appeared);
    if appeared > 0 {
        println!(
            "node {}: {appeared} node(s) appeared since the plan was made; launching {count}",
            g.node_type
        );
    }
    if count == 0 {
        return Ok(());
    }
    let what = format!("node {}: launching {count}", g.node_type);
    let t = step(&what);
    let outcome = apply_launch(ctx, &g.node_type, count, &changes.reason).await?;
    for m in &outcome.messages {
        println!("  {m}");
    }
    if (outcome.launched.len() as u32) < count {
        report
            .warnings
            .push(shortfall(&g.node_type, count, &outcome));
    }
    done(&what, t);
    report.launches.push(outcome);
    Ok(())
}

/// Re-observe right before launching: if another apply (or the autoscaler) launched
/// nodes since the plan was made, launch only what is still missing.
async fn appeared_since_plan(
    ctx: &AwsContext,
    g: &DesiredNodeGroup,
    changes: &GroupChanges,
    live: &Live,
) -> Result<u32> {
    let leaving = changes.leaving();
    let at_plan = live
        .instances
        .iter()
        .filter(|i| {
            i.node_type.as_deref() == Some(&g.node_type)
                && i.is_active()
                && !leaving.contains(&i.id)
        })
        .count();
    let now = live::instances(ctx, Some(&g.node_type))
        .await?
        .into_iter()
        .filter(|i| i.is_active() && !leaving.contains(&i.id))
        .count();
    Ok(now.saturating_sub(at_plan) as u32)
}

/// "node type `x`: launched 0 of 2 (no capacity: ...); ..." for the operator.
fn shortfall(node_type: &str, count: u32, outcome: &LaunchReport) -> String {
    let dry: Vec<String> = outcome
        .failed
        .iter()
        .map(|f| format!("{} ({})", f.offering, f.code))
        .collect();
    let dry = if dry.is_empty() {
        String::new()
    } else {
        format!(" (no capacity: {})", dry.join(", "))
    };
    format!(
        "node type `{node_type}`: launched {} of {count}{dry}; add instance types or zones to its node_config, or run apply again when capacity returns",
        outcome.launched.len()
    )
}

/// Nodes whose type is gone from the spec (or all of them, for destroy). A head among
/// them goes first, alone, and is waited for: a reconcile round already running on it
/// could otherwise launch a worker after the workers were terminated, and that worker
/// would block the network stack's deletion. The workers are then observed again, so
/// one launched meanwhile goes too.
pub(super) async fn orphan_nodes(
    ctx: &AwsContext,
    plan: &Plan,
    desired: &Desired,
    progress: &mut Progress,
) -> Result<()> {
    let in_spec = |t: &str| desired.node_groups.iter().any(|g| g.node_type == t);
    let head_type = ctx.spec.head_node_type.as_str();
    let (heads, workers): (Vec<_>, Vec<_>) = plan
        .node_deletions()
        .filter(|(node_type, _)| node_type.is_none_or(|t| !in_spec(t)))
        .partition(|(node_type, _)| *node_type == Some(head_type));
    let heads: Vec<String> = heads.into_iter().map(|(_, id)| id.to_string()).collect();
    let mut workers: Vec<String> = workers.into_iter().map(|(_, id)| id.to_string()).collect();
    if !heads.is_empty() {
        let what = format!("head: terminating {} before the workers", heads.join(", "));
        let t = step(&what);
        nodes::terminate(ctx, &heads).await?;
        nodes::wait_terminated(ctx, &heads, TERMINATE_WAIT).await?;
        progress.terminated.extend(heads);
        done(&what, t);
        let orphaned = |i: &&LiveInstance| i.is_active() && i.node_type.as_deref().is_none_or(|t| t != head_type && !in_spec(t));
        for i in live::instances(ctx, None).await?.iter().filter(orphaned) {
            if !workers.contains(&i.id) {
                println!("node {}: launched while the head was stopping; terminating it too", i.id);
                workers.push(i.id.clone());
            }
        }
    }
    if workers.is_empty() {
        return Ok(());
    }
    let what = format!("nodes: terminating {}", workers.len());
    let t = step(&what);
    nodes::terminate(ctx, &workers).await?;
    progress.terminated.extend(workers);
    done(&what, t);
    Ok(())
}
