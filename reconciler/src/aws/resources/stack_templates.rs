//! Rendering of the CloudFormation templates in `stacks/` with minijinja. Deterministic:
//! the same spec gives byte-identical templates, which is what lets `plan` compare them
//! with the deployed ones.

use anyhow::{Context, Result};
use fleetform_core::spec::NetworkForm;
use fleetform_core::ClusterSpec;
use minijinja::{context, AutoEscape, Environment};
use serde::Serialize;

use crate::aws::resources::existing_network::ReusedEndpoint;
use crate::aws::resources::iam_policies::{self, Scope};
use crate::aws::names::{self, Role};

const NETWORK: &str = include_str!("../../../../stacks/network.yaml.j2");
const NETWORK_EXISTING: &str = include_str!("../../../../stacks/network-existing.yaml.j2");
const DATA: &str = include_str!("../../../../stacks/data.yaml.j2");
const IAM: &str = include_str!("../../../../stacks/iam.yaml.j2");
pub(crate) const USER_DATA: &str = include_str!("../../../templates/user-data.yaml.j2");

pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // YAML and shell, not HTML: values are inserted as written (they are ours, validated).
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_trim_blocks(true);
    env.set_keep_trailing_newline(true);
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, src) in [
        ("network.yaml.j2", NETWORK),
        ("network-existing.yaml.j2", NETWORK_EXISTING),
        ("data.yaml.j2", DATA), ("iam.yaml.j2", IAM),
        ("user-data.yaml.j2", USER_DATA),
    ] {
        env.add_template(name, src).expect("the embedded templates parse (checked by tests)");
    }
    env
}

pub(crate) fn render(name: &str, ctx: minijinja::Value) -> Result<String> {
    let env = environment();
    env.get_template(name)
        .and_then(|t| t.render(ctx))
        .with_context(|| format!("rendering {name}"))
}

#[derive(Serialize)]
struct SubnetCtx {
    cidr: String,
    /// A literal zone, or the intrinsic that picks one when the spec names none.
    az: String,
}

fn zone(spec: &ClusterSpec, i: usize) -> String {
    let azs = &spec.provider.availability_zones;
    if azs.is_empty() {
        format!("{{\"Fn::Select\": [{i}, {{\"Fn::GetAZs\": \"\"}}]}}")
    } else {
        format!("\"{}\"", azs[i % azs.len()])
    }
}

/// The network stack `fleetform-<cluster>-network`: the whole network (created form), or
/// only the nodes' security groups and the endpoint inside the user's VPC (existing form).
/// `reused_endpoint`: the existing VPC's own Instance Connect Endpoint, used instead of
/// creating one (see `existing_network::connect_endpoint`).
pub fn network_template(spec: &ClusterSpec, reused_endpoint: Option<&ReusedEndpoint>) -> Result<String> {
    let n = match spec.network.form() {
        NetworkForm::Created(n) => n,
        NetworkForm::Existing(e) => {
            return render(
                "network-existing.yaml.j2",
                context! {
                    cluster => spec.cluster_name,
                    vpc_id => e.vpc_id,
                    private_subnet_ids => e.private_subnet_ids,
                    endpoint_subnet => e.private_subnet_ids.first().cloned().unwrap_or_default(),
                    instance_connect_endpoint => spec.network.instance_connect_endpoint,
                    reused_endpoint => reused_endpoint,
                    agent_metrics_port => spec.agent_metrics_port,
                },
            )
        }
    };
    let subnets = |list: &[String]| -> Vec<SubnetCtx> {
        list.iter().enumerate().map(|(i, c)| SubnetCtx { cidr: c.clone(), az: zone(spec, i) }).collect()
    };
    render(
        "network.yaml.j2",
        context! {
            cluster => spec.cluster_name,
            vpc_cidr => n.vpc_cidr,
            public_subnets => subnets(&n.public_subnets),
            private_subnets => subnets(&n.private_subnets),
            nat_gateway => n.nat_gateway,
            instance_connect_endpoint => spec.network.instance_connect_endpoint,
            agent_metrics_port => spec.agent_metrics_port,
        },
    )
}

