use std::collections::BTreeMap;

use fleetform_core::instance::Arch;
use fleetform_core::spec::{ImageSpec, Market};
use fleetform_core::ClusterSpec;

use super::yaml::scalar;
use super::*;

const SEED: &str = include_str!("../../../examples/ray/cluster-spot.yaml");
const X86_AMI: &str = "ami-0c1a4f3e2b5d69870";
const ARM_AMI: &str = "ami-0e7d2b9c4a1f35068";

fn import(src: &str) -> (String, Vec<String>) {
    let c = convert_file("cluster-spot.yaml", src).unwrap_or_else(|d| panic!("{d}"));
    let text = c.spec_text().unwrap_or_else(|(t, d)| panic!("{d}\n{t}"));
    (text, c.note_lines("cluster-spot.yaml"))
}

fn has(notes: &[String], needle: &str) -> bool {
    notes.iter().any(|n| n.contains(needle))
}

/// A small Ray file, with `extra` appended at the top level.
fn ray_file(extra: &str) -> String {
    format!(
        "cluster_name: demo\nprovider: {{type: aws, region: us-east-1}}\nhead_node_type: head\n\
         available_node_types:\n  head:\n    resources: {{CPU: 0}}\n    node_config: {{InstanceType: m7i.large}}\n  \
         w:\n    resources: {{CPU: 2}}\n    node_config: {{InstanceType: c7g.large}}\n{extra}"
    )
}

#[test]
fn seed_converts_into_a_spec_that_validates_with_every_field_mapped() {
    let (text, _) = import(SEED);
    let spec = ClusterSpec::from_yaml("cluster.yaml", &text).unwrap();
    assert_eq!(spec.cluster_name, "ray-on-aws");
    assert_eq!(spec.provider.region.as_deref(), Some("us-west-2"));
    assert_eq!(spec.provider.availability_zones, ["us-west-2a"]);
    assert_eq!(spec.network.private_subnets.as_deref(), Some(&["10.0.16.0/20".to_string()][..]), "one private subnet per zone");
    assert_eq!(spec.storage.bucket.as_deref(), Some("fleetform-ray-on-aws-data"));
    assert_eq!((spec.max_workers, spec.upscaling_speed, spec.idle_timeout_minutes), (128, 1.0, 5.0));
    assert_eq!(spec.head_node_type, "head_node");
    assert_eq!(
        spec.setup_commands,
        [
            "sudo growpart /dev/xvda 1 || true",
            "sudo xfs_growfs -d / || true",
            "sudo dnf install -y python-unversioned-command",
            "sudo dnf install -y python3-pip",
            "pip install -U \"ray[default,data]\" pandas pyarrow boto3",
        ]
    );
    let head = &spec.available_node_types["head_node"];
    assert_eq!(head.resources.to_string(), "{CPU: 0}", "Intel dropped from the head");
    assert_eq!((head.min_workers, head.max_workers), (0, None));
    assert_eq!(head.node_config.instance_types, ["m7i.xlarge"]);
    assert_eq!(head.node_config.market, Market::OnDemand);
    assert_eq!(head.node_config.image, ImageSpec::Explicit { ami: X86_AMI.into(), architecture: Arch::X86_64 });
    assert_eq!(head.node_config.root_volume.size_gb, 100, "no BlockDeviceMappings: fleetform's default");
    for (name, itype, res, ami, arch) in [
        ("x86_worker_node", "r7i.2xlarge", "{CPU: 8, Intel: 1}", X86_AMI, Arch::X86_64),
        ("arm_worker_node", "r8g.2xlarge", "{CPU: 8, Graviton: 1}", ARM_AMI, Arch::Arm64),
    ] {
        let t = &spec.available_node_types[name];
        assert_eq!(t.resources.to_string(), res, "{name}");
        assert_eq!((t.min_workers, t.max_workers), (1, Some(8)), "{name}");
        assert_eq!(t.node_config.instance_types, [itype], "{name}");
        assert_eq!(t.node_config.market, Market::Spot, "{name}");
        assert_eq!(t.node_config.image, ImageSpec::Explicit { ami: ami.into(), architecture: arch }, "{name}");
        assert_eq!((t.node_config.root_volume.size_gb, t.node_config.root_volume.volume_type.as_str()), (300, "gp3"), "{name}");
    }
}

