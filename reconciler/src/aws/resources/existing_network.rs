//! Bring your own VPC (`network.vpc_id`): what fleetform checks at plan time before it
//! puts nodes in someone else's network. [`check`] is a pure function over observed data
//! (unit-tested without AWS); [`observe`] is the thin layer that reads it: one
//! DescribeVpcs, DescribeSubnets, DescribeRouteTables, DescribeVpcEndpoints,
//! DescribeNatGateways, DescribeInstanceConnectEndpoints and (with `security_group_ids`)
//! DescribeSecurityGroups.
//!
//! Rules, per private subnet: it is in the VPC; its route table (the explicit association,
//! else the VPC's main table) has no `0.0.0.0/0` route to an internet gateway; it has a
//! way out: a `0.0.0.0/0` route to a NAT gateway, or to another target fleetform cannot
//! see past (transit gateway, NAT instance, firewall; stated in a note), or else the VPC
//! endpoints `com.amazonaws.<region>.s3` (Gateway, on that route table) and `...sqs`
//! (Interface, private DNS on). A subnet with none of these is a plan error. A table
//! whose S3 traffic would go through a NAT gateway, for lack of the S3 gateway endpoint,
//! gets a note with the cost (fleetform never changes the user's route tables). The
//! subnets' zones are the cluster's zones. The VPC's Instance Connect Endpoint: see
//! [`connect_endpoint`].

mod connect_endpoint;
pub use connect_endpoint::{ConnectEndpoint, ConnectEndpoints, ReusedEndpoint};

use std::collections::BTreeSet;

use anyhow::Result;
use aws_sdk_ec2::types::Filter;

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;

/// What the spec asks for.
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub region: String,
    pub vpc_id: String,
    pub private_subnet_ids: Vec<String>,
    pub public_subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
    /// `provider.availability_zones` (empty: the subnets decide).
    pub availability_zones: Vec<String>,
    /// `network.instance_connect_endpoint`.
    pub instance_connect_endpoint: bool,
    /// This cluster's network stack, which owns the endpoint it created earlier.
    pub network_stack: String,
}

