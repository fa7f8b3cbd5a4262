//! Launching and terminating nodes (docs/DESIGN.md, decisions 4 and 8): the EC2 side of the
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

/// RunInstances, one on-demand offering in one subnet at a time.
mod on_demand;
/// CreateFleet `instant` over every spot offering of the launch.
mod spot_fleet;

use std::time::Duration;

use anyhow::{Context as _, Result};
use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use fleetform_core::spec::Market;

use self::on_demand::run_instances;
use self::spot_fleet::spot_fleet;
use crate::aws::context::AwsContext;
use crate::aws::errors::{aws_err, is_quota_code, quota_advice};
use crate::aws::resources::launch_templates::{self, sha256_hex};
use crate::aws::names;
use crate::aws::stages::live;
use crate::aws::resources::placement::NetworkInfo;
use crate::autoscaler::provider::LaunchFailure;
use crate::autoscaler::{
    CapacityError, FailedOffering, Launch, LaunchReport, Offering,
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