#[test]
fn seed_output_says_where_each_value_came_from() {
    let (text, _) = import(SEED);
    for line in [
        "cluster_name: ray-on-aws   # from cluster_name",
        "  availability_zones: [us-west-2a]   # from provider.availability_zone",
        "  bucket: fleetform-ray-on-aws-data   # change me: S3 bucket names are global",
        "max_workers: 128   # from max_workers",
        "  - 'pip install -U \"ray[default,data]\" pandas pyarrow boto3'   # from setup_commands[4]",
        "      instance_types: [r7i.2xlarge]   # from available_node_types.x86_worker_node.node_config.InstanceType",
        "      market: spot   # from available_node_types.x86_worker_node.node_config.InstanceMarketOptions.MarketType",
        "      market: on-demand   # Ray launches on-demand without InstanceMarketOptions",
        "      image: {ami: ami-0e7d2b9c4a1f35068, architecture: arm64}   # from available_node_types.arm_worker_node.node_config.ImageId; arm64 like r8g.2xlarge",
        "        size_gb: 300   # from available_node_types.x86_worker_node.node_config.BlockDeviceMappings[0].Ebs.VolumeSize",
        "    resources: {CPU: 0}   # from available_node_types.head_node.resources; Intel: 1 dropped, see stderr",
        "  private_subnets: [10.0.16.0/20]   # fleetform creates the VPC: one private subnet per availability zone (1)",
        // Without --vpc-id the Ray file's network is kept, commented out.
        "# network:",
        "#   vpc_id: vpc-...   # the VPC of subnet-0a1b2c3d4e5f60718",
        "#     - subnet-0a1b2c3d4e5f60718   # from available_node_types.arm_worker_node.node_config.SubnetId",
        "#     - sg-0fedcba9876543210   # from available_node_types.arm_worker_node.node_config.SecurityGroupIds[0]",
        "#     - sg-0123456789abcdef0   # from available_node_types.head_node.node_config.SecurityGroupIds[0]",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    }
}

#[test]
fn seed_notes_name_every_unmapped_key_at_its_line() {
    let (_, notes) = import(SEED);
    let text = notes.join("\n");
    for expected in [
        "cluster-spot.yaml:10:5: note: provider.use_internal_ips: not imported: fleetform nodes only have private IPs",
        "cluster-spot.yaml:11:5: note: provider.cache_stopped_nodes: not imported: fleetform terminates nodes it removes",
        "cluster-spot.yaml:14:1: note: auth: not imported: fleetform nodes are reached through the EC2 Instance Connect Endpoint with no SSH key: `aws ec2-instance-connect ssh --instance-id i-...`",
        "note: available_node_types.arm_worker_node.node_config.IamInstanceProfile: not imported (and 2 more like it): fleetform creates its own scoped instance profiles",
        "note: available_node_types.head_node.resources: dropped Intel: 1 from the head",
        "note: available_node_types.arm_worker_node.node_config.SubnetId: the Ray file launches into existing subnets: to keep them, import again with --resolve-vpc (asks EC2) or --vpc-id VPC (their VPC: `aws ec2 describe-subnets --subnet-ids subnet-0a1b2c3d4e5f60718 --query 'Subnets[0].VpcId' --output text`)",
        "cluster-spot.yaml:4:1: note: storage.bucket: Ray has no equivalent",
        "cluster-spot.yaml:4:1: note: idle_timeout_minutes: not set: Ray's default and fleetform's are both 5 minutes",
    ] {
        assert!(has(&notes, expected), "missing note {expected:?} in:\n{text}");
    }
    assert!(has(&notes, "cluster-spot.yaml:18:1: note: setup_commands: kept; fleetform runs them as root"), "{text}");
    assert!(!has(&notes, "appended to setup_commands"), "nothing to merge in the seed: {text}");
}

