//! CloudFormation operations: create or update a stack and wait (the SDK's waiters),
//! delete and wait. Failures name the stack, its status, the first failed resource and
//! the way out.

use std::time::Duration;

use anyhow::{bail, Result};
use aws_sdk_cloudformation::client::Waiters;
use aws_sdk_cloudformation::types::{Capability, Tag};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::stages::state::DesiredStack;
use crate::aws::names;

/// A NAT gateway and an Instance Connect Endpoint take minutes on real AWS.
pub const STACK_WAIT: Duration = Duration::from_secs(45 * 60);

fn tags(ctx: &AwsContext) -> Vec<Tag> {
    names::cluster_tags(&ctx.spec).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The first failure CloudFormation recorded for the stack, for the error message.
async fn first_failure(ctx: &AwsContext, name: &str) -> String {
    let Ok(ev) = ctx.cfn.describe_stack_events().stack_name(name).send().await else { return String::new() };
    ev.stack_events()
        .iter()
        .rev()
        .find(|e| e.resource_status().is_some_and(|s| s.as_str().ends_with("_FAILED")))
        .map(|e| format!(": {} {}", e.logical_resource_id().unwrap_or_default(), e.resource_status_reason().unwrap_or_default()))
        .unwrap_or_default()
}

async fn status(ctx: &AwsContext, name: &str) -> Option<String> {
    let d = ctx.cfn.describe_stacks().stack_name(name).send().await.ok()?;
    d.stacks().first().and_then(|s| s.stack_status()).map(|s| s.as_str().to_string())
}

/// Create the stack when `exists` is false, update it otherwise; wait until it settles.
pub async fn deploy(ctx: &AwsContext, stack: &DesiredStack, exists: bool) -> Result<()> {
    let name = &stack.name;
    if !exists {
        ctx.cfn
            .create_stack()
            .stack_name(name)
            .template_body(&stack.template)
            .capabilities(Capability::CapabilityNamedIam)
            .set_tags(Some(tags(ctx)))
            .send()
            .await
            .map_err(aws_err("cloudformation:CreateStack"))?;
        let waited = ctx.cfn.wait_until_stack_create_complete().stack_name(name).wait(STACK_WAIT).await;
        let st = status(ctx, name).await.unwrap_or_default();
        if waited.is_err() || st != "CREATE_COMPLETE" {
            let why = first_failure(ctx, name).await;
            bail!(
                "stack {name} was not created ({st}{why}); once it is ROLLBACK_COMPLETE, delete it \
                 (`aws cloudformation delete-stack --stack-name {name}`) and apply again"
            );
        }
        return Ok(());
    }
    let res = ctx
        .cfn
        .update_stack()
        .stack_name(name)
        .template_body(&stack.template)
        .capabilities(Capability::CapabilityNamedIam)
        .set_tags(Some(tags(ctx)))
        .send()
        .await;
    match res {
        Ok(_) => {}
        // Not an error: another apply got there first, or only formatting changed.
        Err(e) if e.message().is_some_and(|m| m.contains("No updates are to be performed")) => return Ok(()),
        Err(e) => return Err(aws_err("cloudformation:UpdateStack")(e)),
    }
    let waited = ctx.cfn.wait_until_stack_update_complete().stack_name(name).wait(STACK_WAIT).await;
    let st = status(ctx, name).await.unwrap_or_default();
    if waited.is_err() || st != "UPDATE_COMPLETE" {
        let why = first_failure(ctx, name).await;
        let way_out = if st == "UPDATE_ROLLBACK_FAILED" {
            format!("run `aws cloudformation continue-update-rollback --stack-name {name}`, then apply again")
        } else {
            "fix the cause and apply again".to_string()
        };
        bail!("stack {name} was not updated ({st}{why}); {way_out}");
    }
    Ok(())
}

pub async fn delete(ctx: &AwsContext, name: &str) -> Result<()> {
    if let Err(e) = ctx.cfn.delete_stack().stack_name(name).send().await {
        // moto deletes synchronously and, when a resource refuses, drops the stack
        // record anyway: the stack is gone and its leftovers are swept by tag.
        if status(ctx, name).await.is_none() {
            tracing::warn!(
                "deleting stack {name}: {}: {}; its leftovers are swept by tag",
                e.code().unwrap_or("error"),
                e.message().unwrap_or_default()
            );
            return Ok(());
        }
        return Err(aws_err("cloudformation:DeleteStack")(e));
    }
    let waited = ctx.cfn.wait_until_stack_delete_complete().stack_name(name).wait(STACK_WAIT).await;
    if waited.is_err() {
        let st = status(ctx, name).await.unwrap_or_default();
        let why = first_failure(ctx, name).await;
        bail!("stack {name} was not deleted ({st}{why}): remove what blocks it, then run destroy again");
    }
    Ok(())
}
