use super::*;

const VPC: &str = "vpc-0user";

fn wanted(private: &[&str]) -> Wanted {
    Wanted {
        region: "us-west-2".into(),
        vpc_id: VPC.into(),
        private_subnet_ids: private.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn subnet(id: &str, vpc: &str, zone: &str) -> Subnet {
    Subnet { id: id.into(), vpc_id: vpc.into(), zone: zone.into() }
}

fn local() -> Route {
    Route { destination: Some("10.1.0.0/16".into()), gateway_id: Some("local".into()), ..Default::default() }
}

fn to_igw(igw: &str) -> Route {
    Route { destination: Some("0.0.0.0/0".into()), gateway_id: Some(igw.into()), ..Default::default() }
}

fn to_nat(nat: &str) -> Route {
    Route { destination: Some("0.0.0.0/0".into()), nat_gateway_id: Some(nat.into()), ..Default::default() }
}

fn table(id: &str, main: bool, subnets: &[&str], routes: Vec<Route>) -> RouteTable {
    RouteTable { id: id.into(), main, subnets: subnets.iter().map(|s| s.to_string()).collect(), routes }
}

fn endpoint(service: &str, kind: &str, tables: &[&str], private_dns: bool) -> Endpoint {
    Endpoint {
        id: format!("vpce-{}", service.rsplit('.').next().unwrap()),
        service: service.into(),
        kind: kind.into(),
        state: "available".into(),
        route_table_ids: tables.iter().map(|s| s.to_string()).collect(),
        private_dns,
    }
}

/// The workshop's C1 VPC: a public subnet with the NAT, two private subnets routed to it.
fn workshop() -> Observed {
    Observed {
        vpc_exists: true,
        subnets: vec![subnet("subnet-a", VPC, "us-west-2a"), subnet("subnet-b", VPC, "us-west-2b"), subnet("subnet-pub", VPC, "us-west-2a")],
        route_tables: vec![
            table("rtb-main", true, &[], vec![local()]),
            table("rtb-pub", false, &["subnet-pub"], vec![local(), to_igw("igw-1")]),
            table("rtb-priv", false, &["subnet-a", "subnet-b"], vec![local(), to_nat("nat-1")]),
        ],
        nat_gateways: vec![NatGateway { id: "nat-1".into(), state: "available".into() }],
        ..Default::default()
    }
}

#[test]
fn nat_routed_private_subnets_pass_and_are_stated() {
    let r = check(&wanted(&["subnet-a", "subnet-b"]), &workshop());
    assert_eq!(r.errors, Vec::<String>::new());
    assert_eq!(
        r.summary,
        "network: using existing vpc-0user (subnets subnet-a private via nat-1, subnet-b private via nat-1); nodes launch in us-west-2a, us-west-2b"
    );
    assert_eq!(r.zones, vec![("subnet-a".into(), "us-west-2a".into()), ("subnet-b".into(), "us-west-2b".into())]);
    assert_eq!(r.notes.len(), 1, "the S3 gateway endpoint note only: {:?}", r.notes);
}

#[test]
fn a_public_subnet_is_rejected() {
    let r = check(&wanted(&["subnet-a", "subnet-pub"]), &workshop());
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-pub is public: its route table rtb-pub sends 0.0.0.0/0 to the internet gateway igw-1; nodes must not be reachable from the internet: list a private subnet, or route its 0.0.0.0/0 to a NAT gateway"]
    );
}

#[test]
fn the_main_route_table_is_the_fallback() {
    // subnet-c has no table of its own: the main one decides, here public...
    let mut o = workshop();
    o.subnets.push(subnet("subnet-c", VPC, "us-west-2c"));
    o.route_tables[0].routes.push(to_igw("igw-1"));
    let r = check(&wanted(&["subnet-c"]), &o);
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-c is public: the VPC's main route table rtb-main (it has no table of its own) sends 0.0.0.0/0 to the internet gateway igw-1; nodes must not be reachable from the internet: list a private subnet, or route its 0.0.0.0/0 to a NAT gateway"]
    );
    // ... and here private through the NAT.
    o.route_tables[0].routes = vec![local(), to_nat("nat-1")];
    let r = check(&wanted(&["subnet-c"]), &o);
    assert_eq!(r.errors, Vec::<String>::new());
    assert!(r.summary.contains("subnet-c private via nat-1"), "{}", r.summary);
}

