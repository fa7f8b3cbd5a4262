//! The VPC's EC2 Instance Connect Endpoint. AWS allows one per VPC (a quota that cannot
//! be raised), so `network-existing.yaml.j2` creating one fails in a VPC that has one:
//! a second cluster in the same VPC, or any VPC whose owners already use the endpoint.
//!
//! Decision: **reuse** an endpoint fleetform does not own, with a note, rather than refuse.
//! Refusing would leave the user two ways out, neither good: drop SSH
//! (`instance_connect_endpoint: false`), or write the rules themselves. Reusing needs only
//! what AWS documents for any endpoint: an inbound rule on the nodes' groups for TCP 22
//! from the endpoint's security group (which works with client IP preservation on or off).
//! The endpoint's own outbound rules are its owner's; fleetform never changes them, and
//! says so. An endpoint being deleted is a plan error (wait, then plan again). When the
//! endpoints cannot be listed (no permission; moto has no such API), the plan goes on as
//! before with a note saying what will fail if the VPC has one.

use super::{Report, Wanted};

/// An endpoint of the VPC, as DescribeInstanceConnectEndpoints reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectEndpoint {
    pub id: String,
    /// `create-complete`, `delete-in-progress`, ...
    pub state: String,
    pub security_group_ids: Vec<String>,
    /// Its `aws:cloudformation:stack-name` tag: the stack that owns it, if any.
    pub stack: Option<String>,
}

/// What the VPC's endpoints are, or why they are not known.
#[derive(Debug, Clone, PartialEq)]
pub enum ConnectEndpoints {
    Known(Vec<ConnectEndpoint>),
    /// The listing failed: the error, as said to the user.
    Unknown(String),
}

impl Default for ConnectEndpoints {
    fn default() -> Self {
        ConnectEndpoints::Known(Vec::new())
    }
}

/// An endpoint fleetform uses but does not own: the network stack then lets its groups
/// reach the nodes on port 22 instead of creating an endpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReusedEndpoint {
    pub id: String,
    pub security_group_ids: Vec<String>,
}

/// States after which the endpoint no longer counts against the quota.
fn gone(state: &str) -> bool {
    matches!(state, "delete-complete" | "create-failed")
}

/// Decide, for `network.instance_connect_endpoint: true`, between creating the endpoint
/// (none in the VPC, or this cluster's own), reusing another one, or stopping the plan.
pub fn decide(w: &Wanted, endpoints: &ConnectEndpoints, r: &mut Report) {
    if !w.instance_connect_endpoint {
        return;
    }
    let vpc = &w.vpc_id;
    let list = match endpoints {
        ConnectEndpoints::Unknown(why) => {
            r.notes.push(format!(
                "network: could not list the EC2 Instance Connect Endpoints of {vpc} ({why}); AWS allows one per VPC, so if {vpc} \
                 already has one, creating this cluster's fails (InstanceConnectEndpoint CREATE_FAILED): then allow \
                 ec2:DescribeInstanceConnectEndpoints to this identity so fleetform can reuse it, or set `network.instance_connect_endpoint: false`"
            ));
            return;
        }
        ConnectEndpoints::Known(list) => list,
    };
    // This cluster's own endpoint (from an earlier apply) stays in the stack as it is.
    let theirs = |e: &&ConnectEndpoint| !gone(&e.state) && e.stack.as_deref() != Some(w.network_stack.as_str());
    let Some(e) = list.iter().find(theirs) else { return };
    if e.state == "delete-in-progress" {
        r.errors.push(format!(
            "network.instance_connect_endpoint: {vpc} has the EC2 Instance Connect Endpoint {}, which is being deleted, and AWS allows one per VPC: \
             wait until it is gone (`aws ec2 describe-instance-connect-endpoints --instance-connect-endpoint-ids {}`), then plan again; \
             or set `network.instance_connect_endpoint: false`",
            e.id, e.id
        ));
        return;
    }
    if e.security_group_ids.is_empty() {
        r.errors.push(format!(
            "network.instance_connect_endpoint: {vpc} already has the EC2 Instance Connect Endpoint {} (AWS allows one per VPC), and it has no \
             security group for the nodes' SSH rule to name: give it one (`aws ec2 modify-instance-connect-endpoint`), or set \
             `network.instance_connect_endpoint: false`",
            e.id
        ));
        return;
    }
    r.notes.push(reuse_note(vpc, e));
    r.reuse_endpoint = Some(ReusedEndpoint { id: e.id.clone(), security_group_ids: e.security_group_ids.clone() });
}

/// The plan's note on a reused endpoint: what fleetform writes, what it leaves to the
/// endpoint's owner, and (another stack's endpoint) the order of destruction.
fn reuse_note(vpc: &str, e: &ConnectEndpoint) -> String {
    let groups = e.security_group_ids.join(", ");
    let owner = match &e.stack {
        Some(stack) => format!(
            "; it belongs to the stack {stack}, which cannot delete {groups} while this cluster's rules name {}: destroy this cluster \
             (or apply it with `network.instance_connect_endpoint: false`) before that stack",
            if e.security_group_ids.len() == 1 { "it" } else { "them" }
        ),
        None => String::new(),
    };
    format!(
        "network: {vpc} already has the EC2 Instance Connect Endpoint {} and AWS allows one per VPC: fleetform uses it instead of creating one, \
         and lets its security group{} {groups} reach the nodes on TCP 22; {} outbound rules must allow TCP 22 to the nodes \
         (fleetform does not change them){owner}",
        e.id,
        if e.security_group_ids.len() == 1 { "" } else { "s" },
        if e.security_group_ids.len() == 1 { "that group's" } else { "those groups'" },
    )
}
