//! Launching and terminating nodes (DESIGN.md decisions 4 and 8). Public because the
//! autoscaler launches and removes workers with the same functions `apply` uses.
//!
//! Spot capacity comes from CreateFleet `instant` with price-capacity-optimized across
//! every instance type × private subnet of the node type; on-demand (the head, an
//! on-demand node type, a spot type's `on_demand_base`, and the fallback when spot is
//! short) from RunInstances, one offering after the other. Offerings that report no
//! capacity are named in the outcome, cached for a few minutes and skipped.
//! Idempotency: each request carries a ClientToken derived from the cluster, node type,
//! the instances seen so far and the request itself, so two applies that saw the same
//! state send the same token and EC2 launches once (unverifiable on moto).

use std::fmt;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use aws_sdk_ec2::types::{
    DefaultTargetCapacityType, FleetLaunchTemplateConfigRequest, FleetLaunchTemplateOverridesRequest,
    FleetLaunchTemplateSpecificationRequest, FleetType, InstanceNetworkInterfaceSpecification, InstanceType,
    LaunchTemplateSpecification, ResourceType, SpotAllocationStrategy, SpotOptionsRequest, Tag, TagSpecification,
    TargetCapacitySpecificationRequest,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetform_core::spec::Market;
use serde::Serialize;

use super::context::{AwsContext, CAPACITY_CACHE_TTL};
use super::errors::{aws_err, is_capacity_code};
use super::launch_templates::{self, sha256_hex};
use super::names;
use super::observe;

/// One place capacity can come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Offering {
    pub market: Market,
    pub instance_type: String,
    pub subnet_id: String,
    pub zone: String,
}

impl fmt::Display for Offering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} in {}", self.market.as_str(), self.instance_type, self.zone)
    }
}

