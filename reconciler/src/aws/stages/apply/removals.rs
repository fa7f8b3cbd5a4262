//! Removals, in reverse dependency order: launch templates, queues, then the stacks (IAM,
//! data, network), once the nodes that use them have terminated.

use anyhow::{Context as _, Result};

use super::{done, step, TERMINATE_WAIT};
use crate::aws::resources::store_artifacts;
use crate::aws::context::AwsContext;
use crate::aws::stages::destroy_sweep;
use crate::aws::errors;
use crate::aws::resources::launch_templates;
use crate::aws::stages::state::{Desired, DesiredStack, Live};
use crate::aws::names::{self, StackKind};
use crate::aws::resources::nodes;
use crate::aws::stages::plan::{Plan, Target};
use crate::aws::resources::queues;
use crate::aws::resources::stack_templates;
use crate::aws::resources::stacks;

/// Everything the plan deletes that is not a node or a store artifact. `terminated`:
/// the instances this run terminated.
pub(super) async fn removals(
    ctx: &AwsContext,
    plan: &Plan,
    desired: &Desired,
    live: &Live,
    terminated: &[String],
) -> Result<()> {
    let removed_lts: Vec<(&String, &String)> = live
        .launch_templates
        .iter()
        .filter(|(t, _)| {
            plan.deletes(&Target::LaunchTemplate {
                node_type: (*t).clone(),
            })
        })
        .map(|(t, l)| (t, &l.id))
        .collect();
    let removed_queues: Vec<(&String, &String)> = live
        .queues
        .iter()
        .filter(|(n, _)| plan.deletes(&Target::Queue { name: (*n).clone() }))
        .map(|(n, q)| (n, &q.url))
        .collect();
    let removed_stacks: Vec<StackKind> = [StackKind::Iam, StackKind::Data, StackKind::Network]
        .into_iter()
        .filter(|k| desired.stack(*k).is_none() && plan.touches_stack(*k))
        .collect();
    if !terminated.is_empty()
        && (removed_stacks.contains(&StackKind::Network) || !removed_lts.is_empty())
    {
        let what = format!("nodes: waiting for {} to terminate", terminated.len());
        let t = step(&what);
        nodes::wait_terminated(ctx, terminated, TERMINATE_WAIT).await?;
        done(&what, t);
    }
    for (t, id) in removed_lts {
        launch_templates::delete(ctx, id).await?;
        println!(
            "launch template {}: deleted",
            names::launch_template(ctx.cluster(), t)
        );
    }
    for (name, url) in removed_queues {
        queues::delete(ctx, url).await?;
        println!("queue {name}: deleted");
    }
    for kind in removed_stacks {
        delete_stack(ctx, kind, live, terminated).await?;
    }
    Ok(())
}

/// One stack; the network stack after the interfaces that would block it, and with a
/// sweep of what it leaves behind.
async fn delete_stack(
    ctx: &AwsContext,
    kind: StackKind,
    live: &Live,
    terminated: &[String],
) -> Result<()> {
    let name = kind.stack_name(ctx.cluster());
    if kind == StackKind::Data {
        return delete_data(ctx, &name).await;
    }
    if kind == StackKind::Network {
        if let Some(vpc) = live.stacks.get(&kind).and_then(|s| s.outputs.get("VpcId")) {
            release_interfaces(ctx, vpc, terminated).await?;
        }
    }
    let what = format!("{} stack {name}: deleting", kind.label());
    let t = step(&what);
    stacks::delete(ctx, &name).await?;
    done(&what, t);
    if kind == StackKind::Network {
        let swept = destroy_sweep::orphaned_network(ctx).await?;
        if !swept.is_empty() {
            println!(
                "network: swept {} resources tagged for the cluster that no stack owns: {}",
                swept.len(),
                swept.join(", ")
            );
        }
    }
    Ok(())
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
        .map_err(errors::aws_err("ec2:DescribeNetworkInterfaces"))?;
    for eni in found.network_interfaces() {
        let owner = eni.attachment().and_then(|a| a.instance_id());
        if let (Some(id), Some(owner)) = (eni.network_interface_id(), owner) {
            if terminated.iter().any(|t| t == owner) {
                if let Err(e) = ctx
                    .ec2
                    .delete_network_interface()
                    .network_interface_id(id)
                    .send()
                    .await
                {
                    tracing::debug!(
                        "network interface {id} of terminated {owner}: {}",
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    );
                }
            }
        }
    }
    Ok(())
}

/// The data stack retains its bucket; to delete it (destroy --delete-data): empty the
/// bucket, switch the policy to Delete, delete the stack.
async fn delete_data(ctx: &AwsContext, name: &str) -> Result<()> {
    let bucket = ctx
        .spec
        .storage
        .bucket
        .clone()
        .context("the aws provider needs `storage.bucket`")?;
    let what = format!("data stack {name}: emptying and deleting bucket {bucket}");
    let t = step(&what);
    let store = store_artifacts::bucket_store(ctx)?;
    if store_artifacts::bucket_exists(store.as_ref()).await? {
        let n = store_artifacts::empty_bucket(&store).await?;
        println!("  deleted {n} objects");
    }
    let template = stack_templates::data_template(ctx.cluster(), &bucket, false)?;
    let stack = DesiredStack {
        kind: StackKind::Data,
        name: name.to_string(),
        template,
    };
    stacks::deploy(ctx, &stack, true).await?;
    stacks::delete(ctx, name).await?;
    done(&what, t);
    Ok(())
}
