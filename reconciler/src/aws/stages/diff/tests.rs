use std::collections::BTreeMap;

use super::*;
use crate::aws::stages::state::*;

const NET: &str = "Resources:\n  Vpc:\n    Type: AWS::EC2::VPC\n    Properties: {CidrBlock: 10.0.0.0/16}\n";

fn facts(ami: &str, user_data: &str) -> LtFacts {
    LtFacts {
        image_id: ami.into(),
        user_data_sha256: user_data.into(),
        instance_profile: "fleetform-demo-worker".into(),
        security_group: Some("sg-1".into()),
        extra_security_groups: vec![],
        root_device: "/dev/xvda".into(),
        root_size_gb: 300,
        root_volume_type: "gp3".into(),
        root_encrypted: true,
        http_tokens: "required".into(),
        http_hop_limit: 1,
        associate_public_ip: false,
    }
}

fn desired() -> Desired {
    let mut d = Desired::empty("demo", Purpose::Apply);
    d.stacks.push(DesiredStack { kind: StackKind::Network, name: "fleetform-demo-network".into(), template: NET.into() });
    d.queues.push(DesiredQueue {
        name: "fleetform-demo-default".into(),
        attributes: BTreeMap::from([("VisibilityTimeout".to_string(), "60".to_string())]),
    });
    d.artifacts.push(DesiredArtifact {
        key: "bin/x86_64/fleetform-agent".into(),
        sha256: "aa".into(),
        source: ArtifactSource::File { path: "dist/x86_64/fleetform-agent".into() },
        description: "dist/x86_64/fleetform-agent".into(),
    });
    for t in ["head", "w"] {
        d.launch_templates.push(DesiredLaunchTemplate {
            node_type: t.into(),
            name: format!("fleetform-demo-{t}"),
            facts: facts("ami-1", "ud"),
            user_data: String::new(),
        });
    }
    d.node_groups.push(DesiredNodeGroup {
        node_type: "head".into(),
        is_head: true,
        min: 1,
        max: 1,
        image_id: "ami-1".into(),
        instance_types: vec!["m7i.xlarge".into()],
    });
    d.node_groups.push(DesiredNodeGroup {
        node_type: "w".into(),
        is_head: false,
        min: 2,
        max: 4,
        image_id: "ami-1".into(),
        instance_types: vec!["r7i.2xlarge".into()],
    });
    d
}

fn instance(id: &str, node_type: &str, state: &str, t: i64) -> LiveInstance {
    LiveInstance {
        id: id.into(),
        node_type: Some(node_type.into()),
        state: state.into(),
        image_id: "ami-1".into(),
        instance_type: if node_type == "head" { "m7i.xlarge".into() } else { "r7i.2xlarge".into() },
        lt_version: Some(1),
        spot: node_type != "head",
        launch_time: t,
        zone: Some("us-west-2a".into()),
        public_ip: None,
    }
}

/// A live state that matches `desired()` exactly.
fn converged() -> Live {
    let mut l = Live::default();
    l.stacks.insert(
        StackKind::Network,
        LiveStack {
            name: "fleetform-demo-network".into(),
            status: "CREATE_COMPLETE".into(),
            status_reason: None,
            template: Some(NET.into()),
            outputs: BTreeMap::new(),
        },
    );
    l.queues.insert(
        "fleetform-demo-default".into(),
        LiveQueue { url: "u".into(), attributes: BTreeMap::from([("VisibilityTimeout".to_string(), "60".to_string())]) },
    );
    l.artifacts.insert("bin/x86_64/fleetform-agent".into(), "aa".into());
    for t in ["head", "w"] {
        l.launch_templates.insert(
            t.into(),
            LiveLaunchTemplate { id: format!("lt-{t}"), name: format!("fleetform-demo-{t}"), default_version: 1, facts: Some(facts("ami-1", "ud")) },
        );
    }
    l.instances = vec![instance("i-h", "head", "running", 1), instance("i-1", "w", "running", 2), instance("i-2", "w", "pending", 3)];
    l
}

fn lines(plan: &Plan) -> Vec<String> {
    plan.changes.iter().map(|c| format!("{} {}: {}", c.action.symbol(), c.address, c.reason)).collect()
}

#[test]
fn from_nothing_everything_is_created() {
    let plan = diff(&desired(), &Live::default());
    assert_eq!(
        lines(&plan),
        vec![
            "+ network.Vpc: create",
            "+ queue.fleetform-demo-default: create",
            "+ store.bin/x86_64/fleetform-agent: upload: dist/x86_64/fleetform-agent",
            "+ launch_template.head: create",
            "+ launch_template.w: create",
            "+ node.head[new 1]: create: the head node",
            "+ node.w[new 1]: create: below min_workers (0 of 2)",
            "+ node.w[new 2]: create: below min_workers (0 of 2)",
        ]
    );
    assert_eq!(plan.summary_line(), "Plan: 8 to add, 0 to change, 0 to destroy.");
    assert!(plan.blockers.is_empty());
}

