//! The two roles' policies (docs/DESIGN.md, decisions 5 and 21; workshop chapter C1b),
//! generated as data so that tests can check them and the IAM stack can embed them.
//!
//! Rules: no `*FullAccess`, no action wildcards, and `"Resource": "*"` only where AWS
//! offers no resource-level permission (the EC2 Describe calls), and then only with a
//! condition (the region). The head may launch and terminate only instances tagged for
//! its cluster (`aws:RequestTag` on create, `aws:ResourceTag` afterwards) from the
//! cluster's launch templates into the cluster's subnets and security groups, and may
//! pass only the worker role. Workers may use only the cluster's store prefix and queues,
//! plus the job data locations the spec names (`storage.job_inputs` read-only,
//! `storage.job_outputs` read-write; `fleetform_core::data_access`).

use std::collections::BTreeMap;

use fleetform_core::s3_prefix::S3Prefix;
use serde_json::{json, Value};

use crate::aws::names::{self, Role, StackKind, TAG_CLUSTER};

/// What the policies are scoped to; all known before the IAM stack is rendered.
#[derive(Debug, Clone)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub cluster: String,
    pub bucket: String,
    /// Store prefix, ending in `/` (or empty for a whole bucket).
    pub prefix: String,
    /// Every queue and dead-letter queue name of the cluster.
    pub queues: Vec<String>,
    /// The AMIs the launch templates use (exact ARNs, no image wildcard).
    pub images: Vec<String>,
    /// The public SSM parameters used to resolve `al2023`.
    pub ssm_parameters: Vec<String>,
    /// An existing VPC's (`network.vpc_id`) private subnets and extra security groups:
    /// not tagged for the cluster, so granted by exact ARN. Empty for a created network.
    pub existing_network: Vec<String>,
    /// Some node type launches spot instances: the head may create EC2's spot
    /// service-linked role, which a fresh account lacks (`SPOT_SERVICE`).
    pub spot: bool,
    /// `storage.job_inputs`: the workers may read there.
    pub job_inputs: Vec<S3Prefix>,
    /// `storage.job_outputs`: the workers may read, write and delete there.
    pub job_outputs: Vec<S3Prefix>,
}

impl Scope {
    fn ec2_arn(&self, resource: &str) -> String {
        format!("arn:{}:ec2:{}:{}:{resource}", self.partition, self.region, self.account)
    }
    fn queue_arns(&self) -> Vec<String> {
        self.queues
            .iter()
            .map(|q| format!("arn:{}:sqs:{}:{}:{q}", self.partition, self.region, self.account))
            .collect()
    }
    fn role_arn(&self, role: Role) -> String {
        format!("arn:{}:iam::{}:role/{}", self.partition, self.account, names::role(&self.cluster, role))
    }
    fn objects_arn(&self, p: &S3Prefix) -> String {
        format!("arn:{}:s3:::{}/{}*", self.partition, p.bucket, p.prefix)
    }
}

/// EC2's service-linked role for spot instances. A fresh account has none; EC2 creates it
/// at the first spot request when the caller may `iam:CreateServiceLinkedRole` for this
/// service, and otherwise fails the launch with
/// `AuthFailure.ServiceLinkedRoleCreationNotPermitted`. (An `instant` EC2 Fleet, the only
/// kind fleetform makes, needs no AWSServiceRoleForEC2Fleet.)
pub const SPOT_SERVICE: &str = "spot.amazonaws.com";
pub const SPOT_SERVICE_LINKED_ROLE: &str = "AWSServiceRoleForEC2Spot";

/// `ec2:CreateAction` of the tags a launch gives: the API names, not IAM actions.
pub const LAUNCH_API_NAMES: [&str; 2] = ["RunInstances", "CreateFleet"];

pub const TRUST_POLICY: &str = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}"#;

