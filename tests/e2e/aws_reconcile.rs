//! plan / apply / destroy against a moto server (docs/aws.md). Needs more than unit tests:
//! this is the real SDK, waiters, pagination, CloudFormation and EC2 semantics end to end.
//! Each test starts its own server, so they run in parallel.

use std::path::PathBuf;

use aws_sdk_ec2::types::Filter;
use chrono::Utc;
use fleetform::autoscaler::decide::plan_launches;
use fleetform::autoscaler::run::record_launch;
use fleetform::autoscaler::policy::FailureKind;
use fleetform::autoscaler::{AutoscalerState, CapacityError, NodeProvider};
use fleetform::aws::resources::placement;
use fleetform::aws::stages::live;
use fleetform::aws::{AwsContext, AwsProvider, ContextOptions};
use fleetform_runtime::queue::{sqs::SqsQueue, Queue};
use fleetform_runtime::store::Store;
use fleetform_core::instance::Arch;
use fleetform_core::spec::Market;
use fleetform_core::ClusterSpec;

use crate::elf::fake_elf;
use crate::faults::{CapacityShortage, ForgetTerminated, LaunchRecorder, TerminationRecorder};
use crate::moto::Moto;

/// The workshop's shape, small: an on-demand head, spot x86 and Graviton workers.
pub(crate) fn spec_yaml(cluster: &str, x86_min: u32) -> String {
    format!(
        r#"cluster_name: {cluster}
provider: {{type: aws, region: us-west-2, availability_zones: [us-west-2a, us-west-2b]}}
network:
  vpc_cidr: 10.0.0.0/16
  public_subnets: [10.0.0.0/24]
  private_subnets: [10.0.16.0/20, 10.0.32.0/20]
storage: {{bucket: fleetform-{cluster}-data, prefix: {cluster}/}}
max_workers: 8
head_node_type: head
available_node_types:
  head:
    resources: {{CPU: 0}}
    node_config: {{instance_types: [m7i.xlarge], market: on-demand, image: al2023, root_volume: {{size_gb: 50, type: gp3}}}}
  x86_worker_node:
    resources: {{CPU: 8, Intel: 1}}
    min_workers: {x86_min}
    max_workers: 4
    node_config: {{instance_types: [r7i.2xlarge, m7i.2xlarge], market: spot, image: al2023, root_volume: {{size_gb: 300, type: gp3}}}}
  arm_worker_node:
    resources: {{CPU: 8, Graviton: 1}}
    min_workers: 1
    max_workers: 4
    node_config: {{instance_types: [r8g.2xlarge], market: spot, image: al2023, root_volume: {{size_gb: 300, type: gp3}}}}
tags: {{project: e2e}}
"#
    )
}

pub(crate) struct Fixture {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) spec: PathBuf,
}

impl Fixture {
    /// A spec, x86_64 binaries in dist/ (no aarch64 one: the source-bundle fallback),
    /// and a tiny source tree to bundle.
    pub(crate) fn new(cluster: &str, x86_min: u32) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("cluster.yaml");
        std::fs::write(&spec, spec_yaml(cluster, x86_min)).unwrap();
        let dist = dir.path().join("dist/x86_64");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join("fleetform-agent"), fake_elf(Arch::X86_64, b"agent build 1")).unwrap();
        std::fs::write(dist.join("fleetform"), fake_elf(Arch::X86_64, b"reconciler build 1")).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("node-agent")).unwrap();
        std::fs::write(src.join("Cargo.toml"), "[workspace]\nmembers = [\"node-agent\"]\n").unwrap();
        std::fs::write(src.join("node-agent/lib.rs"), "// agent\n").unwrap();
        Fixture { dir, spec }
    }
    fn spec(&self) -> &str {
        self.spec.to_str().unwrap()
    }
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![("FLEETFORM_SOURCE_DIR", self.dir.path().join("src").display().to_string())]
    }
}

pub(crate) fn run(moto: &Moto, f: &Fixture, args: &[&str]) -> (i32, String) {
    let env = f.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut all = args.to_vec();
    all.extend(["-f", f.spec()]);
    moto.run(&all, &env)
}

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn tag(k: &str, v: &str) -> Filter {
    Filter::builder().name(format!("tag:{k}")).values(v).build()
}

