//! After a destroy: look again, by tag, for anything of the cluster that is still there
//! (other than what the destroy keeps on purpose), so nothing is left untracked.

use std::collections::BTreeMap;

use anyhow::Result;

use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::Filter;

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::names::TAG_CLUSTER;
use crate::aws::stages::state::Desired;
use crate::aws::stages::live;

pub async fn leftovers(ctx: &AwsContext, desired: &Desired) -> Result<BTreeMap<String, Vec<String>>> {
    let (stacks, instances, lts, queues) =
        tokio::try_join!(live::stacks(ctx), live::instances(ctx, None), live::launch_templates(ctx), live::queues(ctx))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |k: &str, v: String| out.entry(k.to_string()).or_default().push(v);
    for (kind, s) in &stacks {
        if !desired.retained.contains(kind) {
            add("stacks", format!("{} ({})", s.name, s.status));
        }
    }
    for i in instances.iter().filter(|i| !i.is_gone()) {
        add("instances", format!("{} ({})", i.id, i.state));
    }
    for l in lts.values() {
        add("launch templates", l.name.clone());
    }
    for q in queues.keys() {
        add("queues", q.clone());
    }
    let vpcs = ctx
        .ec2
        .describe_vpcs()
        .filters(live::tag_filter(crate::aws::names::TAG_CLUSTER, ctx.cluster()))
        .send()
        .await
        .map_err(crate::aws::errors::aws_err("ec2:DescribeVpcs"))?;
    for v in vpcs.vpcs().iter().filter_map(|v| v.vpc_id()) {
        add("VPCs", v.to_string());
    }
    // In an existing VPC, fleetform's groups are all it ever made there.
    let sgs = ctx
        .ec2
        .describe_security_groups()
        .filters(live::tag_filter(crate::aws::names::TAG_CLUSTER, ctx.cluster()))
        .send()
        .await
        .map_err(crate::aws::errors::aws_err("ec2:DescribeSecurityGroups"))?;
    for g in sgs.security_groups().iter().filter_map(|g| g.group_id()) {
        add("security groups", g.to_string());
    }
    Ok(out)
}

/// Network resources tagged for the cluster that no stack owns any more (a deletion that
/// lost its stack record half-way — moto does that when it cannot delete a route table —
/// or a stack deleted by hand with resources retained), deleted in dependency order.
/// Returns what was removed. Nothing to do, and no calls beyond one DescribeVpcs, when
/// CloudFormation deleted everything.
///
/// An existing VPC (`network.vpc_id`) is never swept, tagged or not: only the security
/// groups tagged for the cluster inside it are (see [`orphaned_groups`]), so the user's
/// VPC, subnets, route tables, NAT and groups stay whatever happened to the stack.
pub async fn orphaned_network(ctx: &AwsContext) -> Result<Vec<String>> {
    if let Some(e) = ctx.spec.network.existing() {
        return orphaned_groups(ctx, &e.vpc_id).await;
    }
    let vpcs = ctx.ec2.describe_vpcs().filters(live::tag_filter(TAG_CLUSTER, ctx.cluster())).send().await.map_err(aws_err("ec2:DescribeVpcs"))?;
    let mut removed = Vec::new();
    for vpc in vpcs.vpcs().iter().filter_map(|v| v.vpc_id()) {
        if !tagged_for(v_tags(&vpcs, vpc), ctx.cluster()) {
            continue;
        }
        nat_gateways(ctx, vpc, &mut removed).await?;
        routes(ctx, vpc, &mut removed).await?;
        subnets(ctx, vpc, &mut removed).await?;
        security_groups(ctx, vpc, &mut removed).await?;
        ctx.ec2.delete_vpc().vpc_id(vpc).send().await.map_err(aws_err("ec2:DeleteVpc"))?;
        removed.push(vpc.to_string());
    }
    Ok(removed)
}

fn in_vpc(vpc: &str) -> Filter {
    Filter::builder().name("vpc-id").values(vpc).build()
}

