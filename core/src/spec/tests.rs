use super::*;

const WORKSHOP: &str = include_str!("../../../cluster.yaml");
const LOCAL: &str = include_str!("../../../examples/local.yaml");

fn errors(src: &str) -> Vec<String> {
    ClusterSpec::from_yaml("c.yaml", src).unwrap_err().messages()
}

#[test]
fn shipped_specs_are_valid() {
    let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
    assert_eq!(spec.max_workers, 128);
    assert_eq!(spec.type_max_workers("x86_worker_node"), 8);
    assert_eq!(spec.arch_of("arm_worker_node"), Some(Arch::Arm64));
    assert_eq!(spec.arch_of("x86_worker_node"), Some(Arch::X86_64));
    ClusterSpec::from_yaml("local.yaml", LOCAL).unwrap();
}

#[test]
fn every_problem_is_reported_at_once_with_locations() {
    let src = WORKSHOP
        .replace("    min_workers: 1\n    max_workers: 8\n    node_config:\n      instance_types: [r7i.2xlarge]",
                 "    min_workers: 9\n    max_workers: 8\n    node_config:\n      instance_types: [r7i.2xlarge, r8g.2xlarge]")
        .replace("private_subnets: [10.0.16.0/20, 10.0.32.0/20]", "private_subnets: [10.0.16.0/20, 10.0.20.0/24, 10.1.0.0/24]")
        .replace("    resources: {CPU: 0}", "    resources: {CPU: 2}")
        .replace("upscaling_speed: 1.0", "upscaling_speed: 1.0\nbogus_key: 3");
    let err = ClusterSpec::from_yaml("c.yaml", &src).unwrap_err();
    assert_eq!(
        err.messages(),
        vec![
            "network.private_subnets: 3 private subnets but 2 availability zones: each subnet needs its own zone",
            "network.private_subnets[1]: subnet 10.0.20.0/24 overlaps 10.0.16.0/20 (network.private_subnets[0])",
            "network.private_subnets[2]: subnet 10.1.0.0/24 is outside the VPC 10.0.0.0/16",
            "bogus_key: unknown key `bogus_key`",
            "available_node_types.head.resources: the head node could be given work: set `CPU: 0` so tasks never land on it",
            "available_node_types.x86_worker_node.min_workers: min_workers (9) is greater than max_workers (8)",
            "available_node_types.x86_worker_node.node_config.instance_types[1]: `r8g.2xlarge` is arm64 but `r7i.2xlarge` is x86_64: one node type needs one architecture (its AMI and agent binary)",
        ]
    );
    let text = err.to_string();
    assert!(text.contains("c.yaml:13:3: network.private_subnets: 3 private subnets"), "{text}");
    assert!(text.contains("c.yaml:23:1: bogus_key"), "{text}");
    assert!(text.ends_with("7 problems in c.yaml"), "{text}");
}

#[test]
fn wrong_types_are_all_reported() {
    let src = WORKSHOP.replace("max_workers: 128", "max_workers: lots").replace("idle_timeout_minutes: 5", "idle_timeout_minutes: [5]");
    assert_eq!(
        errors(&src),
        vec![
            "max_workers: invalid type: string \"lots\", expected u32",
            "idle_timeout_minutes: invalid type: sequence, expected f64",
        ]
    );
}

#[test]
fn explicit_ami_architecture_must_match_instance_types() {
    let src = WORKSHOP.replacen(
        "      instance_types: [r8g.2xlarge]\n      market: spot\n      on_demand_fallback: true\n      image: al2023",
        "      instance_types: [r8g.2xlarge]\n      market: spot\n      on_demand_fallback: true\n      image: {ami: ami-0123456789abcdef0, architecture: x86_64}",
        1,
    );
    assert_eq!(
        errors(&src),
        vec!["available_node_types.arm_worker_node.node_config.instance_types[0]: `r8g.2xlarge` is arm64 but the AMI ami-0123456789abcdef0 is x86_64"]
    );
}

