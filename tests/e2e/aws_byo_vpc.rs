//! Bring your own VPC (`network.vpc_id`) against moto. Needs more than the unit tests of
//! the checks (`aws::existing_network`): the real SDK's Describe calls and their shapes,
//! the network stack in "existing VPC" mode, launches into the user's subnets, and a
//! destroy that must leave the user's network exactly as it was.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use crate::aws_reconcile::{live_instances, run, runtime, spec_yaml, Fixture};
use crate::moto::Moto;

/// The user's VPC, made the way workshop chapter C1 makes one (here with the SDK, not
/// CloudFormation): an IGW, a public subnet with a NAT gateway, two private subnets whose
/// route table sends 0.0.0.0/0 to the NAT, and a group of their own.
#[derive(Debug)]
pub(crate) struct UserVpc {
    pub vpc: String,
    igw: String,
    public: String,
    pub private: [String; 2],
    public_table: String,
    private_table: String,
    nat: String,
    pub group: String,
}

fn user_tags(kind: ResourceType) -> TagSpecification {
    TagSpecification::builder().resource_type(kind).tags(Tag::builder().key("owner").value("workshop-c1").build()).build()
}

pub(crate) async fn make_user_vpc(ec2: &aws_sdk_ec2::Client) -> UserVpc {
    let vpc = ec2.create_vpc().cidr_block("10.1.0.0/16").tag_specifications(user_tags(ResourceType::Vpc)).send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let igw = ec2.create_internet_gateway().send().await.unwrap().internet_gateway().unwrap().internet_gateway_id().unwrap().to_string();
    ec2.attach_internet_gateway().internet_gateway_id(&igw).vpc_id(&vpc).send().await.unwrap();
    let subnet = |cidr: &'static str, zone: &'static str| {
        let vpc = vpc.clone();
        async move {
            ec2.create_subnet()
                .vpc_id(vpc)
                .cidr_block(cidr)
                .availability_zone(zone)
                .tag_specifications(user_tags(ResourceType::Subnet))
                .send()
                .await
                .unwrap()
                .subnet()
                .unwrap()
                .subnet_id()
                .unwrap()
                .to_string()
        }
    };
    let public = subnet("10.1.0.0/24", "us-west-2a").await;
    let private = [subnet("10.1.16.0/20", "us-west-2a").await, subnet("10.1.32.0/20", "us-west-2b").await];
    let table = || async { ec2.create_route_table().vpc_id(&vpc).send().await.unwrap().route_table().unwrap().route_table_id().unwrap().to_string() };
    let public_table = table().await;
    ec2.create_route().route_table_id(&public_table).destination_cidr_block("0.0.0.0/0").gateway_id(&igw).send().await.unwrap();
    ec2.associate_route_table().route_table_id(&public_table).subnet_id(&public).send().await.unwrap();
    let eip = ec2.allocate_address().domain(aws_sdk_ec2::types::DomainType::Vpc).send().await.unwrap().allocation_id().unwrap().to_string();
    let nat = ec2.create_nat_gateway().subnet_id(&public).allocation_id(eip).send().await.unwrap();
    let nat = nat.nat_gateway().unwrap().nat_gateway_id().unwrap().to_string();
    let private_table = table().await;
    ec2.create_route().route_table_id(&private_table).destination_cidr_block("0.0.0.0/0").nat_gateway_id(&nat).send().await.unwrap();
    for s in &private {
        ec2.associate_route_table().route_table_id(&private_table).subnet_id(s).send().await.unwrap();
    }
    let group = ec2.create_security_group().group_name("workshop-monitoring").description("the user's own").vpc_id(&vpc).send().await.unwrap();
    let group = group.group_id().unwrap().to_string();
    UserVpc { vpc, igw, public, private, public_table, private_table, nat, group }
}

/// The e2e spec with its created network replaced by `block`.
fn byo_spec(cluster: &str, block: &str) -> String {
    let base = spec_yaml(cluster, 1);
    let start = base.find("network:\n").unwrap();
    let end = base.find("storage:").unwrap();
    format!("{}{block}{}", &base[..start], &base[end..])
}

