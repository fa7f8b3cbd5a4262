//! Observe live state by tags and deterministic names; no state file. The number of
//! calls does not grow with the number of nodes: instances come from one filtered,
//! paginated DescribeInstances; everything else is per stack, node type or queue.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_ec2::types::Filter;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::resources::launch_templates;
use crate::aws::stages::state::{LiveInstance, LiveLaunchTemplate, LiveQueue, LiveStack};
use crate::aws::names::{StackKind, TAG_CLUSTER, TAG_LT_VERSION, TAG_NODE_TYPE};
use crate::aws::resources::queues;

/// `tag:KEY = VALUE`, the filter every by-tag observation uses.
pub(crate) fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder().name(format!("tag:{key}")).values(value).build()
}

/// A stack by its deterministic name: status and outputs (DescribeStacks only, all the
/// head's launches need); None when absent. `template` is left empty.
pub async fn described_stack(ctx: &AwsContext, kind: StackKind) -> Result<Option<LiveStack>> {
    let name = kind.stack_name(ctx.cluster());
    let described = match ctx.cfn.describe_stacks().stack_name(&name).send().await {
        Ok(d) => d,
        // CloudFormation's way of saying "no such stack".
        Err(e) if e.code() == Some("ValidationError") && e.message().is_some_and(|m| m.contains("does not exist")) => {
            return Ok(None)
        }
        Err(e) => return Err(aws_err("cloudformation:DescribeStacks")(e)),
    };
    let Some(s) = described.stacks().first() else { return Ok(None) };
    let status = s.stack_status().map(|s| s.as_str().to_string()).unwrap_or_default();
    if status == "DELETE_COMPLETE" {
        return Ok(None);
    }
    let outputs = s
        .outputs()
        .iter()
        .filter_map(|o| Some((o.output_key()?.to_string(), o.output_value()?.to_string())))
        .collect();
    Ok(Some(LiveStack { name, status, status_reason: s.stack_status_reason().map(str::to_string), template: None, outputs }))
}

/// A stack with its deployed template (GetTemplate, original stage), for the diff.
pub async fn stack(ctx: &AwsContext, kind: StackKind) -> Result<Option<LiveStack>> {
    let Some(mut stack) = described_stack(ctx, kind).await? else { return Ok(None) };
    stack.template = ctx
        .cfn
        .get_template()
        .stack_name(&stack.name)
        .template_stage(aws_sdk_cloudformation::types::TemplateStage::Original)
        .send()
        .await
        .map_err(aws_err("cloudformation:GetTemplate"))?
        .template_body()
        .map(str::to_string);
    Ok(Some(stack))
}

pub async fn stacks(ctx: &AwsContext) -> Result<BTreeMap<StackKind, LiveStack>> {
    let (n, d, i) = tokio::try_join!(stack(ctx, StackKind::Network), stack(ctx, StackKind::Data), stack(ctx, StackKind::Iam))?;
    Ok([(StackKind::Network, n), (StackKind::Data, d), (StackKind::Iam, i)]
        .into_iter()
        .filter_map(|(k, s)| s.map(|s| (k, s)))
        .collect())
}

/// Every instance tagged for the cluster (optionally of one node type), in any state:
/// one DescribeInstances with tag filters, paginated.
pub async fn instances(ctx: &AwsContext, node_type: Option<&str>) -> Result<Vec<LiveInstance>> {
    let mut req = ctx.ec2.describe_instances().filters(tag_filter(TAG_CLUSTER, ctx.cluster())).max_results(1000);
    if let Some(t) = node_type {
        req = req.filters(tag_filter(TAG_NODE_TYPE, t));
    }
    let mut pages = req.into_paginator().send();
    let mut out = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_err("ec2:DescribeInstances"))?;
        for r in page.reservations() {
            for i in r.instances() {
                let tag = |k: &str| i.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_string);
                out.push(LiveInstance {
                    id: i.instance_id().unwrap_or_default().to_string(),
                    node_type: tag(TAG_NODE_TYPE),
                    state: i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default(),
                    image_id: i.image_id().unwrap_or_default().to_string(),
                    instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                    lt_version: tag(TAG_LT_VERSION).and_then(|v| v.parse().ok()),
                    spot: i.instance_lifecycle().is_some_and(|l| l.as_str() == "spot"),
                    launch_time: i.launch_time().map(|t| t.secs()).unwrap_or(0),
                    zone: i.placement().and_then(|p| p.availability_zone()).map(str::to_string),
                    public_ip: i.public_ip_address().map(str::to_string),
                });
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Launch templates tagged for the cluster, by node type, with their default version's
/// data: one DescribeLaunchTemplates, then one DescribeLaunchTemplateVersions per type.
pub async fn launch_templates(ctx: &AwsContext) -> Result<BTreeMap<String, LiveLaunchTemplate>> {
    let mut pages = ctx.ec2.describe_launch_templates().filters(tag_filter(TAG_CLUSTER, ctx.cluster())).into_paginator().send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(aws_err("ec2:DescribeLaunchTemplates"))?;
        for lt in page.launch_templates() {
            let node_type = lt.tags().iter().find(|t| t.key() == Some(TAG_NODE_TYPE)).and_then(|t| t.value());
            if let (Some(id), Some(name), Some(t)) = (lt.launch_template_id(), lt.launch_template_name(), node_type) {
                found.push((t.to_string(), id.to_string(), name.to_string(), lt.default_version_number().unwrap_or(1)));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (node_type, id, name, default_version) in found {
        let facts = launch_templates::default_version_facts(ctx, &id).await?;
        out.insert(node_type, LiveLaunchTemplate { id, name, default_version, facts });
    }
    Ok(out)
}

/// Queues of this cluster: listed by name prefix, kept only when tagged for it (a
/// cluster `a` must not claim the queues of a cluster `a-b`).
pub async fn queues(ctx: &AwsContext) -> Result<BTreeMap<String, LiveQueue>> {
    let prefix = format!("fleetform-{}-", ctx.cluster());
    let mut pages = ctx.sqs.list_queues().queue_name_prefix(&prefix).max_results(1000).into_paginator().send();
    let mut urls = Vec::new();
    while let Some(page) = pages.next().await {
        urls.extend(page.map_err(aws_err("sqs:ListQueues"))?.queue_urls().iter().cloned());
    }
    let mut out = BTreeMap::new();
    for url in urls {
        let name = url.rsplit('/').next().unwrap_or_default().to_string();
        let tags = ctx.sqs.list_queue_tags().queue_url(&url).send().await.map_err(aws_err("sqs:ListQueueTags"))?;
        if tags.tags().and_then(|t| t.get(TAG_CLUSTER)).map(String::as_str) != Some(ctx.cluster()) {
            continue;
        }
        let attributes = queues::observed_attributes(ctx, &url).await?;
        out.insert(name, LiveQueue { url, attributes });
    }
    Ok(out)
}
