//! The desired state: the spec rendered (templates, user data, policies) and resolved
//! (AMIs, the deployed network's security groups, local artifacts). Building it from
//! resolved inputs is pure; `resolve_images` is the only part that asks AWS.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context as _, Result};
use fleetform_core::data_access::WorkerAccess;
use fleetform_core::instance::Arch;
use fleetform_core::spec::{al2023_parameter, ImageSpec, Market};
use fleetform_core::ClusterSpec;

use crate::aws::context::AwsContext;
use crate::aws::errors::aws_err;
use crate::aws::resources::iam_policies::Scope;
use crate::aws::resources::launch_templates::{desired_facts, FactsInput};
use crate::aws::stages::state::{Desired, DesiredArtifact, DesiredLaunchTemplate, DesiredNodeGroup, DesiredQueue, DesiredStack, Purpose, RemovedArtifact};
use crate::aws::names::{self, Role, StackKind};
use crate::aws::resources::{queues, stack_templates, user_data};

/// Where the cluster lives, as far as ARNs are concerned.
#[derive(Debug, Clone)]
pub struct Env {
    pub region: String,
    pub partition: String,
    pub account: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    pub id: String,
    pub arch: Arch,
    pub root_device: String,
    /// The SSM parameter it came from, for `al2023`.
    pub parameter: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Node type → its image.
    pub images: BTreeMap<String, ResolvedImage>,
    /// The deployed network stack's outputs (security groups), when it exists.
    pub network_outputs: BTreeMap<String, String>,
    pub artifacts: Vec<DesiredArtifact>,
    pub removed_artifacts: Vec<RemovedArtifact>,
    pub notes: Vec<String>,
    /// The bucket exists but no fleetform data stack owns it: use it, never delete it.
    pub external_bucket: bool,
    /// An existing VPC's checks (`network.vpc_id`); None for a created network.
    pub existing_network: Option<crate::aws::resources::existing_network::Report>,
}

pub fn build(spec: &ClusterSpec, env: &Env, r: &Resolved) -> Result<Desired> {
    let cluster = &spec.cluster_name;
    let bucket = spec.storage.bucket.clone().context("the aws provider needs `storage.bucket`")?;
    let prefix = names::store_prefix(spec);
    let mut d = Desired::empty(cluster, Purpose::Apply);
    d.notes = r.notes.clone();
    if let Some(report) = &r.existing_network {
        if report.errors.is_empty() {
            d.notes.push(report.summary.clone());
        }
        d.notes.extend(report.notes.iter().cloned());
        d.blockers.extend(report.errors.iter().cloned());
    }
    d.stacks.push(DesiredStack {
        kind: StackKind::Network,
        name: StackKind::Network.stack_name(cluster),
        template: stack_templates::network_template(spec, r.existing_network.as_ref().and_then(|n| n.reuse_endpoint.as_ref()))?,
    });
    if r.external_bucket {
        d.notes.push(format!("bucket {bucket} already exists outside fleetform: it is used as is and never deleted"));
    } else {
        d.stacks.push(DesiredStack {
            kind: StackKind::Data,
            name: StackKind::Data.stack_name(cluster),
            template: stack_templates::data_template(cluster, &bucket, true)?,
        });
    }
    d.queues = queues::desired(spec, &env.partition, &env.region, &env.account);
    let scope = iam_scope(spec, env, r, &d.queues, bucket, prefix)?;
    d.stacks.push(DesiredStack { kind: StackKind::Iam, name: StackKind::Iam.stack_name(cluster), template: stack_templates::iam_template(&scope)? });
    d.artifacts = r.artifacts.clone();
    d.removed_artifacts = r.removed_artifacts.clone();
    node_types(spec, env, r, &mut d)?;
    Ok(d)
}

/// What the IAM policies are scoped to: the cluster's bucket, prefix, queues, images,
/// an existing network's subnets and groups, and the jobs' inputs and outputs.
fn iam_scope(spec: &ClusterSpec, env: &Env, r: &Resolved, queues: &[DesiredQueue], bucket: String, prefix: String) -> Result<Scope> {
    let cluster = &spec.cluster_name;
    let existing = spec.network.existing();
    let images: BTreeSet<String> = r.images.values().map(|i| i.id.clone()).collect();
    let parameters: BTreeSet<String> = r.images.values().filter_map(|i| i.parameter.clone()).collect();
    let access = WorkerAccess::of(spec).context("the aws provider needs `storage.bucket`")?;
    Ok(Scope {
        partition: env.partition.clone(),
        region: env.region.clone(),
        account: env.account.clone(),
        cluster: cluster.clone(),
        bucket,
        prefix,
        queues: queues.iter().map(|q| q.name.clone()).collect(),
        images: images.into_iter().collect(),
        ssm_parameters: parameters.into_iter().collect(),
        existing_network: existing
            .iter()
            .flat_map(|e| {
                let subnets = e.private_subnet_ids.iter().map(|s| format!("subnet/{s}"));
                subnets.chain(e.security_group_ids.iter().map(|g| format!("security-group/{g}")))
            })
            .collect(),
        spot: spec.available_node_types.values().any(|t| t.node_config.market == Market::Spot),
        job_inputs: access.inputs,
        job_outputs: access.outputs,
    })
}