#[test]
fn a_subnet_of_another_vpc_or_none_is_rejected() {
    let mut o = workshop();
    o.subnets.push(subnet("subnet-other", "vpc-0other", "us-west-2a"));
    let r = check(&wanted(&["subnet-a", "subnet-other", "subnet-gone"]), &o);
    assert_eq!(
        r.errors,
        vec![
            "network.private_subnet_ids: subnet-other is in vpc-0other, not in vpc-0user: list subnets of vpc-0user, or change network.vpc_id",
            "network.private_subnet_ids: subnet-gone does not exist in region us-west-2: check the id (`aws ec2 describe-subnets --filters Name=vpc-id,Values=vpc-0user` lists the VPC's subnets)",
        ]
    );
}

#[test]
fn a_missing_vpc_is_one_clear_error() {
    let o = Observed { vpc_exists: false, ..Default::default() };
    let r = check(&wanted(&["subnet-a"]), &o);
    assert_eq!(r.errors[0], "network.vpc_id: vpc-0user does not exist in region us-west-2 (or this account cannot see it): check the id and the region (`aws ec2 describe-vpcs --vpc-ids vpc-0user`)");
}

fn isolated() -> Observed {
    let mut o = workshop();
    o.route_tables[2].routes = vec![local()];
    o
}

#[test]
fn no_route_to_s3_or_sqs_is_rejected() {
    let r = check(&wanted(&["subnet-a"]), &isolated());
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-a cannot reach S3 and SQS: its route table rtb-priv has no 0.0.0.0/0 route to a NAT gateway and the VPC lacks a Gateway endpoint com.amazonaws.us-west-2.s3 on rtb-priv and an Interface endpoint com.amazonaws.us-west-2.sqs with private DNS; add a 0.0.0.0/0 route to a NAT gateway, or create them"]
    );
    // Only S3 (the endpoint on another table does not count).
    let mut o = isolated();
    o.endpoints = vec![endpoint("com.amazonaws.us-west-2.s3", "Gateway", &["rtb-pub"], false), endpoint("com.amazonaws.us-west-2.sqs", "Interface", &[], true)];
    let r = check(&wanted(&["subnet-a"]), &o);
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-a cannot reach S3: its route table rtb-priv has no 0.0.0.0/0 route to a NAT gateway and the VPC lacks a Gateway endpoint com.amazonaws.us-west-2.s3 on rtb-priv; add a 0.0.0.0/0 route to a NAT gateway, or create it"]
    );
    // SQS without private DNS: the SDK's default endpoint would not resolve to it.
    let mut o = isolated();
    o.endpoints = vec![endpoint("com.amazonaws.us-west-2.s3", "Gateway", &["rtb-priv"], false), endpoint("com.amazonaws.us-west-2.sqs", "Interface", &[], false)];
    let r = check(&wanted(&["subnet-a"]), &o);
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-a cannot reach SQS: its route table rtb-priv has no 0.0.0.0/0 route to a NAT gateway and the VPC lacks private DNS on the Interface endpoint vpce-sqs (com.amazonaws.us-west-2.sqs); add a 0.0.0.0/0 route to a NAT gateway, or create it"]
    );
}

#[test]
fn vpc_endpoints_are_enough() {
    let mut o = isolated();
    o.endpoints = vec![endpoint("com.amazonaws.us-west-2.s3", "Gateway", &["rtb-priv"], false), endpoint("com.amazonaws.us-west-2.sqs", "Interface", &[], true)];
    let r = check(&wanted(&["subnet-a", "subnet-b"]), &o);
    assert_eq!(r.errors, Vec::<String>::new());
    assert!(r.summary.starts_with("network: using existing vpc-0user (subnets subnet-a private via VPC endpoints, subnet-b private via VPC endpoints)"), "{}", r.summary);
    assert_eq!(r.notes.len(), 1, "one note for both subnets: {:?}", r.notes);
    assert!(r.notes[0].starts_with("network: subnet-a, subnet-b have no NAT route"), "{:?}", r.notes);
    // An endpoint being deleted does not count.
    o.endpoints[1].state = "deleting".into();
    assert_eq!(check(&wanted(&["subnet-a"]), &o).errors.len(), 1);
}

