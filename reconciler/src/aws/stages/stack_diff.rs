//! Stack diff as `cdk diff --method template` does it: the rendered template against
//! the deployed one (GetTemplate), resource by resource. Change sets are not used: moto
//! lists every resource as `Add` even for an unchanged stack, and the template
//! comparison gives the same answer on real AWS for the resources we render.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::aws::stages::state::Purpose;
use crate::aws::names::StackKind;
use crate::aws::stages::plan::{Action, Change, Target};

/// Which property changes make CloudFormation replace a resource of a type: the
/// properties its resource reference marks "Update requires: Replacement". Most types
/// list a few; some (a standalone security group rule) replace on every property but one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Replaces {
    Only(&'static [&'static str]),
    AllBut(&'static [&'static str]),
}

/// Every resource type fleetform renders (a test renders the stacks and checks that each
/// type has a row), from the CloudFormation template reference. A type missing here would
/// be planned as an in-place update whatever changed, so the test keeps the table whole.
pub(crate) const REPLACEMENT: &[(&str, Replaces)] = &[
    ("AWS::EC2::VPC", Replaces::Only(&["CidrBlock", "InstanceTenancy", "Ipv4IpamPoolId", "Ipv4NetmaskLength"])),
    (
        "AWS::EC2::Subnet",
        Replaces::Only(&["AvailabilityZone", "AvailabilityZoneId", "CidrBlock", "Ipv4IpamPoolId", "Ipv4NetmaskLength", "OutpostArn", "VpcId"]),
    ),
    ("AWS::EC2::InternetGateway", Replaces::Only(&[])),
    ("AWS::EC2::VPCGatewayAttachment", Replaces::Only(&["VpcId"])),
    ("AWS::EC2::RouteTable", Replaces::Only(&["VpcId"])),
    ("AWS::EC2::Route", Replaces::Only(&["DestinationCidrBlock", "DestinationIpv6CidrBlock", "DestinationPrefixListId", "RouteTableId"])),
    ("AWS::EC2::SubnetRouteTableAssociation", Replaces::Only(&["RouteTableId", "SubnetId"])),
    ("AWS::EC2::EIP", Replaces::Only(&["Address", "Domain", "NetworkBorderGroup", "PublicIpv4Pool", "TransferAddress"])),
    ("AWS::EC2::NatGateway", Replaces::Only(&["AllocationId", "ConnectivityType", "PrivateIpAddress", "SubnetId"])),
    ("AWS::EC2::SecurityGroup", Replaces::Only(&["GroupDescription", "GroupName", "VpcId"])),
    // A rule outside its group has no update API: every property but the description
    // (ports, protocol, source, group) makes a new rule.
    ("AWS::EC2::SecurityGroupIngress", Replaces::AllBut(&["Description"])),
    ("AWS::EC2::SecurityGroupEgress", Replaces::AllBut(&["Description"])),
    (
        "AWS::EC2::VPCEndpoint",
        Replaces::Only(&["ResourceConfigurationArn", "ServiceName", "ServiceNetworkArn", "ServiceRegion", "VpcEndpointType", "VpcId"]),
    ),
    // Replacing one fails on AWS (one endpoint per VPC, and CloudFormation creates the new
    // one first): `diff` turns such a replacement into a blocker.
    ("AWS::EC2::InstanceConnectEndpoint", Replaces::Only(&["ClientToken", "PreserveClientIp", "SecurityGroupIds", "SubnetId"])),
    ("AWS::IAM::Role", Replaces::Only(&["Path", "RoleName"])),
    ("AWS::IAM::InstanceProfile", Replaces::Only(&["InstanceProfileName", "Path"])),
    ("AWS::S3::Bucket", Replaces::Only(&["BucketName", "ObjectLockEnabled"])),
];

/// Whether changing `property` makes CloudFormation replace a `resource_type`. A type
/// without a row is taken as updatable in place (only reachable for a type fleetform
/// does not render).
fn replaces(resource_type: &str, property: &str) -> bool {
    match REPLACEMENT.iter().find(|(t, _)| *t == resource_type).map(|(_, r)| *r) {
        Some(Replaces::Only(props)) => props.contains(&property),
        Some(Replaces::AllBut(props)) => !props.contains(&property),
        None => false,
    }
}

/// Parse a template body (YAML or JSON, long-form intrinsics) into plain data.
pub fn parse_template(body: &str) -> Result<Value, String> {
    serde_norway::from_str::<Value>(body).map_err(|e| e.to_string())
}