/// Store access: objects under the prefix, listing only that prefix.
fn store_statements(s: &Scope) -> Vec<Value> {
    vec![
        json!({
            "Sid": "StoreObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": format!("arn:{}:s3:::{}/{}*", s.partition, s.bucket, s.prefix),
        }),
        json!({
            "Sid": "StoreListPrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:{}:s3:::{}", s.partition, s.bucket),
            "Condition": {"StringLike": {"s3:prefix": [format!("{}*", s.prefix)]}},
        }),
    ]
}

/// Job data outside the store (`storage.job_inputs`, `storage.job_outputs`): objects as
/// each location allows, and listing only those prefixes (one statement per bucket, as
/// the `s3:prefix` condition applies to the whole statement).
fn job_data_statements(s: &Scope) -> Vec<Value> {
    let mut statements = Vec::new();
    if !s.job_inputs.is_empty() {
        statements.push(json!({
            "Sid": "JobInputsRead",
            "Effect": "Allow",
            "Action": ["s3:GetObject"],
            "Resource": s.job_inputs.iter().map(|p| s.objects_arn(p)).collect::<Vec<_>>(),
        }));
    }
    if !s.job_outputs.is_empty() {
        statements.push(json!({
            "Sid": "JobOutputsReadWrite",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
            "Resource": s.job_outputs.iter().map(|p| s.objects_arn(p)).collect::<Vec<_>>(),
        }));
    }
    let mut prefixes: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for p in s.job_inputs.iter().chain(&s.job_outputs) {
        prefixes.entry(&p.bucket).or_default().push(format!("{}*", p.prefix));
    }
    for (i, (bucket, listed)) in prefixes.into_iter().enumerate() {
        statements.push(json!({
            "Sid": format!("JobDataList{}", i + 1),
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": format!("arn:{}:s3:::{bucket}", s.partition),
            "Condition": {"StringLike": {"s3:prefix": listed}},
        }));
    }
    statements
}

fn queue_statement(s: &Scope) -> Value {
    json!({
        "Sid": "TaskQueues",
        "Effect": "Allow",
        "Action": [
            "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage",
            "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"
        ],
        "Resource": s.queue_arns(),
    })
}