/// Instances of the cluster that are not terminated: (id, node type, public ip).
pub(crate) async fn live_instances(ec2: &aws_sdk_ec2::Client, cluster: &str) -> Vec<(String, String, Option<String>)> {
    let out = ec2.describe_instances().filters(tag("fleetform:cluster", cluster)).send().await.unwrap();
    let mut v = Vec::new();
    for r in out.reservations() {
        for i in r.instances() {
            let state = i.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()).unwrap_or_default();
            if state == "terminated" || state == "shutting-down" {
                continue;
            }
            let t = i.tags().iter().find(|t| t.key() == Some("fleetform:node-type")).and_then(|t| t.value()).unwrap_or("").to_string();
            v.push((i.instance_id().unwrap().to_string(), t, i.public_ip_address().map(str::to_string)));
        }
    }
    v.sort();
    v
}

#[test]
fn aws_sequence_apply_plan_repair_destroy() {
    let moto = Moto::start();
    let f = Fixture::new("e2e", 1);
    let rt = runtime();
    let sdk = rt.block_on(moto.sdk_config());
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);

    // 1. A fresh plan shows everything, says how each node type gets its agent.
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("+ network.InstanceConnectEndpoint (AWS::EC2::InstanceConnectEndpoint): create"), "{out}");
    assert!(out.contains("+ iam.HeadRole (AWS::IAM::Role): create"), "{out}");
    assert!(out.contains("+ node.head[new 1] (AWS::EC2::Instance): create: the head node"), "{out}");
    assert!(out.contains("Note: x86_worker_node (x86_64): installs bin/x86_64/fleetform-agent"), "{out}");
    assert!(out.contains("Note: arm_worker_node (aarch64): no fleetform-agent given (--agent-binary aarch64=PATH) or in "), "{out}");
    assert!(out.contains("the first aarch64 node builds fleetform-agent from the source bundle and publishes it"), "{out}");
    assert!(out.contains("+ store.bin/src/fleetform-src.tar.gz"), "{out}");
    assert!(out.contains("Plan: ") && out.contains(" to add, 0 to change, 0 to destroy."), "{out}");
    assert!(!out.contains("FullAccess"), "{out}");
    let (code, json) = run(&moto, &f, &["plan", "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&json[..json.rfind('}').unwrap() + 1]).unwrap();
    assert_eq!(json["summary"]["change"], 0);

    // 2. apply, then a second plan is empty.
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Apply complete! Resources:"), "{out}");
    assert!(!out.contains("FullAccess"), "{out}");
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes. Cluster `e2e` matches the spec."), "{out}");
    assert!(out.contains("Plan: 0 to add, 0 to change, 0 to destroy."), "{out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("launching"), "a second apply does nothing: {out}");

    let nodes = rt.block_on(live_instances(&ec2, "e2e"));
    let types: Vec<&str> = nodes.iter().map(|n| n.1.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "head").count(), 1, "{nodes:?}");
    assert_eq!(types.iter().filter(|t| **t == "x86_worker_node").count(), 1, "{nodes:?}");
    assert_eq!(types.iter().filter(|t| **t == "arm_worker_node").count(), 1, "{nodes:?}");
    let head = nodes.iter().find(|n| n.1 == "head").unwrap();
    assert_eq!(head.2, None, "the head (RunInstances) has no public IP");

    // Security defaults, asserted on what AWS holds (moto instances do not inherit
    // launch template settings; the templates are what real AWS applies).
    rt.block_on(async {
        let lts = ec2.describe_launch_templates().filters(tag("fleetform:cluster", "e2e")).send().await.unwrap();
        assert_eq!(lts.launch_templates().len(), 3);
        for lt in lts.launch_templates() {
            let v = ec2
                .describe_launch_template_versions()
                .launch_template_id(lt.launch_template_id().unwrap())
                .versions("$Default")
                .send()
                .await
                .unwrap();
            let d = v.launch_template_versions()[0].launch_template_data().unwrap();
            let name = lt.launch_template_name().unwrap();
            let md = d.metadata_options().unwrap();
            assert_eq!(md.http_tokens().unwrap().as_str(), "required", "{name}: IMDSv2");
            assert_eq!(md.http_put_response_hop_limit(), Some(1), "{name}");
            let ebs = d.block_device_mappings()[0].ebs().unwrap();
            assert_eq!(ebs.encrypted(), Some(true), "{name}");
            assert_eq!(ebs.volume_type().unwrap().as_str(), "gp3", "{name}");
            assert_eq!(d.network_interfaces()[0].associate_public_ip_address(), Some(false), "{name}");
            let profile = d.iam_instance_profile().unwrap().name().unwrap();
            assert_eq!(profile, if name.ends_with("-head") { "fleetform-e2e-head" } else { "fleetform-e2e-worker" });
        }
        let sgs = ec2.describe_security_groups().filters(tag("fleetform:cluster", "e2e")).send().await.unwrap();
        assert_eq!(sgs.security_groups().len(), 3);
        for g in sgs.security_groups() {
            for p in g.ip_permissions() {
                for r in p.ip_ranges() {
                    assert_ne!(r.cidr_ip(), Some("0.0.0.0/0"), "{:?} is open to the world", g.group_name());
                }
                assert_eq!(p.from_port(), Some(22), "only SSH, from the endpoint");
                assert_eq!(p.user_id_group_pairs().len(), 1);
            }
        }
        let iam = cfn.get_template().stack_name("fleetform-e2e-iam").send().await.unwrap();
        let body = iam.template_body().unwrap();
        assert!(!body.contains("FullAccess") && body.contains("aws:ResourceTag/fleetform:cluster"), "{body}");
        let queues = sqs.list_queues().queue_name_prefix("fleetform-e2e-").send().await.unwrap();
        assert_eq!(queues.queue_urls().len(), 6, "default, intel, graviton and their DLQs");
    });

    // 3. Terminate a worker behind fleetform's back: the plan shows its replacement.
    let victim = nodes.iter().find(|n| n.1 == "x86_worker_node").unwrap().0.clone();
    rt.block_on(ec2.terminate_instances().instance_ids(&victim).send()).unwrap();
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("+ node.x86_worker_node[new 1] (AWS::EC2::Instance): create: replaces {victim} (terminated)")),
        "{out}"
    );
    assert!(out.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "{out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "repaired: {out}");

    // 4. A changed spec: a bigger root volume is a new template version and replaces nodes.
    std::fs::write(&f.spec, spec_yaml("e2e", 1).replacen("size_gb: 50", "size_gb: 60", 1)).unwrap();
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("~ launch_template.head (AWS::EC2::LaunchTemplate): update: root volume changed (new version 2)"), "{out}");
    assert!(out.contains(&format!("-/+ node.head[{}] (AWS::EC2::Instance): replace: launch template version changed: root volume changed", head.0)), "{out}");
    assert!(out.contains("~ store.cluster.yaml"), "{out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");

    // 5. destroy: everything tagged goes except the retained data stack; then --delete-data.
    let (code, out) = run(&moto, &f, &["destroy", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing tagged fleetform:cluster=e2e is left."), "{out}");
    rt.block_on(async {
        assert_eq!(live_instances(&ec2, "e2e").await, vec![], "instances terminated");
        let lts = ec2.describe_launch_templates().filters(tag("fleetform:cluster", "e2e")).send().await.unwrap();
        assert!(lts.launch_templates().is_empty(), "no launch templates");
        let queues = sqs.list_queues().queue_name_prefix("fleetform-e2e-").send().await.unwrap();
        assert!(queues.queue_urls().is_empty(), "no queues: {:?}", queues.queue_urls());
        let stacks = cfn.describe_stacks().send().await.unwrap();
        let names: Vec<&str> = stacks.stacks().iter().filter_map(|s| s.stack_name()).collect();
        assert_eq!(names, vec!["fleetform-e2e-data"], "only the data stack is kept");
        let vpcs = ec2.describe_vpcs().filters(tag("fleetform:cluster", "e2e")).send().await.unwrap();
        assert!(vpcs.vpcs().is_empty(), "no VPC: {:?}", vpcs.vpcs());
    });
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
    rt.block_on(async {
        let stacks = cfn.describe_stacks().send().await.unwrap();
        assert!(stacks.stacks().is_empty(), "no stacks: {:?}", stacks.stacks());
        let store = fleetform::aws::resources::store_artifacts::bucket_store(&connect(&moto, &f, ContextOptions::default()).await).unwrap();
        assert!(!fleetform::aws::resources::store_artifacts::bucket_exists(store.as_ref()).await.unwrap(), "bucket deleted");
    });
    let (code, out) = run(&moto, &f, &["destroy", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Nothing to destroy"), "{out}");
}

/// Where each node type's binary comes from, as plan says and apply does: a binary a
/// node built and published counts as in the store, a new source removes it so the next
/// node builds again, `--agent-binary` uploads a given one, and plan and apply agree.
#[test]
fn aws_binaries_from_flags_dist_the_store_and_the_first_node() {
    let moto = Moto::start();
    let f = Fixture::new("bins", 0);
    let plan = |extra: &[&str]| run(&moto, &f, &[&["plan", "--detailed-exitcode"], extra].concat());

    // 1. No aarch64 agent here or in the store: the first aarch64 node will build it.
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Note: arm_worker_node (aarch64): no fleetform-agent given (--agent-binary aarch64=PATH)"), "{out}");
    assert!(out.contains("+ store.bin/src/fleetform-src.tar.gz"), "{out}");

    // 2. That node builds and publishes it (the shipped install script; the build faked).
    let nodes = tempfile::tempdir().unwrap();
    let mut node = crate::install_binary::node_command(&moto, nodes.path(), "s3://fleetform-bins-data/bins", "i-0arm", "aarch64");
    assert!(
        node.env("BUILD_SECONDS", "1").status().unwrap().success(),
        "{}",
        std::fs::read_to_string(nodes.path().join("i-0arm.log")).unwrap()
    );
    let (code, out) = plan(&[]);
    assert_eq!(code, 0, "a node-built binary is not overwritten with nothing: {out}");
    assert!(
        out.contains("Note: arm_worker_node (aarch64): installs bin/aarch64/fleetform-agent already in the store (built by i-0arm from the source bundle)"),
        "{out}"
    );

    // 3. A new source: the bundle goes up again and the binary built from the old one goes.
    std::fs::write(f.dir.path().join("src/node-agent/lib.rs"), "// agent v2\n").unwrap();
    let (code, out) = plan(&[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("~ store.bin/src/fleetform-src.tar.gz (AWS::S3::Object): upload: source bundle of "), "{out}");
    assert!(
        out.contains(
            "- store.bin/aarch64/fleetform-agent (AWS::S3::Object): delete: built by i-0arm from an older source bundle; \
             the first aarch64 node builds it again"
        ),
        "{out}"
    );
    assert!(out.contains("Plan: 0 to add, 1 to change, 1 to destroy."), "{out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("store bins/bin/aarch64/fleetform-agent: deleted (delete: built by i-0arm"), "{out}");
    assert_eq!(plan(&[]).0, 0);

    // 4. A given binary: plan and apply with the same flag agree; afterwards it counts
    //    as in the store, with or without the flag.
    let arm = f.dir.path().join("graviton-agent");
    std::fs::write(&arm, fake_elf(Arch::Arm64, b"agent for graviton")).unwrap();
    let flag = format!("aarch64={}", arm.display());
    let (code, out) = plan(&["--agent-binary", &flag]);
    assert_eq!(code, 2, "{out}");
    let upload = format!("+ store.bin/aarch64/fleetform-agent (AWS::S3::Object): upload: {} (--agent-binary), 82 bytes", arm.display());
    assert!(out.contains(&upload), "{out}");
    assert!(
        out.contains(&format!(
            "Note: arm_worker_node (aarch64): installs bin/aarch64/fleetform-agent (from {} (--agent-binary))",
            arm.display()
        )),
        "{out}"
    );
    assert!(out.contains("Plan: 1 to add, 0 to change, 0 to destroy."), "{out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes", "--agent-binary", &flag]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&upload) && out.contains("store bins/bin/aarch64/fleetform-agent: uploading"), "{out}");
    let stored = runtime().block_on(async {
        use object_store::ObjectStoreExt as _;
        let store = fleetform::aws::resources::store_artifacts::bucket_store(&connect(&moto, &f, ContextOptions::default()).await).unwrap();
        store.get(&"bins/bin/aarch64/fleetform-agent".into()).await.unwrap().bytes().await.unwrap()
    });
    assert_eq!(stored.as_ref(), std::fs::read(&arm).unwrap().as_slice());
    assert_eq!(plan(&["--agent-binary", &flag]).0, 0);
    let (code, out) = plan(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("installs bin/aarch64/fleetform-agent already in the store (uploaded by an earlier apply)"), "{out}");

    // 5. The wrong architecture is refused, naming the flag and what the file is.
    let x86 = f.dir.path().join("dist/x86_64/fleetform-agent");
    let (code, out) = plan(&["--agent-binary", &format!("aarch64={}", x86.display())]);
    assert_ne!(code, 0);
    assert!(out.contains("for '--agent-binary <ARCH=PATH>'"), "{out}");
    assert!(out.contains(&format!("{} is an x86_64 executable, not aarch64", x86.display())), "{out}");
}

pub(crate) async fn connect(moto: &Moto, f: &Fixture, options: ContextOptions) -> AwsContext {
    let spec = ClusterSpec::load(&f.spec).unwrap();
    AwsContext::connect_with(&spec, moto.sdk_config().await, options).await.unwrap()
}

/// A provider of the fixture's cluster over moto, with `faults` and `recorder` on its
/// clients.
pub(crate) async fn provider(moto: &Moto, f: &Fixture, faults: CapacityShortage, recorder: &LaunchRecorder) -> AwsProvider {
    provider_with(moto, f, faults, recorder.options()).await
}

/// [`provider`] with any interceptors on its clients.
pub(crate) async fn provider_with(moto: &Moto, f: &Fixture, faults: CapacityShortage, mut options: ContextOptions) -> AwsProvider {
    options.interceptors.insert(0, faults.interceptor());
    let ctx = connect(moto, f, options).await;
    faults.learn_zones(&placement::network(&ctx).await.unwrap().subnets);
    let config = moto.sdk_config().await;
    let uri = format!("s3://{}/{}", ctx.spec.storage.bucket.clone().unwrap(), ctx.spec.cluster_name);
    let store = Store::open_with(&config, &uri).await.unwrap();
    let queue = Queue::Sqs(SqsQueue::new(&config, &ctx.spec.cluster_name));
    AwsProvider::new(ctx, store, queue)
}

#[test]
fn aws_capacity_shortage_names_offerings_and_falls_back() {
    let moto = Moto::start();
    let f = Fixture::new("ice", 0);
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let rt = runtime();
    rt.block_on(async {
        // No spot anywhere, and no on-demand r7i.2xlarge in us-west-2a.
        let faults = CapacityShortage::new()
            .offering(Some(Market::Spot), None, None)
            .offering(Some(Market::OnDemand), Some("r7i.2xlarge"), Some("us-west-2a"));
        let recorder = LaunchRecorder::default();
        let p = provider(&moto, &f, faults, &recorder).await;
        let mut state = AutoscalerState::new();
        let now = Utc::now();
        let plan = plan_launches(p.spec(), &state.capacity, "x86_worker_node", 2, 0, "test: capacity", now);
        let launch = &plan.launches[0];
        assert_eq!((launch.market, launch.offerings.len()), (Market::Spot, 8), "spot, then on-demand fallback: {launch:?}");
        let out = p.launch(launch).await.unwrap();
        let failed: Vec<String> = out.failed.iter().map(|f| f.offering.to_string()).collect();
        assert_eq!(
            failed,
            [
                "r7i.2xlarge spot us-west-2a", "r7i.2xlarge spot us-west-2b",
                "m7i.2xlarge spot us-west-2a", "m7i.2xlarge spot us-west-2b",
                "r7i.2xlarge on-demand us-west-2a",
            ]
        );
        assert!(out.messages.iter().any(|m| m == "spot capacity short by 2: falling back to on-demand (on_demand_fallback)"), "{:?}", out.messages);
        assert!(out.messages.iter().any(|m| m.starts_with("r7i.2xlarge on-demand us-west-2a in subnet-") && m.ends_with(": InsufficientInstanceCapacity; trying the next offering")), "{:?}", out.messages);
        assert_eq!(out.launched.len(), 2, "{out:?}");
        // The next offering after the dry one; moto launches MinCount (1) per request,
        // so the second node comes from the offering after that.
        let first = &out.launched[0];
        assert_eq!((first.market, first.instance_type.as_str(), first.zone.as_deref()), (Market::OnDemand, "r7i.2xlarge", Some("us-west-2b")), "{out:?}");
        assert!(out.launched.iter().all(|n| n.market == Market::OnDemand), "{out:?}");
        // EC2 saw on-demand requests only, for the decision's offerings in its order.
        let sent = recorder.take();
        assert!(!sent.is_empty() && sent.iter().all(|r| r.market == Market::OnDemand), "{sent:?}");
        assert_eq!(sent[0].offerings[0].0, "r7i.2xlarge", "{sent:?}");
        // They are tagged for the cluster, so fleetform finds them without a state file.
        let seen = live::instances(p.context(), Some("x86_worker_node")).await.unwrap();
        for n in &out.launched {
            let i = seen.iter().find(|i| i.id == n.id).expect("launched node is observed by its tags");
            assert_eq!(i.public_ip, None, "{}", i.id);
            assert_eq!(i.lt_version, Some(1));
        }
        // Dry offerings are cached and skipped by the next plan.
        record_launch(&mut state, launch, &out, now);
        let again = plan_launches(p.spec(), &state.capacity, "x86_worker_node", 1, 2, "test: cache", now);
        assert_eq!(again.launches[0].skipped.len(), 5, "{again:?}");
        assert!(again.lines.iter().any(|m| m.starts_with("skip r7i.2xlarge spot us-west-2a: insufficient capacity until")), "{:?}", again.lines);
        assert_eq!(again.launches[0].offerings[0].to_string(), "r7i.2xlarge on-demand us-west-2b");

        // Nothing anywhere: not an error, every offering named, and all of them cached, so
        // the next plan holds the type instead of trying again.
        let none = CapacityShortage::new().offering(None, None, None);
        let p = provider(&moto, &f, none, &recorder).await;
        let launch = &plan_launches(p.spec(), &state.capacity, "arm_worker_node", 1, 0, "test: none", now).launches[0];
        let out = p.launch(launch).await.unwrap();
        assert!(out.launched.is_empty());
        let failed: Vec<String> = out.failed.iter().map(|f| format!("{} ({})", f.offering, f.code)).collect();
        assert_eq!(
            failed,
            [
                "r8g.2xlarge spot us-west-2a (InsufficientInstanceCapacity)", "r8g.2xlarge spot us-west-2b (InsufficientInstanceCapacity)",
                "r8g.2xlarge on-demand us-west-2a (InsufficientInstanceCapacity)", "r8g.2xlarge on-demand us-west-2b (InsufficientInstanceCapacity)",
            ]
        );
        record_launch(&mut state, launch, &out, now);
        let held = plan_launches(p.spec(), &state.capacity, "arm_worker_node", 1, 0, "test: none", now);
        assert!(held.launches.is_empty(), "{held:?}");
        assert_eq!(held.blocked.len(), 1, "{held:?}");
        assert!(recorder.take().is_empty(), "no request reaches EC2 for offerings that failed");
    });
    // The surplus nodes are above min_workers (0): the plan leaves them to the autoscaler.
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
}

/// EC2 keeps a ClientToken for at least 24 hours after the instances it launched are
/// gone, and DescribeInstances forgets them within about an hour (`ForgetTerminated`):
/// a token made from what is observed would repeat after a scale-down to zero, and EC2
/// would answer the old, terminated instance for a day. Each launch decision carries a
/// number of its own (persisted with the autoscaler's state), so its token is new.
#[test]
fn aws_a_new_launch_decision_never_reuses_a_client_token() {
    let moto = Moto::start();
    let f = Fixture::new("tok", 0);
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    runtime().block_on(async {
        let recorder = LaunchRecorder::default();
        let mut options = recorder.options();
        options.interceptors.push(ForgetTerminated.shared());
        let p = provider_with(&moto, &f, CapacityShortage::new(), options).await;
        let mut state = AutoscalerState::new();
        let mut tokens = Vec::new();
        for round in 0..2 {
            let now = Utc::now();
            let mut plan = plan_launches(p.spec(), &state.capacity, "x86_worker_node", 1, 0, "test: from zero", now);
            state.number_launches(&mut plan.launches);
            let out = p.launch(&plan.launches[0]).await.unwrap();
            assert_eq!(out.launched.len(), 1, "round {round}: {out:?}");
            tokens.extend(recorder.take().into_iter().map(|r| r.client_token));
            // Scale down to zero: as EC2 shows it an hour later, nothing is left.
            p.terminate(&[out.launched[0].id.clone()]).await.unwrap();
            let left = live::instances(p.context(), Some("x86_worker_node")).await.unwrap();
            assert!(left.is_empty(), "{left:?}");
        }
        assert_eq!(tokens.len(), 2, "{tokens:?}");
        assert_ne!(tokens[0], tokens[1], "the same token twice: EC2 would launch nothing the second time");
        assert_eq!(state.launch_decisions, 2);
    });
}

/// A quota answer is a shortage with the quota named (the offering is cached, the next one
/// tried); a refusal that is not about capacity stops the launch but keeps what it launched
/// before, and reaches the error policy typed (access denied: only a person can fix it).
#[test]
fn aws_quota_is_a_shortage_and_a_refused_request_keeps_the_partial_report() {
    let moto = Moto::start();
    let f = Fixture::new("quota", 0);
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    runtime().block_on(async {
        // Spot: the account's spot vCPU quota is used up. On-demand: r7i.2xlarge launches
        // in us-west-2a (moto launches MinCount, 1, per request), then us-west-2b refuses.
        let faults = CapacityShortage::new()
            .offering(Some(Market::Spot), None, None)
            .code("MaxSpotInstanceCountExceeded")
            .offering_code(Some(Market::OnDemand), Some("r7i.2xlarge"), Some("us-west-2b"), "UnauthorizedOperation");
        let recorder = LaunchRecorder::default();
        let p = provider(&moto, &f, faults, &recorder).await;
        let mut state = AutoscalerState::new();
        let now = Utc::now();
        let mut plan = plan_launches(p.spec(), &state.capacity, "x86_worker_node", 2, 0, "test: quota", now);
        state.number_launches(&mut plan.launches);
        let launch = &plan.launches[0];
        let out = p.launch(launch).await.expect("a launch that did something reports it");
        assert_eq!(out.launched.len(), 1, "the node launched before the refusal is kept: {out:?}");
        let error = out.error.clone().expect("the refusal is reported");
        assert_eq!(error.kind, FailureKind::NeedsOperator, "{error:?}");
        assert!(error.message.contains("access denied: allow `ec2:RunInstances`"), "{error:?}");
        let quota: Vec<&CapacityError> = out.failed.iter().map(|f| &f.error).collect();
        assert_eq!(quota, [&CapacityError::QuotaExceeded; 4], "{out:?}");
        assert!(
            out.messages.iter().any(|m| m.contains(
                "the account's spot vCPU quota for r7i.2xlarge is used up (MaxSpotInstanceCountExceeded): raise \
                 \"All Standard (A, C, D, H, I, M, R, T, Z) Spot Instance Requests\" (L-34B43A08)"
            )),
            "{:?}",
            out.messages
        );
        record_launch(&mut state, launch, &out, now);
        let again = plan_launches(p.spec(), &state.capacity, "x86_worker_node", 1, 1, "test: quota", now);
        assert_eq!(again.launches[0].market, Market::Spot);
        assert!(again.launches[0].offerings.iter().all(|o| o.market == Market::OnDemand), "spot is skipped while its quota is used up: {again:?}");
    });
}

/// `destroy` stops the head first and waits for it: a reconcile round running on it could
/// otherwise launch a worker after the workers were terminated, and that worker would
/// block the network stack's deletion. Then the workers go.
#[test]
fn aws_destroy_terminates_the_head_before_the_workers() {
    use fleetform::aws::commands::gather;
    use fleetform::aws::stages::state::Purpose;
    let moto = Moto::start();
    let f = Fixture::new("headfirst", 1);
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    runtime().block_on(async {
        let recorder = TerminationRecorder::default();
        let ctx = connect(&moto, &f, recorder.options()).await;
        let all = live::instances(&ctx, None).await.unwrap();
        let head: Vec<String> = all.iter().filter(|i| i.node_type.as_deref() == Some("head")).map(|i| i.id.clone()).collect();
        let mut workers: Vec<String> = all.iter().filter(|i| i.node_type.as_deref() != Some("head")).map(|i| i.id.clone()).collect();
        assert_eq!((head.len(), workers.len()), (1, 2), "{all:?}");
        let binaries = fleetform::binaries::BinaryArgs::default();
        let (desired, live) = gather(&ctx, &f.spec, &binaries, Purpose::Destroy, true).await.unwrap();
        let plan = fleetform::aws::stages::diff::diff(&desired, &live);
        fleetform::aws::stages::apply::execute(&ctx, &plan, &desired, &live).await.unwrap();
        let mut calls = recorder.take();
        assert!(calls.len() >= 2, "{calls:?}");
        assert_eq!(calls.remove(0), head, "the head alone, first");
        let mut rest: Vec<String> = calls.into_iter().flatten().collect();
        rest.sort();
        workers.sort();
        assert_eq!(rest, workers, "then the workers");
    });
}

#[test]
fn aws_killed_apply_converges_on_rerun() {
    let moto = Moto::start();
    let f = Fixture::new("killed", 1);
    let env = f.env();
    let mut child = moto.fleetform(&["apply", "--yes", "-f", f.spec()]);
    for (k, v) in &env {
        child.env(k, v);
    }
    let mut child = child.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Kill it right after the first stack is done and the second has started: a
    // deterministic point in the middle (apply prints `X ...` and `X: done (N s)`).
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let mut seen = Vec::new();
    let mut stacks_done = 0;
    for line in lines {
        let line = line.unwrap();
        seen.push(line.clone());
        if line.contains(" stack ") && line.contains(": done (") {
            stacks_done += 1;
        }
        if stacks_done == 1 && line.contains(" stack ") && line.ends_with(" ...") {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert_eq!(stacks_done, 1, "apply was killed after its first stack and during its second: {seen:?}");
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 2, "the killed apply left work to do: {out}");
    let (code, out) = run(&moto, &f, &["apply", "--yes"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&moto, &f, &["plan", "--detailed-exitcode"]);
    assert_eq!(code, 0, "converged: {out}");
    let (code, out) = run(&moto, &f, &["destroy", "--yes", "--delete-data"]);
    assert_eq!(code, 0, "{out}");
}

/// Errors a user meets, one sentence each, exit 1.
#[test]
fn aws_errors_are_one_clear_sentence() {
    let moto = Moto::start();
    let f = Fixture::new("errs", 1);
    // No credentials at all.
    let mut c = moto.fleetform(&["plan", "-f", f.spec()]);
    c.env_remove("AWS_ACCESS_KEY_ID").env_remove("AWS_SECRET_ACCESS_KEY");
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: no AWS credentials were found: set AWS_PROFILE"), "{err}");
    // Nothing listens there: the endpoint/region is wrong.
    let mut c = moto.fleetform(&["plan", "-f", f.spec()]);
    c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: cannot reach AWS for sts:GetCallerIdentity: check the region"), "{err}");
    // Bad YAML: the core's diagnostics, exit 1.
    std::fs::write(&f.spec, "cluster_name: [x\n").unwrap();
    let (code, out) = run(&moto, &f, &["plan"]);
    assert_eq!(code, 1);
    assert!(out.contains("invalid YAML"), "{out}");
}
