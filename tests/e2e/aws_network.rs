//! The created network's egress and the plan of its rules, against moto (docs/aws.md,
//! "Egress of the created network"). Needs more than the unit tests of the template and the
//! diff: that CloudFormation (moto's) accepts the S3 gateway endpoint with its region
//! intrinsic and puts its route on the private route table, that destroy still removes the
//! VPC with the endpoint in it, and that the CLI plans a deployed rule's port change as a
//! replacement.

use aws_sdk_ec2::types::Filter;

use crate::aws_reconcile::{run, runtime, spec_yaml, Fixture};
use crate::moto::Moto;

fn by(name: &str, v: &str) -> Filter {
    Filter::builder().name(name).values(v).build()
}

/// The cluster's VPC and its private route table, as the network stack's resources.
async fn vpc_and_private_table(cfn: &aws_sdk_cloudformation::Client, stack: &str) -> (String, String) {
    let r = cfn.describe_stack_resource().stack_name(stack).logical_resource_id("Vpc").send().await.unwrap();
    let vpc = r.stack_resource_detail().unwrap().physical_resource_id().unwrap().to_string();
    let r = cfn.describe_stack_resource().stack_name(stack).logical_resource_id("PrivateRouteTable").send().await.unwrap();
    (vpc, r.stack_resource_detail().unwrap().physical_resource_id().unwrap().to_string())
}

#[test]
fn aws_network_s3_gateway_endpoint_and_rule_replacement() {
    let moto = Moto::start();
    let rt = runtime();
    let sdk = rt.block_on(moto.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let f = Fixture::new("net", 0);

    // 1. `nat_gateway: false` is refused before any AWS call, at the field.
    let no_nat = spec_yaml("net", 0).replace("  private_subnets: [10.0.16.0/20, 10.0.32.0/20]\n", "  private_subnets: [10.0.16.0/20, 10.0.32.0/20]\n  nat_gateway: false\n");
    std::fs::write(&f.spec, &no_nat).unwrap();
    let (code, out) = run(&moto, &f, &["plan"]);
    assert_eq!(code, 1, "{out}");
    let line = no_nat[..no_nat.find("  nat_gateway: false").unwrap()].lines().count() + 1;
    assert!(out.contains(&format!("cluster.yaml:{line}:3: network.nat_gateway: `nat_gateway: false` leaves the private subnets with no route to SQS, EC2")), "{out}");
    assert!(out.contains("remove `nat_gateway` (it defaults to true)"), "{out}");

    // 2. The created network has the S3 gateway endpoint on the private route table.
    let with_metrics = |port: u16| format!("{}agent_metrics_port: {port}\n", spec_yaml("net", 0));
    std::fs::write(&f.spec, with_metrics(9101)).unwrap();
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("+ network.S3GatewayEndpoint (AWS::EC2::VPCEndpoint): create"), "{out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let (vpc, private_table) = rt.block_on(vpc_and_private_table(&cfn, "fleetform-net-network"));
    rt.block_on(async {
        let eps = ec2.describe_vpc_endpoints().filters(by("vpc-id", &vpc)).send().await.unwrap();
        let eps = eps.vpc_endpoints();
        assert_eq!(eps.len(), 1, "{eps:?}");
        assert_eq!(eps[0].service_name(), Some("com.amazonaws.us-west-2.s3"), "the region intrinsic resolved");
        assert_eq!(eps[0].vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
        assert_eq!(eps[0].route_table_ids(), [private_table.clone()], "on the private route table only");
        let id = eps[0].vpc_endpoint_id().unwrap();
        let tables = ec2.describe_route_tables().route_table_ids(&private_table).send().await.unwrap();
        let routes = tables.route_tables()[0].routes();
        assert!(routes.iter().any(|r| r.gateway_id() == Some(id) && r.destination_prefix_list_id().is_some()), "S3's prefix list routes to the endpoint: {routes:?}");
        assert!(routes.iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.nat_gateway_id().is_some()), "the rest through the NAT: {routes:?}");
    });
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "the deployed template reads back the same: {out}");

    // 3. A deployed rule's port change is planned as CloudFormation carries it out.
    std::fs::write(&f.spec, with_metrics(9102)).unwrap();
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("-/+ network.WorkerMetricsFromHead (AWS::EC2::SecurityGroupIngress): replace: FromPort, ToPort changed"), "{out}");

    // 4. destroy removes the VPC with its endpoint.
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
    rt.block_on(async {
        let eps = ec2.describe_vpc_endpoints().filters(by("vpc-id", &vpc)).send().await.unwrap();
        let left: Vec<_> = eps.vpc_endpoints().iter().filter(|e| e.state().map(|s| s.as_str()) != Some("deleted")).collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(ec2.describe_vpcs().filters(by("vpc-id", &vpc)).send().await.unwrap().vpcs().is_empty(), "the VPC is gone");
    });
}