#[test]
fn head_rules() {
    let src = WORKSHOP.replace(
        "      instance_types: [m7i.xlarge]\n      market: on-demand",
        "      instance_types: [m7i.xlarge]\n      market: spot",
    );
    assert_eq!(
        errors(&src),
        vec!["available_node_types.head.node_config.market: the head node must be on-demand: a spot interruption would take the cluster's control plane with it"]
    );
    let src = WORKSHOP.replace("head_node_type: head", "head_node_type: boss");
    assert_eq!(
        errors(&src),
        vec![
            "head_node_type: `boss` is not one of available_node_types",
            // With no head type, `head` is a worker type, and a useless one.
            "available_node_types.head.resources: a worker node type needs `CPU` greater than 0, or it can never run a task",
        ]
    );
}

#[test]
fn bad_yaml_is_one_clear_error() {
    let err = ClusterSpec::from_yaml("c.yaml", "cluster_name: [x\n").unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err.to_string().starts_with("c.yaml:2:1: invalid YAML:"), "{err}");
}

#[test]
fn aws_needs_a_bucket() {
    let src = WORKSHOP.replace("  bucket: fleetform-workshop-data          # change me: S3 bucket names are global\n", "");
    assert_eq!(errors(&src), vec!["storage: the aws provider needs `storage.bucket`, the S3 bucket of the cluster store"]);
}

/// The workshop spec with its `network:` block replaced.
fn with_network(block: &str) -> String {
    let start = WORKSHOP.find("network:\n").unwrap();
    let end = WORKSHOP.find("storage:\n").unwrap();
    format!("{}{block}\n{}", &WORKSHOP[..start], &WORKSHOP[end..])
}

const BYO: &str = "network:
  vpc_id: vpc-0abc1234def567890
  private_subnet_ids: [subnet-0aaa1111bbb222333, subnet-0ccc4444ddd555666]
  public_subnet_ids: [subnet-0eee7777fff888999]
  security_group_ids: [sg-0123456789abcdef0]
";

#[test]
fn the_created_network_keeps_its_defaults() {
    let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
    let NetworkForm::Created(n) = spec.network.form() else { panic!("created form") };
    assert_eq!(n.vpc_cidr, "10.0.0.0/16");
    assert_eq!(n.private_subnets, vec!["10.0.16.0/20", "10.0.32.0/20"]);
    assert!(n.nat_gateway && spec.network.instance_connect_endpoint);
    // Nothing written at all: the same network.
    let spec = ClusterSpec::from_yaml("c.yaml", &with_network("")).unwrap();
    assert_eq!(spec.network.form(), NetworkForm::Created(n));
}

#[test]
fn an_existing_vpc_is_its_own_form() {
    let spec = ClusterSpec::from_yaml("c.yaml", &with_network(BYO)).unwrap();
    let e = spec.network.existing().expect("existing form");
    assert_eq!(e.vpc_id, "vpc-0abc1234def567890");
    assert_eq!(e.private_subnet_ids, vec!["subnet-0aaa1111bbb222333", "subnet-0ccc4444ddd555666"]);
    assert_eq!(e.public_subnet_ids, vec!["subnet-0eee7777fff888999"]);
    assert_eq!(e.security_group_ids, vec!["sg-0123456789abcdef0"]);
    assert!(spec.network.instance_connect_endpoint, "defaults to an endpoint in the existing VPC too");
    // Eight-digit ids (older accounts) are ids too.
    ClusterSpec::from_yaml("c.yaml", &with_network("network:\n  vpc_id: vpc-0abc1234\n  private_subnet_ids: [subnet-12345678]\n")).unwrap();
}

