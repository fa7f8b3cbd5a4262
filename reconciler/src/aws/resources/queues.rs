//! The task queues (docs/DESIGN.md, decision 6): one SQS queue per resource class a worker
//! type serves, each redriving into its own dead-letter queue.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use aws_sdk_sqs::types::QueueAttributeName;
use fleetform_runtime::queue::sqs::{self as definition, attribute_map, QueueDefinition};
use fleetform_core::{layout, ClusterSpec};

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::stages::state::DesiredQueue;
use crate::aws::names;

/// The queues' attributes have one definition, `fleetform_runtime::queue::sqs::definitions`,
/// which `ensure` (every submit) sends too.
pub use definition::canonical_redrive;

pub fn resource_classes(spec: &ClusterSpec) -> BTreeSet<String> {
    spec.worker_types().flat_map(|(_, t)| t.resources.served_classes()).map(|c| c.slug()).collect()
}

fn queue_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:sqs:{region}:{account}:{name}")
}

/// Queues for every class, dead-letter queue first.
pub fn desired(spec: &ClusterSpec, partition: &str, region: &str, account: &str) -> Vec<DesiredQueue> {
    let cluster = &spec.cluster_name;
    let mut out = Vec::new();
    for class in resource_classes(spec) {
        let dlq_arn = queue_arn(partition, region, account, &layout::sqs_dead_letter_queue(cluster, &class));
        for QueueDefinition { name, attributes } in definition::definitions(cluster, &class, &dlq_arn) {
            out.push(DesiredQueue { name, attributes });
        }
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
    Ok(definition::managed_attributes(got.attributes().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))))
}

fn definition_of(q: &DesiredQueue) -> QueueDefinition {
    QueueDefinition { name: q.name.clone(), attributes: q.attributes.clone() }
}

/// CreateQueue is idempotent for identical attributes, so a rerun after a crash is safe.
pub async fn create(ctx: &AwsContext, q: &DesiredQueue) -> Result<()> {
    let tags: std::collections::HashMap<String, String> = names::cluster_tags(&ctx.spec).into_iter().collect();
    ctx.sqs
        .create_queue()
        .queue_name(&q.name)
        .set_attributes(Some(attribute_map(&definition_of(q))))
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
        .set_attributes(Some(attribute_map(&definition_of(q))))
        .send()
        .await
        .map_err(aws_err("sqs:SetQueueAttributes"))?;
    Ok(())
}

pub async fn delete(ctx: &AwsContext, url: &str) -> Result<()> {
    match ctx.sqs.delete_queue().queue_url(url).send().await {
        Ok(_) => Ok(()),
        // The SDK maps SQS's `AWS.SimpleQueueService.NonExistentQueue` to this variant.
        Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => Ok(()),
        Err(e) => Err(aws_err("sqs:DeleteQueue")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSHOP: &str = include_str!("../../../../cluster.yaml");

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
        // apply's queues are exactly what `ensure` (every submit) sends for each class.
        for (pair, class) in qs.chunks(2).zip(["default", "graviton", "intel"]) {
            let arn = format!("arn:aws:sqs:us-west-2:123456789012:fleetform-workshop-{class}-dlq");
            let ensured = definition::definitions("workshop", class, &arn);
            assert_eq!(pair[0].attributes, ensured[0].attributes, "{class} DLQ");
            assert_eq!(pair[1].attributes, ensured[1].attributes, "{class} queue");
            assert_eq!((pair[0].name.as_str(), pair[1].name.as_str()), (ensured[0].name.as_str(), ensured[1].name.as_str()));
        }
        // moto and AWS write the count as a string or a number; both read the same.
        assert_eq!(
            canonical_redrive(r#"{"maxReceiveCount": "10", "deadLetterTargetArn": "arn:x"}"#),
            canonical_redrive(r#"{"deadLetterTargetArn":"arn:x","maxReceiveCount":10}"#)
        );
    }
}
