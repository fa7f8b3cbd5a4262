//! The Ray file's subnets and security groups → fleetform's `network:` block.
//!
//! fleetform either creates the VPC (`vpc_cidr`, `public_subnets`, `private_subnets`) or
//! uses an existing one (`vpc_id`, `private_subnet_ids`, `security_group_ids`). A Ray
//! file names subnets but never their VPC, and import works offline, so the existing form
//! is written when the user names the VPC (`--vpc-id`); without it the imported cluster
//! creates its own network and the Ray file's ids are kept as a commented-out block.

use fleetform_core::diag::YamlPath;

use super::yaml::{comment, flow_list};
use super::model::{ByoNetwork, Imported, Sourced};
use super::sources::TypeSource;
use super::Note;

/// fleetform's own VPC: the first private subnet of its default layout and the next /20s,
/// one per availability zone (validate wants no more private subnets than zones).
const PRIVATE_SUBNET_CIDRS: &[&str] = &[
    "10.0.16.0/20", "10.0.32.0/20", "10.0.48.0/20", "10.0.64.0/20", "10.0.80.0/20", "10.0.96.0/20",
];

/// Every SubnetId/SubnetIds and SecurityGroupIds of the node types, first occurrence first.
pub fn collect(types: &[TypeSource]) -> Option<ByoNetwork> {
    let mut net = ByoNetwork::default();
    let push = |list: &mut Vec<Sourced<String>>, id: &str, from: YamlPath| {
        if !list.iter().any(|s| s.value == id) {
            list.push(Sourced::new(id.to_string(), format!("from {from}")));
        }
    };
    // In Ray's name order, as the file's available_node_types map reads.
    let mut sorted: Vec<&TypeSource> = types.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for ts in sorted {
        let (t, nc) = (&ts.t, &ts.config_at);
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
    Some(net)
}

/// Use the existing VPC `vpc` (its id and where it came from: `--vpc-id`, or EC2 with
/// `--resolve-vpc`) for the Ray file's subnets, or say how to. Err when a VPC is given but
/// the Ray file names no subnet to launch into.
pub fn choose(i: &mut Imported, vpc: Option<(&str, &str)>, notes: &mut Vec<Note>) -> Result<(), String> {
    let vpc_id = vpc.map(|(id, _)| id);
    let Some(net) = &mut i.byo_network else {
        return match vpc_id {
            Some(v) => Err(format!(
                "--vpc-id {v}: the Ray file names no SubnetId, so there is nothing to launch into that VPC; \
                 leave --vpc-id out and the imported cluster creates its own network"
            )),
            None => Ok(()),
        };
    };
    let at = net.subnet_ids.first().or(net.security_group_ids.first()).map(|s| YamlPath::parse(s.from.trim_start_matches("from "))).unwrap_or_default();
    let message = match (vpc_id, net.subnet_ids.first()) {
        (Some(v), Some(_)) => {
            let from = vpc.map(|(_, from)| from).unwrap_or("from --vpc-id");
            net.vpc_id = Some(Sourced::new(v.to_string(), from.to_string()));
            format!(
                "SubnetId/SecurityGroupIds became `network.private_subnet_ids`/`security_group_ids` in {v}: \
                 `fleetform plan` checks that each subnet is in it, private and reaches S3 and SQS; \
                 the security groups go on every node"
            )
        }
        (Some(v), None) => return Err(format!("--vpc-id {v}: the Ray file names security groups but no SubnetId to launch into")),
        (None, first) => {
            let first = first.map(|s| s.value.as_str()).unwrap_or("subnet-...");
            format!(
                "the Ray file launches into existing subnets: to keep them, import again with --resolve-vpc \
                 (asks EC2) or --vpc-id VPC (their VPC: `aws ec2 describe-subnets --subnet-ids {first} --query 'Subnets[0].VpcId' --output text`); \
                 without it the imported cluster creates its own VPC and the Ray file's network is written commented out"
            )
        }
    };
    notes.push(Note { path: at, message });
    Ok(())
}

/// The `network:` block (possibly empty), ending with a blank line when not empty.
pub fn block(i: &Imported) -> String {
    match &i.byo_network {
        Some(net) if net.vpc_id.is_some() => byo_lines(net, ""),
        byo => {
            let mut s = created_lines(i);
            if let Some(net) = byo {
                s.push_str("# The Ray file's network, for `fleetform import ray --vpc-id VPC`: until then\n");
                s.push_str("# fleetform creates its own (above). Security groups would go on every node.\n");
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
    match &net.vpc_id {
        Some(v) => s.push_str(&format!("{prefix}  vpc_id: {}{}\n", v.value, comment(&v.from))),
        None => {
            let first = net.subnet_ids.first().map(|s| s.value.as_str()).unwrap_or("one of its subnets");
            s.push_str(&format!("{prefix}  vpc_id: vpc-...   # the VPC of {first}\n"));
        }
    }
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