fn network_block(u: &UserVpc, private: &[&str]) -> String {
    // A subnet is listed once: the public one goes to public_subnet_ids unless it is
    // (wrongly) listed as private.
    let public = if private.contains(&u.public.as_str()) { String::new() } else { format!("  public_subnet_ids: [{}]\n", u.public) };
    format!(
        "network:\n  vpc_id: {}\n  private_subnet_ids: [{}]\n{public}  security_group_ids: [{}]\n",
        u.vpc,
        private.join(", "),
        u.group
    )
}

fn tag(k: &str, v: &str) -> Filter {
    Filter::builder().name(format!("tag:{k}")).values(v).build()
}

fn by(name: &str, v: &str) -> Filter {
    Filter::builder().name(name).values(v).build()
}

#[test]
fn aws_byo_vpc_apply_plan_destroy_leaves_the_users_network() {
    let moto = Moto::start();
    let rt = runtime();
    let sdk = rt.block_on(moto.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let u = rt.block_on(make_user_vpc(&ec2));
    let f = Fixture::new("byo", 1);
    std::fs::write(&f.spec, byo_spec("byo", &network_block(&u, &[&u.private[0], &u.private[1]]))).unwrap();

    // 1. The plan checks the network, says how each subnet is private, creates no VPC.
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    let stated = format!(
        "Note: network: using existing {} (subnets {} private via {}, {} private via {}); nodes launch in us-west-2a, us-west-2b; extra security groups on every node: {}",
        u.vpc, u.private[0], u.nat, u.private[1], u.nat, u.group
    );
    assert!(out.contains(&stated), "{out}");
    // S3 through the NAT costs per GB: said, with the fix, and nothing of the user's changes.
    let s3_note = format!("Note: network: no S3 gateway endpoint on the private route table {}: the nodes' S3 traffic", u.private_table);
    assert!(out.contains(&s3_note), "{out}");
    assert!(out.contains(&format!("--service-name com.amazonaws.us-west-2.s3 --route-table-ids {}`", u.private_table)), "{out}");
    // moto has no Instance Connect Endpoint API (it answers 500): the plan says it could
    // not look, and what would fail on AWS if the VPC had one, rather than guessing.
    assert!(out.contains(&format!("Note: network: could not list the EC2 Instance Connect Endpoints of {} (ec2:DescribeInstanceConnectEndpoints", u.vpc)), "{out}");
    assert!(out.contains("# network stack fleetform-byo-network"), "{out}");
    assert!(out.contains("+ network.HeadSecurityGroup (AWS::EC2::SecurityGroup): create"), "{out}");
    assert!(out.contains("+ network.InstanceConnectEndpoint (AWS::EC2::InstanceConnectEndpoint): create"), "{out}");
    for created in ["AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::NatGateway", "AWS::EC2::RouteTable", "AWS::EC2::InternetGateway"] {
        assert!(!out.contains(created), "nothing of the network itself is created ({created}): {out}");
    }

    // 2. apply, then an empty plan.
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes. Cluster `byo` matches the spec."), "{out}");

    // The user follows the note: with the S3 gateway endpoint on their private table the
    // plan says S3 goes through it, and the note is gone.
    let user_endpoint = rt.block_on(async {
        let e = ec2
            .create_vpc_endpoint()
            .vpc_id(&u.vpc)
            .service_name("com.amazonaws.us-west-2.s3")
            .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Gateway)
            .route_table_ids(&u.private_table)
            .send()
            .await
            .unwrap();
        e.vpc_endpoint().unwrap().vpc_endpoint_id().unwrap().to_string()
    });
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("{} private via {} (S3 via {user_endpoint})", u.private[0], u.nat)), "{out}");
    assert!(!out.contains("no S3 gateway endpoint"), "{out}");

    // 3. Nodes are in the user's private subnets, with fleetform's group and the user's.
    rt.block_on(async {
        let nodes = live_instances(&ec2, "byo").await;
        assert_eq!(nodes.len(), 3, "head and one of each worker type: {nodes:?}");
        let described = ec2.describe_instances().filters(tag("fleetform:cluster", "byo")).send().await.unwrap();
        for i in described.reservations().iter().flat_map(|r| r.instances()) {
            let subnet = i.subnet_id().unwrap_or_default();
            assert!(u.private.iter().any(|s| s == subnet), "{:?} in {subnet}, not a private subnet of {:?}", i.instance_id(), u.private);
            assert_eq!(i.vpc_id(), Some(u.vpc.as_str()));
        }
        let head = described
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.tags().iter().any(|t| t.key() == Some("fleetform:node-type") && t.value() == Some("head")))
            .unwrap();
        // moto reports a RunInstances interface's groups on the interface only.
        let groups: Vec<&str> = head.network_interfaces()[0].groups().iter().filter_map(|g| g.group_id()).collect();
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[1], u.group, "the user's group after fleetform's: {groups:?}");
        let ours = ec2.describe_security_groups().filters(tag("fleetform:cluster", "byo")).send().await.unwrap();
        assert_eq!(ours.security_groups().len(), 3, "head, worker, endpoint");
        assert!(ours.security_groups().iter().all(|g| g.vpc_id() == Some(u.vpc.as_str())));
        let lts = ec2.describe_launch_templates().filters(tag("fleetform:cluster", "byo")).send().await.unwrap();
        for lt in lts.launch_templates() {
            let v = ec2.describe_launch_template_versions().launch_template_id(lt.launch_template_id().unwrap()).versions("$Default").send().await.unwrap();
            let nic = &v.launch_template_versions()[0].launch_template_data().unwrap().network_interfaces()[0];
            assert_eq!(nic.groups().len(), 2, "{:?}", lt.launch_template_name());
            assert_eq!(nic.groups()[1], u.group);
        }
        let iam = cfn.get_template().stack_name("fleetform-byo-iam").send().await.unwrap();
        let body = iam.template_body().unwrap();
        assert!(body.contains(&format!("subnet/{}", u.private[0])) && body.contains(&format!("security-group/{}", u.group)), "{body}");
    });

    // 4. destroy: fleetform's part goes, the user's network stays.
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing tagged fleetform:cluster=byo is left."), "{out}");
    rt.block_on(async {
        let vpcs = ec2.describe_vpcs().vpc_ids(&u.vpc).send().await.unwrap();
        assert_eq!(vpcs.vpcs().len(), 1, "the user's VPC stays");
        let subnets = ec2.describe_subnets().filters(by("vpc-id", &u.vpc)).send().await.unwrap();
        let mut ids: Vec<&str> = subnets.subnets().iter().filter_map(|s| s.subnet_id()).collect();
        ids.sort();
        let mut want = vec![u.public.as_str(), u.private[0].as_str(), u.private[1].as_str()];
        want.sort();
        assert_eq!(ids, want, "the user's subnets stay");
        let tables = ec2.describe_route_tables().filters(by("vpc-id", &u.vpc)).send().await.unwrap();
        let private = tables.route_tables().iter().find(|t| t.route_table_id() == Some(u.private_table.as_str())).expect("private route table stays");
        assert_eq!(private.associations().iter().filter(|a| a.subnet_id().is_some()).count(), 2, "still associated with both private subnets");
        assert!(private.routes().iter().any(|r| r.nat_gateway_id() == Some(u.nat.as_str())), "the NAT route stays");
        assert!(tables.route_tables().iter().any(|t| t.route_table_id() == Some(u.public_table.as_str())));
        assert!(tables.route_tables().iter().any(|t| t.associations().iter().any(|a| a.main() == Some(true))), "the main table stays");
        let nat = ec2.describe_nat_gateways().nat_gateway_ids(&u.nat).send().await.unwrap();
        assert_eq!(nat.nat_gateways()[0].state().unwrap().as_str(), "available", "the NAT stays");
        let igw = ec2.describe_internet_gateways().internet_gateway_ids(&u.igw).send().await.unwrap();
        assert_eq!(igw.internet_gateways().len(), 1, "the IGW stays");
        let groups = ec2.describe_security_groups().filters(by("vpc-id", &u.vpc)).send().await.unwrap();
        assert!(groups.security_groups().iter().any(|g| g.group_id() == Some(u.group.as_str())), "the user's group stays");
        let eps = ec2.describe_vpc_endpoints().vpc_endpoint_ids(&user_endpoint).send().await.unwrap();
        assert_eq!(eps.vpc_endpoints()[0].state().map(|s| s.as_str()), Some("available"), "the user's S3 endpoint stays");

        // Nothing tagged for the cluster is left, anywhere.
        assert_eq!(live_instances(&ec2, "byo").await, vec![], "instances terminated");
        let t = || tag("fleetform:cluster", "byo");
        assert!(ec2.describe_security_groups().filters(t()).send().await.unwrap().security_groups().is_empty(), "fleetform's groups are gone");
        assert!(ec2.describe_launch_templates().filters(t()).send().await.unwrap().launch_templates().is_empty());
        assert!(ec2.describe_vpcs().filters(t()).send().await.unwrap().vpcs().is_empty());
        assert!(ec2.describe_subnets().filters(t()).send().await.unwrap().subnets().is_empty());
        assert!(ec2.describe_route_tables().filters(t()).send().await.unwrap().route_tables().is_empty());
        assert!(cfn.describe_stacks().send().await.unwrap().stacks().is_empty(), "no stacks");
    });
    let (code, out) = run(&moto, &f, &["destroy", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing to destroy"), "{out}");
}

#[test]
fn aws_byo_vpc_plan_rejects_a_public_subnet() {
    let moto = Moto::start();
    let rt = runtime();
    let sdk = rt.block_on(moto.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let u = rt.block_on(make_user_vpc(&ec2));
    let f = Fixture::new("byopub", 1);
    std::fs::write(&f.spec, byo_spec("byopub", &network_block(&u, &[&u.private[0], &u.public]))).unwrap();
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 1, "{out}");
    let want = format!(
        "error: network.private_subnet_ids: {} is public: its route table {} sends 0.0.0.0/0 to the internet gateway {}; \
         nodes must not be reachable from the internet: list a private subnet, or route its 0.0.0.0/0 to a NAT gateway",
        u.public, u.public_table, u.igw
    );
    assert!(out.contains(&want), "{out}");
    // apply refuses the same way and creates nothing.
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&want), "{out}");
    let stacks = rt.block_on(aws_sdk_cloudformation::Client::new(&sdk).describe_stacks().send()).unwrap();
    assert!(stacks.stacks().is_empty(), "nothing was created");

    // A subnet without a table of its own falls back to the VPC's main table (here: no
    // route out at all), and a VPC that does not exist is named.
    let lonely = rt.block_on(ec2.create_subnet().vpc_id(&u.vpc).cidr_block("10.1.64.0/20").availability_zone("us-west-2a").send()).unwrap();
    let lonely = lonely.subnet().unwrap().subnet_id().unwrap().to_string();
    std::fs::write(&f.spec, byo_spec("byopub", &network_block(&u, &[&lonely]))).unwrap();
    let (code, out) = run(&moto, &f, &["plan"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("error: network.private_subnet_ids: {lonely} cannot reach S3 and SQS: the VPC's main route table")), "{out}");
    std::fs::write(&f.spec, byo_spec("byopub", "network:\n  vpc_id: vpc-0123456789abcdef0\n  private_subnet_ids: [subnet-0123456789abcdef0]\n")).unwrap();
    let (code, out) = run(&moto, &f, &["plan"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error: network.vpc_id: vpc-0123456789abcdef0 does not exist in region us-west-2"), "{out}");
    assert!(out.contains("error: network.private_subnet_ids: subnet-0123456789abcdef0 does not exist in region us-west-2"), "{out}");
}
