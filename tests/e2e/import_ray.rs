//! `fleetform import ray` as a user runs it: the binary, stdout / -o / --force, and the
//! imported workshop file planned on moto. Needs more than the unit tests in
//! `reconciler/src/import/`: `--resolve-images` asks SSM through the SDK, and the point
//! is that what import writes is something `plan` accepts end to end.

use std::process::Output;

use fleetform_core::instance::Arch;
use fleetform_core::spec::al2023_parameter;

use crate::aws_reconcile::{run, runtime, Fixture};
use crate::moto::Moto;

const SEED: &str = include_str!("../../examples/ray/cluster-spot.yaml");
const SEED_X86_AMI: &str = "ami-0c1a4f3e2b5d69870";
const SEED_ARM_AMI: &str = "ami-0e7d2b9c4a1f35068";

/// The workshop's file as written on the day: its AMIs are the current AL2023 ones (here:
/// moto's), so they exist and --resolve-images turns them into `image: al2023`.
fn seed_on_the_day(moto: &Moto, rt: &tokio::runtime::Runtime) -> String {
    let current = |arch| {
        rt.block_on(async {
            let ssm = aws_sdk_ssm::Client::new(&moto.sdk_config().await);
            let p = ssm.get_parameter().name(al2023_parameter(arch)).send().await.unwrap();
            p.parameter().unwrap().value().unwrap().to_string()
        })
    };
    SEED.replace(SEED_X86_AMI, &current(Arch::X86_64)).replace(SEED_ARM_AMI, &current(Arch::Arm64))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn import_ray_writes_refuses_to_overwrite_and_plans_on_moto() {
    let moto = Moto::start();
    let f = Fixture::new("ray-on-aws", 0);
    let rt = runtime();
    let ray = f.dir.path().join("cluster-spot.yaml");
    std::fs::write(&ray, seed_on_the_day(&moto, &rt)).unwrap();
    let ray = ray.to_str().unwrap();
    let spec = f.spec.to_str().unwrap();

    // Without -o: the spec on stdout, the notes on stderr.
    let Output { status, stdout, stderr } = moto.fleetform(&["import", "ray", ray]).output().unwrap();
    let (stdout, stderr) = (text(&stdout), text(&stderr));
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stdout.starts_with("# Imported from cluster-spot.yaml"), "{stdout}");
    assert!(stdout.contains("image: {ami: ami-"), "explicit AMIs without --resolve-images: {stdout}");
    assert!(stderr.contains("cluster-spot.yaml:14:1: note: auth: not imported"), "{stderr}");
    assert!(stderr.contains("import again with --resolve-images"), "{stderr}");

    // -o over an existing file: refused, the file untouched.
    let before = std::fs::read_to_string(&f.spec).unwrap();
    let o = moto.fleetform(&["import", "ray", ray, "-o", spec]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("exists: pass --force to overwrite it"), "{}", text(&o.stderr));
    assert_eq!(std::fs::read_to_string(&f.spec).unwrap(), before);

    // --force --resolve-images: written, AL2023 recognised through moto's SSM.
    let o = moto.fleetform(&["import", "ray", ray, "-o", spec, "--force", "--resolve-images"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let written = std::fs::read_to_string(&f.spec).unwrap();
    assert_eq!(written.matches("image: al2023   # from").count(), 3, "{written}");
    assert!(text(&o.stderr).contains(&format!("wrote {spec}")), "{}", text(&o.stderr));

    // The imported spec plans. Its network is fleetform's own VPC: the Ray file's subnet
    // and security-group ids are a commented-out block (they would not exist in moto).
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    for n in ["head_node", "x86_worker_node", "arm_worker_node"] {
        assert!(out.contains(&format!("+ launch_template.{n} (AWS::EC2::LaunchTemplate): create")), "{n}: {out}");
    }
    assert!(out.contains("+ node.head_node[new 1] (AWS::EC2::Instance): create: the head node"), "{out}");
    assert!(out.contains(" to add, 0 to change, 0 to destroy."), "{out}");

    // Applied, then one more setup command: every launch template gets a new version
    // (the user data changed) and the plan replaces the nodes.
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let more = written.replace("setup_commands:", "setup_commands:\n  - 'echo one more'");
    std::fs::write(&f.spec, more).unwrap();
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    for n in ["head_node", "x86_worker_node", "arm_worker_node"] {
        assert!(out.contains(&format!("~ launch_template.{n} (AWS::EC2::LaunchTemplate): update: user data changed (new version 2)")), "{n}: {out}");
    }
    assert!(out.contains("replace: launch template version changed: user data changed"), "{out}");
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
}

/// A Ray file that names the user's existing subnet and groups, imported with `--vpc-id`:
/// the spec uses that VPC, and `plan` checks it on moto (here: private, via the NAT).
#[test]
fn import_ray_with_vpc_id_plans_into_the_users_network() {
    let moto = Moto::start();
    let f = Fixture::new("ray-on-aws", 0);
    let rt = runtime();
    let user = rt.block_on(async { crate::aws_byo_vpc::make_user_vpc(&aws_sdk_ec2::Client::new(&moto.sdk_config().await)).await });
    let ray = f.dir.path().join("cluster-spot.yaml");
    let filled = seed_on_the_day(&moto, &rt)
        .replace("subnet-0a1b2c3d4e5f60718", &user.private[0])
        .replace("sg-0fedcba9876543210", &user.group)
        .replace("sg-0123456789abcdef0", &user.group);
    std::fs::write(&ray, filled).unwrap();
    let (ray, spec) = (ray.to_str().unwrap(), f.spec.to_str().unwrap());
    let o = moto.fleetform(&["import", "ray", ray, "-o", spec, "--force", "--vpc-id", &user.vpc]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let written = std::fs::read_to_string(&f.spec).unwrap();
    assert!(written.contains(&format!("  vpc_id: {}   # from --vpc-id", user.vpc)), "{written}");
    // --resolve-vpc finds the same VPC through ec2:DescribeSubnets.
    let o = moto.fleetform(&["import", "ray", ray, "--resolve-vpc"]).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&format!("  vpc_id: {}   # from ec2:DescribeSubnets", user.vpc)), "{}", text(&o.stdout));
    assert!(text(&o.stderr).contains(&format!("note: the Ray file's subnets are in {}", user.vpc)), "{}", text(&o.stderr));
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("network: using existing {} (subnets {} private via nat-", user.vpc, user.private[0])), "{out}");
    assert!(!out.contains("AWS::EC2::VPC"), "no VPC of fleetform's own: {out}");
}