#[test]
fn converged_cluster_has_an_empty_plan() {
    let plan = diff(&desired(), &converged());
    assert_eq!(lines(&plan), Vec::<String>::new());
    assert!(plan.is_empty());
}

#[test]
fn a_terminated_worker_is_replaced_and_says_which() {
    let mut live = converged();
    live.instances[2].state = "terminated".into();
    assert_eq!(lines(&diff(&desired(), &live)), vec!["+ node.w[new 1]: create: replaces i-2 (terminated)"]);
}

#[test]
fn stopped_nodes_are_replaced() {
    let mut live = converged();
    live.instances[1].state = "stopped".into();
    assert_eq!(lines(&diff(&desired(), &live)), vec!["-/+ node.w[i-1]: replace: instance is stopped and does no work"]);
}

#[test]
fn new_ami_updates_templates_and_replaces_nodes() {
    let mut d = desired();
    for lt in &mut d.launch_templates {
        lt.facts.image_id = "ami-2".into();
    }
    for g in &mut d.node_groups {
        g.image_id = "ami-2".into();
    }
    let plan = diff(&d, &converged());
    assert_eq!(
        lines(&plan),
        vec![
            "~ launch_template.head: update: AMI changed (new version 2)",
            "~ launch_template.w: update: AMI changed (new version 2)",
            "-/+ node.head[i-h]: replace: AMI changed (ami-1 → ami-2)",
            "-/+ node.w[i-1]: replace: AMI changed (ami-1 → ami-2)",
            "-/+ node.w[i-2]: replace: AMI changed (ami-1 → ami-2)",
        ]
    );
    assert_eq!(plan.summary_line(), "Plan: 3 to add, 2 to change, 3 to destroy.");
}

#[test]
fn user_data_change_replaces_nodes_of_that_type_only() {
    let mut d = desired();
    d.launch_templates[1].facts.user_data_sha256 = "ud2".into();
    assert_eq!(
        lines(&diff(&d, &converged())),
        vec![
            "~ launch_template.w: update: user data changed (new version 2)",
            "-/+ node.w[i-1]: replace: launch template version changed: user data changed",
            "-/+ node.w[i-2]: replace: launch template version changed: user data changed",
        ]
    );
}

#[test]
fn nodes_from_an_older_template_version_are_replaced() {
    let mut live = converged();
    live.launch_templates.get_mut("w").unwrap().default_version = 2;
    live.instances[2].lt_version = Some(2);
    assert_eq!(
        lines(&diff(&desired(), &live)),
        vec!["-/+ node.w[i-1]: replace: launch template version changed: launched from version 1, the default is 2"]
    );
}

#[test]
fn unknown_security_group_is_not_a_difference() {
    let mut d = desired();
    d.launch_templates[0].facts.security_group = None;
    assert!(diff(&d, &converged()).is_empty());
}

#[test]
fn a_second_head_and_surplus_workers_are_removed_newest_first() {
    let mut live = converged();
    live.instances.push(instance("i-h2", "head", "running", 9));
    for (n, t) in [("i-3", 4), ("i-4", 5), ("i-5", 6)] {
        live.instances.push(instance(n, "w", "running", t));
    }
    assert_eq!(
        lines(&diff(&desired(), &live)),
        vec!["- node.head[i-h2]: delete: more than one head node", "- node.w[i-5]: delete: more than max_workers (4)"]
    );
}

#[test]
fn nodes_of_removed_types_and_stale_queues_go() {
    let mut live = converged();
    live.instances.push(instance("i-9", "old", "running", 9));
    live.queues.insert("fleetform-demo-intel".into(), LiveQueue { url: "u2".into(), attributes: BTreeMap::new() });
    live.queues.get_mut("fleetform-demo-default").unwrap().attributes.insert("VisibilityTimeout".into(), "30".into());
    assert_eq!(
        lines(&diff(&desired(), &live)),
        vec![
            "~ queue.fleetform-demo-default: update: VisibilityTimeout 30 → 60",
            "- queue.fleetform-demo-intel: delete: no worker type serves its resource class",
            "- node.old[i-9]: delete: node type `old` is not in the spec",
        ]
    );
}

#[test]
fn destroy_removes_everything_but_retained_stacks() {
    let mut d = Desired::empty("demo", Purpose::Destroy);
    d.retained.push(StackKind::Data);
    let mut live = converged();
    live.stacks.insert(
        StackKind::Data,
        LiveStack { name: "fleetform-demo-data".into(), status: "CREATE_COMPLETE".into(), status_reason: None, template: Some(NET.into()), outputs: BTreeMap::new() },
    );
    live.instances.push(instance("i-0", "w", "terminated", 0));
    let plan = diff(&d, &live);
    assert_eq!(
        lines(&plan),
        vec![
            "- network.Vpc: destroy",
            "- queue.fleetform-demo-default: destroy",
            "- launch_template.head: destroy",
            "- launch_template.w: destroy",
            "- node.head[i-h]: destroy",
            "- node.w[i-1]: destroy",
            "- node.w[i-2]: destroy",
        ]
    );
    assert!(diff(&d, &Live::default()).is_empty());
}