/// `retain`: the bucket outlives its stack (always, except during `destroy --delete-data`).
pub fn data_template(cluster: &str, bucket: &str, retain: bool) -> Result<String> {
    render(
        "data.yaml.j2",
        context! { cluster => cluster, bucket => bucket, deletion_policy => if retain { "Retain" } else { "Delete" } },
    )
}

#[derive(Serialize)]
struct RoleCtx {
    logical_id: &'static str,
    name: String,
    policy_name: String,
    description: String,
    policy: String,
}

pub fn iam_template(scope: &Scope) -> Result<String> {
    let roles = vec![
        RoleCtx {
            logical_id: "Head",
            name: names::role(&scope.cluster, Role::Head),
            policy_name: "fleetform-head".into(),
            description: format!("fleetform {} head node: launches and terminates this cluster's workers only", scope.cluster),
            policy: iam_policies::head_policy(scope).to_string(),
        },
        RoleCtx {
            logical_id: "Worker",
            name: names::role(&scope.cluster, Role::Worker),
            policy_name: "fleetform-worker".into(),
            description: format!("fleetform {} workers: the cluster's store prefix and task queues only", scope.cluster),
            policy: iam_policies::worker_policy(scope).to_string(),
        },
    ];
    render("iam.yaml.j2", context! { cluster => scope.cluster, roles => roles, trust_policy => iam_policies::TRUST_POLICY })
}

#[cfg(test)]
mod tests {
    use crate::aws::stages::stack_diff::parse_template;
    use super::*;
    use serde_json::Value;

    const WORKSHOP: &str = include_str!("../../../../cluster.yaml");
    const CREATED_NETWORK_SHA256: &str = "95b1fda2d710c20af3850993754f1c1c509a60fb0e5883ca47251eb2c3d93909";

    fn spec() -> ClusterSpec {
        ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap()
    }

