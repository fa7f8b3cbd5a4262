//! Launching and terminating nodes (DESIGN.md decisions 4 and 8): the EC2 side of the
//! [`NodeProvider`](crate::autoscaler::NodeProvider), used by the autoscaler and by
//! `apply` (head, `min_workers`) alike.
//!
//! A launch executes exactly one [`Launch`] of a decision: its spot offerings through one
//! CreateFleet `instant` with price-capacity-optimized across them (each offering's
//! instance type in every private subnet of its zone), then, for what spot did not give,
//! its on-demand offerings through RunInstances one after the other. The market split,
//! `on_demand_base`, the fallback and the offerings the capacity cache skips were all
//! decided before (`autoscaler::decide`); offerings that report no capacity come back in
//! the report and the caller caches them. Idempotency: each request carries a ClientToken
//! derived from the cluster, node type, the instances seen so far and the request itself,
//! so two applies that saw the same state send the same token and EC2 launches once
//! (unverifiable on moto).

use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest, FleetType,
    InstanceNetworkInterfaceSpecification, InstanceType, LaunchTemplateSpecification, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetform_core::spec::Market;

use super::context::AwsContext;
use super::errors::{aws_err, is_capacity_code, is_missing_spot_role, AwsError};
use super::launch_templates::{self, sha256_hex};
use super::names;
use super::observe;
use super::placement::NetworkInfo;
use crate::autoscaler::{
    CapacityError, FailedOffering, Launch, LaunchReport, LaunchedNode, Offering,
};

/// The EC2 launch boundary's fault hook. moto never runs out of capacity, so tests make
/// chosen offerings fail the way EC2 does, just before the request (the injectors live in
/// the tests).
pub trait FaultInjector: Send + Sync {
    /// The EC2 error code launching `offering` (its zone set) should fail with, if any.
    fn launch_error(&self, offering: &Offering) -> Option<String>;
}

/// Production: EC2 decides.
#[derive(Debug, Default)]
pub struct NoFaults;

impl FaultInjector for NoFaults {
    fn launch_error(&self, _: &Offering) -> Option<String> {
        None
    }
}

/// How EC2's capacity codes map onto the autoscaler's: spot pools that are short or
/// capped are `SpotUnavailable`, everything else `InsufficientCapacity`.
pub fn capacity_error(market: Market, code: &str) -> CapacityError {
    if market == Market::Spot && code != "InsufficientInstanceCapacity" {
        CapacityError::SpotUnavailable
    } else {
        CapacityError::InsufficientCapacity
    }
}

/// One offering of the decision in one subnet: what an EC2 request names.
#[derive(Debug, Clone)]
struct Placement {
    /// The decision's offering this placement comes from (what a failure is cached as).
    offering: Offering,
    subnet_id: String,
    zone: String,
}

impl Placement {
    /// The offering in this placement's zone, as the fault hook sees it.
    fn zoned(&self) -> Offering {
        Offering {
            zone: Some(self.zone.clone()),
            ..self.offering.clone()
        }
    }
}

/// Every (offering, subnet) of `market`, in the decision's order: an offering with a zone
/// goes to that zone's private subnets, one without to every private subnet.
fn placements(launch: &Launch, net: &NetworkInfo, market: Market) -> Vec<Placement> {
    launch
        .offerings
        .iter()
        .filter(|o| o.market == market)
        .flat_map(|o| {
            net.subnets
                .iter()
                .filter(|(_, zone)| o.zone.as_ref().is_none_or(|z| z == zone))
                .map(|(subnet, zone)| Placement {
                    offering: o.clone(),
                    subnet_id: subnet.clone(),
                    zone: zone.clone(),
                })
        })
        .collect()
}

/// A ClientToken (≤ 64 characters) from everything that identifies one launch decision.
pub fn idempotency_token(parts: &[&str]) -> String {
    format!("ff-{}", &sha256_hex(parts.join("\n").as_bytes())[..40])
}

/// EC2 needs a few seconds before it accepts a freshly created instance profile.
/// No SDK waiter covers that (the IAM one only sees the profile exist), hence a bounded retry.
const PROFILE_PROPAGATION_RETRIES: u32 = 12;
const PROFILE_PROPAGATION_DELAY: Duration = Duration::from_secs(5);

fn is_profile_propagation(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("InvalidParameterValue")
        && message.is_some_and(|m| {
            m.to_ascii_lowercase().contains("instance profile") || m.contains("iamInstanceProfile")
        })
}

struct Request<'a> {
    node_type: &'a str,
    lt_id: String,
    lt_version: i64,
    tags: Vec<Tag>,
    /// fleetform's group first, then `network.security_group_ids`.
    security_groups: Vec<String>,
    generation: String,
    faults: &'a dyn FaultInjector,
}