/// A node_config that takes its instance type from a launch template (Ray's
/// example-launch-templates.yaml form): refused offline at the Ray file's line, read from
/// EC2 with --resolve-launch-templates. A spec that fails validation names the Ray file's
/// lines too, never the spec import would have written.
#[test]
fn import_ray_reads_launch_templates_from_ec2_and_names_ray_file_lines() {
    use aws_sdk_ec2::types::{InstanceType, LaunchTemplateInstanceMarketOptionsRequest, MarketType, RequestLaunchTemplateData};
    let moto = Moto::start();
    runtime().block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&moto.sdk_config().await);
        let market = LaunchTemplateInstanceMarketOptionsRequest::builder().market_type(MarketType::Spot).build();
        let data = RequestLaunchTemplateData::builder()
            .instance_type(InstanceType::from("c7g.xlarge"))
            .instance_market_options(market)
            .user_data("IyEvYmluL3NoCg==")
            .build();
        ec2.create_launch_template().launch_template_name("ray-workers").launch_template_data(data).send().await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let ray = dir.path().join("lt.yaml");
    std::fs::write(
        &ray,
        "cluster_name: lt\nprovider: {type: aws, region: us-west-2}\navailable_node_types:\n  ray.head.default:\n    \
         node_config: {InstanceType: m5.large}\n  ray.worker.default:\n    node_config:\n      \
         LaunchTemplate: {LaunchTemplateName: ray-workers, Version: $Latest}\n",
    )
    .unwrap();
    let ray = ray.to_str().unwrap();

    let o = moto.fleetform(&["import", "ray", ray]).output().unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{ray}:8:7: available_node_types.ray.worker.default.node_config.LaunchTemplate: no InstanceType in node_config, and launch template ray-workers (version $Latest) was not read: import with --resolve-launch-templates")),
        "{stderr}"
    );

    let o = moto.fleetform(&["import", "ray", ray, "--resolve-launch-templates"]).output().unwrap();
    let (stdout, stderr) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("  ray_worker_default:") && stdout.contains("instance_types: [c7g.xlarge]") && stdout.contains("market: spot"), "{stdout}");
    assert!(stderr.contains("read ray-workers (version $Latest) (ec2:DescribeLaunchTemplateVersions): took InstanceType, InstanceMarketOptions.MarketType"), "{stderr}");
    assert!(stderr.contains("not imported from it: UserData"), "{stderr}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "cluster_name: bad\nmax_workers: 1\nprovider: {type: aws, region: us-west-2}\navailable_node_types:\n  \
         ray.head.default: {node_config: {InstanceType: m5.large}}\n  ray.worker.default:\n    min_workers: 3\n    \
         node_config: {InstanceType: m5.large}\n",
    )
    .unwrap();
    let bad = bad.to_str().unwrap();
    let o = moto.fleetform(&["import", "ray", bad]).output().unwrap();
    let stderr = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("{bad}:7:5: available_node_types.ray.worker.default.min_workers: in the imported spec")), "{stderr}");
    assert!(!stderr.contains("<stdout>:") && !stderr.contains("the imported spec:"), "only the Ray file's lines: {stderr}");
}