    fn resources_of<'a>(t: &'a Value, rtype: &str) -> Vec<(&'a String, &'a Value)> {
        t["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == rtype).collect()
    }

    #[test]
    fn network_has_the_workshop_shape_and_no_open_ingress() {
        let body = network_template(&spec(), None).unwrap();
        assert_eq!(body, network_template(&spec(), None).unwrap(), "rendering is deterministic");
        let t = parse_template(&body).unwrap();
        assert_eq!(resources_of(&t, "AWS::EC2::Subnet").len(), 3);
        assert_eq!(resources_of(&t, "AWS::EC2::NatGateway").len(), 1);
        assert_eq!(resources_of(&t, "AWS::EC2::InstanceConnectEndpoint").len(), 1);
        assert_eq!(t["Resources"]["PrivateSubnet1"]["Properties"]["AvailabilityZone"], "us-west-2b");
        let sgs = resources_of(&t, "AWS::EC2::SecurityGroup");
        assert_eq!(sgs.len(), 3);
        for (id, sg) in sgs {
            for rule in sg["Properties"]["SecurityGroupIngress"].as_array().into_iter().flatten() {
                assert!(rule.get("CidrIp").is_none() && rule.get("CidrIpv6").is_none(), "{id} has CIDR ingress: {rule}");
                assert_eq!(rule["FromPort"], 22, "{id}: only SSH");
                assert_eq!(rule["SourceSecurityGroupId"]["Fn::GetAtt"][0], "EndpointSecurityGroup", "{id}");
            }
        }
        assert!(resources_of(&t, "AWS::EC2::SecurityGroupIngress").is_empty());
        for (id, s) in resources_of(&t, "AWS::EC2::Subnet") {
            assert_eq!(s["Properties"]["MapPublicIpOnLaunch"], false, "{id}");
        }
    }

    #[test]
    fn without_endpoint_there_is_no_ssh_at_all() {
        let mut s = spec();
        s.network.instance_connect_endpoint = false;
        s.network.nat_gateway = Some(false);
        let t = parse_template(&network_template(&s, None).unwrap()).unwrap();
        assert!(resources_of(&t, "AWS::EC2::InstanceConnectEndpoint").is_empty());
        assert!(resources_of(&t, "AWS::EC2::NatGateway").is_empty());
        for (_, sg) in resources_of(&t, "AWS::EC2::SecurityGroup") {
            assert!(sg["Properties"].get("SecurityGroupIngress").is_none());
        }
    }

    /// `agent_metrics_port` opens that port on the workers to the head only, in both forms.
    #[test]
    fn agent_metrics_port_is_open_to_the_head_only_when_set() {
        for mut s in [spec(), existing(true)] {
            let t = parse_template(&network_template(&s, None).unwrap()).unwrap();
            assert!(t["Resources"].get("WorkerMetricsFromHead").is_none(), "off by default");
            s.agent_metrics_port = Some(9101);
            let t = parse_template(&network_template(&s, None).unwrap()).unwrap();
            let rule = &t["Resources"]["WorkerMetricsFromHead"]["Properties"];
            assert_eq!((rule["FromPort"].as_u64(), rule["ToPort"].as_u64()), (Some(9101), Some(9101)), "{rule}");
            assert_eq!(rule["GroupId"]["Fn::GetAtt"][0], "WorkerSecurityGroup");
            assert_eq!(rule["SourceSecurityGroupId"]["Fn::GetAtt"][0], "HeadSecurityGroup");
        }
    }

    /// The created form's template changes only on purpose: every deployed workshop cluster
    /// plans the difference. Last changed by the S3 gateway endpoint (nodes reach the store
    /// without the NAT; one `+ network.S3GatewayEndpoint` on the next plan); the existing
    /// form's arrival before that left it as it was.
    #[test]
    fn created_network_renders_as_before() {
        let body = network_template(&spec(), None).unwrap();
        assert_eq!(crate::aws::resources::launch_templates::sha256_hex(body.as_bytes()), CREATED_NETWORK_SHA256, "{body}");
    }

    fn existing(ice: bool) -> ClusterSpec {
        let src = WORKSHOP.replace(
            "  vpc_cidr: 10.0.0.0/16\n  public_subnets: [10.0.0.0/24]            # NAT gateway lives here; nothing else is public\n  private_subnets: [10.0.16.0/20, 10.0.32.0/20]\n  nat_gateway: true\n",
            "  vpc_id: vpc-0abc1234def567890\n  private_subnet_ids: [subnet-0aaa1111bbb222333, subnet-0ccc4444ddd555666]\n  security_group_ids: [sg-0123456789abcdef0]\n",
        );
        let mut s = ClusterSpec::from_yaml("cluster.yaml", &src).unwrap();
        assert!(s.network.existing().is_some(), "{src}");
        s.network.instance_connect_endpoint = ice;
        s
    }

    #[test]
    fn existing_vpc_stack_holds_only_groups_and_the_endpoint() {
        let body = network_template(&existing(true), None).unwrap();
        let t = parse_template(&body).unwrap();
        let types: std::collections::BTreeSet<&str> =
            t["Resources"].as_object().unwrap().values().map(|r| r["Type"].as_str().unwrap()).collect();
        assert_eq!(
            types.into_iter().collect::<Vec<_>>(),
            vec!["AWS::EC2::InstanceConnectEndpoint", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress"],
            "no VPC, subnet, route or NAT: {body}"
        );
        for (id, sg) in resources_of(&t, "AWS::EC2::SecurityGroup") {
            assert_eq!(sg["Properties"]["VpcId"], "vpc-0abc1234def567890", "{id}");
            assert!(sg["Properties"].get("SecurityGroupIngress").is_none(), "{id}");
        }
        for (id, rule) in resources_of(&t, "AWS::EC2::SecurityGroupIngress") {
            let p = &rule["Properties"];
            assert!(p.get("CidrIp").is_none() && p.get("CidrIpv6").is_none(), "{id}");
            assert_eq!((p["FromPort"].as_i64(), p["ToPort"].as_i64()), (Some(22), Some(22)), "{id}");
            assert_eq!(p["SourceSecurityGroupId"]["Fn::GetAtt"][0], "EndpointSecurityGroup", "{id}");
        }
        let eice = &t["Resources"]["EndpointSecurityGroup"]["Properties"]["SecurityGroupEgress"];
        assert_eq!(eice.as_array().unwrap().len(), 2);
        for rule in eice.as_array().unwrap() {
            assert_eq!(rule["FromPort"], 22);
            assert!(rule.get("CidrIp").is_none(), "{rule}");
        }
        assert_eq!(t["Resources"]["InstanceConnectEndpoint"]["Properties"]["SubnetId"], "subnet-0aaa1111bbb222333");
        assert_eq!(t["Outputs"]["VpcId"]["Value"], "vpc-0abc1234def567890");
        assert_eq!(t["Outputs"]["PrivateSubnetIds"]["Value"], "subnet-0aaa1111bbb222333,subnet-0ccc4444ddd555666");
        assert_eq!(t["Outputs"]["HeadSecurityGroupId"]["Value"]["Fn::GetAtt"][0], "HeadSecurityGroup");

        let t = parse_template(&network_template(&existing(false), None).unwrap()).unwrap();
        let ids: Vec<&String> = t["Resources"].as_object().unwrap().keys().collect();
        assert_eq!(ids, vec!["HeadSecurityGroup", "WorkerSecurityGroup"], "without the endpoint there is no SSH at all");
    }

    /// S3 from the private subnets goes through a gateway endpoint (free), not the NAT.
    #[test]
    fn created_network_has_an_s3_gateway_endpoint_on_the_private_route_table() {
        let t = parse_template(&network_template(&spec(), None).unwrap()).unwrap();
        let endpoints = resources_of(&t, "AWS::EC2::VPCEndpoint");
        assert_eq!(endpoints.len(), 1, "{endpoints:?}");
        let p = &endpoints[0].1["Properties"];
        assert_eq!(p["VpcEndpointType"], "Gateway");
        assert_eq!(p["ServiceName"]["Fn::Join"][1][1]["Ref"], "AWS::Region", "{p}");
        assert_eq!(p["ServiceName"]["Fn::Join"][1][2], ".s3", "{p}");
        assert_eq!(p["RouteTableIds"], serde_json::json!([{"Ref": "PrivateRouteTable"}]));
        assert_eq!(p["VpcId"]["Ref"], "Vpc");
        assert!(p.get("PolicyDocument").is_none(), "the default policy: nodes read the user's own buckets too");
    }

    /// The VPC already has an endpoint (one per VPC): no endpoint, no endpoint group, and
    /// SSH to both node groups from each of the endpoint's groups.
    #[test]
    fn an_existing_vpc_endpoint_is_reused_not_created() {
        let reused = ReusedEndpoint { id: "eice-0123456789abcdef0".into(), security_group_ids: vec!["sg-0aaa1111bbb222333".into(), "sg-0ccc4444ddd555666".into()] };
        let body = network_template(&existing(true), Some(&reused)).unwrap();
        let t = parse_template(&body).unwrap();
        assert!(resources_of(&t, "AWS::EC2::InstanceConnectEndpoint").is_empty(), "{body}");
        let ids: Vec<&String> = t["Resources"].as_object().unwrap().keys().collect();
        assert_eq!(
            ids,
            vec![
                "HeadSecurityGroup", "HeadSshFromVpcEndpoint0", "HeadSshFromVpcEndpoint1", "WorkerSecurityGroup",
                "WorkerSshFromVpcEndpoint0", "WorkerSshFromVpcEndpoint1",
            ]
        );
        for (id, rule) in resources_of(&t, "AWS::EC2::SecurityGroupIngress") {
            let p = &rule["Properties"];
            assert_eq!((p["FromPort"].as_i64(), p["ToPort"].as_i64(), p["IpProtocol"].as_str()), (Some(22), Some(22), Some("tcp")), "{id}");
            let n: usize = id[id.len() - 1..].parse().unwrap();
            assert_eq!(p["SourceSecurityGroupId"], reused.security_group_ids[n].as_str(), "{id}");
            let group = if id.starts_with("Head") { "HeadSecurityGroup" } else { "WorkerSecurityGroup" };
            assert_eq!(p["GroupId"]["Fn::GetAtt"][0], group, "{id}");
            assert!(p.get("CidrIp").is_none(), "{id}");
        }
        assert!(t["Description"].as_str().unwrap().contains("SSH from the VPC's Instance Connect Endpoint eice-0123456789abcdef0"), "{body}");
        // Without `instance_connect_endpoint` there is no SSH, endpoint or not.
        let t = parse_template(&network_template(&existing(false), Some(&reused)).unwrap()).unwrap();
        let ids: Vec<&String> = t["Resources"].as_object().unwrap().keys().collect();
        assert_eq!(ids, vec!["HeadSecurityGroup", "WorkerSecurityGroup"]);
    }

    /// Every resource type fleetform renders, in every stack and form, has a row in the
    /// stack diff's replacement table: a type without one would be planned as an update
    /// in place whatever changed.
    #[test]
    fn every_rendered_resource_type_has_a_replacement_row() {
        let reused = ReusedEndpoint { id: "eice-0123456789abcdef0".into(), security_group_ids: vec!["sg-0aaa1111bbb222333".into()] };
        let mut with_metrics = spec();
        with_metrics.agent_metrics_port = Some(9101);
        let mut bodies = vec![
            network_template(&with_metrics, None).unwrap(),
            network_template(&existing(true), None).unwrap(),
            network_template(&existing(true), Some(&reused)).unwrap(),
            data_template("workshop", "b", true).unwrap(),
        ];
        let mut no_nat = spec();
        no_nat.network.nat_gateway = Some(false);
        bodies.push(network_template(&no_nat, None).unwrap());
        // The IAM stack's shape does not depend on the policies' contents.
        let role = |logical_id| RoleCtx { logical_id, name: "n".into(), policy_name: "p".into(), description: "d".into(), policy: "{}".into() };
        bodies.push(render("iam.yaml.j2", context! { cluster => "workshop", roles => vec![role("Head"), role("Worker")], trust_policy => iam_policies::TRUST_POLICY }).unwrap());
        let mut seen = std::collections::BTreeSet::new();
        for body in &bodies {
            for r in parse_template(body).unwrap()["Resources"].as_object().unwrap().values() {
                seen.insert(r["Type"].as_str().unwrap().to_string());
            }
        }
        let table = crate::aws::stages::stack_diff::REPLACEMENT;
        for t in &seen {
            assert!(table.iter().any(|(r, _)| r == t), "{t} has no row in stack_diff::REPLACEMENT");
        }
        assert_eq!(seen.len(), 16, "{seen:?}");
    }

    #[test]
    fn iam_and_data_templates_parse_and_embed_linted_policies() {
        let scope = Scope {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account: "123456789012".into(),
            cluster: "workshop".into(),
            bucket: "b".into(),
            prefix: "workshop/".into(),
            queues: vec!["fleetform-workshop-default".into()],
            images: vec!["ami-1".into()],
            ssm_parameters: vec![],
            existing_network: vec![],
            spot: true,
            job_inputs: vec![],
            job_outputs: vec![],
        };
        let t = parse_template(&iam_template(&scope).unwrap()).unwrap();
        let head = &t["Resources"]["HeadRole"]["Properties"];
        assert_eq!(head["RoleName"], "fleetform-workshop-head");
        assert_eq!(iam_policies::lint(&head["Policies"][0]["PolicyDocument"]), Vec::<String>::new());
        assert_eq!(t["Resources"]["WorkerInstanceProfile"]["Properties"]["Roles"][0]["Ref"], "WorkerRole");
        let d = parse_template(&data_template("workshop", "b", true).unwrap()).unwrap();
        assert_eq!(d["Resources"]["StoreBucket"]["DeletionPolicy"], "Retain");
        let d = parse_template(&data_template("workshop", "b", false).unwrap()).unwrap();
        assert_eq!(d["Resources"]["StoreBucket"]["DeletionPolicy"], "Delete");
        let rule = &d["Resources"]["StoreBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0];
        assert_eq!(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"], 1, "abandoned multipart uploads are aborted: {rule}");
        assert_eq!(rule["Status"], "Enabled");
    }
}
