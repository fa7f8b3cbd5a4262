//! The Ray file's subnets and security groups → fleetform's `network:` block.
//!
//! fleetform either creates the VPC (`vpc_cidr`, `public_subnets`, `private_subnets`) or,
//! with bring-your-own network, uses an existing one (`vpc_id`, `private_subnet_ids`,
//! `security_group_ids`). The second form is not in the spec on this branch yet, so the
//! Ray file's ids are written as a commented-out block and the imported cluster creates
//! its own VPC. When the spec accepts it, set [`SPEC_HAS_BYO_NETWORK`] to true.

use fleetform_core::diag::YamlPath;

use super::emit::{comment, flow_list};
use super::model::{ByoNetwork, Imported, Sourced};
use super::ray::RayCluster;
use super::Note;

/// Does the cluster spec accept `network: {vpc_id, private_subnet_ids, security_group_ids}`?
pub const SPEC_HAS_BYO_NETWORK: bool = false;

/// fleetform's own VPC: the first private subnet of its default layout and the next /20s,
/// one per availability zone (validate wants no more private subnets than zones).
const PRIVATE_SUBNET_CIDRS: &[&str] = &[
    "10.0.16.0/20", "10.0.32.0/20", "10.0.48.0/20", "10.0.64.0/20", "10.0.80.0/20", "10.0.96.0/20",
];

/// Every SubnetId/SubnetIds and SecurityGroupIds of the node types, first occurrence first.
pub fn collect(ray: &RayCluster, notes: &mut Vec<Note>) -> Option<ByoNetwork> {
    let mut net = ByoNetwork::default();
    let push = |list: &mut Vec<Sourced<String>>, id: &str, from: YamlPath| {
        if !list.iter().any(|s| s.value == id) {
            list.push(Sourced::new(id.to_string(), format!("from {from}")));
        }
    };
    for (name, t) in &ray.available_node_types {
        let nc = YamlPath::root().key("available_node_types").key(name).key("node_config");
        if let Some(s) = &t.node_config.subnet_id {
            push(&mut net.subnet_ids, s, nc.key("SubnetId"));
        }
        for (i, s) in t.node_config.subnet_ids.iter().enumerate() {
            push(&mut net.subnet_ids, s, nc.key("SubnetIds").index(i));
        }
        for (i, g) in t.node_config.security_group_ids.iter().enumerate() {
            push(&mut net.security_group_ids, g, nc.key("SecurityGroupIds").index(i));
        }
    }
    if net.subnet_ids.is_empty() && net.security_group_ids.is_empty() {
        return None;
    }
    let first = net.subnet_ids.first().or(net.security_group_ids.first()).map(|s| s.from.trim_start_matches("from ").to_string());
    let path = first.map(|p| YamlPath::parse(&p)).unwrap_or_default();
    let message = if SPEC_HAS_BYO_NETWORK {
        "SubnetId/SecurityGroupIds became `network.private_subnet_ids`/`security_group_ids`: fill in `network.vpc_id`"
    } else {
        "SubnetId/SecurityGroupIds are written as a commented-out `network:` block: this fleetform does not take an \
         existing VPC yet, so the imported cluster creates its own VPC, subnets and security groups"
    };
    notes.push(Note { path, message: message.into() });
    Some(net)
}

/// The `network:` block (possibly empty), ending with a blank line when not empty.
pub fn block(i: &Imported) -> String {
    match &i.byo_network {
        Some(net) if SPEC_HAS_BYO_NETWORK => byo_lines(net, ""),
        byo => {
            let mut s = created_lines(i);
            if let Some(net) = byo {
                s.push_str("# The Ray file's network. fleetform cannot use an existing VPC yet: until it can, it\n");
                s.push_str("# creates its own (above). Security groups would be added to every node.\n");
                s.push_str(&byo_lines(net, "# "));
            }
            s
        }
    }
}

fn created_lines(i: &Imported) -> String {
    let Some(zones) = &i.zones else { return String::new() };
    let n = zones.value.len().min(PRIVATE_SUBNET_CIDRS.len());
    let cidrs: Vec<String> = PRIVATE_SUBNET_CIDRS[..n].iter().map(|s| s.to_string()).collect();
    format!(
        "network:\n  private_subnets: {}{}\n\n",
        flow_list(&cidrs),
        comment(&format!("fleetform creates the VPC: one private subnet per availability zone ({n})"))
    )
}

fn byo_lines(net: &ByoNetwork, prefix: &str) -> String {
    let mut s = format!("{prefix}network:\n");
    let first = net.subnet_ids.first().map(|s| s.value.as_str()).unwrap_or("one of its subnets");
    s.push_str(&format!("{prefix}  vpc_id: \"<FILL IN: the VPC of {first}>\"\n"));
    for (key, list) in [("private_subnet_ids", &net.subnet_ids), ("security_group_ids", &net.security_group_ids)] {
        if list.is_empty() {
            continue;
        }
        s.push_str(&format!("{prefix}  {key}:\n"));
        for id in list {
            s.push_str(&format!("{prefix}    - {}{}\n", id.value, comment(&id.from)));
        }
    }
    s.push('\n');
    s
}