/// The VPC's NAT gateways (waited for: their addresses stay in use until they are gone),
/// then the cluster's elastic IPs.
async fn nat_gateways(ctx: &AwsContext, vpc: &str, removed: &mut Vec<String>) -> Result<()> {
    let nats = ctx.ec2.describe_nat_gateways().filter(in_vpc(vpc)).send().await.map_err(aws_err("ec2:DescribeNatGateways"))?;
    let nat_ids: Vec<String> = nats
        .nat_gateways()
        .iter()
        .filter(|n| n.state().is_none_or(|s| s.as_str() != "deleted"))
        .filter_map(|n| n.nat_gateway_id().map(str::to_string))
        .collect();
    for id in &nat_ids {
        ctx.ec2.delete_nat_gateway().nat_gateway_id(id).send().await.map_err(aws_err("ec2:DeleteNatGateway"))?;
        removed.push(id.clone());
    }
    if !nat_ids.is_empty() {
        let _ = ctx.ec2.wait_until_nat_gateway_deleted().set_nat_gateway_ids(Some(nat_ids)).wait(std::time::Duration::from_secs(600)).await;
    }
    let eips = ctx.ec2.describe_addresses().filters(live::tag_filter(TAG_CLUSTER, ctx.cluster())).send().await.map_err(aws_err("ec2:DescribeAddresses"))?;
    for a in eips.addresses() {
        if let Some(id) = a.allocation_id() {
            ctx.ec2.release_address().allocation_id(id).send().await.map_err(aws_err("ec2:ReleaseAddress"))?;
            removed.push(id.to_string());
        }
    }
    Ok(())
}

/// The S3 gateway endpoint, the route tables but the main one, the internet gateway.
async fn routes(ctx: &AwsContext, vpc: &str, removed: &mut Vec<String>) -> Result<()> {
    // The S3 gateway endpoint: a VPC with an endpoint cannot be deleted, and it names
    // the private route table. CloudFormation deletes it with the stack on AWS; moto
    // does not (its VPCEndpoint has no CloudFormation delete).
    let endpoints = ctx.ec2.describe_vpc_endpoints().filters(in_vpc(vpc)).send().await.map_err(aws_err("ec2:DescribeVpcEndpoints"))?;
    let endpoint_ids: Vec<String> = endpoints
        .vpc_endpoints()
        .iter()
        .filter(|e| e.state().is_none_or(|s| !matches!(s.as_str().to_ascii_lowercase().as_str(), "deleted" | "deleting")))
        .filter_map(|e| e.vpc_endpoint_id().map(str::to_string))
        .collect();
    if !endpoint_ids.is_empty() {
        ctx.ec2.delete_vpc_endpoints().set_vpc_endpoint_ids(Some(endpoint_ids.clone())).send().await.map_err(aws_err("ec2:DeleteVpcEndpoints"))?;
        removed.extend(endpoint_ids);
    }
    let tables = ctx.ec2.describe_route_tables().filters(in_vpc(vpc)).send().await.map_err(aws_err("ec2:DescribeRouteTables"))?;
    for t in tables.route_tables() {
        let main = t.associations().iter().any(|a| a.main() == Some(true));
        for a in t.associations().iter().filter(|a| a.main() != Some(true)) {
            if let Some(id) = a.route_table_association_id() {
                ctx.ec2.disassociate_route_table().association_id(id).send().await.map_err(aws_err("ec2:DisassociateRouteTable"))?;
            }
        }
        if let (false, Some(id)) = (main, t.route_table_id()) {
            ctx.ec2.delete_route_table().route_table_id(id).send().await.map_err(aws_err("ec2:DeleteRouteTable"))?;
            removed.push(id.to_string());
        }
    }
    let igws = ctx.ec2.describe_internet_gateways().filters(Filter::builder().name("attachment.vpc-id").values(vpc).build()).send().await.map_err(aws_err("ec2:DescribeInternetGateways"))?;
    for g in igws.internet_gateways().iter().filter_map(|g| g.internet_gateway_id()) {
        ctx.ec2.detach_internet_gateway().internet_gateway_id(g).vpc_id(vpc).send().await.map_err(aws_err("ec2:DetachInternetGateway"))?;
        ctx.ec2.delete_internet_gateway().internet_gateway_id(g).send().await.map_err(aws_err("ec2:DeleteInternetGateway"))?;
        removed.push(g.to_string());
    }
    Ok(())
}

