//! Execute exactly a plan, in dependency order: stacks (network, data, IAM), queues,
//! store artifacts, launch templates, nodes; then removals in reverse order. Each step
//! is idempotent, so an apply killed halfway converges when run again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::agent_upload;
use super::context::AwsContext;
use super::launch_templates;
use super::model::{Desired, Live};
use super::names::{self, StackKind};
use super::nodes;
use super::placement;
use super::provider::apply_launch;
use crate::autoscaler::LaunchReport;
use super::observe;
use super::plan::{Action, Change, Plan, Target};
use super::queues;
use super::render;
use super::stacks;

/// Terminations take a minute or two on real AWS; the network stack cannot go before.
pub const TERMINATE_WAIT: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub struct ApplyReport {
    pub launches: Vec<LaunchReport>,
    /// Things the operator must know (e.g. capacity shortfalls); apply exits 1 if any.
    pub warnings: Vec<String>,
}

fn step(what: &str) -> Instant {
    println!("{what} ...");
    Instant::now()
}

fn done(what: &str, t: Instant) {
    println!("{what}: done ({} s)", t.elapsed().as_secs());
}

fn stack_changed(plan: &Plan, kind: StackKind) -> bool {
    plan.changes.iter().any(|c| c.target.stack() == Some(kind))
}

/// "node type `x`: launched 0 of 2 (no capacity: ...); ..." for the operator.
fn shortfall(node_type: &str, count: u32, outcome: &LaunchReport) -> String {
    let dry: Vec<String> = outcome.failed.iter().map(|f| format!("{} ({})", f.offering, f.code)).collect();
    let dry = if dry.is_empty() { String::new() } else { format!(" (no capacity: {})", dry.join(", ")) };
    format!(
        "node type `{node_type}`: launched {} of {count}{dry}; add instance types or zones to its node_config, or run apply again when capacity returns",
        outcome.launched.len()
    )
}