/// Launch exactly `launch`: `launch.count` nodes, spot offerings first (CreateFleet), then
/// on-demand ones (RunInstances) for what is still missing. Nothing launching is not an
/// error: the report names every offering that had no capacity. Errors are for what is
/// not capacity (a missing launch template, a refused request).
pub async fn launch(
    ctx: &AwsContext,
    net: &NetworkInfo,
    faults: &dyn FaultInjector,
    launch: &Launch,
) -> Result<LaunchReport> {
    let node_type = launch.node_type.as_str();
    ctx.spec
        .available_node_types
        .get(node_type)
        .with_context(|| format!("node type `{node_type}` is not in the cluster spec"))?;
    let mut report = LaunchReport::default();
    if launch.count == 0 {
        return Ok(report);
    }
    let (lt_id, lt_version) = launch_templates::current(ctx, node_type).await?;
    let existing = observe::instances(ctx, Some(node_type)).await?;
    let mut ids: Vec<&str> = existing.iter().map(|i| i.id.as_str()).collect();
    ids.sort();
    let tags: Vec<Tag> = names::node_tags(&ctx.spec, node_type, lt_version)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    let req = Request {
        node_type,
        lt_id,
        lt_version,
        tags,
        security_groups: net.security_groups(node_type == ctx.spec.head_node_type),
        generation: sha256_hex(ids.join(",").as_bytes()),
        faults,
    };
    tracing::info!(node_type, count = launch.count, reason = %launch.reason, "launching nodes");
    let mut left = launch.count;
    let spot = placements(launch, net, Market::Spot);
    let on_demand = placements(launch, net, Market::OnDemand);
    if !spot.is_empty() {
        left -= spot_fleet(ctx, &req, spot, left, &mut report).await?;
        if left > 0 && !on_demand.is_empty() {
            report.messages.push(format!(
                "spot capacity short by {left}: falling back to on-demand (on_demand_fallback)"
            ));
        } else if left > 0 && launch.market == Market::Spot {
            report.messages.push(format!("spot capacity short by {left} and on_demand_fallback is false: not launching on-demand"));
        }
    }
    for p in &on_demand {
        if left == 0 {
            break;
        }
        match run_instances(ctx, &req, p, left).await? {
            Ok(launched) => {
                left -= launched.len() as u32;
                report.launched.extend(launched);
            }
            Err(code) => no_capacity(p, &code, &mut report),
        }
    }
    if !report.launched.is_empty() {
        let ids: Vec<&str> = report.launched.iter().map(|l| l.id.as_str()).collect();
        report.messages.push(format!(
            "launched {} of {}: {}",
            ids.len(),
            launch.count,
            ids.join(", ")
        ));
    }
    Ok(report)
}

fn no_capacity(p: &Placement, code: &str, report: &mut LaunchReport) {
    report.messages.push(format!(
        "{} in {}: {code}; trying the next offering",
        p.offering, p.subnet_id
    ));
    if !report.failed.iter().any(|f| f.offering == p.offering) {
        let error = capacity_error(p.offering.market, code);
        report.failed.push(FailedOffering {
            offering: p.offering.clone(),
            error,
            code: code.to_string(),
        });
    }
}

/// CreateFleet `instant` for spot capacity over `placements`; returns how many launched.
async fn spot_fleet(
    ctx: &AwsContext,
    req: &Request<'_>,
    placements: Vec<Placement>,
    count: u32,
    report: &mut LaunchReport,
) -> Result<u32> {
    let mut usable = Vec::new();
    for p in placements {
        match req.faults.launch_error(&p.zoned()) {
            Some(code) if is_missing_spot_role(&code, "") => return Err(AwsError::SpotServiceLinkedRole { detail: code }.into()),
            Some(code) if is_capacity_code(&code) => no_capacity(&p, &code, report),
            Some(code) => bail!(
                "ec2:CreateFleet for node type `{}` failed on {} in {}: {code}",
                req.node_type,
                p.offering,
                p.subnet_id
            ),
            None => usable.push(p),
        }
    }
    if usable.is_empty() {
        return Ok(0);
    }
    let overrides: Vec<FleetLaunchTemplateOverridesRequest> = usable
        .iter()
        .map(|p| {
            FleetLaunchTemplateOverridesRequest::builder()
                .instance_type(InstanceType::from(p.offering.instance_type.as_str()))
                .subnet_id(&p.subnet_id)
                .build()
        })
        .collect();
    let described: Vec<String> = usable
        .iter()
        .map(|p| format!("{}@{}", p.offering.instance_type, p.subnet_id))
        .collect();
    let version = req.lt_version.to_string();
    let mut attempt = 0;
    let res = loop {
        let count_s = count.to_string();
        let attempt_s = attempt.to_string();
        let token = idempotency_token(&[
            ctx.cluster(),
            req.node_type,
            "spot",
            &req.generation,
            &count_s,
            &version,
            &described.join(","),
            &attempt_s,
        ]);
        let res = ctx
            .ec2
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
                    .set_overrides(Some(overrides.clone()))
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
        break res;
    };
    let placed = |instance_type: Option<&str>, subnet: Option<&str>| {
        usable
            .iter()
            .find(|p| {
                Some(p.subnet_id.as_str()) == subnet
                    && instance_type.is_none_or(|t| t == p.offering.instance_type)
            })
            .or_else(|| usable.iter().find(|p| Some(p.subnet_id.as_str()) == subnet))
    };
    let mut got = 0;
    for i in res.instances() {
        let ov = i
            .launch_template_and_overrides()
            .and_then(|l| l.overrides());
        let instance_type = i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default();
        let zone =
            placed(Some(&instance_type), ov.and_then(|o| o.subnet_id())).map(|p| p.zone.clone());
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
        match placed(instance_type, subnet) {
            Some(p) if is_capacity_code(code) => no_capacity(p, code, report),
            _ if got == 0 => bail!(
                "ec2:CreateFleet for node type `{}` failed on {what}: {code}: {}",
                req.node_type,
                e.error_message().unwrap_or_default()
            ),
            _ => report.messages.push(format!(
                "{what}: {code}: {}",
                e.error_message().unwrap_or_default()
            )),
        }
    }
    Ok(got.min(count))
}

