//! Plain data on both sides of the diff: what the spec wants (`Desired`, rendered and
//! resolved, no clients) and what AWS has (`Live`, observed by tags and names). The diff
//! is a pure function of the two, so it is unit-tested without AWS.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::aws::names::StackKind;

/// Why the desired state was built: reasons read differently when destroying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Purpose {
    Apply,
    Destroy,
}

#[derive(Debug, Clone)]
pub struct Desired {
    pub cluster: String,
    pub purpose: Purpose,
    /// Stacks that must exist, in creation order (a destroy keeps the data stack
    /// unless --delete-data).
    pub stacks: Vec<DesiredStack>,
    /// Stacks left as they are whatever their template says (the data stack during a
    /// destroy without --delete-data).
    pub retained: Vec<StackKind>,
    /// Dead-letter queues come before the queues that redrive into them.
    pub queues: Vec<DesiredQueue>,
    pub artifacts: Vec<DesiredArtifact>,
    /// Store objects to delete (a node-built binary of an older source), with the reason.
    pub removed_artifacts: Vec<RemovedArtifact>,
    pub launch_templates: Vec<DesiredLaunchTemplate>,
    pub node_groups: Vec<DesiredNodeGroup>,
    /// Said with the plan, not changes: e.g. how each node type gets its agent.
    pub notes: Vec<String>,
    /// Found while building the desired state and stopping `apply` (an existing VPC that
    /// fails its checks), each one sentence naming the resource and the fix.
    pub blockers: Vec<String>,
}

impl Desired {
    pub fn empty(cluster: &str, purpose: Purpose) -> Self {
        Desired {
            cluster: cluster.to_string(),
            purpose,
            stacks: Vec::new(),
            retained: Vec::new(),
            queues: Vec::new(),
            artifacts: Vec::new(),
            removed_artifacts: Vec::new(),
            launch_templates: Vec::new(),
            node_groups: Vec::new(),
            notes: Vec::new(),
            blockers: Vec::new(),
        }
    }
    pub fn stack(&self, kind: StackKind) -> Option<&DesiredStack> {
        self.stacks.iter().find(|s| s.kind == kind)
    }
    pub fn launch_template(&self, node_type: &str) -> Option<&DesiredLaunchTemplate> {
        self.launch_templates.iter().find(|l| l.node_type == node_type)
    }
}

#[derive(Debug, Clone)]
pub struct DesiredStack {
    pub kind: StackKind,
    pub name: String,
    /// The rendered template body (YAML).
    pub template: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredQueue {
    pub name: String,
    /// The attributes fleetform manages, in the canonical form `observe` also produces.
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ArtifactSource {
    /// A file from `dist/` (or the spec file itself).
    File { path: String },
    /// A tarball of the fleetform source tree, built at apply time.
    SourceBundle { root: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredArtifact {
    /// Key relative to the store prefix, e.g. `bin/x86_64/fleetform-agent`.
    pub key: String,
    /// sha256 of the content (for a source bundle: of its file list and contents).
    pub sha256: String,
    pub source: ArtifactSource,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RemovedArtifact {
    pub key: String,
    /// Said in the plan, e.g. "delete: built by i-0abc from an older source bundle; ...".
    pub reason: String,
}

/// The parts of a launch template's data that fleetform manages and compares. The
/// same struct comes out of a rendering and out of DescribeLaunchTemplateVersions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LtFacts {
    pub image_id: String,
    pub user_data_sha256: String,
    pub instance_profile: String,
    /// fleetform's group (head or worker); None while the network stack that defines it
    /// is not deployed yet.
    pub security_group: Option<String>,
    /// `network.security_group_ids`, after fleetform's group on the interface.
    pub extra_security_groups: Vec<String>,
    pub root_device: String,
    pub root_size_gb: i32,
    pub root_volume_type: String,
    pub root_encrypted: bool,
    pub http_tokens: String,
    pub http_hop_limit: i32,
    pub associate_public_ip: bool,
}

impl LtFacts {
    /// What changed between `self` (live) and `want`, in words for the plan.
    pub fn differences(&self, want: &LtFacts) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.image_id != want.image_id {
            out.push("AMI changed");
        }
        if self.user_data_sha256 != want.user_data_sha256 {
            out.push("user data changed");
        }
        if self.instance_profile != want.instance_profile {
            out.push("instance profile changed");
        }
        if want.security_group.is_some() && self.security_group != want.security_group {
            out.push("security group changed");
        }
        if self.extra_security_groups != want.extra_security_groups {
            out.push("extra security groups changed");
        }
        if (&self.root_device, self.root_size_gb, &self.root_volume_type, self.root_encrypted)
            != (&want.root_device, want.root_size_gb, &want.root_volume_type, want.root_encrypted)
        {
            out.push("root volume changed");
        }
        if (&self.http_tokens, self.http_hop_limit) != (&want.http_tokens, want.http_hop_limit) {
            out.push("metadata options changed");
        }
        if self.associate_public_ip != want.associate_public_ip {
            out.push("public IP setting changed");
        }
        out
    }
}

#[derive(Debug, Clone)]
pub struct DesiredLaunchTemplate {
    pub node_type: String,
    pub name: String,
    pub facts: LtFacts,
    /// The full user data (facts only hold its hash).
    pub user_data: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DesiredNodeGroup {
    pub node_type: String,
    pub is_head: bool,
    /// The head: exactly one. Workers: min_workers (more come from the autoscaler).
    pub min: u32,
    pub max: u32,
    pub image_id: String,
    pub instance_types: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Live {
    pub stacks: BTreeMap<StackKind, LiveStack>,
    /// Queues tagged for this cluster, by name.
    pub queues: BTreeMap<String, LiveQueue>,
    /// Artifact key → the sha256 recorded beside it in the store.
    pub artifacts: BTreeMap<String, String>,
    /// Launch templates tagged for this cluster, by node type.
    pub launch_templates: BTreeMap<String, LiveLaunchTemplate>,
    /// Every instance tagged for the cluster, in any state (terminated ones explain
    /// replacements while EC2 still lists them).
    pub instances: Vec<LiveInstance>,
}

#[derive(Debug, Clone)]
pub struct LiveStack {
    pub name: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// The deployed template body (GetTemplate, original stage).
    pub template: Option<String>,
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct LiveQueue {
    pub url: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct LiveLaunchTemplate {
    pub id: String,
    pub name: String,
    pub default_version: i64,
    /// None when the default version's data could not be read as fleetform writes it.
    pub facts: Option<LtFacts>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiveInstance {
    pub id: String,
    pub node_type: Option<String>,
    /// pending | running | stopping | stopped | shutting-down | terminated
    pub state: String,
    pub image_id: String,
    pub instance_type: String,
    pub lt_version: Option<i64>,
    pub spot: bool,
    /// Seconds since the epoch, for "newest first" choices.
    pub launch_time: i64,
    pub zone: Option<String>,
    pub public_ip: Option<String>,
}

impl LiveInstance {
    pub fn is_active(&self) -> bool {
        matches!(self.state.as_str(), "pending" | "running")
    }
    pub fn is_stopped(&self) -> bool {
        matches!(self.state.as_str(), "stopping" | "stopped")
    }
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "shutting-down" | "terminated")
    }
}