/// The head node: runs `fleetform reconcile --watch` (the autoscaler).
pub fn head_policy(s: &Scope) -> Value {
    let cluster_tag = format!("aws:ResourceTag/{TAG_CLUSTER}");
    let request_tag = format!("aws:RequestTag/{TAG_CLUSTER}");
    let launch = ["ec2:RunInstances", "ec2:CreateFleet"];
    // What a launch creates and tags: the instance, its root volume and network interface
    // (from the request's tag specifications or the launch template's), and the fleet.
    let created = ["instance/*", "volume/*", "network-interface/*", "fleet/*"];
    let mut statements = vec![
        json!({
            "Sid": "LaunchFromClusterTemplates",
            "Effect": "Allow",
            "Action": launch,
            "Resource": [s.ec2_arn("launch-template/*"), s.ec2_arn("subnet/*"), s.ec2_arn("security-group/*")],
            "Condition": {"StringEquals": {cluster_tag.clone(): s.cluster}},
        }),
    ];
    if !s.existing_network.is_empty() {
        // The user's subnets and groups carry no fleetform tag (fleetform never tags what
        // it does not own): launching into them is allowed by exact ARN instead.
        statements.push(json!({
            "Sid": "LaunchIntoExistingNetwork",
            "Effect": "Allow",
            "Action": launch,
            "Resource": s.existing_network.iter().map(|r| s.ec2_arn(r)).collect::<Vec<_>>(),
        }));
    }
    statements.extend([
        json!({
            "Sid": "LaunchOnlyTaggedInstances",
            "Effect": "Allow",
            "Action": launch,
            "Resource": created.iter().map(|r| s.ec2_arn(r)).collect::<Vec<_>>(),
            "Condition": {"StringEquals": {request_tag: s.cluster}},
        }),
        json!({
            "Sid": "LaunchClusterImages",
            "Effect": "Allow",
            "Action": launch,
            "Resource": s.images.iter().map(|i| format!("arn:{}:ec2:{}::image/{i}", s.partition, s.region)).collect::<Vec<_>>(),
        }),
        json!({
            // The root volume is created from the AMI's snapshot; those belong to the AMI owner.
            "Sid": "LaunchFromImageSnapshots",
            "Effect": "Allow",
            "Action": launch,
            "Resource": format!("arn:{}:ec2:{}::snapshot/*", s.partition, s.region),
            "Condition": {"StringEquals": {"ec2:Owner": ["amazon", s.account.clone()]}},
        }),
        json!({
            // Tags given at launch are authorized as ec2:CreateTags with ec2:CreateAction set
            // to the bare API name (EC2 user guide, "Grant permission to tag Amazon EC2
            // resources during creation"), not the IAM action `ec2:RunInstances`.
            "Sid": "TagOnlyAtLaunch",
            "Effect": "Allow",
            "Action": ["ec2:CreateTags"],
            "Resource": created.iter().map(|r| s.ec2_arn(r)).collect::<Vec<_>>(),
            "Condition": {"StringEquals": {"ec2:CreateAction": LAUNCH_API_NAMES}},
        }),
        json!({
            "Sid": "TerminateOnlyClusterInstances",
            "Effect": "Allow",
            "Action": ["ec2:TerminateInstances"],
            "Resource": s.ec2_arn("instance/*"),
            "Condition": {"StringEquals": {cluster_tag: s.cluster}},
        }),
        json!({
            "Sid": "PassOnlyTheWorkerRole",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": s.role_arn(Role::Worker),
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        }),
        json!({
            // Describe calls have no resource-level permissions in EC2: `*` is the only
            // valid resource, so the grant is held to the cluster's region.
            "Sid": "DescribeInClusterRegion",
            "Effect": "Allow",
            "Action": [
                "ec2:DescribeInstances", "ec2:DescribeLaunchTemplates", "ec2:DescribeLaunchTemplateVersions",
                "ec2:DescribeSubnets", "ec2:DescribeImages", "ec2:DescribeInstanceTypes"
            ],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:RequestedRegion": s.region}},
        }),
        json!({
            "Sid": "ReadNetworkStack",
            "Effect": "Allow",
            "Action": ["cloudformation:DescribeStacks"],
            "Resource": format!(
                "arn:{}:cloudformation:{}:{}:stack/{}/*",
                s.partition, s.region, s.account, StackKind::Network.stack_name(&s.cluster)
            ),
        }),
        queue_statement(s),
    ]);
    if s.spot {
        statements.push(json!({
            // A spot launch (CreateFleet) also creates a spot instance request, which no
            // request can tag (CreateFleet `instant` tags only `instance` and `fleet`) and
            // fleetform's launch templates do not (a template that tags one fails every
            // on-demand launch from it). The request launches nothing by itself: the
            // instance it fulfils still needs the cluster tag (LaunchOnlyTaggedInstances).
            "Sid": "LaunchSpotRequests",
            "Effect": "Allow",
            "Action": launch,
            "Resource": s.ec2_arn("spot-instances-request/*"),
        }));
        statements.push(json!({
            // Only EC2's spot role, only for that service: the role's own policy is AWS's,
            // and only EC2 can assume it, so this grants the head nothing it could use.
            "Sid": "CreateSpotServiceLinkedRole",
            "Effect": "Allow",
            "Action": ["iam:CreateServiceLinkedRole"],
            "Resource": format!(
                "arn:{}:iam::{}:role/aws-service-role/{SPOT_SERVICE}/{SPOT_SERVICE_LINKED_ROLE}",
                s.partition, s.account
            ),
            "Condition": {"StringEquals": {"iam:AWSServiceName": SPOT_SERVICE}},
        }));
    }
    if !s.ssm_parameters.is_empty() {
        statements.push(json!({
            "Sid": "ResolveAl2023Images",
            "Effect": "Allow",
            "Action": ["ssm:GetParameters", "ssm:GetParameter"],
            "Resource": s.ssm_parameters.iter().map(|p| format!("arn:{}:ssm:{}::parameter{p}", s.partition, s.region)).collect::<Vec<_>>(),
        }));
    }
    statements.extend(store_statements(s));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Worker nodes: the agent reads tasks from the queues and data from/to the store.
pub fn worker_policy(s: &Scope) -> Value {
    let mut statements = vec![queue_statement(s)];
    statements.extend(store_statements(s));
    statements.extend(job_data_statements(s));
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// Problems with a policy document under the rules above; empty when it is fine.
pub fn lint(policy: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let text = policy.to_string();
    if text.contains("FullAccess") {
        problems.push("mentions a *FullAccess policy".to_string());
    }
    let as_list = |v: &Value| -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        }
    };
    for st in policy["Statement"].as_array().into_iter().flatten() {
        let sid = st["Sid"].as_str().unwrap_or("?");
        for a in as_list(&st["Action"]) {
            if a == "*" || a.ends_with(":*") || a.contains('*') {
                problems.push(format!("{sid}: action wildcard `{a}`"));
            }
        }
        for r in as_list(&st["Resource"]) {
            if r == "*" && st.get("Condition").is_none() {
                problems.push(format!("{sid}: unconditioned `Resource: *`"));
            }
        }
        if st["Effect"] == "Allow" && st.get("NotAction").is_some() {
            problems.push(format!("{sid}: Allow with NotAction"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            partition: "aws".into(),
            region: "us-west-2".into(),
            account: "123456789012".into(),
            cluster: "workshop".into(),
            bucket: "data".into(),
            prefix: "workshop/".into(),
            queues: vec!["fleetform-workshop-default".into(), "fleetform-workshop-default-dlq".into()],
            images: vec!["ami-1".into()],
            ssm_parameters: vec!["/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64".into()],
            existing_network: vec![],
            spot: true,
            job_inputs: vec![],
            job_outputs: vec![],
        }
    }

    #[test]
    fn policies_follow_the_rules() {
        assert_eq!(lint(&head_policy(&scope())), Vec::<String>::new());
        assert_eq!(lint(&worker_policy(&scope())), Vec::<String>::new());
        // The lint itself catches what it is for.
        let bad = json!({"Statement": [{"Sid": "x", "Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]});
        assert_eq!(lint(&bad), vec!["x: action wildcard `ec2:*`", "x: unconditioned `Resource: *`"]);
    }

    #[test]
    fn head_is_scoped_to_its_cluster_and_the_worker_role() {
        let p = head_policy(&scope());
        let st = |sid: &str| p["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == sid).unwrap().clone();
        assert_eq!(st("TerminateOnlyClusterInstances")["Condition"]["StringEquals"]["aws:ResourceTag/fleetform:cluster"], "workshop");
        assert_eq!(st("LaunchOnlyTaggedInstances")["Condition"]["StringEquals"]["aws:RequestTag/fleetform:cluster"], "workshop");
        // AWS sets ec2:CreateAction to the API name; `ec2:RunInstances` would deny every launch.
        assert_eq!(st("TagOnlyAtLaunch")["Condition"]["StringEquals"]["ec2:CreateAction"], json!(["RunInstances", "CreateFleet"]));
        let tagged = json!([
            "arn:aws:ec2:us-west-2:123456789012:instance/*",
            "arn:aws:ec2:us-west-2:123456789012:volume/*",
            "arn:aws:ec2:us-west-2:123456789012:network-interface/*",
            "arn:aws:ec2:us-west-2:123456789012:fleet/*"
        ]);
        assert_eq!(st("TagOnlyAtLaunch")["Resource"], tagged);
        assert_eq!(st("LaunchOnlyTaggedInstances")["Resource"], tagged);
        assert_eq!(st("PassOnlyTheWorkerRole")["Resource"], "arn:aws:iam::123456789012:role/fleetform-workshop-worker");
        assert_eq!(st("StoreObjects")["Resource"], "arn:aws:s3:::data/workshop/*");
        let w = worker_policy(&scope()).to_string();
        assert!(!w.contains("ec2:") && !w.contains("iam:"), "{w}");
        assert!(!p.to_string().contains("LaunchIntoExistingNetwork"), "a created network needs no untagged resources");
        assert!(!w.contains("JobInputs") && !w.contains("JobOutputs"), "no job data grants unless the spec names some: {w}");
    }

    #[test]
    fn the_head_may_create_only_the_spot_service_linked_role() {
        let p = head_policy(&scope());
        let st = p["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "CreateSpotServiceLinkedRole").unwrap();
        assert_eq!(st["Resource"], "arn:aws:iam::123456789012:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot");
        assert_eq!(st["Condition"]["StringEquals"]["iam:AWSServiceName"], "spot.amazonaws.com");
        let on_demand_only = head_policy(&Scope { spot: false, ..scope() });
        assert!(!on_demand_only.to_string().contains("iam:CreateServiceLinkedRole"), "no spot node type, no grant");
        // The spot request a spot launch creates carries no tag; only spot clusters may create one.
        let spot = p["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "LaunchSpotRequests").unwrap();
        assert_eq!(spot["Resource"], "arn:aws:ec2:us-west-2:123456789012:spot-instances-request/*");
        assert!(spot.get("Condition").is_none());
        assert!(!on_demand_only.to_string().contains("spot-instances-request"), "no spot node type, no spot requests");
    }

    #[test]
    fn job_inputs_are_read_only_and_outputs_read_write() {
        let s = Scope {
            job_inputs: vec![S3Prefix::parse("s3://datasets/raw-100gb-data/").unwrap()],
            job_outputs: vec![S3Prefix::parse("s3://datasets/clean").unwrap(), S3Prefix::parse("s3://results").unwrap()],
            ..scope()
        };
        let p = worker_policy(&s);
        assert_eq!(lint(&p), Vec::<String>::new());
        let st = |sid: &str| p["Statement"].as_array().unwrap().iter().find(|x| x["Sid"] == sid).unwrap().clone();
        assert_eq!(st("JobInputsRead")["Action"], json!(["s3:GetObject"]));
        assert_eq!(st("JobInputsRead")["Resource"], json!(["arn:aws:s3:::datasets/raw-100gb-data/*"]));
        assert_eq!(st("JobOutputsReadWrite")["Resource"], json!(["arn:aws:s3:::datasets/clean/*", "arn:aws:s3:::results/*"]));
        assert_eq!(st("JobDataList1")["Resource"], "arn:aws:s3:::datasets");
        assert_eq!(st("JobDataList1")["Condition"]["StringLike"]["s3:prefix"], json!(["raw-100gb-data/*", "clean/*"]));
        assert_eq!(st("JobDataList2")["Condition"]["StringLike"]["s3:prefix"], json!(["*"]));
        assert!(!head_policy(&s).to_string().contains("datasets"), "the head reads no job data");
    }

    #[test]
    fn an_existing_vpc_is_granted_by_exact_arn() {
        let mut s = scope();
        s.existing_network = vec!["subnet/subnet-0aaa1111bbb222333".into(), "security-group/sg-0123456789abcdef0".into()];
        let p = head_policy(&s);
        assert_eq!(lint(&p), Vec::<String>::new());
        let st = p["Statement"].as_array().unwrap().iter().find(|x| x["Sid"] == "LaunchIntoExistingNetwork").unwrap();
        assert_eq!(
            st["Resource"],
            json!([
                "arn:aws:ec2:us-west-2:123456789012:subnet/subnet-0aaa1111bbb222333",
                "arn:aws:ec2:us-west-2:123456789012:security-group/sg-0123456789abcdef0"
            ])
        );
        assert_eq!(st["Action"], json!(["ec2:RunInstances", "ec2:CreateFleet"]));
    }
}