#[test]
fn every_unmapped_key_is_listed_with_what_fleetform_does_instead() {
    let extra = "file_mounts: {/data: ./data}\ncluster_synced_files: [a]\nrsync_exclude: ['*.pyc']\n\
                 docker: {image: rayproject/ray}\ninitialization_commands: [echo init]\n\
                 head_start_ray_commands: [ray start --head]\nworker_start_ray_commands: [ray start]\n\
                 head_setup_commands: [echo head]\nworker_setup_commands: [echo worker, echo head]\nsetup_commands: [echo all]\n";
    let src = ray_file(extra).replace(
        "node_config: {InstanceType: c7g.large}",
        "node_config: {InstanceType: c7g.large, KeyName: k, TagSpecifications: [], Placement: {GroupName: g}, SubnetIds: [subnet-1, subnet-2]}",
    );
    let (text, notes) = import(&src);
    for (key, instead) in [
        ("file_mounts", "fleetform copies no files to nodes"),
        ("cluster_synced_files", "fleetform copies no files to nodes"),
        ("rsync_exclude", "fleetform copies no files to nodes"),
        ("docker", "fleetform runs its agent on the host"),
        ("initialization_commands", "move what is still needed into setup_commands"),
        ("head_start_ray_commands", "fleetform-reconcile"),
        ("worker_start_ray_commands", "fleetform-agent"),
        ("available_node_types.w.node_config.KeyName", "no SSH key"),
        ("available_node_types.w.node_config.TagSpecifications", "top-level `tags`"),
        ("available_node_types.w.node_config.Placement", "fleetform places nodes across provider.availability_zones"),
        ("head_setup_commands", "appended to setup_commands: fleetform runs one list on every node"),
        ("worker_setup_commands", "appended to setup_commands (1 already in the list left out)"),
    ] {
        assert!(has(&notes, &format!("note: {key}: ")) && has(&notes, instead), "{key}: {instead}\n{}", notes.join("\n"));
    }
    let spec = ClusterSpec::from_yaml("c.yaml", &text).unwrap();
    assert_eq!(spec.setup_commands, ["echo all", "echo head", "echo worker"]);
    assert!(text.contains("  - 'echo head'   # from head_setup_commands[0] (now on every node)"), "{text}");
    assert!(text.contains("#     - subnet-2   # from available_node_types.w.node_config.SubnetIds[1]"), "{text}");
    assert!(has(&notes, "max_workers: not set: wrote Ray's default (2)"));
    assert_eq!(spec.max_workers, 2);
    assert_eq!(spec.available_node_types["w"].node_config.image, ImageSpec::default(), "no ImageId: al2023");
}

#[test]
fn head_rules_are_applied_with_notes() {
    let src = ray_file("")
        .replace("resources: {CPU: 0}\n    node_config: {InstanceType: m7i.large}", "min_workers: 1\n    node_config: {InstanceType: m7i.large, InstanceMarketOptions: {MarketType: spot}}")
        .replace("resources: {CPU: 2}\n", "");
    let (text, notes) = import(&src);
    let spec = ClusterSpec::from_yaml("c.yaml", &text).unwrap();
    let head = &spec.available_node_types["head"];
    assert_eq!((head.resources.to_string().as_str(), head.node_config.market, head.min_workers), ("{CPU: 0}", Market::OnDemand, 0));
    assert!(has(&notes, "the head gets `CPU: 0`"), "{notes:?}");
    assert!(has(&notes, "head.min_workers: not imported: Ray gives the head type `max_workers: 0` by default"), "{notes:?}");
    assert!(has(&notes, "the head must be on-demand in fleetform"), "{notes:?}");
    assert_eq!(spec.available_node_types["w"].resources.to_string(), "{CPU: 2}", "c7g.large's vCPUs");
    assert!(has(&notes, "no CPU: wrote `CPU: 2`, the vCPUs of c7g.large"), "{notes:?}");
}

#[test]
fn malformed_input_gets_file_line_column() {
    let err = |src: &str| convert_file("r.yaml", src).err().expect("an error").to_string();
    let e = err(&ray_file("max_workers: many\nmax_worker: 3\n"));
    assert!(e.contains("r.yaml:11:1: max_workers: invalid type: string \"many\", expected u32"), "{e}");
    assert!(e.contains("r.yaml:12:1: max_worker: unknown key `max_worker`"), "{e}");
    let e = err(&ray_file("").replace("InstanceType: c7g.large", "InstanceType: c7g.large, BlockDeviceMappings: [{DeviceName: /dev/xvda, Ebs: {VolumeSize: big}}]"));
    assert!(e.contains("r.yaml:10:") && e.contains("BlockDeviceMappings[0].Ebs.VolumeSize: invalid type: string \"big\""), "{e}");
    let e = err("cluster_name: [x\n");
    assert!(e.starts_with("r.yaml:2:1: invalid YAML"), "{e}");
    let e = err(&ray_file("").replace("type: aws", "type: gcp").replace("head_node_type: head", "head_node_type: boss"));
    assert!(e.contains("r.yaml:2:") && e.contains("provider.type: provider type `gcp`: fleetform imports AWS clusters only"), "{e}");
    assert!(e.contains("r.yaml:3:1: head_node_type: `boss` is not one of available_node_types"), "{e}");
}