#[test]
fn a_route_to_a_dead_nat_is_rejected() {
    let mut o = workshop();
    o.nat_gateways[0].state = "deleted".into();
    let r = check(&wanted(&["subnet-a"]), &o);
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-a cannot reach S3 and SQS: its route table rtb-priv sends 0.0.0.0/0 to the NAT gateway nat-1, which is deleted: create a NAT gateway in a public subnet and point the route at it"]
    );
}

#[test]
fn zones_come_from_the_subnets() {
    let mut w = wanted(&["subnet-a", "subnet-b"]);
    w.availability_zones = vec!["us-west-2a".into(), "us-west-2b".into()];
    assert_eq!(check(&w, &workshop()).errors, Vec::<String>::new());
    w.availability_zones = vec!["us-west-2a".into(), "us-west-2c".into()];
    assert_eq!(
        check(&w, &workshop()).errors,
        vec![
            "provider.availability_zones: subnet-b is in us-west-2b, which is not listed; with an existing VPC the subnets decide the zones: remove provider.availability_zones, or list subnets in those zones",
            "provider.availability_zones: us-west-2c is listed but no private subnet is in it; remove it, or add a private subnet of us-west-2c to network.private_subnet_ids",
        ]
    );
}

#[test]
fn public_subnets_and_groups_are_checked_too() {
    let mut w = wanted(&["subnet-a"]);
    w.public_subnet_ids = vec!["subnet-pub".into(), "subnet-nope".into()];
    w.security_group_ids = vec!["sg-mine".into(), "sg-theirs".into(), "sg-gone".into()];
    let mut o = workshop();
    o.security_groups = vec![SecurityGroup { id: "sg-mine".into(), vpc_id: VPC.into() }, SecurityGroup { id: "sg-theirs".into(), vpc_id: "vpc-0other".into() }];
    let r = check(&w, &o);
    assert_eq!(
        r.errors,
        vec![
            "network.public_subnet_ids: subnet-nope does not exist in region us-west-2: check the id, or remove it",
            "network.security_group_ids: sg-theirs belongs to vpc-0other, not to vpc-0user: a node's groups must be in its VPC; list a group of vpc-0user",
            "network.security_group_ids: sg-gone does not exist in region us-west-2: check the id, or remove it",
        ]
    );
    w.security_group_ids = vec!["sg-mine".into()];
    w.public_subnet_ids.pop();
    let r = check(&w, &o);
    assert_eq!(r.errors, Vec::<String>::new());
    assert!(r.summary.ends_with("; extra security groups on every node: sg-mine"), "{}", r.summary);
}

const S3: &str = "com.amazonaws.us-west-2.s3";

/// Through the NAT, S3 traffic pays per GB; the user is told, with the command, and
/// fleetform changes nothing of theirs.
#[test]
fn s3_through_the_nat_is_stated_with_its_cost_and_the_fix() {
    let r = check(&wanted(&["subnet-a", "subnet-b"]), &workshop());
    assert_eq!(r.errors, Vec::<String>::new());
    assert_eq!(
        r.notes,
        vec!["network: no S3 gateway endpoint on the private route table rtb-priv: the nodes' S3 traffic (the store, job inputs and outputs) \
              goes through the NAT gateway, which bills every GB it processes (US$0.045/GB in us-east-1 and us-west-2), while a gateway \
              endpoint costs nothing; fleetform does not change your route tables: add one with `aws ec2 create-vpc-endpoint --vpc-id vpc-0user \
              --service-name com.amazonaws.us-west-2.s3 --route-table-ids rtb-priv` (or add the table to an existing S3 gateway endpoint)"]
    );
    // With the endpoint on that table: no note, and the summary says S3 goes through it.
    let mut o = workshop();
    o.endpoints = vec![endpoint(S3, "Gateway", &["rtb-priv"], false)];
    let r = check(&wanted(&["subnet-a", "subnet-b"]), &o);
    assert_eq!(r.notes, Vec::<String>::new());
    assert!(r.summary.contains("(subnets subnet-a private via nat-1 (S3 via vpce-s3), subnet-b private via nat-1 (S3 via vpce-s3))"), "{}", r.summary);
    // On another table only, it does not count; two tables are named once each.
    o.endpoints = vec![endpoint(S3, "Gateway", &["rtb-pub"], false)];
    o.subnets.push(subnet("subnet-c", VPC, "us-west-2c"));
    o.route_tables.push(table("rtb-priv-c", false, &["subnet-c"], vec![local(), to_nat("nat-1")]));
    let r = check(&wanted(&["subnet-a", "subnet-b", "subnet-c"]), &o);
    assert_eq!(r.notes.len(), 1, "{:?}", r.notes);
    assert!(r.notes[0].starts_with("network: no S3 gateway endpoint on the private route tables rtb-priv, rtb-priv-c:"), "{:?}", r.notes);
    assert!(r.notes[0].contains("--route-table-ids rtb-priv rtb-priv-c` (or add the tables"), "{:?}", r.notes);
}