fn resources(t: &Value) -> BTreeMap<String, Value> {
    t.get("Resources")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn type_of(r: &Value) -> String {
    r.get("Type").and_then(Value::as_str).unwrap_or("AWS::CloudFormation::Unknown").to_string()
}

fn change(kind: StackKind, id: &str, rtype: &str, action: Action, reason: String) -> Change {
    Change {
        action,
        address: format!("{}.{id}", kind.label()),
        kind: rtype.to_string(),
        reason,
        target: Target::StackResource { stack: kind, logical_id: id.to_string() },
    }
}

fn delete_reason(purpose: Purpose) -> String {
    match purpose {
        Purpose::Destroy => "destroy".into(),
        Purpose::Apply => "delete: no longer in the template".into(),
    }
}

/// The changes that turn the deployed template `live` into `desired`.
/// `None` on a side means the stack is absent (or, for `desired`, to be deleted).
pub fn diff_templates(
    kind: StackKind,
    desired: Option<&str>,
    live: Option<&str>,
    purpose: Purpose,
) -> Vec<Change> {
    let parse = |body: Option<&str>| body.map(parse_template);
    let (want, have) = match (parse(desired), parse(live)) {
        (Some(Err(e)), _) => {
            // Our own rendering does not parse: a bug, shown rather than hidden.
            return vec![stack_change(kind, Action::Update, format!("update: the rendered template does not parse ({e})"))];
        }
        (_, Some(Err(_))) => {
            let action = if desired.is_some() { Action::Update } else { Action::Delete };
            let reason = if desired.is_some() {
                "update: the deployed template could not be read; it will be replaced by the rendered one".to_string()
            } else {
                delete_reason(purpose)
            };
            return vec![stack_change(kind, action, reason)];
        }
        (w, h) => (w.and_then(Result::ok), h.and_then(Result::ok)),
    };
    let want_res = want.as_ref().map(resources).unwrap_or_default();
    let have_res = have.as_ref().map(resources).unwrap_or_default();
    let mut out = Vec::new();
    let ids: BTreeSet<&String> = want_res.keys().chain(have_res.keys()).collect();
    // Listed by logical id, so the plan reads the same on every run.
    for id in ids {
        match (want_res.get(id), have_res.get(id)) {
            (Some(w), None) => out.push(change(kind, id, &type_of(w), Action::Create, "create".into())),
            (None, Some(h)) => out.push(change(kind, id, &type_of(h), Action::Delete, delete_reason(purpose))),
            (Some(w), Some(h)) => {
                if let Some(c) = diff_resource(kind, id, w, h) {
                    out.push(c);
                }
            }
            (None, None) => {}
        }
    }
    if let (Some(w), Some(h)) = (&want, &have) {
        let mut meta = Vec::new();
        for section in ["Outputs", "Description", "Parameters", "Conditions", "Mappings"] {
            if w.get(section) != h.get(section) {
                meta.push(section);
            }
        }
        if !meta.is_empty() {
            out.push(stack_change(kind, Action::Update, format!("update: {} changed", meta.join(", "))));
        }
    }
    out
}

fn stack_change(kind: StackKind, action: Action, reason: String) -> Change {
    Change {
        action,
        address: format!("stack.{}", kind.label()),
        kind: "AWS::CloudFormation::Stack".into(),
        reason,
        target: Target::Stack { stack: kind },
    }
}

fn diff_resource(kind: StackKind, id: &str, want: &Value, have: &Value) -> Option<Change> {
    let (wt, ht) = (type_of(want), type_of(have));
    if wt != ht {
        return Some(change(kind, id, &wt, Action::Replace, format!("replace: type changed from {ht}")));
    }
    let empty = serde_json::Map::new();
    let props = |v: &Value| v.get("Properties").and_then(Value::as_object).cloned().unwrap_or_else(|| empty.clone());
    let (wp, hp) = (props(want), props(have));
    let keys: BTreeSet<&String> = wp.keys().chain(hp.keys()).collect();
    let changed: Vec<&str> = keys.into_iter().filter(|k| wp.get(*k) != hp.get(*k)).map(|k| k.as_str()).collect();
    let mut attrs: Vec<&str> = ["DependsOn", "DeletionPolicy", "UpdateReplacePolicy", "Condition", "Metadata"]
        .into_iter()
        .filter(|a| want.get(*a) != have.get(*a))
        .collect();
    if changed.is_empty() && attrs.is_empty() {
        return None;
    }
    let replacing: Vec<&str> = changed.iter().copied().filter(|p| replaces(&wt, p)).collect();
    if !replacing.is_empty() {
        return Some(change(kind, id, &wt, Action::Replace, format!("replace: {} changed", replacing.join(", "))));
    }
    let mut all = changed;
    all.append(&mut attrs);
    Some(change(kind, id, &wt, Action::Update, format!("update: {} changed", all.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
Description: "d"
Resources:
  Vpc:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Sg:
    Type: AWS::EC2::SecurityGroup
    Properties:
      GroupDescription: x
      VpcId: {Ref: Vpc}
      SecurityGroupIngress: []
  Old:
    Type: AWS::EC2::RouteTable
    Properties: {VpcId: {Ref: Vpc}}
Outputs:
  VpcId: {Value: {Ref: Vpc}}
"#;

    fn lines(changes: &[Change]) -> Vec<String> {
        changes.iter().map(|c| format!("{} {} {}", c.action.symbol(), c.address, c.reason)).collect()
    }

    #[test]
    fn identical_templates_have_no_changes_even_when_formatted_differently() {
        let json = serde_json::to_string(&parse_template(BASE).unwrap()).unwrap();
        assert!(diff_templates(StackKind::Network, Some(BASE), Some(&json), Purpose::Apply).is_empty());
    }

    #[test]
    fn resource_by_resource_with_replacement_rules() {
        let want = BASE
            .replace("CidrBlock: 10.0.0.0/16", "CidrBlock: 10.1.0.0/16")
            .replace("SecurityGroupIngress: []", "SecurityGroupIngress: [{IpProtocol: tcp, FromPort: 22, ToPort: 22}]")
            .replace("  Old:\n    Type: AWS::EC2::RouteTable\n    Properties: {VpcId: {Ref: Vpc}}\n", "  New:\n    Type: AWS::EC2::InternetGateway\n")
            .replace("Description: \"d\"", "Description: \"e\"");
        assert_eq!(
            lines(&diff_templates(StackKind::Network, Some(&want), Some(BASE), Purpose::Apply)),
            vec![
                "+ network.New create",
                "- network.Old delete: no longer in the template",
                "~ network.Sg update: SecurityGroupIngress changed",
                "-/+ network.Vpc replace: CidrBlock changed",
                "~ stack.network update: Description changed",
            ]
        );
    }

    #[test]
    fn create_and_destroy_whole_stacks() {
        assert_eq!(
            lines(&diff_templates(StackKind::Iam, Some(BASE), None, Purpose::Apply)),
            vec!["+ iam.Old create", "+ iam.Sg create", "+ iam.Vpc create"]
        );
        assert_eq!(
            lines(&diff_templates(StackKind::Iam, None, Some(BASE), Purpose::Destroy)),
            vec!["- iam.Old destroy", "- iam.Sg destroy", "- iam.Vpc destroy"]
        );
    }

    const RULE: &str = "Resources:\n  Rule:\n    Type: AWS::EC2::SecurityGroupIngress\n    Properties:\n      GroupId: {Ref: Sg}\n      IpProtocol: tcp\n      FromPort: 9101\n      ToPort: 9101\n      SourceSecurityGroupId: {Ref: Head}\n      Description: metrics\n";

    /// CloudFormation has no in-place update for a standalone rule: a new port is a new rule.
    #[test]
    fn an_ingress_rule_replaces_on_everything_but_its_description() {
        let port = RULE.replace("9101", "9102");
        assert_eq!(
            lines(&diff_templates(StackKind::Network, Some(&port), Some(RULE), Purpose::Apply)),
            vec!["-/+ network.Rule replace: FromPort, ToPort changed"]
        );
        let source = RULE.replace("{Ref: Head}", "sg-0123456789abcdef0");
        assert_eq!(
            lines(&diff_templates(StackKind::Network, Some(&source), Some(RULE), Purpose::Apply)),
            vec!["-/+ network.Rule replace: SourceSecurityGroupId changed"]
        );
        let described = RULE.replace("Description: metrics", "Description: agent metrics");
        assert_eq!(
            lines(&diff_templates(StackKind::Network, Some(&described), Some(RULE), Purpose::Apply)),
            vec!["~ network.Rule update: Description changed"]
        );
        let egress = RULE.replace("SecurityGroupIngress", "SecurityGroupEgress").replace("SourceSecurityGroupId", "DestinationSecurityGroupId");
        let egress_port = egress.replace("9101", "22");
        assert_eq!(
            lines(&diff_templates(StackKind::Network, Some(&egress_port), Some(&egress), Purpose::Apply)),
            vec!["-/+ network.Rule replace: FromPort, ToPort changed"]
        );
    }

    #[test]
    fn endpoints_replace_on_their_service_and_update_their_route_tables() {
        let live = "Resources:\n  S3:\n    Type: AWS::EC2::VPCEndpoint\n    Properties:\n      VpcId: {Ref: Vpc}\n      ServiceName: com.amazonaws.us-west-2.s3\n      VpcEndpointType: Gateway\n      RouteTableIds: [{Ref: A}]\n";
        let tables = live.replace("[{Ref: A}]", "[{Ref: A}, {Ref: B}]");
        assert_eq!(lines(&diff_templates(StackKind::Network, Some(&tables), Some(live), Purpose::Apply)), vec!["~ network.S3 update: RouteTableIds changed"]);
        let service = live.replace("s3", "dynamodb");
        assert_eq!(lines(&diff_templates(StackKind::Network, Some(&service), Some(live), Purpose::Apply)), vec!["-/+ network.S3 replace: ServiceName changed"]);
    }

    #[test]
    fn deletion_policy_change_is_an_update() {
        let live = "Resources:\n  B:\n    Type: AWS::S3::Bucket\n    DeletionPolicy: Retain\n    Properties: {BucketName: b}\n";
        let want = live.replace("Retain", "Delete");
        assert_eq!(
            lines(&diff_templates(StackKind::Data, Some(&want), Some(live), Purpose::Apply)),
            vec!["~ data.B update: DeletionPolicy changed"]
        );
    }
}