impl Wanted {
    pub fn from_spec(spec: &fleetform_core::ClusterSpec, region: &str) -> Option<Wanted> {
        let e = spec.network.existing()?;
        Some(Wanted {
            region: region.to_string(),
            vpc_id: e.vpc_id,
            private_subnet_ids: e.private_subnet_ids,
            public_subnet_ids: e.public_subnet_ids,
            security_group_ids: e.security_group_ids,
            availability_zones: spec.provider.availability_zones.clone(),
            instance_connect_endpoint: spec.network.instance_connect_endpoint,
            network_stack: crate::aws::names::StackKind::Network.stack_name(&spec.cluster_name),
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub zone: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Route {
    pub destination: Option<String>,
    /// `igw-...`, `vpce-...`, `local`, ...
    pub gateway_id: Option<String>,
    pub nat_gateway_id: Option<String>,
    /// Any other target (`tgw-...`, `eni-...`, `i-...`, `pcx-...`, ...).
    pub other_target: Option<String>,
    /// The target is gone (route state `blackhole`).
    pub blackhole: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouteTable {
    pub id: String,
    pub main: bool,
    /// Subnets explicitly associated with the table.
    pub subnets: Vec<String>,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub id: String,
    pub service: String,
    /// `Gateway` or `Interface`.
    pub kind: String,
    pub state: String,
    pub route_table_ids: Vec<String>,
    pub private_dns: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NatGateway {
    pub id: String,
    pub state: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SecurityGroup {
    pub id: String,
    pub vpc_id: String,
}

/// What AWS has, as plain data. Route tables, endpoints and NAT gateways are the VPC's;
/// subnets and groups are the ones the spec names, wherever they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub vpc_exists: bool,
    pub subnets: Vec<Subnet>,
    pub route_tables: Vec<RouteTable>,
    pub endpoints: Vec<Endpoint>,
    pub nat_gateways: Vec<NatGateway>,
    pub security_groups: Vec<SecurityGroup>,
    pub connect_endpoints: ConnectEndpoints,
}

/// The outcome: errors stop the plan (each names the id and the fix); the summary and
/// notes are stated with the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub errors: Vec<String>,
    /// `network: using existing vpc-... (subnets subnet-a private via nat-..., ...)`.
    pub summary: String,
    pub notes: Vec<String>,
    /// (subnet, zone) of each private subnet, in the spec's order.
    pub zones: Vec<(String, String)>,
    /// The VPC's Instance Connect Endpoint, when fleetform uses one it does not own.
    pub reuse_endpoint: Option<ReusedEndpoint>,
}

const DEFAULT_ROUTE: &str = "0.0.0.0/0";

fn gone(state: &str) -> bool {
    matches!(state, "deleted" | "deleting" | "failed" | "rejected" | "expired")
}

/// The route table a subnet uses: its explicit association, else the VPC's main table.
fn table_of<'a>(o: &'a Observed, subnet: &str) -> Option<(&'a RouteTable, bool)> {
    o.route_tables
        .iter()
        .find(|t| t.subnets.iter().any(|s| s == subnet))
        .map(|t| (t, true))
        .or_else(|| o.route_tables.iter().find(|t| t.main).map(|t| (t, false)))
}

fn default_route(t: &RouteTable) -> Option<&Route> {
    t.routes.iter().find(|r| r.destination.as_deref() == Some(DEFAULT_ROUTE))
}

/// How a private subnet reaches S3 and SQS, or why it does not.
enum Reach {
    /// A default route to `via`: a NAT gateway (`nat`), or another target fleetform
    /// cannot see past.
    Out { via: String, nat: bool },
    Endpoints,
    No(String),
}

/// The live Gateway endpoint for S3 on table `t`, if any.
fn s3_gateway<'a>(w: &Wanted, o: &'a Observed, t: &RouteTable) -> Option<&'a Endpoint> {
    let s3 = format!("com.amazonaws.{}.s3", w.region);
    o.endpoints.iter().find(|e| {
        !gone(&e.state.to_ascii_lowercase()) && e.service == s3 && e.kind.eq_ignore_ascii_case("gateway") && e.route_table_ids.contains(&t.id)
    })
}

fn reach(w: &Wanted, o: &Observed, t: &RouteTable, table_words: &str) -> Reach {
    if let Some(r) = default_route(t).filter(|r| r.blackhole) {
        let target = r.nat_gateway_id.as_ref().or(r.other_target.as_ref()).or(r.gateway_id.as_ref()).map(String::as_str).unwrap_or("its target");
        return Reach::No(format!(
            "has no way out: {table_words} sends 0.0.0.0/0 to {target}, which no longer exists (a blackhole route): point the route at a NAT gateway of the VPC"
        ));
    }
    if let Some(target) = default_route(t).and_then(|r| r.other_target.clone()) {
        return Reach::Out { via: target, nat: false };
    }
    if let Some(nat) = default_route(t).and_then(|r| r.nat_gateway_id.clone()) {
        return match o.nat_gateways.iter().find(|n| n.id == nat) {
            Some(n) if !gone(&n.state) => Reach::Out { via: nat, nat: true },
            Some(n) => Reach::No(format!(
                "cannot reach S3 and SQS: {table_words} sends 0.0.0.0/0 to the NAT gateway {nat}, which is {}: create a NAT gateway in a public subnet and point the route at it",
                n.state
            )),
            None => Reach::No(format!(
                "cannot reach S3 and SQS: {table_words} sends 0.0.0.0/0 to the NAT gateway {nat}, which does not exist in the VPC: point the route at a NAT gateway of the VPC"
            )),
        };
    }
    let s3 = format!("com.amazonaws.{}.s3", w.region);
    let sqs = format!("com.amazonaws.{}.sqs", w.region);
    let live = |e: &&Endpoint| !gone(&e.state.to_ascii_lowercase());
    let s3_ok = s3_gateway(w, o, t).is_some();
    let sqs_ep: Vec<&Endpoint> = o.endpoints.iter().filter(live).filter(|e| e.service == sqs && e.kind.eq_ignore_ascii_case("interface")).collect();
    let sqs_ok = sqs_ep.iter().any(|e| e.private_dns);
    if s3_ok && sqs_ok {
        return Reach::Endpoints;
    }
    let mut missing = Vec::new();
    if !s3_ok {
        missing.push(format!("a Gateway endpoint {s3} on {}", t.id));
    }
    if !sqs_ok {
        if sqs_ep.is_empty() {
            missing.push(format!("an Interface endpoint {sqs} with private DNS"));
        } else {
            missing.push(format!("private DNS on the Interface endpoint {} ({sqs})", sqs_ep[0].id));
        }
    }
    let what = match (s3_ok, sqs_ok) {
        (false, false) => "S3 and SQS",
        (false, true) => "S3",
        _ => "SQS",
    };
    Reach::No(format!(
        "cannot reach {what}: {table_words} has no 0.0.0.0/0 route to a NAT gateway and the VPC lacks {}; add a 0.0.0.0/0 route to a NAT gateway, or create {}",
        missing.join(" and "),
        if missing.len() == 1 { "it" } else { "them" }
    ))
}

/// What the private subnets' routes say, gathered for the notes and the summary that
/// follow the per-subnet errors.
#[derive(Default)]
struct Paths<'a> {
    /// How each private subnet reaches out ("subnet-1 private via nat-1"), for the summary.
    ways: Vec<String>,
    /// Subnets without a NAT route (VPC endpoints only).
    no_nat: Vec<&'a str>,
    /// Subnets whose default route goes to a target fleetform cannot see past.
    unseen: Vec<(&'a str, String)>,
    /// Tables whose S3 traffic goes out through a NAT (or another default route).
    s3_through_nat: Vec<&'a str>,
}

/// Check an existing network for fleetform. Pure: same inputs, same report.
pub fn check(w: &Wanted, o: &Observed) -> Report {
    let mut r = Report::default();
    let vpc = &w.vpc_id;
    if !o.vpc_exists {
        r.errors.push(format!(
            "network.vpc_id: {vpc} does not exist in region {} (or this account cannot see it): check the id and the region (`aws ec2 describe-vpcs --vpc-ids {vpc}`)",
            w.region
        ));
    }
    let mut paths = Paths::default();
    for id in &w.private_subnet_ids {
        private_subnet(w, o, id, &mut paths, &mut r);
    }
    route_notes(w, &paths, &mut r);
    if o.vpc_exists {
        connect_endpoint::decide(w, &o.connect_endpoints, &mut r);
    }
    no_nat_note(&paths, &mut r);
    listed_ids(w, o, &mut r);
    listed_zones(w, &mut r);
    r.summary = summary(w, &paths, &r);
    r
}

/// One private subnet: in the VPC, not public, and a way out (NAT or VPC endpoints).
fn private_subnet<'a>(w: &Wanted, o: &'a Observed, id: &'a str, paths: &mut Paths<'a>, r: &mut Report) {
    let vpc = &w.vpc_id;
    let Some(s) = o.subnets.iter().find(|s| s.id == id) else {
        r.errors.push(format!(
            "network.private_subnet_ids: {id} does not exist in region {}: check the id (`aws ec2 describe-subnets --filters Name=vpc-id,Values={vpc}` lists the VPC's subnets)",
            w.region
        ));
        return;
    };
    if s.vpc_id != *vpc {
        r.errors.push(format!("network.private_subnet_ids: {id} is in {}, not in {vpc}: list subnets of {vpc}, or change network.vpc_id", s.vpc_id));
        return;
    }
    r.zones.push((id.to_string(), s.zone.clone()));
    if !o.vpc_exists {
        return;
    }
    let Some((t, explicit)) = table_of(o, id) else {
        r.errors.push(format!("network.private_subnet_ids: {id} has no route table (no association and no main table in {vpc}): associate it with a private route table"));
        return;
    };
    let table_words =
        if explicit { format!("its route table {}", t.id) } else { format!("the VPC's main route table {} (it has no table of its own)", t.id) };
    if let Some(igw) = default_route(t).and_then(|r| r.gateway_id.clone()).filter(|g| g.starts_with("igw-")) {
        r.errors.push(format!(
            "network.private_subnet_ids: {id} is public: {table_words} sends 0.0.0.0/0 to the internet gateway {igw}; nodes must not be reachable from the internet: list a private subnet, or route its 0.0.0.0/0 to a NAT gateway"
        ));
        return;
    }
    match reach(w, o, t, &table_words) {
        Reach::Out { via, nat } => {
            if !nat {
                paths.unseen.push((id, via.clone()));
            }
            match s3_gateway(w, o, t) {
                Some(e) => paths.ways.push(format!("{id} private via {via} (S3 via {})", e.id)),
                None => {
                    paths.ways.push(format!("{id} private via {via}"));
                    if !paths.s3_through_nat.contains(&t.id.as_str()) {
                        paths.s3_through_nat.push(t.id.as_str());
                    }
                }
            }
        }
        Reach::Endpoints => {
            paths.ways.push(format!("{id} private via VPC endpoints"));
            paths.no_nat.push(id);
        }
        Reach::No(why) => r.errors.push(format!("network.private_subnet_ids: {id} {why}")),
    }
}

/// The notes about the private subnets' routes: targets fleetform cannot see past, and S3
/// traffic through a NAT gateway.
fn route_notes(w: &Wanted, paths: &Paths, r: &mut Report) {
    for (id, target) in &paths.unseen {
        r.notes.push(format!(
            "network: {id} sends 0.0.0.0/0 to {target}, not to a NAT gateway: fleetform cannot see past it; nodes there need it to reach \
             S3, SQS and EC2 (and the internet for packages), or they fail at boot"
        ));
    }
    if !paths.s3_through_nat.is_empty() && r.errors.is_empty() {
        let tables = paths.s3_through_nat.join(" ");
        r.notes.push(format!(
            "network: no S3 gateway endpoint on the private route table{} {}: the nodes' S3 traffic (the store, job inputs and outputs) goes \
             through the NAT gateway, which bills every GB it processes (US$0.045/GB in us-east-1 and us-west-2), while a gateway endpoint \
             costs nothing; fleetform does not change your route tables: add one with `aws ec2 create-vpc-endpoint --vpc-id {} \
             --service-name com.amazonaws.{}.s3 --route-table-ids {tables}` (or add the table{} to an existing S3 gateway endpoint)",
            if paths.s3_through_nat.len() == 1 { "" } else { "s" },
            paths.s3_through_nat.join(", "),
            w.vpc_id,
            w.region,
            if paths.s3_through_nat.len() == 1 { "" } else { "s" },
        ));
    }
}

/// The note about subnets with no NAT route.
fn no_nat_note(paths: &Paths, r: &mut Report) {
    if !paths.no_nat.is_empty() {
        r.notes.push(format!(
            "network: {} {} no NAT route: nodes there reach only AWS services with VPC endpoints; the head's autoscaler also needs \
             Interface endpoints for ec2, sts and cloudformation (and ssm for `image: al2023`), and nodes without a dist/ binary build \
             from source on first boot, which needs the internet",
            paths.no_nat.join(", "),
            if paths.no_nat.len() == 1 { "has" } else { "have" }
        ));
    }
}

/// The public subnets and extra security groups the spec lists: they exist, in the VPC.
fn listed_ids(w: &Wanted, o: &Observed, r: &mut Report) {
    let vpc = &w.vpc_id;
    for id in &w.public_subnet_ids {
        match o.subnets.iter().find(|s| s.id == *id) {
            None => r.errors.push(format!("network.public_subnet_ids: {id} does not exist in region {}: check the id, or remove it", w.region)),
            Some(s) if s.vpc_id != *vpc => {
                r.errors.push(format!("network.public_subnet_ids: {id} is in {}, not in {vpc}: list subnets of {vpc}, or remove it", s.vpc_id))
            }
            Some(_) => {}
        }
    }
    for id in &w.security_group_ids {
        match o.security_groups.iter().find(|g| g.id == *id) {
            None => r.errors.push(format!("network.security_group_ids: {id} does not exist in region {}: check the id, or remove it", w.region)),
            Some(g) if g.vpc_id != *vpc => r.errors.push(format!(
                "network.security_group_ids: {id} belongs to {}, not to {vpc}: a node's groups must be in its VPC; list a group of {vpc}",
                g.vpc_id
            )),
            Some(_) => {}
        }
    }
}

/// `provider.availability_zones`, when given, agrees with the private subnets' zones.
fn listed_zones(w: &Wanted, r: &mut Report) {
    // The subnets decide the zones; an explicit list must agree with them.
    if !w.availability_zones.is_empty() {
        let listed: BTreeSet<&str> = w.availability_zones.iter().map(String::as_str).collect();
        for (id, zone) in &r.zones {
            if !listed.contains(zone.as_str()) {
                r.errors.push(format!(
                    "provider.availability_zones: {id} is in {zone}, which is not listed; with an existing VPC the subnets decide the zones: remove provider.availability_zones, or list subnets in those zones"
                ));
            }
        }
        let have: BTreeSet<&str> = r.zones.iter().map(|(_, z)| z.as_str()).collect();
        for z in listed.iter().filter(|z| !have.contains(*z)) {
            if r.zones.len() == w.private_subnet_ids.len() {
                r.errors.push(format!(
                    "provider.availability_zones: {z} is listed but no private subnet is in it; remove it, or add a private subnet of {z} to network.private_subnet_ids"
                ));
            }
        }
    }
}

/// The one-line summary of what the nodes use.
fn summary(w: &Wanted, paths: &Paths, r: &Report) -> String {
    let vpc = &w.vpc_id;
    let zones: BTreeSet<&str> = r.zones.iter().map(|(_, z)| z.as_str()).collect();
    format!(
        "network: using existing {vpc} (subnets {}); nodes launch in {}{}",
        paths.ways.join(", "),
        zones.into_iter().collect::<Vec<_>>().join(", "),
        if w.security_group_ids.is_empty() { String::new() } else { format!("; extra security groups on every node: {}", w.security_group_ids.join(", ")) }
    )
}

fn filter(name: &str, values: &[String]) -> Filter {
    Filter::builder().name(name).set_values(Some(values.to_vec())).build()
}

/// Read what [`check`] needs. Filters, not ids, so that a missing id is an empty answer
/// rather than an error, and everything missing is reported at once.
pub async fn observe(ctx: &AwsContext, w: &Wanted) -> Result<Observed> {
    let vpc = std::slice::from_ref(&w.vpc_id);
    let subnet_ids: Vec<String> = w.private_subnet_ids.iter().chain(&w.public_subnet_ids).cloned().collect();
    let ec2 = &ctx.ec2;
    let (vpcs, subnets, tables, endpoints, nats) = tokio::try_join!(
        async { ec2.describe_vpcs().filters(filter("vpc-id", vpc)).send().await.map_err(aws_err("ec2:DescribeVpcs")) },
        async { ec2.describe_subnets().filters(filter("subnet-id", &subnet_ids)).send().await.map_err(aws_err("ec2:DescribeSubnets")) },
        async {
            let mut pages = ec2.describe_route_tables().filters(filter("vpc-id", vpc)).into_paginator().send();
            let mut out = Vec::new();
            while let Some(p) = pages.next().await {
                out.extend(p.map_err(aws_err("ec2:DescribeRouteTables"))?.route_tables().iter().cloned());
            }
            Ok::<_, anyhow::Error>(out)
        },
        async { ec2.describe_vpc_endpoints().filters(filter("vpc-id", vpc)).send().await.map_err(aws_err("ec2:DescribeVpcEndpoints")) },
        async { ec2.describe_nat_gateways().filter(filter("vpc-id", vpc)).send().await.map_err(aws_err("ec2:DescribeNatGateways")) },
    )?;
    let connect_endpoints = connect_endpoints(ctx, vpc).await;
    let security_groups = if w.security_group_ids.is_empty() {
        Vec::new()
    } else {
        ec2.describe_security_groups()
            .filters(filter("group-id", &w.security_group_ids))
            .send()
            .await
            .map_err(aws_err("ec2:DescribeSecurityGroups"))?
            .security_groups()
            .iter()
            .map(|g| SecurityGroup { id: g.group_id().unwrap_or_default().into(), vpc_id: g.vpc_id().unwrap_or_default().into() })
            .collect()
    };
    Ok(Observed {
        vpc_exists: vpcs.vpcs().iter().any(|v| v.vpc_id() == Some(w.vpc_id.as_str())),
        subnets: subnets
            .subnets()
            .iter()
            .map(|s| Subnet {
                id: s.subnet_id().unwrap_or_default().into(),
                vpc_id: s.vpc_id().unwrap_or_default().into(),
                zone: s.availability_zone().unwrap_or_default().into(),
            })
            .collect(),
        route_tables: tables.iter().map(route_table).collect(),
        endpoints: endpoints.vpc_endpoints().iter().map(endpoint).collect(),
        nat_gateways: nats
            .nat_gateways()
            .iter()
            .map(|n| NatGateway {
                id: n.nat_gateway_id().unwrap_or_default().into(),
                state: n.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            })
            .collect(),
        security_groups,
        connect_endpoints,
    })
}

/// A route table as [`check`] reads it.
fn route_table(t: &aws_sdk_ec2::types::RouteTable) -> RouteTable {
    RouteTable {
        id: t.route_table_id().unwrap_or_default().into(),
        main: t.associations().iter().any(|a| a.main() == Some(true)),
        subnets: t.associations().iter().filter_map(|a| a.subnet_id().map(str::to_string)).collect(),
        routes: t
            .routes()
            .iter()
            .map(|r| Route {
                destination: r.destination_cidr_block().map(str::to_string),
                gateway_id: r.gateway_id().map(str::to_string),
                nat_gateway_id: r.nat_gateway_id().map(str::to_string),
                other_target: other_target(r),
                blackhole: r.state().is_some_and(|s| s.as_str() == "blackhole"),
            })
            .collect(),
    }
}

/// A VPC endpoint as [`check`] reads it.
fn endpoint(e: &aws_sdk_ec2::types::VpcEndpoint) -> Endpoint {
    Endpoint {
        id: e.vpc_endpoint_id().unwrap_or_default().into(),
        service: e.service_name().unwrap_or_default().into(),
        kind: e.vpc_endpoint_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        state: e.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
        route_table_ids: e.route_table_ids().to_vec(),
        private_dns: e.private_dns_enabled().unwrap_or(false),
    }
}

/// A route's target when it is neither an internet gateway, `local`, nor a NAT gateway.
fn other_target(r: &aws_sdk_ec2::types::Route) -> Option<String> {
    let gateway = r.gateway_id().filter(|g| !g.starts_with("igw-") && *g != "local");
    [
        r.transit_gateway_id(),
        r.instance_id(),
        r.network_interface_id(),
        r.vpc_peering_connection_id(),
        r.local_gateway_id(),
        r.carrier_gateway_id(),
        r.core_network_arn(),
        gateway,
    ]
    .into_iter()
    .flatten()
    .next()
    .map(str::to_string)
}

/// The VPC's Instance Connect Endpoints, or why they cannot be listed. Not an error: the
/// plan goes on without them (see `connect_endpoint`). Few attempts, because a failure
/// here costs only a note (moto answers this API with a 500, which the SDK would retry).
async fn connect_endpoints(ctx: &AwsContext, vpc: &[String]) -> ConnectEndpoints {
    let few_retries = aws_sdk_ec2::config::Builder::default().retry_config(aws_smithy_types::retry::RetryConfig::standard().with_max_attempts(2));
    let answer = ctx
        .ec2
        .describe_instance_connect_endpoints()
        .filters(filter("vpc-id", vpc))
        .customize()
        .config_override(few_retries)
        .send()
        .await
        .map_err(aws_err("ec2:DescribeInstanceConnectEndpoints"));
    match answer {
        Err(e) => ConnectEndpoints::Unknown(crate::errors::render(&e)),
        Ok(out) => ConnectEndpoints::Known(
            out.instance_connect_endpoints()
                .iter()
                .map(|e| ConnectEndpoint {
                    id: e.instance_connect_endpoint_id().unwrap_or_default().into(),
                    state: e.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
                    security_group_ids: e.security_group_ids().to_vec(),
                    stack: e.tags().iter().find(|t| t.key() == Some("aws:cloudformation:stack-name")).and_then(|t| t.value()).map(str::to_string),
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