/// A default route to a transit gateway (or a NAT instance, a firewall) is a way out that
/// fleetform cannot see past: accepted, with a note saying what it must reach.
#[test]
fn a_default_route_to_another_target_is_a_way_out_with_a_note() {
    let mut o = workshop();
    o.route_tables[2].routes = vec![local(), Route { destination: Some("0.0.0.0/0".into()), other_target: Some("tgw-0hub".into()), ..Default::default() }];
    let r = check(&wanted(&["subnet-a"]), &o);
    assert_eq!(r.errors, Vec::<String>::new());
    assert!(r.summary.contains("(subnets subnet-a private via tgw-0hub)"), "{}", r.summary);
    assert_eq!(
        r.notes[0],
        "network: subnet-a sends 0.0.0.0/0 to tgw-0hub, not to a NAT gateway: fleetform cannot see past it; nodes there need it to reach S3, SQS and EC2 (and the internet for packages), or they fail at boot"
    );
    assert!(r.notes[1].starts_with("network: no S3 gateway endpoint on the private route table rtb-priv:"), "{:?}", r.notes);
    // A blackhole route (its target deleted) is no way out.
    o.route_tables[2].routes[1].blackhole = true;
    let r = check(&wanted(&["subnet-a"]), &o);
    assert_eq!(
        r.errors,
        vec!["network.private_subnet_ids: subnet-a has no way out: its route table rtb-priv sends 0.0.0.0/0 to tgw-0hub, which no longer exists (a blackhole route): point the route at a NAT gateway of the VPC"]
    );
}

fn eice(id: &str, state: &str, groups: &[&str], stack: Option<&str>) -> ConnectEndpoint {
    ConnectEndpoint { id: id.into(), state: state.into(), security_group_ids: groups.iter().map(|g| g.to_string()).collect(), stack: stack.map(str::to_string) }
}

fn with_endpoint() -> Wanted {
    let mut w = wanted(&["subnet-a"]);
    w.instance_connect_endpoint = true;
    w.network_stack = "fleetform-mine-network".into();
    w
}

fn endpoint_report(endpoints: ConnectEndpoints) -> Report {
    let mut o = workshop();
    o.endpoints = vec![endpoint(S3, "Gateway", &["rtb-priv"], false)];
    o.connect_endpoints = endpoints;
    check(&with_endpoint(), &o)
}

#[test]
fn no_endpoint_in_the_vpc_or_our_own_means_create_or_keep_it() {
    for endpoints in [
        ConnectEndpoints::Known(vec![]),
        ConnectEndpoints::Known(vec![eice("eice-mine", "create-complete", &["sg-mine"], Some("fleetform-mine-network"))]),
        // Gone ones no longer count against the one-per-VPC quota.
        ConnectEndpoints::Known(vec![eice("eice-old", "delete-complete", &["sg-x"], None), eice("eice-bad", "create-failed", &["sg-x"], None)]),
    ] {
        let r = endpoint_report(endpoints.clone());
        assert_eq!((r.errors.clone(), r.notes.clone(), r.reuse_endpoint.clone()), (vec![], vec![], None), "{endpoints:?}");
    }
}

