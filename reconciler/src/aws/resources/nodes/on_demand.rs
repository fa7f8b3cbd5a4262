//! On-demand capacity: RunInstances for one offering in one subnet at a time, in the
//! decision's order, until the launch has its count.

use anyhow::Result;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{InstanceNetworkInterfaceSpecification, InstanceType, LaunchTemplateSpecification, ResourceType};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetform_core::spec::Market;

use super::{idempotency_token, is_profile_propagation, tagged, Placement, Request, PROFILE_PROPAGATION_DELAY, PROFILE_PROPAGATION_RETRIES};
use crate::autoscaler::LaunchedNode;
use crate::aws::context::AwsContext;
use crate::aws::errors::{aws_err, is_shortage};

/// RunInstances for one on-demand offering. `Ok(Err(code))` is "no capacity here".
pub(super) async fn run_instances(
    ctx: &AwsContext,
    req: &Request<'_>,
    p: &Placement,
    count: u32,
) -> Result<std::result::Result<Vec<LaunchedNode>, String>> {
    let mut attempt = 0;
    loop {
        match run_request(ctx, req, p, count, attempt).send().await {
            Ok(r) => {
                return Ok(Ok(r
                    .instances()
                    .iter()
                    .map(|i| LaunchedNode {
                        id: i.instance_id().unwrap_or_default().to_string(),
                        market: Market::OnDemand,
                        instance_type: p.offering.instance_type.clone(),
                        zone: Some(p.zone.clone()),
                    })
                    .collect()))
            }
            Err(e) if e.code().is_some_and(is_shortage) => {
                return Ok(Err(e.code().unwrap_or_default().to_string()))
            }
            Err(e)
                if is_profile_propagation(e.code(), e.message())
                    && attempt < PROFILE_PROPAGATION_RETRIES =>
            {
                attempt += 1;
                tokio::time::sleep(PROFILE_PROPAGATION_DELAY).await;
            }
            Err(e) => {
                return Err(aws_err("ec2:RunInstances")(e)
                    .context(format!("node type `{}` on {} in {}", req.node_type, p.offering, p.subnet_id)))
            }
        }
    }
}

/// The RunInstances request for one placement: up to `count` nodes, at least one.
fn run_request(
    ctx: &AwsContext,
    req: &Request<'_>,
    p: &Placement,
    count: u32,
    attempt: u32,
) -> RunInstancesFluentBuilder {
    let version = req.lt_version.to_string();
    let token = idempotency_token(&[
        ctx.cluster(),
        req.node_type,
        "on-demand",
        &req.decision,
        &req.generation,
        &count.to_string(),
        &version,
        &p.offering.instance_type,
        &p.subnet_id,
        &attempt.to_string(),
    ]);
    ctx.ec2
        .run_instances()
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&req.lt_id)
                .version(&version)
                .build(),
        )
        .instance_type(InstanceType::from(p.offering.instance_type.as_str()))
        .min_count(1)
        .max_count(count as i32)
        .client_token(token)
        // Explicit, not only in the launch template: real AWS honours both, and moto
        // (whose CFN subnets always map public IPs) only this one.
        .network_interfaces(
            InstanceNetworkInterfaceSpecification::builder()
                .device_index(0)
                .subnet_id(&p.subnet_id)
                .set_groups(Some(req.security_groups.clone()))
                .associate_public_ip_address(false)
                .delete_on_termination(true)
                .build(),
        )
        .tag_specifications(tagged(ResourceType::Instance, &req.tags))
        .tag_specifications(tagged(ResourceType::Volume, &req.tags))
        .tag_specifications(tagged(ResourceType::NetworkInterface, &req.tags))
}