#[test]
fn an_existing_vpc_rejects_the_created_fields_that_are_written() {
    let block = "network:
  vpc_id: vpc-0abc1234def567890
  vpc_cidr: 10.0.0.0/16
  private_subnets: [10.0.16.0/20]
  nat_gateway: false
  private_subnet_ids: [subnet-0aaa1111bbb222333]
";
    let err = ClusterSpec::from_yaml("c.yaml", &with_network(block)).unwrap_err();
    assert_eq!(
        err.messages(),
        vec![
            "network.vpc_cidr: `vpc_cidr` cannot be used with `vpc_id`: fleetform creates no VPC, subnets or NAT in an existing VPC; remove `vpc_cidr` (or remove `vpc_id` to let fleetform create the network)",
            "network.private_subnets: `private_subnets` cannot be used with `vpc_id`: fleetform creates no VPC, subnets or NAT in an existing VPC; remove `private_subnets` (or remove `vpc_id` to let fleetform create the network)",
            "network.nat_gateway: `nat_gateway` cannot be used with `vpc_id`: fleetform creates no VPC, subnets or NAT in an existing VPC; remove `nat_gateway` (or remove `vpc_id` to let fleetform create the network)",
        ]
    );
    let text = err.to_string();
    let line = WORKSHOP[..WORKSHOP.find("network:\n").unwrap()].lines().count() + 1;
    assert!(text.contains(&format!("c.yaml:{}:3: network.vpc_cidr:", line + 2)), "{text}");
    assert!(text.contains(&format!("c.yaml:{}:3: network.nat_gateway:", line + 4)), "{text}");
}

#[test]
fn existing_ids_must_look_like_ids() {
    let block = "network:
  vpc_id: vpc-xyz
  private_subnet_ids: []
  public_subnet_ids: [subnet-0aaa1111bbb222333, sg-0123456789abcdef0]
  security_group_ids: [subnet-0aaa1111bbb222333, sg-0123456789ABCDEF0]
";
    let err = ClusterSpec::from_yaml("c.yaml", &with_network(block)).unwrap_err();
    assert_eq!(
        err.messages(),
        vec![
            "network.vpc_id: `vpc-xyz` is not a VPC id (vpc- and 8 or 17 hex digits)",
            "network.private_subnet_ids: list at least one private subnet id (subnet-...): nodes are launched there",
            "network.public_subnet_ids[1]: `sg-0123456789abcdef0` is not a subnet id (subnet- and 8 or 17 hex digits)",
            "network.security_group_ids[0]: `subnet-0aaa1111bbb222333` is not a security group id (sg- and 8 or 17 hex digits)",
            "network.security_group_ids[0]: subnet-0aaa1111bbb222333 is already listed at network.public_subnet_ids[0]",
            "network.security_group_ids[1]: `sg-0123456789ABCDEF0` is not a security group id (sg- and 8 or 17 hex digits)",
        ]
    );
    let line = WORKSHOP[..WORKSHOP.find("network:\n").unwrap()].lines().count() + 1;
    assert!(err.to_string().contains(&format!("c.yaml:{}:3: network.vpc_id:", line + 1)), "{err}");
}

#[test]
fn existing_ids_need_a_vpc_id() {
    let block = "network:\n  private_subnet_ids: [subnet-0aaa1111bbb222333]\n";
    assert_eq!(
        errors(&with_network(block)),
        vec!["network.private_subnet_ids: `private_subnet_ids` belongs to an existing VPC: add `vpc_id` (the VPC these ids are in), or remove it to let fleetform create the network"]
    );
}

#[test]
fn setup_commands_default_empty_and_reject_blank_commands() {
    let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
    assert!(spec.setup_commands.is_empty());
    let src = format!("{WORKSHOP}setup_commands:\n  - pip install pandas pyarrow\n  - '  '\n");
    let err = ClusterSpec::from_yaml("c.yaml", &src).unwrap_err();
    assert_eq!(err.messages(), vec!["setup_commands[1]: empty command: remove it"]);
    assert!(err.to_string().contains(&format!("c.yaml:{}:5:", WORKSHOP.lines().count() + 3)), "{err}");
    let ok = format!("{WORKSHOP}setup_commands: [pip install pandas pyarrow]\n");
    assert_eq!(ClusterSpec::from_yaml("c.yaml", &ok).unwrap().setup_commands, ["pip install pandas pyarrow"]);
}

