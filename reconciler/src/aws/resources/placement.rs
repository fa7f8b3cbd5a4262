//! Where nodes launch: the private subnets (with their zones) and the security groups,
//! read from the network stack's outputs.

use anyhow::{Context as _, Result};

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::names::StackKind;
use crate::aws::stages::live;

/// The private subnets and security groups nodes launch into: the one definition for
/// both forms of `network:`. Subnets come from the network stack's `PrivateSubnetIds`
/// output (the subnets it created, or the spec's `private_subnet_ids` in an existing
/// VPC), groups from its outputs plus the spec's `security_group_ids`.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// (subnet id, availability zone), in the spec's order.
    pub subnets: Vec<(String, String)>,
    pub head_security_group: String,
    pub worker_security_group: String,
    /// `network.security_group_ids` (existing VPC only), put on every node.
    pub extra_security_groups: Vec<String>,
}

impl NetworkInfo {
    /// Every group of a node: fleetform's (head or worker) first, then the user's.
    pub fn security_groups(&self, head: bool) -> Vec<String> {
        let own = if head {
            &self.head_security_group
        } else {
            &self.worker_security_group
        };
        std::iter::once(own.clone())
            .chain(self.extra_security_groups.iter().cloned())
            .collect()
    }
}

/// The network stack's subnets (with their zones) and security groups. Outputs only, no
/// template: the head's role may DescribeStacks on this stack and nothing more.
pub async fn network(ctx: &AwsContext) -> Result<NetworkInfo> {
    let name = StackKind::Network.stack_name(ctx.cluster());
    let stack = live::described_stack(ctx, StackKind::Network)
        .await?
        .with_context(|| {
            format!("the network stack {name} does not exist: run `fleetform apply` first")
        })?;
    let out = |k: &str| {
        stack
            .outputs
            .get(k)
            .cloned()
            .with_context(|| format!("stack {name} has no output {k}: run `fleetform apply`"))
    };
    let ids: Vec<String> = out("PrivateSubnetIds")?
        .split(',')
        .map(str::to_string)
        .collect();
    let described = ctx
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids.clone()))
        .send()
        .await
        .map_err(aws_err("ec2:DescribeSubnets"))?;
    let zone_of = |id: &str| {
        described
            .subnets()
            .iter()
            .find(|s| s.subnet_id() == Some(id))
            .and_then(|s| s.availability_zone())
            .unwrap_or_default()
            .to_string()
    };
    Ok(NetworkInfo {
        subnets: ids.iter().map(|id| (id.clone(), zone_of(id))).collect(),
        head_security_group: out("HeadSecurityGroupId")?,
        worker_security_group: out("WorkerSecurityGroupId")?,
        extra_security_groups: ctx.spec.network.security_group_ids.clone(),
    })
}
