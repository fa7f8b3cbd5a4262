//! Spot capacity: one CreateFleet `instant` over every (offering, subnet) of the launch,
//! price-capacity-optimized; EC2 answers the placements it could not fill in the result's
//! errors, which are reported and cached like an on-demand shortage.

use anyhow::Result;
use aws_sdk_ec2::operation::create_fleet::builders::CreateFleetFluentBuilder;
use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
    FleetLaunchTemplateSpecificationRequest, FleetType, InstanceType, ResourceType, SpotAllocationStrategy,
    SpotOptionsRequest, TargetCapacitySpecificationRequest,
};
use fleetform_core::spec::Market;

use super::{
    idempotency_token, is_profile_propagation, no_capacity, tagged, Placement, Request, PROFILE_PROPAGATION_DELAY,
    PROFILE_PROPAGATION_RETRIES,
};
use crate::autoscaler::{LaunchReport, LaunchedNode};
use crate::aws::context::AwsContext;
use crate::aws::errors::{aws_err, from_answer, is_missing_spot_role, is_shortage, AwsError};

/// CreateFleet `instant` for spot capacity over `placements`; returns how many launched.
/// The placements EC2 had no capacity for come back in the answer's errors: reported and
/// cached like a RunInstances shortage.
pub(super) async fn spot_fleet(
    ctx: &AwsContext,
    req: &Request<'_>,
    placements: Vec<Placement>,
    count: u32,
    report: &mut LaunchReport,
) -> Result<u32> {
    let res = create_fleet(ctx, req, &placements, count).await?;
    let got = fleet_instances(&res, &placements, report);
    fleet_errors(req, &res, &placements, got, report)?;
    Ok(got.min(count))
}

/// One CreateFleet, sent again while EC2 does not yet accept the new instance profile.
async fn create_fleet(
    ctx: &AwsContext,
    req: &Request<'_>,
    placements: &[Placement],
    count: u32,
) -> Result<CreateFleetOutput> {
    let mut attempt = 0;
    loop {
        let res = fleet_request(ctx, req, placements, count, attempt)
            .send()
            .await
            .map_err(aws_err("ec2:CreateFleet"))?;
        let propagating = res.instances().is_empty()
            && !res.errors().is_empty()
            && res
                .errors()
                .iter()
                .all(|e| is_profile_propagation(e.error_code(), e.error_message()));
        if propagating && attempt < PROFILE_PROPAGATION_RETRIES {
            attempt += 1;
            tokio::time::sleep(PROFILE_PROPAGATION_DELAY).await;
            continue;
        }
        return Ok(res);
    }
}

/// The CreateFleet request: every placement an override, all of `count` spot.
fn fleet_request(
    ctx: &AwsContext,
    req: &Request<'_>,
    placements: &[Placement],
    count: u32,
    attempt: u32,
) -> CreateFleetFluentBuilder {
    let overrides: Vec<FleetLaunchTemplateOverridesRequest> = placements
        .iter()
        .map(|p| {
            FleetLaunchTemplateOverridesRequest::builder()
                .instance_type(InstanceType::from(p.offering.instance_type.as_str()))
                .subnet_id(&p.subnet_id)
                .build()
        })
        .collect();
    let described: Vec<String> = placements
        .iter()
        .map(|p| format!("{}@{}", p.offering.instance_type, p.subnet_id))
        .collect();
    let version = req.lt_version.to_string();
    let token = idempotency_token(&[
        ctx.cluster(),
        req.node_type,
        "spot",
        &req.decision,
        &req.generation,
        &count.to_string(),
        &version,
        &described.join(","),
        &attempt.to_string(),
    ]);
    ctx.ec2
        .create_fleet()
        .r#type(FleetType::Instant)
        .client_token(token)
        .launch_template_configs(
            FleetLaunchTemplateConfigRequest::builder()
                .launch_template_specification(
                    FleetLaunchTemplateSpecificationRequest::builder()
                        .launch_template_id(&req.lt_id)
                        .version(&version)
                        .build(),
                )
                .set_overrides(Some(overrides))
                .build(),
        )
        .target_capacity_specification(
            TargetCapacitySpecificationRequest::builder()
                .total_target_capacity(count as i32)
                .spot_target_capacity(count as i32)
                .on_demand_target_capacity(0)
                .default_target_capacity_type(DefaultTargetCapacityType::Spot)
                .build(),
        )
        .spot_options(
            SpotOptionsRequest::builder()
                .allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized)
                .build(),
        )
        // `instant` fleets accept only `instance` and `fleet` here (EC2 API reference,
        // CreateFleet TagSpecifications); the volume and network interface get the
        // launch template's tags, which AWS authorizes as this request's.
        .tag_specifications(tagged(ResourceType::Instance, &req.tags))
        .tag_specifications(tagged(ResourceType::Fleet, &req.tags))
}

/// The placement a CreateFleet instance or error names (by subnet, and by instance type
/// when the answer gives one).
fn placed<'a>(
    placements: &'a [Placement],
    instance_type: Option<&str>,
    subnet: Option<&str>,
) -> Option<&'a Placement> {
    placements
        .iter()
        .find(|p| {
            Some(p.subnet_id.as_str()) == subnet
                && instance_type.is_none_or(|t| t == p.offering.instance_type)
        })
        .or_else(|| placements.iter().find(|p| Some(p.subnet_id.as_str()) == subnet))
}

/// The instances a CreateFleet launched, into the report; returns how many.
fn fleet_instances(res: &CreateFleetOutput, placements: &[Placement], report: &mut LaunchReport) -> u32 {
    let mut got = 0;
    for i in res.instances() {
        let ov = i
            .launch_template_and_overrides()
            .and_then(|l| l.overrides());
        let instance_type = i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let zone = placed(placements, Some(&instance_type), ov.and_then(|o| o.subnet_id()))
            .map(|p| p.zone.clone());
        for id in i.instance_ids() {
            report.launched.push(LaunchedNode {
                id: id.clone(),
                market: Market::Spot,
                instance_type: instance_type.clone(),
                zone: zone.clone(),
            });
            got += 1;
        }
    }
    got
}

/// The errors of a CreateFleet answer: a shortage is reported and cached like any other;
/// a missing spot service-linked role, or any other error when nothing launched, fails
/// the launch (typed, as the same code in an SDK error would); after a partial launch, the
/// rest is a message.
fn fleet_errors(
    req: &Request<'_>,
    res: &CreateFleetOutput,
    placements: &[Placement],
    got: u32,
    report: &mut LaunchReport,
) -> Result<()> {
    for e in res.errors() {
        let code = e.error_code().unwrap_or("UnknownError");
        let message = e.error_message().unwrap_or_default();
        if is_missing_spot_role(code, message) {
            return Err(AwsError::SpotServiceLinkedRole { detail: format!("{code}: {message}") }.into());
        }
        let ov = e
            .launch_template_and_overrides()
            .and_then(|l| l.overrides());
        let instance_type = ov.and_then(|o| o.instance_type()).map(|t| t.as_str());
        let subnet = ov.and_then(|o| o.subnet_id());
        let what = format!(
            "{} in {}",
            instance_type.unwrap_or("an instance type"),
            subnet.unwrap_or("a subnet")
        );
        match placed(placements, instance_type, subnet) {
            Some(p) if is_shortage(code) => no_capacity(p, code, report),
            _ if got == 0 => {
                return Err(anyhow::Error::new(from_answer("ec2:CreateFleet", code, message))
                    .context(format!("node type `{}` on {what}", req.node_type)))
            }
            _ => report.messages.push(format!("{what}: {code}: {message}")),
        }
    }
    Ok(())
}