/// The defect: a VPC that already has an endpoint (the user's, or another cluster's)
/// made apply fail; now the plan reuses it and says what that means.
#[test]
fn an_endpoint_fleetform_does_not_own_is_reused_with_a_note() {
    let r = endpoint_report(ConnectEndpoints::Known(vec![eice("eice-0theirs", "create-complete", &["sg-0eice"], None)]));
    assert_eq!(r.errors, Vec::<String>::new());
    assert_eq!(r.reuse_endpoint, Some(ReusedEndpoint { id: "eice-0theirs".into(), security_group_ids: vec!["sg-0eice".into()] }));
    assert_eq!(
        r.notes,
        vec!["network: vpc-0user already has the EC2 Instance Connect Endpoint eice-0theirs and AWS allows one per VPC: fleetform uses it instead \
              of creating one, and lets its security group sg-0eice reach the nodes on TCP 22; that group's outbound rules must allow TCP 22 to the \
              nodes (fleetform does not change them)"]
    );
    // Another cluster's: its stack cannot delete the group while our rules name it.
    let r = endpoint_report(ConnectEndpoints::Known(vec![eice("eice-0other", "create-complete", &["sg-1", "sg-2"], Some("fleetform-other-network"))]));
    assert_eq!(r.reuse_endpoint.as_ref().map(|e| e.security_group_ids.len()), Some(2));
    assert!(
        r.notes[0].ends_with(
            "lets its security groups sg-1, sg-2 reach the nodes on TCP 22; those groups' outbound rules must allow TCP 22 to the nodes (fleetform \
             does not change them); it belongs to the stack fleetform-other-network, which cannot delete sg-1, sg-2 while this cluster's rules \
             name them: destroy this cluster (or apply it with `network.instance_connect_endpoint: false`) before that stack"
        ),
        "{:?}",
        r.notes
    );
    // Not wanted: nothing to decide.
    let mut w = with_endpoint();
    w.instance_connect_endpoint = false;
    let mut o = workshop();
    o.connect_endpoints = ConnectEndpoints::Known(vec![eice("eice-0theirs", "create-complete", &["sg-0eice"], None)]);
    assert_eq!(check(&w, &o).reuse_endpoint, None);
}

#[test]
fn an_endpoint_being_deleted_or_without_groups_stops_the_plan() {
    let r = endpoint_report(ConnectEndpoints::Known(vec![eice("eice-0going", "delete-in-progress", &["sg-0eice"], None)]));
    assert_eq!(
        r.errors,
        vec!["network.instance_connect_endpoint: vpc-0user has the EC2 Instance Connect Endpoint eice-0going, which is being deleted, and AWS \
              allows one per VPC: wait until it is gone (`aws ec2 describe-instance-connect-endpoints --instance-connect-endpoint-ids eice-0going`), \
              then plan again; or set `network.instance_connect_endpoint: false`"]
    );
    assert_eq!(r.reuse_endpoint, None);
    let r = endpoint_report(ConnectEndpoints::Known(vec![eice("eice-0bare", "create-complete", &[], None)]));
    assert_eq!(r.errors.len(), 1);
    assert!(r.errors[0].contains("eice-0bare (AWS allows one per VPC), and it has no security group"), "{:?}", r.errors);
}

/// When the endpoints cannot be listed (moto has no such API; a narrow policy), the plan
/// goes on as before and says what would fail.
#[test]
fn endpoints_that_cannot_be_listed_are_a_note_not_a_guess() {
    let r = endpoint_report(ConnectEndpoints::Unknown("ec2:DescribeInstanceConnectEndpoints failed: 500".into()));
    assert_eq!((r.errors.clone(), r.reuse_endpoint.clone()), (vec![], None));
    assert_eq!(
        r.notes,
        vec!["network: could not list the EC2 Instance Connect Endpoints of vpc-0user (ec2:DescribeInstanceConnectEndpoints failed: 500); AWS \
              allows one per VPC, so if vpc-0user already has one, creating this cluster's fails (InstanceConnectEndpoint CREATE_FAILED): then \
              allow ec2:DescribeInstanceConnectEndpoints to this identity so fleetform can reuse it, or set `network.instance_connect_endpoint: false`"]
    );
}