#[test]
fn feasibility_counts_the_slots_a_task_takes_as_agents_get_them() {
    use crate::resources::{Resources, CPU};
    let spec = ClusterSpec::from_yaml(
        "c.yaml",
        "cluster_name: t\nprovider: {type: local}\nhead_node_type: head\navailable_node_types:\n  head: {resources: {CPU: 0}}\n  worker: {resources: {CPU: 2}, min_workers: 1, max_workers: 1}\n",
    )
    .unwrap();
    assert!(spec.feasible(&Resources::new().with(CPU, 2.0)).is_ok());
    // A task takes max(1, ceil(CPU)) slots: 2.5 CPU needs 3.
    let err = spec.feasible(&Resources::new().with(CPU, 2.5)).unwrap_err();
    assert_eq!(err, "no node type provides {CPU: 2.5}; node types offer: worker {CPU: 2}");
    // Without an explicit CPU, each local agent gets the machine's cores shared among the
    // type's agents, and that is what is offered (not "any number").
    let implicit = ClusterSpec::from_yaml(
        "c.yaml",
        "cluster_name: t\nprovider: {type: local}\nhead_node_type: head\navailable_node_types:\n  head: {resources: {CPU: 0}}\n  worker: {min_workers: 1, max_workers: 1}\n",
    )
    .unwrap();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    assert!(implicit.feasible(&Resources::new().with(CPU, cores)).is_ok());
    assert!(implicit.feasible(&Resources::new().with(CPU, cores + 1.0)).is_err());
}

#[test]
fn job_locations_are_s3_prefixes_on_the_aws_provider_only() {
    let src = WORKSHOP.replace(
        "  prefix: workshop/\n",
        "  prefix: workshop/\n  job_inputs: [s3://datasets/raw-100gb-data/, /data/raw, 's3://Bad_Bucket/x', 's3://d/x*']\n  job_outputs: [s3://results]\n",
    );
    assert_eq!(
        errors(&src),
        vec![
            "storage.job_inputs[1]: `/data/raw` is not an S3 location: write s3://bucket/prefix/",
            "storage.job_inputs[2]: `Bad_Bucket` is not a valid S3 bucket name",
            "storage.job_inputs[3]: `s3://d/x*`: wildcards are not allowed; name the bucket and prefix",
        ]
    );
    let ok = ClusterSpec::from_yaml("c.yaml", &src.replace(", /data/raw, 's3://Bad_Bucket/x', 's3://d/x*'", "")).unwrap();
    let access = crate::data_access::WorkerAccess::of(&ok).unwrap();
    assert_eq!(access.store.to_string(), "s3://fleetform-workshop-data/workshop/");
    assert!(access.may_read("s3://datasets/raw-100gb-data/part-0.parquet") && access.may_write("s3://results/clean"));
    let local = LOCAL.replace("  path: .fleetform/local/store\n", "  path: .fleetform/local/store\n  job_inputs: [s3://datasets/raw/]\n");
    let problems = errors(&local);
    assert!(problems.iter().any(|p| p.starts_with("storage.job_inputs: applies to the aws provider only")), "{problems:?}");
}

/// Without the NAT a created network's nodes reach nothing but S3: refused at validate,
/// at the field's line and column, with the reason and the way out.
#[test]
fn a_created_network_without_nat_is_refused_with_the_reason() {
    let src = WORKSHOP.replace("  nat_gateway: true\n", "  nat_gateway: false\n");
    assert_ne!(src, WORKSHOP, "the workshop spec writes nat_gateway");
    let err = ClusterSpec::from_yaml("c.yaml", &src).unwrap_err();
    assert_eq!(
        err.messages(),
        vec![
            "network.nat_gateway: `nat_gateway: false` leaves the private subnets with no route to SQS, EC2 or package mirrors (only S3 has a \
             gateway endpoint), so every node would fail at boot; interface endpoints for SQS, EC2, CloudFormation, SSM and STS would cost more \
             per hour than the NAT and still reach no package mirror: remove `nat_gateway` (it defaults to true), or bring a VPC that has the \
             endpoints (`vpc_id` and `private_subnet_ids`)"
        ]
    );
    let line = src[..src.find("  nat_gateway: false").unwrap()].lines().count() + 1;
    assert!(err.to_string().contains(&format!("c.yaml:{line}:3: network.nat_gateway:")), "{err}");
    // true, or nothing, is the NAT.
    ClusterSpec::from_yaml("c.yaml", WORKSHOP).unwrap();
    ClusterSpec::from_yaml("c.yaml", &WORKSHOP.replace("  nat_gateway: true\n", "")).unwrap();
}