/// Detached network interfaces, then the subnets.
async fn subnets(ctx: &AwsContext, vpc: &str, removed: &mut Vec<String>) -> Result<()> {
    let enis = ctx.ec2.describe_network_interfaces().filters(in_vpc(vpc)).send().await.map_err(aws_err("ec2:DescribeNetworkInterfaces"))?;
    for e in enis.network_interfaces().iter().filter(|e| e.attachment().is_none()).filter_map(|e| e.network_interface_id()) {
        ctx.ec2.delete_network_interface().network_interface_id(e).send().await.map_err(aws_err("ec2:DeleteNetworkInterface"))?;
    }
    let subnets = ctx.ec2.describe_subnets().filters(in_vpc(vpc)).send().await.map_err(aws_err("ec2:DescribeSubnets"))?;
    for s in subnets.subnets().iter().filter_map(|s| s.subnet_id()) {
        ctx.ec2.delete_subnet().subnet_id(s).send().await.map_err(aws_err("ec2:DeleteSubnet"))?;
        removed.push(s.to_string());
    }
    Ok(())
}

/// The security groups but the default one.
async fn security_groups(ctx: &AwsContext, vpc: &str, removed: &mut Vec<String>) -> Result<()> {
    // Groups reference each other (SSH from the endpoint's group): drop the rules first.
    let sgs = ctx.ec2.describe_security_groups().filters(in_vpc(vpc)).send().await.map_err(aws_err("ec2:DescribeSecurityGroups"))?;
    let groups: Vec<_> = sgs.security_groups().iter().filter(|g| g.group_name() != Some("default")).collect();
    for g in &groups {
        if !g.ip_permissions().is_empty() {
            ctx.ec2
                .revoke_security_group_ingress()
                .set_group_id(g.group_id().map(str::to_string))
                .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                .send()
                .await
                .map_err(aws_err("ec2:RevokeSecurityGroupIngress"))?;
        }
    }
    for g in groups.iter().filter_map(|g| g.group_id()) {
        ctx.ec2.delete_security_group().group_id(g).send().await.map_err(aws_err("ec2:DeleteSecurityGroup"))?;
        removed.push(g.to_string());
    }
    Ok(())
}

fn v_tags<'a>(vpcs: &'a aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsOutput, id: &str) -> &'a [aws_sdk_ec2::types::Tag] {
    vpcs.vpcs().iter().find(|v| v.vpc_id() == Some(id)).map(|v| v.tags()).unwrap_or_default()
}

/// Belt and braces over the tag filter: a VPC is swept only when it carries the tag.
fn tagged_for(tags: &[aws_sdk_ec2::types::Tag], cluster: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(crate::aws::names::TAG_CLUSTER) && t.value() == Some(cluster))
}

/// In an existing VPC: the security groups tagged for the cluster that the network stack
/// left behind (their SSH rules first, as they reference each other). Untagged groups —
/// the user's — are never looked at.
pub async fn orphaned_groups(ctx: &AwsContext, vpc: &str) -> Result<Vec<String>> {
    use aws_sdk_ec2::types::Filter;
    use crate::aws::errors::aws_err;
    use crate::aws::names::TAG_CLUSTER;

    let sgs = ctx
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .filters(live::tag_filter(TAG_CLUSTER, ctx.cluster()))
        .send()
        .await
        .map_err(aws_err("ec2:DescribeSecurityGroups"))?;
    let groups: Vec<_> = sgs.security_groups().iter().filter(|g| tagged_for(g.tags(), ctx.cluster()) && g.group_name() != Some("default")).collect();
    for g in &groups {
        if !g.ip_permissions().is_empty() {
            ctx.ec2
                .revoke_security_group_ingress()
                .set_group_id(g.group_id().map(str::to_string))
                .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                .send()
                .await
                .map_err(aws_err("ec2:RevokeSecurityGroupIngress"))?;
        }
    }
    let mut removed = Vec::new();
    for id in groups.iter().filter_map(|g| g.group_id()) {
        ctx.ec2.delete_security_group().group_id(id).send().await.map_err(aws_err("ec2:DeleteSecurityGroup"))?;
        removed.push(id.to_string());
    }
    Ok(removed)
}