#[test]
fn stuck_stacks_block_apply_with_the_way_out() {
    let mut live = converged();
    live.stacks.get_mut(&StackKind::Network).unwrap().status = "ROLLBACK_COMPLETE".into();
    live.stacks.get_mut(&StackKind::Network).unwrap().status_reason = Some("The following resource(s) failed to create: [NatGateway]".into());
    let plan = diff(&desired(), &live);
    assert_eq!(
        plan.blockers,
        vec!["stack fleetform-demo-network is in ROLLBACK_COMPLETE: its creation failed (The following resource(s) failed to create: [NatGateway]) \
              and cannot be updated; delete it (`aws cloudformation delete-stack --stack-name fleetform-demo-network`, or `fleetform destroy`), then apply again"]
    );
    live.stacks.get_mut(&StackKind::Network).unwrap().status = "UPDATE_ROLLBACK_FAILED".into();
    live.stacks.get_mut(&StackKind::Network).unwrap().status_reason = None;
    assert_eq!(
        diff(&desired(), &live).blockers,
        vec!["stack fleetform-demo-network is in UPDATE_ROLLBACK_FAILED: run `aws cloudformation continue-update-rollback --stack-name fleetform-demo-network` \
              (add --resources-to-skip for resources that cannot roll back), then apply again"]
    );
    // Destroy can delete a rolled-back stack.
    live.stacks.get_mut(&StackKind::Network).unwrap().status = "ROLLBACK_COMPLETE".into();
    assert!(diff(&Desired::empty("demo", Purpose::Destroy), &live).blockers.is_empty());
}

#[test]
fn switching_between_network_forms_is_blocked() {
    const GROUPS_ONLY: &str = "Resources:\n  HeadSecurityGroup:\n    Type: AWS::EC2::SecurityGroup\n    Properties: {VpcId: vpc-0user}\n";
    let mut d = desired();
    d.stacks[0].template = GROUPS_ONLY.into();
    let plan = diff(&d, &converged());
    assert_eq!(
        plan.blockers,
        vec!["stack fleetform-demo-network holds the network of a VPC fleetform created, and the spec now asks for an existing VPC (`network.vpc_id`): \
              run `fleetform destroy` with the previous spec (the bucket is kept), then apply with the new one"]
    );
    let mut live = converged();
    live.stacks.get_mut(&StackKind::Network).unwrap().template = Some(GROUPS_ONLY.into());
    assert_eq!(diff(&d, &live).blockers, Vec::<String>::new(), "same form: no blocker");
    assert_eq!(diff(&desired(), &live).blockers.len(), 1, "and the other way round");
    assert!(diff(&Desired::empty("demo", Purpose::Destroy), &live).blockers.is_empty(), "destroy is always possible");
}

#[test]
fn a_removed_artifact_is_deleted_only_when_the_store_has_it() {
    let mut d = desired();
    let reason = "delete: built by i-1 from an older source bundle; the first aarch64 node builds it again";
    d.removed_artifacts.push(RemovedArtifact { key: "bin/aarch64/fleetform-agent".into(), reason: reason.into() });
    assert_eq!(lines(&diff(&d, &converged())), Vec::<String>::new(), "not in the store: nothing to delete");
    let mut live = converged();
    live.artifacts.insert("bin/aarch64/fleetform-agent".into(), "bb".into());
    let plan = diff(&d, &live);
    assert_eq!(lines(&plan), [format!("- store.bin/aarch64/fleetform-agent: {reason}")]);
    assert_eq!(plan.changes[0].target, Target::Artifact { key: "bin/aarch64/fleetform-agent".into() });
}

/// AWS allows one Instance Connect Endpoint per VPC and CloudFormation creates a
/// replacement before deleting the old one: the plan says so and how to get there.
#[test]
fn replacing_the_instance_connect_endpoint_is_blocked_with_the_way_round() {
    let eice = |subnet: &str| format!("Resources:\n  InstanceConnectEndpoint:\n    Type: AWS::EC2::InstanceConnectEndpoint\n    Properties: {{SubnetId: {subnet}, PreserveClientIp: false}}\n");
    let mut d = desired();
    d.stacks[0].template = eice("subnet-0ccc4444ddd555666");
    let mut live = converged();
    live.stacks.get_mut(&StackKind::Network).unwrap().template = Some(eice("subnet-0aaa1111bbb222333"));
    let plan = diff(&d, &live);
    assert_eq!(lines(&plan), vec!["-/+ network.InstanceConnectEndpoint: replace: SubnetId changed"]);
    assert_eq!(
        plan.blockers,
        vec!["network.InstanceConnectEndpoint would be replaced (SubnetId changed), which CloudFormation cannot do: AWS allows one Instance Connect \
              Endpoint per VPC and the new one is created before the old one is deleted; apply once with `network.instance_connect_endpoint: false` \
              (this deletes the endpoint), then again with `true`"]
    );
    // Its tags change in place: no blocker.
    d.stacks[0].template = eice("subnet-0aaa1111bbb222333").replace("PreserveClientIp: false}", "PreserveClientIp: false, Tags: []}");
    assert!(diff(&d, &live).blockers.is_empty());
}