/// RunInstances for one on-demand offering. `Ok(Err(code))` is "no capacity here".
async fn run_instances(
    ctx: &AwsContext,
    req: &Request<'_>,
    p: &Placement,
    count: u32,
) -> Result<std::result::Result<Vec<LaunchedNode>, String>> {
    match req.faults.launch_error(&p.zoned()) {
        Some(code) if is_capacity_code(&code) => return Ok(Err(code)),
        Some(code) => bail!(
            "ec2:RunInstances for node type `{}` failed on {} in {}: {code}",
            req.node_type,
            p.offering,
            p.subnet_id
        ),
        None => {}
    }
    let version = req.lt_version.to_string();
    let mut attempt = 0;
    loop {
        let count_s = count.to_string();
        let attempt_s = attempt.to_string();
        let token = idempotency_token(&[
            ctx.cluster(),
            req.node_type,
            "on-demand",
            &req.generation,
            &count_s,
            &version,
            &p.offering.instance_type,
            &p.subnet_id,
            &attempt_s,
        ]);
        let res = ctx
            .ec2
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
            .send()
            .await;
        match res {
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
            Err(e) if e.code().is_some_and(is_capacity_code) => {
                return Ok(Err(e.code().unwrap_or_default().to_string()))
            }
            Err(e)
                if is_profile_propagation(e.code(), e.message())
                    && attempt < PROFILE_PROPAGATION_RETRIES =>
            {
                attempt += 1;
                tokio::time::sleep(PROFILE_PROPAGATION_DELAY).await;
            }
            Err(e) => return Err(aws_err("ec2:RunInstances")(e)),
        }
    }
}

/// Terminate instances (any state; already-gone ones are fine).
pub async fn terminate(ctx: &AwsContext, ids: &[String]) -> Result<()> {
    for chunk in ids.chunks(500) {
        match ctx
            .ec2
            .terminate_instances()
            .set_instance_ids(Some(chunk.to_vec()))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("InvalidInstanceID.NotFound") => {}
            Err(e) => return Err(aws_err("ec2:TerminateInstances")(e)),
        }
    }
    Ok(())
}

/// Wait until the instances are terminated (the SDK's waiter), e.g. before the network
/// stack they live in can be deleted.
pub async fn wait_terminated(ctx: &AwsContext, ids: &[String], max_wait: Duration) -> Result<()> {
    use aws_sdk_ec2::client::Waiters;
    if ids.is_empty() {
        return Ok(());
    }
    ctx.ec2
        .wait_until_instance_terminated()
        .set_instance_ids(Some(ids.to_vec()))
        .wait(max_wait)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "instances {} did not terminate within {} s: {}",
                ids.join(", "),
                max_wait.as_secs(),
                aws_smithy_types::error::display::DisplayErrorContext(&e)
            )
        })?;
    Ok(())
}


/// The cluster's tags on one kind of resource a launch creates. The head policy requires
/// the cluster tag on each (`LaunchOnlyTaggedInstances`): RunInstances names all three
/// kinds it creates; CreateFleet relies on the launch template for the other two.
fn tagged(kind: ResourceType, tags: &[Tag]) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).set_tags(Some(tags.to_vec())).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_deterministic_and_short_enough() {
        let a = idempotency_token(&["demo", "w", "spot", "gen", "2"]);
        assert_eq!(a, idempotency_token(&["demo", "w", "spot", "gen", "2"]));
        assert_ne!(a, idempotency_token(&["demo", "w", "spot", "gen2", "2"]));
        assert!(a.len() <= 64);
    }
}