/// Each node type's launch template and node group.
fn node_types(spec: &ClusterSpec, env: &Env, r: &Resolved, d: &mut Desired) -> Result<()> {
    let cluster = &spec.cluster_name;
    for (name, t) in &spec.available_node_types {
        let is_head = *name == spec.head_node_type;
        let image = r.images.get(name).with_context(|| format!("no image resolved for node type `{name}`"))?;
        let user_data = user_data::render_user_data(spec, name, &env.region)?;
        let sg_output = if is_head { "HeadSecurityGroupId" } else { "WorkerSecurityGroupId" };
        let facts = desired_facts(FactsInput {
            image_id: &image.id,
            root_device: &image.root_device,
            user_data: &user_data,
            instance_profile: &names::role(cluster, if is_head { Role::Head } else { Role::Worker }),
            security_group: r.network_outputs.get(sg_output).map(String::as_str),
            extra_security_groups: &spec.network.security_group_ids,
            root_size_gb: t.node_config.root_volume.size_gb,
            root_volume_type: &t.node_config.root_volume.volume_type,
        });
        d.launch_templates.push(DesiredLaunchTemplate { node_type: name.clone(), name: names::launch_template(cluster, name), facts, user_data });
        d.node_groups.push(DesiredNodeGroup {
            node_type: name.clone(),
            is_head,
            min: if is_head { 1 } else { t.min_workers },
            max: if is_head { 1 } else { spec.type_max_workers(name) },
            image_id: image.id.clone(),
            instance_types: t.node_config.instance_types.clone(),
        });
    }
    Ok(())
}

/// Resolve every node type's image: `al2023` through the public SSM parameter of its
/// architecture (one GetParameters call), then one DescribeImages for all AMIs to check
/// that each exists and matches its node type's architecture.
pub async fn resolve_images(ctx: &AwsContext) -> Result<BTreeMap<String, ResolvedImage>> {
    let spec = &ctx.spec;
    let mut wanted: BTreeMap<String, (Arch, Option<String>, Option<String>)> = BTreeMap::new();
    for (name, t) in &spec.available_node_types {
        let arch = spec.arch_of(name).with_context(|| format!("node type `{name}` has no known architecture"))?;
        match &t.node_config.image {
            ImageSpec::Explicit { ami, .. } => wanted.insert(name.clone(), (arch, Some(ami.clone()), None)),
            ImageSpec::Alias(_) => wanted.insert(name.clone(), (arch, None, Some(al2023_parameter(arch)))),
        };
    }
    let params: BTreeSet<String> = wanted.values().filter_map(|(_, _, p)| p.clone()).collect();
    let mut by_param = BTreeMap::new();
    if !params.is_empty() {
        let got = ctx
            .ssm
            .get_parameters()
            .set_names(Some(params.iter().cloned().collect()))
            .send()
            .await
            .map_err(aws_err("ssm:GetParameters"))?;
        if let Some(bad) = got.invalid_parameters().first() {
            bail!("the public SSM parameter {bad} does not exist in region {}: pick a region that has AL2023, or give an explicit AMI", ctx.region);
        }
        for p in got.parameters() {
            if let (Some(n), Some(v)) = (p.name(), p.value()) {
                by_param.insert(n.to_string(), v.to_string());
            }
        }
    }
    let mut ids: BTreeSet<String> = BTreeSet::new();
    for (_, ami, p) in wanted.values_mut() {
        if ami.is_none() {
            *ami = p.as_ref().and_then(|p| by_param.get(p)).cloned();
        }
        ids.extend(ami.clone());
    }
    let described = ctx
        .ec2
        .describe_images()
        .set_image_ids(Some(ids.iter().cloned().collect()))
        .send()
        .await
        .map_err(aws_err("ec2:DescribeImages"))?;
    let mut out = BTreeMap::new();
    for (name, (arch, ami, param)) in wanted {
        let ami = ami.with_context(|| format!("node type `{name}`: the SSM parameter gave no AMI"))?;
        let Some(img) = described.images().iter().find(|i| i.image_id() == Some(ami.as_str())) else {
            bail!("node type `{name}`: AMI {ami} does not exist in region {} or is not shared with this account", ctx.region);
        };
        let img_arch = img.architecture().and_then(|a| Arch::from_ec2(a.as_str()));
        if img_arch != Some(arch) {
            bail!(
                "node type `{name}`: AMI {ami} is {} but its instance types are {arch}: choose an AMI of that architecture",
                img.architecture().map(|a| a.as_str()).unwrap_or("of unknown architecture")
            );
        }
        out.insert(
            name,
            ResolvedImage { id: ami, arch, root_device: img.root_device_name().unwrap_or("/dev/xvda").to_string(), parameter: param },
        );
    }
    Ok(out)
}
