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
    Route { destination: Some("10.1.0.0/16".into()), gateway_id: Some("local".into()), nat_gateway_id: None }
}

fn to_igw(igw: &str) -> Route {
    Route { destination: Some("0.0.0.0/0".into()), gateway_id: Some(igw.into()), nat_gateway_id: None }
}

fn to_nat(nat: &str) -> Route {
    Route { destination: Some("0.0.0.0/0".into()), gateway_id: None, nat_gateway_id: Some(nat.into()) }
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
    assert!(r.notes.is_empty());
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