#[test]
fn unexpanded_variables_name_the_field_and_say_to_expand_first() {
    let raw = SEED.replace("cluster_name: ray-on-aws", "cluster_name: ${CLUSTER_NAME}").replace(X86_AMI, "${X86_AMI_ID}");
    let e = convert_file("cluster-spot.yaml", &raw).err().expect("an error");
    let msgs = e.to_string();
    assert!(
        msgs.contains("cluster-spot.yaml:4:1: cluster_name: `${CLUSTER_NAME}` is an unexpanded shell variable: expand the variables first, e.g. `envsubst < cluster-spot.yaml > filled.yaml`, then import filled.yaml"),
        "{msgs}"
    );
    assert!(msgs.contains("available_node_types.head_node.node_config.ImageId: `${X86_AMI_ID}`"), "{msgs}");
    assert_eq!(e.len(), 3, "cluster_name and two ImageIds, nothing else: {msgs}");
}

#[test]
fn a_spec_that_would_not_validate_is_not_returned() {
    let src = ray_file("max_workers: 1\n").replace("node_config: {InstanceType: c7g.large}", "min_workers: 3\n    node_config: {InstanceType: c7g.large}");
    let c = convert_file("r.yaml", &src).unwrap();
    let (_, d) = c.spec_text().unwrap_err();
    assert!(d.to_string().contains("min_workers (3) is greater than the cluster's max_workers (1)"), "{d}");
}

#[test]
fn resolve_images_maps_current_al2023_amis() {
    let mut c = convert_file("cluster-spot.yaml", SEED).unwrap();
    let current = BTreeMap::from([(Arch::X86_64, X86_AMI.to_string()), (Arch::Arm64, "ami-0newer".to_string())]);
    images::use_al2023(&mut c.imported, &current, &mut c.notes);
    let text = c.spec_text().unwrap();
    let spec = ClusterSpec::from_yaml("cluster.yaml", &text).unwrap();
    assert_eq!(spec.available_node_types["x86_worker_node"].node_config.image, ImageSpec::default());
    assert_eq!(spec.available_node_types["head_node"].node_config.image, ImageSpec::default());
    assert!(matches!(spec.available_node_types["arm_worker_node"].node_config.image, ImageSpec::Explicit { .. }));
    assert!(text.contains(&format!("image: al2023   # from available_node_types.head_node.node_config.ImageId: {X86_AMI} is the current AL2023 (/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64)")), "{text}");
    let notes = c.note_lines("cluster-spot.yaml");
    assert!(has(&notes, &format!("{ARM_AMI} is not the current AL2023 AMI (/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64 is ami-0newer): kept")), "{notes:?}");
}

#[test]
fn cluster_names_are_made_valid() {
    for (ray, ours) in [
        ("ray-on-aws", "ray-on-aws"),
        ("My_Cluster 2", "my-cluster-2"),
        ("2fast", "ray-2fast"),
        ("--x--", "x"),
        ("a-very-long-cluster-name-that-goes-on-and-on", "a-very-long-cluster-name-that-go"),
        ("", "ray-"),
    ] {
        let got = sanitize_name(ray);
        assert_eq!(got, ours.trim_end_matches('-'), "{ray}");
    }
    let (text, notes) = import(&ray_file("").replace("cluster_name: demo", "cluster_name: My_Cluster"));
    assert!(text.starts_with("# Imported from cluster-spot.yaml") && text.contains("cluster_name: my-cluster   # from cluster_name"));
    assert!(has(&notes, "cluster-spot.yaml:1:1: note: cluster_name: `My_Cluster` is not a fleetform cluster name"), "{notes:?}");
}

