//! The task queues (DESIGN.md decision 6): one SQS queue per resource class a worker
//! type serves, each redriving into its own dead-letter queue.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;
use fleetform_core::{layout, ClusterSpec};
use serde_json::{json, Value};

use super::context::AwsContext;
use super::errors::aws_err;
use super::model::DesiredQueue;
use super::names;

/// The lease: the agent's heartbeat extends it while a task runs (FLEETFORM_LEASE_SECONDS).
pub const VISIBILITY_TIMEOUT_S: u32 = 60;
/// A crash-loop safety net only: the agent counts real task failures itself, so a
/// message reaches the DLQ only when nodes keep dying while holding it.
pub const MAX_RECEIVE_COUNT: u32 = 10;
/// SQS's default for work queues (4 days); the DLQ keeps messages for the maximum
/// (14 days) so that someone can look at them.
pub const RETENTION_S: u32 = 4 * 24 * 3600;
pub const DLQ_RETENTION_S: u32 = 14 * 24 * 3600;

/// The attributes fleetform manages; only these are compared.
const MANAGED: [&str; 3] = ["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"];

pub fn resource_classes(spec: &ClusterSpec) -> BTreeSet<String> {
    spec.worker_types().flat_map(|(_, t)| t.resources.served_classes()).map(|c| c.slug()).collect()
}

fn queue_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:sqs:{region}:{account}:{name}")
}

/// A redrive policy in the one form both sides of the diff use (sorted keys, a number).
pub fn canonical_redrive(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => {
            let count = match &v["maxReceiveCount"] {
                Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
                other => other.clone(),
            };
            json!({"deadLetterTargetArn": v["deadLetterTargetArn"], "maxReceiveCount": count}).to_string()
        }
        Err(_) => raw.to_string(),
    }
}

/// Queues for every class, dead-letter queue first.
pub fn desired(spec: &ClusterSpec, partition: &str, region: &str, account: &str) -> Vec<DesiredQueue> {
    let cluster = &spec.cluster_name;
    let mut out = Vec::new();
    for class in resource_classes(spec) {
        let dlq = layout::sqs_dead_letter_queue(cluster, &class);
        out.push(DesiredQueue {
            name: dlq.clone(),
            attributes: BTreeMap::from([
                ("MessageRetentionPeriod".into(), DLQ_RETENTION_S.to_string()),
                ("VisibilityTimeout".into(), VISIBILITY_TIMEOUT_S.to_string()),
            ]),
        });
        let redrive = json!({
            "deadLetterTargetArn": queue_arn(partition, region, account, &dlq),
            "maxReceiveCount": MAX_RECEIVE_COUNT,
        });
        out.push(DesiredQueue {
            name: layout::sqs_queue(cluster, &class),
            attributes: BTreeMap::from([
                ("MessageRetentionPeriod".into(), RETENTION_S.to_string()),
                ("RedrivePolicy".into(), canonical_redrive(&redrive.to_string())),
                ("VisibilityTimeout".into(), VISIBILITY_TIMEOUT_S.to_string()),
            ]),
        });
    }
    out
}

pub async fn observed_attributes(ctx: &AwsContext, url: &str) -> Result<BTreeMap<String, String>> {
    let got = ctx
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(aws_err("sqs:GetQueueAttributes"))?;
    Ok(got
        .attributes()
        .into_iter()
        .flatten()
        .filter(|(k, _)| MANAGED.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = if k.as_str() == "RedrivePolicy" { canonical_redrive(v) } else { v.clone() };
            (k.as_str().to_string(), v)
        })
        .collect())
}

fn attribute_map(q: &DesiredQueue) -> std::collections::HashMap<QueueAttributeName, String> {
    q.attributes.iter().map(|(k, v)| (QueueAttributeName::from(k.as_str()), v.clone())).collect()
}

/// CreateQueue is idempotent for identical attributes, so a rerun after a crash is safe.
pub async fn create(ctx: &AwsContext, q: &DesiredQueue) -> Result<()> {
    let tags: std::collections::HashMap<String, String> = names::cluster_tags(&ctx.spec).into_iter().collect();
    ctx.sqs
        .create_queue()
        .queue_name(&q.name)
        .set_attributes(Some(attribute_map(q)))
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(aws_err("sqs:CreateQueue"))?;
    Ok(())
}

pub async fn update(ctx: &AwsContext, url: &str, q: &DesiredQueue) -> Result<()> {
    ctx.sqs
        .set_queue_attributes()
        .queue_url(url)
        .set_attributes(Some(attribute_map(q)))
        .send()
        .await
        .map_err(aws_err("sqs:SetQueueAttributes"))?;
    Ok(())
}

pub async fn delete(ctx: &AwsContext, url: &str) -> Result<()> {
    match ctx.sqs.delete_queue().queue_url(url).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|s| s.to_string().contains("NonExistentQueue")) => Ok(()),
        Err(e) => Err(aws_err("sqs:DeleteQueue")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSHOP: &str = include_str!("../../../cluster.yaml");

    #[test]
    fn one_queue_and_dlq_per_served_class() {
        let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let qs = desired(&spec, "aws", "us-west-2", "123456789012");
        let names: Vec<&str> = qs.iter().map(|q| q.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "fleetform-workshop-default-dlq", "fleetform-workshop-default",
                "fleetform-workshop-graviton-dlq", "fleetform-workshop-graviton",
                "fleetform-workshop-intel-dlq", "fleetform-workshop-intel",
            ]
        );
        assert_eq!(
            qs[1].attributes["RedrivePolicy"],
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-west-2:123456789012:fleetform-workshop-default-dlq","maxReceiveCount":10}"#
        );
        assert_eq!(qs[1].attributes["VisibilityTimeout"], "60");
        // moto and AWS write the count as a string or a number; both read the same.
        assert_eq!(
            canonical_redrive(r#"{"maxReceiveCount": "10", "deadLetterTargetArn": "arn:x"}"#),
            canonical_redrive(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":10}"#)
        );
    }
}
