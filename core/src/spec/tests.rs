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
