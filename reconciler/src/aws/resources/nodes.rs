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
//! the report and the caller caches them, per zone (an offering without a zone is cached
//! in the zone that failed, and the zones the cache skips are left out of its launch).
//! Idempotency: each request carries a ClientToken derived from the cluster, node type,
//! the launch decision's number (`Launch::decision`, persisted with the autoscaler's
//! state), the instances seen so far and the request itself: a new decision never reuses
//! a token (EC2 keeps one for at least 24 hours after its instances are gone), and two
//! reconcilers that loaded the same state send the same token and EC2 launches once
//! (unverifiable on moto, which forgets tokens).

use std::time::Duration;

use anyhow::{Context as _, Result};
use aws_sdk_ec2::operation::create_fleet::builders::CreateFleetFluentBuilder;
use aws_sdk_ec2::operation::create_fleet::CreateFleetOutput;
use aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder;
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest,
    FleetLaunchTemplateOverridesRequest, FleetLaunchTemplateSpecificationRequest, FleetType,
    InstanceNetworkInterfaceSpecification, InstanceType, LaunchTemplateSpecification, ResourceType,
    SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetform_core::spec::Market;

use crate::aws::context::AwsContext;
use crate::aws::errors::{aws_err, from_answer, is_missing_spot_role, is_quota_code, is_shortage, quota_advice, AwsError};
use crate::aws::resources::launch_templates::{self, sha256_hex};
use crate::aws::names;
use crate::aws::stages::live;
use crate::aws::resources::placement::NetworkInfo;
use crate::autoscaler::provider::LaunchFailure;
use crate::autoscaler::{
    CapacityError, FailedOffering, Launch, LaunchReport, LaunchedNode, Offering,
};

/// How EC2's capacity and quota codes map onto the autoscaler's: quotas are
/// `QuotaExceeded`, spot pools that are short or capped `SpotUnavailable`, everything else
/// `InsufficientCapacity`.
pub fn capacity_error(market: Market, code: &str) -> CapacityError {
    if is_quota_code(code) {
        CapacityError::QuotaExceeded
    } else if market == Market::Spot && code != "InsufficientInstanceCapacity" {
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
    /// The offering in this placement's zone (what a failure there is cached as).
    fn zoned(&self) -> Offering {
        Offering {
            zone: Some(self.zone.clone()),
            ..self.offering.clone()
        }
    }
}

/// Every (offering, subnet) of `market`, in the decision's order: an offering with a zone
/// goes to that zone's private subnets, one without to every private subnet but those of
/// the zones the capacity cache skips for it.
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
        .filter(|p| !launch.skipped.iter().any(|s| s.offering == p.zoned()))
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
    /// The launch decision's number ([`Launch::decision`]).
    decision: String,
    generation: String,
}

/// Launch exactly `launch`: `launch.count` nodes, spot offerings first (CreateFleet), then
/// on-demand ones (RunInstances) for what is still missing. Nothing launching is not an
/// error: the report names every offering that had no capacity. Errors are for what is
/// not capacity (a missing launch template, a refused request).
pub async fn launch(
    ctx: &AwsContext,
    net: &NetworkInfo,
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
    let existing = live::instances(ctx, Some(node_type)).await?;
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
        decision: launch.decision.to_string(),
        generation: sha256_hex(ids.join(",").as_bytes()),
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
        match run_instances(ctx, &req, p, left).await {
            Ok(Ok(launched)) => {
                left -= launched.len() as u32;
                report.launched.extend(launched);
            }
            Ok(Err(code)) => no_capacity(p, &code, &mut report),
            // What spot launched before stays in the report (counted, cached, shown).
            Err(e) => {
                report.error = Some(LaunchFailure::of(&e));
                break;
            }
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

/// An offering that found no capacity (or quota) in `p`'s subnet: reported, and cached in
/// that zone, the only place EC2 said no about.
fn no_capacity(p: &Placement, code: &str, report: &mut LaunchReport) {
    let spot = p.offering.market == Market::Spot;
    let advice = quota_advice(code, spot, &p.offering.instance_type, &p.subnet_id);
    report.messages.push(match advice {
        Some(advice) => format!("{} in {}: {advice}", p.offering, p.subnet_id),
        None => format!("{} in {}: {code}; trying the next offering", p.offering, p.subnet_id),
    });
    let zoned = p.zoned();
    if !report.failed.iter().any(|f| f.offering == zoned) {
        report.failed.push(FailedOffering {
            offering: zoned,
            error: capacity_error(p.offering.market, code),
            code: code.to_string(),
        });
    }
}

/// CreateFleet `instant` for spot capacity over `placements`; returns how many launched.
/// The placements EC2 had no capacity for come back in the answer's errors: reported and
/// cached like a RunInstances shortage.
async fn spot_fleet(
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

/// RunInstances for one on-demand offering. `Ok(Err(code))` is "no capacity here".
async fn run_instances(
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

    fn offering(market: Market, instance_type: &str, zone: Option<&str>) -> Offering {
        Offering { market, instance_type: instance_type.into(), zone: zone.map(str::to_string) }
    }

    #[test]
    fn a_zone_the_cache_skips_is_left_out_of_a_zoneless_offering() {
        let net = NetworkInfo {
            subnets: vec![("subnet-a".into(), "us-west-2a".into()), ("subnet-b".into(), "us-west-2b".into())],
            head_security_group: "sg-h".into(),
            worker_security_group: "sg-w".into(),
            extra_security_groups: vec![],
        };
        let skip = crate::autoscaler::Skip {
            offering: offering(Market::Spot, "r7i.2xlarge", Some("us-west-2a")),
            error: CapacityError::QuotaExceeded,
            until: chrono::Utc::now(),
        };
        let launch = Launch {
            node_type: "x86".into(),
            count: 1,
            market: Market::Spot,
            offerings: vec![offering(Market::Spot, "r7i.2xlarge", None), offering(Market::Spot, "m7i.2xlarge", None)],
            skipped: vec![skip],
            reason: "test".into(),
            decision: 1,
        };
        let placed: Vec<String> =
            placements(&launch, &net, Market::Spot).iter().map(|p| format!("{} {}", p.offering.instance_type, p.subnet_id)).collect();
        assert_eq!(placed, ["r7i.2xlarge subnet-b", "m7i.2xlarge subnet-a", "m7i.2xlarge subnet-b"]);
    }

    #[test]
    fn a_shortage_is_cached_in_the_zone_it_happened() {
        let p = Placement { offering: offering(Market::OnDemand, "m7i.large", None), subnet_id: "subnet-a".into(), zone: "us-west-2a".into() };
        let mut report = LaunchReport::default();
        no_capacity(&p, "VcpuLimitExceeded", &mut report);
        assert_eq!(report.failed[0].offering, offering(Market::OnDemand, "m7i.large", Some("us-west-2a")));
        assert_eq!(report.failed[0].error, CapacityError::QuotaExceeded);
        assert!(report.messages[0].contains("(L-1216C47A)"), "{:?}", report.messages);
    }

    #[test]
    fn tokens_are_deterministic_and_short_enough() {
        let a = idempotency_token(&["demo", "w", "spot", "gen", "2"]);
        assert_eq!(a, idempotency_token(&["demo", "w", "spot", "gen", "2"]));
        assert_ne!(a, idempotency_token(&["demo", "w", "spot", "gen2", "2"]));
        assert!(a.len() <= 64);
    }
}