#[test]
fn scalars_read_back_as_the_same_string() {
    for s in ["plain", "r7i.2xlarge", "/dev/xvda", "10.0.16.0/20", "yes", "No", "null", "~", "2023", "1e3", "0x1f", ".5", "a: b", "it's", "# not a comment", "tab\there", "ü", "", "-x", "- x"] {
        let doc: BTreeMap<String, String> = serde_norway::from_str(&format!("k: {}\n", scalar(s))).unwrap();
        assert_eq!(doc["k"], s, "{}", scalar(s));
    }
    assert_eq!((scalar("10.0.16.0/20"), scalar("2023"), scalar("yes")), ("10.0.16.0/20".into(), "'2023'".into(), "'yes'".into()));
}

#[test]
fn zones_extra_volumes_and_other_market_types() {
    let src = ray_file("").replace("region: us-east-1", "region: us-east-1, availability_zone: 'us-east-1a, us-east-1b'").replace(
        "node_config: {InstanceType: c7g.large}",
        "node_config: {InstanceType: c7g.large, InstanceMarketOptions: {MarketType: capacity-block, SpotOptions: {MaxPrice: '1'}},\n      \
         BlockDeviceMappings: [{DeviceName: /dev/xvda, Ebs: {VolumeSize: 50, Iops: 4000}}, {DeviceName: /dev/sdb, Ebs: {VolumeSize: 500}}]}",
    );
    let (text, notes) = import(&src);
    let spec = ClusterSpec::from_yaml("c.yaml", &text).unwrap();
    assert_eq!(spec.provider.availability_zones, ["us-east-1a", "us-east-1b"]);
    assert_eq!(spec.network.private_subnets.as_deref(), Some(&["10.0.16.0/20".to_string(), "10.0.32.0/20".to_string()][..]));
    let w = &spec.available_node_types["w"].node_config;
    assert_eq!((w.market, w.root_volume.size_gb, w.root_volume.volume_type.as_str()), (Market::OnDemand, 50, "gp3"));
    assert!(has(&notes, "InstanceMarketOptions.MarketType: market type `capacity-block` has no fleetform equivalent"), "{notes:?}");
    assert!(has(&notes, "BlockDeviceMappings[1]: `/dev/sdb` is not imported: fleetform manages only the root volume"), "{notes:?}");
    assert!(has(&notes, "BlockDeviceMappings[0].Ebs.Iops: not imported: root volume IOPS"), "{notes:?}");
    assert!(has(&notes, "InstanceMarketOptions.SpotOptions: not imported: fleetform launches spot through CreateFleet"), "{notes:?}");
    assert!(!text.contains("# network:"), "no subnets in the Ray file, no commented block: {text}");
}

#[test]
fn with_vpc_id_the_ray_subnets_become_the_existing_network_form() {
    let c = convert_file_in("cluster-spot.yaml", SEED, Some(("vpc-0123456789abcdef0", "from --vpc-id"))).unwrap();
    let text = c.spec_text().unwrap_or_else(|(t, d)| panic!("{d}\n{t}"));
    let spec = ClusterSpec::from_yaml("cluster.yaml", &text).unwrap();
    let net = spec.network.existing().expect("the existing-VPC form");
    assert_eq!(net.vpc_id, "vpc-0123456789abcdef0");
    assert_eq!(net.private_subnet_ids, ["subnet-0a1b2c3d4e5f60718"]);
    assert_eq!(net.security_group_ids, ["sg-0fedcba9876543210", "sg-0123456789abcdef0"]);
    for line in [
        "network:",
        "  vpc_id: vpc-0123456789abcdef0   # from --vpc-id",
        "    - subnet-0a1b2c3d4e5f60718   # from available_node_types.arm_worker_node.node_config.SubnetId",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    }
    assert!(!text.contains("private_subnets:") && !text.contains("# network:"), "no created network: {text}");
    let notes = c.note_lines("cluster-spot.yaml").join("\n");
    assert!(notes.contains("SubnetId/SecurityGroupIds became `network.private_subnet_ids`/`security_group_ids` in vpc-0123456789abcdef0"), "{notes}");
}

#[test]
fn vpc_id_without_subnets_is_a_usage_error() {
    match convert_file_in("r.yaml", &ray_file(""), Some(("vpc-0123456789abcdef0", "from --vpc-id"))) {
        Err(ConvertError::Usage(m)) => assert!(m.starts_with("--vpc-id vpc-0123456789abcdef0: the Ray file names no SubnetId"), "{m}"),
        other => panic!("expected a usage error, got {:?}", other.err()),
    }
}