/// The EC2 launch boundary's fault hook. moto never runs out of capacity, so tests
/// (and drills) make chosen offerings fail the way EC2 does, just before the request.
pub trait FaultInjector: Send + Sync {
    /// The EC2 error code launching `offering` should fail with, if any.
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

/// Offerings that answer `InsufficientInstanceCapacity`. A `None` field matches anything.
#[derive(Debug, Default, Clone)]
pub struct CapacityShortage {
    pub offerings: Vec<(Option<Market>, Option<String>, Option<String>)>,
}

impl CapacityShortage {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn offering(mut self, market: Option<Market>, instance_type: Option<&str>, zone: Option<&str>) -> Self {
        self.offerings.push((market, instance_type.map(str::to_string), zone.map(str::to_string)));
        self
    }
}

impl FaultInjector for CapacityShortage {
    fn launch_error(&self, o: &Offering) -> Option<String> {
        let hit = self.offerings.iter().any(|(m, t, z)| {
            m.is_none_or(|m| m == o.market)
                && t.as_ref().is_none_or(|t| *t == o.instance_type)
                && z.as_ref().is_none_or(|z| *z == o.zone)
        });
        hit.then(|| "InsufficientInstanceCapacity".to_string())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaunchedNode {
    pub id: String,
    pub market: Market,
    pub instance_type: String,
    pub zone: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LaunchOutcome {
    pub node_type: String,
    pub requested: u32,
    pub launched: Vec<LaunchedNode>,
    /// Offerings that had no capacity, with EC2's code.
    pub failed_offerings: Vec<(Offering, String)>,
    /// What happened, in order, for the operator (and `fleetform status`).
    pub messages: Vec<String>,
}

impl LaunchOutcome {
    pub fn shortfall(&self) -> u32 {
        self.requested.saturating_sub(self.launched.len() as u32)
    }
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
    code == Some("InvalidParameterValue") && message.is_some_and(|m| m.to_ascii_lowercase().contains("instance profile") || m.contains("iamInstanceProfile"))
}

struct Request<'a> {
    node_type: &'a str,
    lt_id: String,
    lt_version: i64,
    tags: Vec<Tag>,
    /// fleetform's group first, then `network.security_group_ids`.
    security_groups: Vec<String>,
    generation: String,
}

/// Launch `count` nodes of `node_type` (the spot/on-demand split, fallback and
/// `on_demand_base` handled here). Errors only when nothing at all could be launched
/// or AWS refused for another reason than capacity; a partial launch is an outcome
/// with a shortfall.
pub async fn launch(ctx: &AwsContext, node_type: &str, count: u32, reason: &str) -> Result<LaunchOutcome> {
    let t = ctx
        .spec
        .available_node_types
        .get(node_type)
        .with_context(|| format!("node type `{node_type}` is not in the cluster spec"))?;
    let mut outcome = LaunchOutcome { node_type: node_type.to_string(), requested: count, ..Default::default() };
    if count == 0 {
        return Ok(outcome);
    }
    let net = ctx.network().await?.clone();
    let is_head = node_type == ctx.spec.head_node_type;
    let (lt_id, lt_version) = launch_templates::current(ctx, node_type).await?;
    let existing = observe::instances(ctx, Some(node_type)).await?;
    let cfg = &t.node_config;
    let live_on_demand = existing.iter().filter(|i| !i.is_gone() && !i.spot).count() as u32;
    let (mut on_demand, spot) = match cfg.market {
        Market::OnDemand => (count, 0),
        Market::Spot => {
            let od = cfg.on_demand_base.saturating_sub(live_on_demand).min(count);
            (od, count - od)
        }
    };
    if cfg.market == Market::Spot && on_demand > 0 {
        outcome.messages.push(format!("{on_demand} on-demand for on_demand_base ({})", cfg.on_demand_base));
    }
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
        security_groups: net.security_groups(is_head),
        generation: sha256_hex(ids.join(",").as_bytes()),
    };
    let offerings = |market: Market| -> Vec<Offering> {
        cfg.instance_types
            .iter()
            .flat_map(|it| {
                net.subnets.iter().map(move |(subnet, zone)| Offering {
                    market,
                    instance_type: it.clone(),
                    subnet_id: subnet.clone(),
                    zone: zone.clone(),
                })
            })
            .collect()
    };
    tracing::info!(node_type, count, reason, "launching nodes");
    if spot > 0 {
        let usable = skip_dry(ctx, offerings(Market::Spot), &mut outcome);
        let got = spot_fleet(ctx, &req, usable, spot, &mut outcome).await?;
        let short = spot - got;
        if short > 0 {
            if cfg.on_demand_fallback {
                outcome.messages.push(format!("spot capacity short by {short}: falling back to on-demand (on_demand_fallback)"));
                on_demand += short;
            } else {
                outcome.messages.push(format!("spot capacity short by {short} and on_demand_fallback is false: not launching on-demand"));
            }
        }
    }
    if on_demand > 0 {
        let mut left = on_demand;
        for o in skip_dry(ctx, offerings(Market::OnDemand), &mut outcome) {
            if left == 0 {
                break;
            }
            match run_instances(ctx, &req, &o, left).await? {
                Ok(launched) => {
                    left -= launched.len() as u32;
                    outcome.launched.extend(launched);
                }
                Err(code) => record_dry(ctx, &o, &code, &mut outcome),
            }
        }
    }
    if outcome.launched.is_empty() {
        let tried: Vec<String> = outcome.failed_offerings.iter().map(|(o, c)| format!("{o} ({c})")).collect();
        bail!(
            "no capacity for node type `{node_type}`: every offering failed [{}]; add instance types or zones to its node_config, or retry later",
            tried.join(", ")
        );
    }
    let n = outcome.launched.len();
    outcome.messages.push(format!("launched {n} of {count}: {}", outcome.launched.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ")));
    Ok(outcome)
}

fn skip_dry(ctx: &AwsContext, offerings: Vec<Offering>, outcome: &mut LaunchOutcome) -> Vec<Offering> {
    let cache = ctx.capacity.lock().expect("capacity cache lock");
    offerings
        .into_iter()
        .filter(|o| match cache.get(o) {
            Some(at) if at.elapsed() < CAPACITY_CACHE_TTL => {
                outcome.messages.push(format!("skipping {o}: no capacity {} s ago", at.elapsed().as_secs()));
                false
            }
            _ => true,
        })
        .collect()
}

fn record_dry(ctx: &AwsContext, o: &Offering, code: &str, outcome: &mut LaunchOutcome) {
    outcome.messages.push(format!("{o}: {code}; trying the next offering"));
    outcome.failed_offerings.push((o.clone(), code.to_string()));
    ctx.capacity.lock().expect("capacity cache lock").insert(o.clone(), Instant::now());
}

/// CreateFleet `instant` for spot capacity; returns how many launched.
async fn spot_fleet(ctx: &AwsContext, req: &Request<'_>, offerings: Vec<Offering>, count: u32, outcome: &mut LaunchOutcome) -> Result<u32> {
    let mut usable = Vec::new();
    for o in offerings {
        match ctx.faults.launch_error(&o) {
            Some(code) => record_dry(ctx, &o, &code, outcome),
            None => usable.push(o),
        }
    }
    if usable.is_empty() {
        return Ok(0);
    }
    let overrides: Vec<FleetLaunchTemplateOverridesRequest> = usable
        .iter()
        .map(|o| FleetLaunchTemplateOverridesRequest::builder().instance_type(InstanceType::from(o.instance_type.as_str())).subnet_id(&o.subnet_id).build())
        .collect();
    let described: Vec<String> = usable.iter().map(|o| format!("{}@{}", o.instance_type, o.subnet_id)).collect();
    let version = req.lt_version.to_string();
    let mut attempt = 0;
    let res = loop {
        let count_s = count.to_string();
        let attempt_s = attempt.to_string();
        let token = idempotency_token(&[
            ctx.cluster(), req.node_type, "spot", &req.generation, &count_s, &version, &described.join(","), &attempt_s,
        ]);
        let res = ctx
            .ec2
            .create_fleet()
            .r#type(FleetType::Instant)
            .client_token(token)
            .launch_template_configs(
                FleetLaunchTemplateConfigRequest::builder()
                    .launch_template_specification(
                        FleetLaunchTemplateSpecificationRequest::builder().launch_template_id(&req.lt_id).version(&version).build(),
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
            .spot_options(SpotOptionsRequest::builder().allocation_strategy(SpotAllocationStrategy::PriceCapacityOptimized).build())
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(req.tags.clone())).build())
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Fleet).set_tags(Some(req.tags.clone())).build())
            .send()
            .await
            .map_err(aws_err("ec2:CreateFleet"))?;
        let propagating = res.instances().is_empty()
            && !res.errors().is_empty()
            && res.errors().iter().all(|e| is_profile_propagation(e.error_code(), e.error_message()));
        if propagating && attempt < PROFILE_PROPAGATION_RETRIES {
            attempt += 1;
            tokio::time::sleep(PROFILE_PROPAGATION_DELAY).await;
            continue;
        }
        break res;
    };
    let zone_of = |subnet: Option<&str>| usable.iter().find(|o| Some(o.subnet_id.as_str()) == subnet).map(|o| o.zone.clone()).unwrap_or_default();
    let mut got = 0;
    for i in res.instances() {
        let ov = i.launch_template_and_overrides().and_then(|l| l.overrides());
        for id in i.instance_ids() {
            outcome.launched.push(LaunchedNode {
                id: id.clone(),
                market: Market::Spot,
                instance_type: i.instance_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
                zone: zone_of(ov.and_then(|o| o.subnet_id())),
            });
            got += 1;
        }
    }
    for e in res.errors() {
        let code = e.error_code().unwrap_or("UnknownError");
        let ov = e.launch_template_and_overrides().and_then(|l| l.overrides());
        let o = Offering {
            market: Market::Spot,
            instance_type: ov.and_then(|o| o.instance_type()).map(|t| t.as_str().to_string()).unwrap_or_default(),
            subnet_id: ov.and_then(|o| o.subnet_id()).unwrap_or_default().to_string(),
            zone: zone_of(ov.and_then(|o| o.subnet_id())),
        };
        if is_capacity_code(code) {
            record_dry(ctx, &o, code, outcome);
        } else if got == 0 {
            bail!("ec2:CreateFleet for node type `{}` failed on {o}: {code}: {}", req.node_type, e.error_message().unwrap_or_default());
        } else {
            outcome.messages.push(format!("{o}: {code}: {}", e.error_message().unwrap_or_default()));
        }
    }
    Ok(got.min(count))
}

/// RunInstances for one on-demand offering. `Ok(Err(code))` is "no capacity here".
async fn run_instances(ctx: &AwsContext, req: &Request<'_>, o: &Offering, count: u32) -> Result<std::result::Result<Vec<LaunchedNode>, String>> {
    if let Some(code) = ctx.faults.launch_error(o) {
        return Ok(Err(code));
    }
    let version = req.lt_version.to_string();
    let mut attempt = 0;
    loop {
        let count_s = count.to_string();
        let attempt_s = attempt.to_string();
        let token = idempotency_token(&[
            ctx.cluster(), req.node_type, "on-demand", &req.generation, &count_s, &version, &o.instance_type, &o.subnet_id, &attempt_s,
        ]);
        let res = ctx
            .ec2
            .run_instances()
            .launch_template(LaunchTemplateSpecification::builder().launch_template_id(&req.lt_id).version(&version).build())
            .instance_type(InstanceType::from(o.instance_type.as_str()))
            .min_count(1)
            .max_count(count as i32)
            .client_token(token)
            // Explicit, not only in the launch template: real AWS honours both, and moto
            // (whose CFN subnets always map public IPs) only this one.
            .network_interfaces(
                InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .subnet_id(&o.subnet_id)
                    .set_groups(Some(req.security_groups.clone()))
                    .associate_public_ip_address(false)
                    .delete_on_termination(true)
                    .build(),
            )
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Instance).set_tags(Some(req.tags.clone())).build())
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::Volume).set_tags(Some(req.tags.clone())).build())
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
                        instance_type: o.instance_type.clone(),
                        zone: o.zone.clone(),
                    })
                    .collect()))
            }
            Err(e) if e.code().is_some_and(is_capacity_code) => return Ok(Err(e.code().unwrap_or_default().to_string())),
            Err(e) if is_profile_propagation(e.code(), e.message()) && attempt < PROFILE_PROPAGATION_RETRIES => {
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
        match ctx.ec2.terminate_instances().set_instance_ids(Some(chunk.to_vec())).send().await {
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
        .map_err(|e| anyhow::anyhow!("instances {} did not terminate within {} s: {}", ids.join(", "), max_wait.as_secs(), aws_smithy_types::error::display::DisplayErrorContext(&e)))?;
    Ok(())
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

    #[test]
    fn shortage_matches_offerings() {
        let s = CapacityShortage::new().offering(Some(Market::Spot), Some("r7i.2xlarge"), None);
        let o = |m, t: &str| Offering { market: m, instance_type: t.into(), subnet_id: "s".into(), zone: "z".into() };
        assert_eq!(s.launch_error(&o(Market::Spot, "r7i.2xlarge")).as_deref(), Some("InsufficientInstanceCapacity"));
        assert_eq!(s.launch_error(&o(Market::OnDemand, "r7i.2xlarge")), None);
        assert_eq!(s.launch_error(&o(Market::Spot, "m7i.large")), None);
        assert_eq!(o(Market::Spot, "r7i.2xlarge").to_string(), "spot r7i.2xlarge in z");
    }
}
