//! The layers below the nodes, in creation order: stacks, queues, store artifacts, launch
//! templates. Each step creates or updates what the plan changes and leaves the rest.

use anyhow::Result;

use super::{done, step};
use crate::aws::resources::store_artifacts;
use crate::aws::context::AwsContext;
use crate::aws::resources::launch_templates;
use crate::aws::stages::state::{Desired, Live};
use crate::aws::names;
use crate::aws::resources::placement;
use crate::aws::stages::plan::{Action, Plan, Target};
use crate::aws::resources::queues;
use crate::aws::resources::stacks;

/// Stacks that must exist, in creation order.
pub(super) async fn stacks(
    ctx: &AwsContext,
    plan: &Plan,
    desired: &Desired,
    live: &Live,
) -> Result<()> {
    for s in &desired.stacks {
        if !plan.touches_stack(s.kind) {
            continue;
        }
        let exists = live.stacks.contains_key(&s.kind);
        let what = format!(
            "{} stack {}: {}",
            s.kind.label(),
            s.name,
            if exists { "updating" } else { "creating" }
        );
        let t = step(&what);
        stacks::deploy(ctx, s, exists).await?;
        done(&what, t);
    }
    Ok(())
}

/// Queues, dead-letter queues first (the desired order).
pub(super) async fn queues(
    ctx: &AwsContext,
    plan: &Plan,
    desired: &Desired,
    live: &Live,
) -> Result<()> {
    for q in &desired.queues {
        if plan
            .change_for(&Target::Queue {
                name: q.name.clone(),
            })
            .is_none()
        {
            continue;
        }
        match live.queues.get(&q.name) {
            None => queues::create(ctx, q).await?,
            Some(l) => queues::update(ctx, &l.url, q).await?,
        }
        println!("queue {}: done", q.name);
    }
    Ok(())
}

/// Store artifacts: uploads (the source bundle among them), then removals, so that a
/// node rebuilding a removed binary finds the new bundle.
pub(super) async fn artifacts(ctx: &AwsContext, plan: &Plan, desired: &Desired) -> Result<()> {
    let uploads: Vec<_> = desired
        .artifacts
        .iter()
        .filter(|a| {
            plan.change_for(&Target::Artifact { key: a.key.clone() })
                .is_some()
        })
        .collect();
    let removed: Vec<_> = desired
        .removed_artifacts
        .iter()
        .filter(|r| plan.deletes(&Target::Artifact { key: r.key.clone() }))
        .collect();
    if uploads.is_empty() && removed.is_empty() {
        return Ok(());
    }
    let store = store_artifacts::bucket_store(ctx)?;
    let prefix = names::store_prefix(&ctx.spec);
    for a in uploads {
        let what = format!("store {prefix}{}: uploading {}", a.key, a.description);
        let t = step(&what);
        store_artifacts::upload(store.as_ref(), &prefix, a).await?;
        done(&what, t);
    }
    for r in removed {
        store_artifacts::remove(store.as_ref(), &prefix, &r.key).await?;
        println!("store {prefix}{}: deleted ({})", r.key, r.reason);
    }
    Ok(())
}

/// Launch templates, with the security groups of the now-deployed network stack.
pub(super) async fn launch_templates(
    ctx: &AwsContext,
    plan: &Plan,
    desired: &Desired,
    live: &Live,
) -> Result<()> {
    for d in &desired.launch_templates {
        let Some(c) = plan.change_for(&Target::LaunchTemplate {
            node_type: d.node_type.clone(),
        }) else {
            continue;
        };
        let net = placement::network(ctx).await?;
        let mut d = d.clone();
        d.facts.security_group = Some(if d.node_type == ctx.spec.head_node_type {
            net.head_security_group.clone()
        } else {
            net.worker_security_group.clone()
        });
        match (c.action, live.launch_templates.get(&d.node_type)) {
            (Action::Create, _) | (_, None) => launch_templates::create(ctx, &d).await?,
            (_, Some(l)) => launch_templates::update(ctx, &l.id, &d).await?,
        }
        println!("launch template {}: done", d.name);
    }
    Ok(())
}
