//! Deterministic names and tags: with no state file, these are how fleetform finds what
//! it created (docs/DESIGN.md, decision 1). One place, so observe, apply and destroy agree.

use std::collections::BTreeMap;

use fleetform_core::ClusterSpec;
use serde::Serialize;

pub const TAG_CLUSTER: &str = "fleetform:cluster";
pub const TAG_NODE_TYPE: &str = "fleetform:node-type";
pub const TAG_MANAGED_BY: &str = "fleetform:managed-by";
pub const MANAGED_BY: &str = "fleetform";
/// The launch template version an instance was launched from: how a node that predates
/// a template change is recognised (moto does not set `aws:ec2launchtemplate:version`
/// on fleet instances, and real AWS only sets it on RunInstances).
pub const TAG_LT_VERSION: &str = "fleetform:launch-template-version";

/// The CloudFormation stacks of a cluster, in creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StackKind {
    Network,
    Data,
    Iam,
}

impl StackKind {
    pub const ALL: [StackKind; 3] = [StackKind::Network, StackKind::Data, StackKind::Iam];

    pub fn label(self) -> &'static str {
        match self {
            StackKind::Network => "network",
            StackKind::Data => "data",
            StackKind::Iam => "iam",
        }
    }
    pub fn stack_name(self, cluster: &str) -> String {
        format!("fleetform-{cluster}-{}", self.label())
    }
}

pub fn launch_template(cluster: &str, node_type: &str) -> String {
    format!("fleetform-{cluster}-{node_type}")
}

/// Role and instance profile names share this: `fleetform-<cluster>-head|worker`.
pub fn role(cluster: &str, which: Role) -> String {
    format!("fleetform-{cluster}-{}", which.label())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Head,
    Worker,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Head => "head",
            Role::Worker => "worker",
        }
    }
}

/// The store prefix inside the bucket, always ending in `/` (or empty).
pub fn store_prefix(spec: &ClusterSpec) -> String {
    spec.store_prefix()
}

/// The copy of the cluster spec the head node's reconcile service reads.
/// (Belongs in `fleetform_core::layout`; kept here until core grows it.)
pub const SPEC_KEY: &str = "cluster.yaml";

/// The reconciler binary for the head node, beside the agent's.
pub fn reconciler_binary(uname_arch: &str) -> String {
    format!("bin/{uname_arch}/fleetform")
}

/// Tags on everything fleetform creates: its own first, then the spec's extra tags.
pub fn cluster_tags(spec: &ClusterSpec) -> BTreeMap<String, String> {
    let mut tags: BTreeMap<String, String> = spec.tags.clone();
    tags.insert(TAG_CLUSTER.into(), spec.cluster_name.clone());
    tags.insert(TAG_MANAGED_BY.into(), MANAGED_BY.into());
    tags
}

pub fn node_tags(spec: &ClusterSpec, node_type: &str, lt_version: i64) -> BTreeMap<String, String> {
    let mut tags = cluster_tags(spec);
    tags.insert(TAG_NODE_TYPE.into(), node_type.into());
    tags.insert(TAG_LT_VERSION.into(), lt_version.to_string());
    tags.insert("Name".into(), format!("fleetform-{}-{node_type}", spec.cluster_name));
    tags
}