pub async fn execute(ctx: &AwsContext, plan: &Plan, desired: &Desired, live: &Live) -> Result<ApplyReport> {
    let mut report = ApplyReport::default();
    let cluster = ctx.cluster().to_string();

    // 1. Stacks that must exist, in creation order.
    for s in &desired.stacks {
        if stack_changed(plan, s.kind) {
            let exists = live.stacks.contains_key(&s.kind);
            let what = format!("{} stack {}: {}", s.kind.label(), s.name, if exists { "updating" } else { "creating" });
            let t = step(&what);
            stacks::deploy(ctx, s, exists).await?;
            done(&what, t);
        }
    }

    // 2. Queues (dead-letter queues first: the desired order).
    for q in &desired.queues {
        if !plan.changes.iter().any(|c| c.target == Target::Queue { name: q.name.clone() }) {
            continue;
        }
        match live.queues.get(&q.name) {
            None => queues::create(ctx, q).await?,
            Some(l) => queues::update(ctx, &l.url, q).await?,
        }
        println!("queue {}: done", q.name);
    }

    // 3. Store artifacts: uploads (the source bundle among them), then removals, so
    // that a node rebuilding a removed binary finds the new bundle.
    let planned: Vec<_> = desired
        .artifacts
        .iter()
        .filter(|a| plan.changes.iter().any(|c| c.target == Target::Artifact { key: a.key.clone() }))
        .collect();
    let removed: Vec<_> = desired
        .removed_artifacts
        .iter()
        .filter(|r| plan.changes.iter().any(|c| c.action == Action::Delete && c.target == Target::Artifact { key: r.key.clone() }))
        .collect();
    if !planned.is_empty() || !removed.is_empty() {
        let store = agent_upload::bucket_store(ctx)?;
        let prefix = names::store_prefix(&ctx.spec);
        for a in planned {
            let what = format!("store {prefix}{}: uploading {}", a.key, a.description);
            let t = step(&what);
            agent_upload::upload(store.as_ref(), &prefix, a).await?;
            done(&what, t);
        }
        for r in removed {
            agent_upload::remove(store.as_ref(), &prefix, &r.key).await?;
            println!("store {prefix}{}: deleted ({})", r.key, r.reason);
        }
    }

    // 4. Launch templates (security groups from the now-deployed network stack).
    for d in &desired.launch_templates {
        let Some(c) = plan.changes.iter().find(|c| c.target == Target::LaunchTemplate { node_type: d.node_type.clone() }) else {
            continue;
        };
        let net = placement::network(ctx).await?;
        let mut d = d.clone();
        d.facts.security_group =
            Some(if d.node_type == ctx.spec.head_node_type { net.head_security_group.clone() } else { net.worker_security_group.clone() });
        match (c.action, live.launch_templates.get(&d.node_type)) {
            (Action::Create, _) | (_, None) => launch_templates::create(ctx, &d).await?,
            (_, Some(l)) => launch_templates::update(ctx, &l.id, &d).await?,
        }
        println!("launch template {}: done", d.name);
    }

    // 5. Nodes: per node type, launch what is missing, then terminate what is replaced.
    let mut terminated: Vec<String> = Vec::new();
    for g in &desired.node_groups {
        let mine: Vec<&Change> =
            plan.changes.iter().filter(|c| matches!(&c.target, Target::Node { node_type: Some(t), .. } if *t == g.node_type)).collect();
        if mine.is_empty() {
            continue;
        }
        let ids_of = |a: Action| -> Vec<String> {
            mine.iter()
                .filter(|c| c.action == a)
                .filter_map(|c| match &c.target {
                    Target::Node { instance_id: Some(id), .. } => Some(id.clone()),
                    _ => None,
                })
                .collect()
        };
        let creates = mine.iter().filter(|c| c.action == Action::Create).count() as u32;
        let replaced = ids_of(Action::Replace);
        let deleted = ids_of(Action::Delete);
        let leaving: BTreeSet<&String> = replaced.iter().chain(deleted.iter()).collect();
        if g.is_head && !replaced.is_empty() {
            // Never two heads at once: two reconcilers would both scale the cluster.
            nodes::terminate(ctx, &replaced).await?;
            nodes::wait_terminated(ctx, &replaced, TERMINATE_WAIT).await?;
            println!("node {}: terminated {}", g.node_type, replaced.join(", "));
        }
        let wanted = creates + replaced.len() as u32;
        if wanted > 0 {
            // Re-observe right before launching: if another apply (or the autoscaler)
            // launched nodes since the plan was made, launch only what is still missing.
            let at_plan = live.instances.iter().filter(|i| i.node_type.as_deref() == Some(&g.node_type) && i.is_active() && !leaving.contains(&i.id)).count();
            let now = observe::instances(ctx, Some(&g.node_type))
                .await?
                .into_iter()
                .filter(|i| i.is_active() && !leaving.contains(&i.id))
                .count();
            let appeared = now.saturating_sub(at_plan) as u32;
            let count = wanted.saturating_sub(appeared);
            if appeared > 0 {
                println!("node {}: {appeared} node(s) appeared since the plan was made; launching {count}", g.node_type);
            }
            if count > 0 {
                let reason = mine.iter().map(|c| c.reason.as_str()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>().join("; ");
                let what = format!("node {}: launching {count}", g.node_type);
                let t = step(&what);
                let outcome = apply_launch(ctx, &g.node_type, count, &reason).await?;
                for m in &outcome.messages {
                    println!("  {m}");
                }
                if (outcome.launched.len() as u32) < count {
                    report.warnings.push(shortfall(&g.node_type, count, &outcome));
                }
                done(&what, t);
                report.launches.push(outcome);
            }
        }
        let to_terminate: Vec<String> = if g.is_head { deleted.clone() } else { replaced.iter().chain(deleted.iter()).cloned().collect() };
        if !to_terminate.is_empty() {
            nodes::terminate(ctx, &to_terminate).await?;
            println!("node {}: terminating {}", g.node_type, to_terminate.join(", "));
            terminated.extend(to_terminate);
        }
    }
    // Nodes whose type is gone from the spec (or all of them, for destroy).
    let orphans: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .filter_map(|c| match &c.target {
            Target::Node { node_type, instance_id: Some(id) } if node_type.as_ref().is_none_or(|t| !desired.node_groups.iter().any(|g| g.node_type == *t)) => Some(id.clone()),
            _ => None,
        })
        .collect();
    if !orphans.is_empty() {
        let what = format!("nodes: terminating {}", orphans.len());
        let t = step(&what);
        nodes::terminate(ctx, &orphans).await?;
        terminated.extend(orphans);
        done(&what, t);
    }

    // 6. Removals, in reverse dependency order.
    let removed_lts: Vec<(&String, &String)> = live
        .launch_templates
        .iter()
        .filter(|(t, _)| plan.changes.iter().any(|c| c.action == Action::Delete && c.target == Target::LaunchTemplate { node_type: (*t).clone() }))
        .map(|(t, l)| (t, &l.id))
        .collect();
    let removed_queues: Vec<(&String, &String)> = live
        .queues
        .iter()
        .filter(|(n, _)| plan.changes.iter().any(|c| c.action == Action::Delete && c.target == Target::Queue { name: (*n).clone() }))
        .map(|(n, q)| (n, &q.url))
        .collect();
    let removed_stacks: Vec<StackKind> =
        [StackKind::Iam, StackKind::Data, StackKind::Network].into_iter().filter(|k| desired.stack(*k).is_none() && stack_changed(plan, *k)).collect();
    if !terminated.is_empty() && (removed_stacks.contains(&StackKind::Network) || !removed_lts.is_empty()) {
        let what = format!("nodes: waiting for {} to terminate", terminated.len());
        let t = step(&what);
        nodes::wait_terminated(ctx, &terminated, TERMINATE_WAIT).await?;
        done(&what, t);
    }
    for (t, id) in removed_lts {
        launch_templates::delete(ctx, id).await?;
        println!("launch template {}: deleted", names::launch_template(&cluster, t));
    }
    for (name, url) in removed_queues {
        queues::delete(ctx, url).await?;
        println!("queue {name}: deleted");
    }
    for kind in removed_stacks {
        let name = kind.stack_name(&cluster);
        if kind == StackKind::Data {
            delete_data(ctx, &name).await?;
            continue;
        }
        if kind == StackKind::Network {
            if let Some(vpc) = live.stacks.get(&kind).and_then(|s| s.outputs.get("VpcId")) {
                release_interfaces(ctx, vpc, &terminated).await?;
            }
        }
        let what = format!("{} stack {name}: deleting", kind.label());
        let t = step(&what);
        stacks::delete(ctx, &name).await?;
        done(&what, t);
        if kind == StackKind::Network {
            let swept = super::destroy_sweep::orphaned_network(ctx).await?;
            if !swept.is_empty() {
                println!("network: swept {} resources tagged for the cluster that no stack owns: {}", swept.len(), swept.join(", "));
            }
        }
    }
    Ok(report)
}

/// Network interfaces still attached to instances this run terminated block the VPC's
/// deletion. On AWS they go with their instance (DeleteOnTermination); moto keeps those
/// of fleet instances, so delete them here. A no-op when there are none.
async fn release_interfaces(ctx: &AwsContext, vpc: &str, terminated: &[String]) -> Result<()> {
    use aws_sdk_ec2::types::Filter;
    if terminated.is_empty() {
        return Ok(());
    }
    let found = ctx
        .ec2
        .describe_network_interfaces()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .map_err(super::errors::aws_err("ec2:DescribeNetworkInterfaces"))?;
    for eni in found.network_interfaces() {
        let owner = eni.attachment().and_then(|a| a.instance_id());
        if let (Some(id), Some(owner)) = (eni.network_interface_id(), owner) {
            if terminated.iter().any(|t| t == owner) {
                if let Err(e) = ctx.ec2.delete_network_interface().network_interface_id(id).send().await {
                    tracing::debug!("network interface {id} of terminated {owner}: {}", aws_smithy_types::error::display::DisplayErrorContext(&e));
                }
            }
        }
    }
    Ok(())
}

/// The data stack retains its bucket; to delete it (destroy --delete-data): empty the
/// bucket, switch the policy to Delete, delete the stack.
async fn delete_data(ctx: &AwsContext, name: &str) -> Result<()> {
    let bucket = ctx.spec.storage.bucket.clone().context("the aws provider needs `storage.bucket`")?;
    let what = format!("data stack {name}: emptying and deleting bucket {bucket}");
    let t = step(&what);
    let store = agent_upload::bucket_store(ctx)?;
    if agent_upload::bucket_exists(store.as_ref()).await? {
        let n = agent_upload::empty_bucket(&store).await?;
        println!("  deleted {n} objects");
    }
    let template = render::data_template(ctx.cluster(), &bucket, false)?;
    let stack = super::model::DesiredStack { kind: StackKind::Data, name: name.to_string(), template };
    stacks::deploy(ctx, &stack, true).await?;
    stacks::delete(ctx, name).await?;
    done(&what, t);
    Ok(())
}
