//! The cluster spec (`cluster.yaml`): the names workshop users know from `ray up`
//! (`cluster_name`, `max_workers`, `available_node_types`, ...) plus provider, network
//! and storage sections. Loading collects every problem at once (see [`crate::diag`]).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::diag::{load_yaml, Collector, Diagnostics, LocationIndex, YamlPath};
use crate::instance::{facts, Arch};
use crate::resources::{Resources, CPU, MEMORY};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub cluster_name: String,
    pub provider: ProviderSpec,
    #[serde(default)]
    pub network: NetworkSpec,
    #[serde(default)]
    pub storage: StorageSpec,
    /// Cap on workers across all node types (the head is not counted), as in Ray.
    #[serde(default = "defaults::max_workers")]
    pub max_workers: u32,
    /// Launches in flight are capped at max(5, upscaling_speed × running nodes), as in Ray.
    #[serde(default = "defaults::upscaling_speed")]
    pub upscaling_speed: f64,
    /// Plan capacity so that nodes run at this fraction of their resources.
    #[serde(default = "defaults::target_utilization_fraction")]
    pub target_utilization_fraction: f64,
    #[serde(default = "defaults::idle_timeout_minutes")]
    pub idle_timeout_minutes: f64,
    pub head_node_type: String,
    pub available_node_types: BTreeMap<String, NodeTypeSpec>,
    /// Extra tags put on everything fleetform creates (after its own `fleetform:*` tags).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Shell commands every AWS node runs once at first boot, in order and as root,
    /// before its agent (or the head's reconcile unit) starts: Ray's `setup_commands`.
    /// Not run on the local provider, whose agents share this machine.
    #[serde(default)]
    pub setup_commands: Vec<String>,
    /// Each agent serves its own Prometheus metrics on this port (`/metrics`). Off by
    /// default: the dashboard's cluster-wide `/metrics` needs no port on any node. On AWS
    /// the workers' security group then admits the port from the head only; on the local
    /// provider agent N listens on 127.0.0.1:(port + N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_metrics_port: Option<u16>,
}

mod defaults {
    pub fn max_workers() -> u32 {
        8
    }
    pub fn upscaling_speed() -> f64 {
        1.0
    }
    pub fn target_utilization_fraction() -> f64 {
        0.8
    }
    pub fn idle_timeout_minutes() -> f64 {
        5.0
    }
    pub fn yes() -> bool {
        true
    }
    pub fn root_size() -> u32 {
        100
    }
    pub fn gp3() -> String {
        "gp3".into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Aws,
    Local,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderSpec {
    #[serde(rename = "type")]
    pub kind: ProviderKind,
    /// AWS region; when absent the standard AWS configuration chain decides.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub availability_zones: Vec<String>,
}

/// `network:` in one of two forms. **Created** (the default): fleetform makes the VPC,
/// subnets, NAT and security groups from `vpc_cidr`, `public_subnets`, `private_subnets`,
/// `nat_gateway`. **Existing** (bring your own VPC): `vpc_id` and `private_subnet_ids`
/// (plus optional `public_subnet_ids` and `security_group_ids`); fleetform then creates
/// only the nodes' security groups (and the Instance Connect Endpoint) in that VPC.
///
/// The created form's fields are `Option`s so that validation can tell a field written
/// in the file from a default; read them through [`NetworkSpec::form`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_subnets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_subnets: Option<Vec<String>>,
    /// Created form: the NAT gateway the private subnets reach SQS, EC2 and package
    /// mirrors through. Only `true` (the default) validates: see `NO_NAT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway: Option<bool>,
    /// Both forms: an EC2 Instance Connect Endpoint (in the first private subnet) and SSH
    /// from it to the nodes.
    #[serde(default = "defaults::yes")]
    pub instance_connect_endpoint: bool,
    /// Existing form: the VPC to use (`vpc-...`). Its presence selects the form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    /// Existing form: where nodes are launched; each must be private and reach S3 and SQS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub private_subnet_ids: Vec<String>,
    /// Existing form, optional: the VPC's public subnets (checked, never used for nodes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub public_subnet_ids: Vec<String>,
    /// Existing form, optional: extra security groups put on every node, after fleetform's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
}

/// The created form with its defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedNetwork {
    pub vpc_cidr: String,
    pub public_subnets: Vec<String>,
    pub private_subnets: Vec<String>,
    pub nat_gateway: bool,
}

/// The existing (bring-your-own) form.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingNetwork {
    pub vpc_id: String,
    pub private_subnet_ids: Vec<String>,
    pub public_subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NetworkForm {
    Created(CreatedNetwork),
    Existing(ExistingNetwork),
}

impl NetworkSpec {
    fn default_vpc() -> String {
        "10.0.0.0/16".into()
    }
    fn default_public() -> Vec<String> {
        vec!["10.0.0.0/24".into()]
    }
    fn default_private() -> Vec<String> {
        vec!["10.0.16.0/20".into(), "10.0.32.0/20".into()]
    }

    /// Which form the spec uses, with defaults applied to the created one.
    pub fn form(&self) -> NetworkForm {
        match &self.vpc_id {
            Some(vpc_id) => NetworkForm::Existing(ExistingNetwork {
                vpc_id: vpc_id.clone(),
                private_subnet_ids: self.private_subnet_ids.clone(),
                public_subnet_ids: self.public_subnet_ids.clone(),
                security_group_ids: self.security_group_ids.clone(),
            }),
            None => NetworkForm::Created(CreatedNetwork {
                vpc_cidr: self.vpc_cidr.clone().unwrap_or_else(Self::default_vpc),
                public_subnets: self.public_subnets.clone().unwrap_or_else(Self::default_public),
                private_subnets: self.private_subnets.clone().unwrap_or_else(Self::default_private),
                nat_gateway: self.nat_gateway.unwrap_or(true),
            }),
        }
    }

    /// The existing form, when the spec uses it.
    pub fn existing(&self) -> Option<ExistingNetwork> {
        match self.form() {
            NetworkForm::Existing(e) => Some(e),
            NetworkForm::Created(_) => None,
        }
    }
}

impl Default for NetworkSpec {
    fn default() -> Self {
        Self {
            vpc_cidr: None,
            public_subnets: None,
            private_subnets: None,
            nat_gateway: None,
            instance_connect_endpoint: true,
            vpc_id: None,
            private_subnet_ids: Vec::new(),
            public_subnet_ids: Vec::new(),
            security_group_ids: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StorageSpec {
    /// S3 bucket of the cluster store (AWS provider).
    #[serde(default)]
    pub bucket: Option<String>,
    /// Key prefix inside the bucket; defaults to `<cluster_name>/`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Local provider: directory of the cluster store (default `.fleetform/<cluster>/store`).
    #[serde(default)]
    pub path: Option<String>,
    /// AWS provider: S3 locations outside the store that jobs read (`input.uri`), e.g.
    /// `s3://datasets/raw-100gb-data/`. The worker role may read there, nothing more;
    /// submit refuses a job whose input is neither here nor in the store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_inputs: Vec<String>,
    /// AWS provider: S3 locations outside the store that jobs write (`output.uri`). The
    /// worker role may read, write and delete objects there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_outputs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeTypeSpec {
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub min_workers: u32,
    /// Defaults to the cluster's `max_workers`.
    #[serde(default)]
    pub max_workers: Option<u32>,
    #[serde(default)]
    pub node_config: NodeConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Market {
    #[serde(rename = "spot")]
    Spot,
    #[serde(rename = "on-demand")]
    OnDemand,
}

impl Market {
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::OnDemand => "on-demand",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeConfig {
    #[serde(default)]
    pub instance_types: Vec<String>,
    #[serde(default = "NodeConfig::default_market")]
    pub market: Market,
    /// Spot node types: launch on-demand when no spot offering has capacity.
    #[serde(default = "defaults::yes")]
    pub on_demand_fallback: bool,
    /// Spot node types: keep this many of the type on-demand as a stable base (C6).
    #[serde(default)]
    pub on_demand_base: u32,
    #[serde(default)]
    pub image: ImageSpec,
    #[serde(default)]
    pub root_volume: RootVolume,
    /// Mount the instance-store NVMe (if the type has one) as the spill directory.
    #[serde(default = "defaults::yes")]
    pub local_nvme: bool,
}

impl NodeConfig {
    fn default_market() -> Market {
        Market::OnDemand
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            instance_types: Vec::new(),
            market: Market::OnDemand,
            on_demand_fallback: true,
            on_demand_base: 0,
            image: ImageSpec::default(),
            root_volume: RootVolume::default(),
            local_nvme: true,
        }
    }
}

/// `al2023` (resolved per architecture from the public SSM parameter) or an explicit AMI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ImageSpec {
    Alias(String),
    Explicit { ami: String, architecture: Arch },
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec::Alias("al2023".into())
    }
}

/// The public SSM parameter of the latest AL2023 AMI for an architecture.
pub fn al2023_parameter(arch: Arch) -> String {
    format!("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{}", arch.ec2())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RootVolume {
    #[serde(default = "defaults::root_size")]
    pub size_gb: u32,
    #[serde(default = "defaults::gp3", rename = "type")]
    pub volume_type: String,
}

impl Default for RootVolume {
    fn default() -> Self {
        Self { size_gb: defaults::root_size(), volume_type: defaults::gp3() }
    }
}

/// A cluster spec together with the file it came from, for messages.
#[derive(Debug, Clone)]
pub struct LoadedCluster {
    pub file: String,
    pub spec: ClusterSpec,
}

impl ClusterSpec {
    /// Parse and validate; every problem is reported at once.
    pub fn from_yaml(file: &str, src: &str) -> Result<ClusterSpec, Diagnostics> {
        let index = LocationIndex::build(src);
        let (spec, mut c): (ClusterSpec, Collector<'_>) = load_yaml(file, src, &index)?;
        spec.validate(&mut c);
        c.finish()?;
        Ok(spec)
    }

    pub fn load(path: &std::path::Path) -> Result<ClusterSpec, Diagnostics> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|e| Diagnostics {
            file: file.clone(),
            items: vec![crate::diag::Diagnostic {
                path: YamlPath::root(),
                location: None,
                message: format!("cannot read the cluster spec: {e}"),
            }],
        })?;
        Self::from_yaml(&file, &src)
    }

    /// The store's key prefix inside `storage.bucket`: `storage.prefix` (default
    /// `<cluster_name>/`), always ending in `/`, or empty for a whole bucket.
    pub fn store_prefix(&self) -> String {
        let p = self.storage.prefix.clone().unwrap_or_else(|| format!("{}/", self.cluster_name));
        let p = p.trim_start_matches('/').to_string();
        if p.is_empty() || p.ends_with('/') {
            p
        } else {
            format!("{p}/")
        }
    }

    pub fn head(&self) -> &NodeTypeSpec {
        &self.available_node_types[&self.head_node_type]
    }

    /// Worker node types (every type but the head's), in name order.
    pub fn worker_types(&self) -> impl Iterator<Item = (&String, &NodeTypeSpec)> {
        self.available_node_types.iter().filter(move |(n, _)| **n != self.head_node_type)
    }

    /// What one node of a type offers its tasks, as the autoscaler packs them and the
    /// agent lends them (one definition for both): the declared resources; `CPU`, when
    /// not declared, the smallest instance type's vCPUs (local provider: this machine's
    /// cores shared among the type's agents); `memory` (GiB), when not declared, the
    /// smallest instance type's memory. What neither declares nor implies stays absent.
    pub fn node_offer(&self, node_type: &str) -> Resources {
        let Some(t) = self.available_node_types.get(node_type) else { return Resources::new() };
        let mut offer = if self.provider.kind == ProviderKind::Local {
            local_resources(&t.resources, t.min_workers.max(1))
        } else {
            t.resources.clone()
        };
        let known: Vec<_> = t.node_config.instance_types.iter().filter_map(|i| facts(i)).collect();
        if offer.get(CPU).is_none() {
            if let Some(v) = known.iter().map(|f| f.vcpus).min() {
                offer = offer.with(CPU, v as f64);
            }
        }
        if offer.get(MEMORY).is_none() {
            if let Some(m) = known.iter().map(|f| f.memory_gib).reduce(f64::min) {
                offer = offer.with(MEMORY, m);
            }
        }
        offer
    }

    /// Can some worker node type run a task that asks for `wants`? The message names what
    /// is missing and what the node types offer.
    pub fn feasible(&self, wants: &crate::resources::Resources) -> Result<(), String> {
        // A task takes max(1, ceil(CPU)) slots and its memory (the agent and the
        // autoscaler agree); custom resources are labels.
        let fits = self.worker_types().any(|(n, _)| {
            let offered = self.node_offer(n);
            offered.satisfies(wants) && offered.cpu() >= wants.cpu().ceil().max(1.0)
        });
        if fits {
            return Ok(());
        }
        let offered: Vec<String> = self.worker_types().map(|(n, _)| format!("{n} {}", self.node_offer(n))).collect();
        Err(format!("no node type provides {wants}; node types offer: {}", offered.join("; ")))
    }

    pub fn type_max_workers(&self, name: &str) -> u32 {
        self.available_node_types
            .get(name)
            .and_then(|t| t.max_workers)
            .unwrap_or(self.max_workers)
            .min(self.max_workers)
    }

    /// The architecture of a node type (from its first instance type, or the explicit AMI).
    pub fn arch_of(&self, node_type: &str) -> Option<Arch> {
        let t = self.available_node_types.get(node_type)?;
        if let ImageSpec::Explicit { architecture, .. } = &t.node_config.image {
            return Some(*architecture);
        }
        t.node_config.instance_types.first().and_then(|i| facts(i)).map(|f| f.arch)
    }

    fn validate(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        if !valid_name(&self.cluster_name) {
            c.error(
                root.key("cluster_name"),
                format!(
                    "`{}` is not a valid cluster name: use 1-32 lowercase letters, digits and '-', starting with a letter",
                    self.cluster_name
                ),
            );
        }
        if self.max_workers == 0 {
            c.error(root.key("max_workers"), "must be at least 1");
        }
        // Written so that NaN fails too.
        if self.upscaling_speed.is_nan() || self.upscaling_speed <= 0.0 {
            c.error(root.key("upscaling_speed"), "must be greater than 0");
        }
        if !(self.target_utilization_fraction > 0.0 && self.target_utilization_fraction <= 1.0) {
            c.error(root.key("target_utilization_fraction"), "must be in (0, 1]");
        }
        if self.idle_timeout_minutes.is_nan() || self.idle_timeout_minutes < 0.0 {
            c.error(root.key("idle_timeout_minutes"), "must not be negative");
        }
        for (i, cmd) in self.setup_commands.iter().enumerate() {
            if cmd.trim().is_empty() {
                c.error(root.key("setup_commands").index(i), "empty command: remove it");
            }
        }
        self.validate_provider(c);
        self.validate_node_types(c);
        if self.provider.kind == ProviderKind::Aws {
            self.validate_network(c);
            if self.storage.bucket.is_none() {
                c.error(root.key("storage"), "the aws provider needs `storage.bucket`, the S3 bucket of the cluster store");
            }
        }
        if let Some(b) = &self.storage.bucket {
            if !valid_bucket(b) {
                c.error(root.key("storage").key("bucket"), format!("`{b}` is not a valid S3 bucket name"));
            }
        }
        self.validate_job_locations(c);
    }

    /// `storage.job_inputs` / `job_outputs`: S3 locations with a valid bucket, AWS only
    /// (they become grants of the worker role; a local cluster reads any path).
    fn validate_job_locations(&self, c: &mut Collector<'_>) {
        let storage = YamlPath::root().key("storage");
        for (field, uris) in [("job_inputs", &self.storage.job_inputs), ("job_outputs", &self.storage.job_outputs)] {
            if self.provider.kind == ProviderKind::Local && !uris.is_empty() {
                c.error(
                    storage.key(field),
                    "applies to the aws provider only (it grants the worker role S3 access); a local cluster reads and writes any path: remove it",
                );
                continue;
            }
            for (i, uri) in uris.iter().enumerate() {
                match crate::s3_prefix::S3Prefix::parse(uri) {
                    Err(e) => c.error(storage.key(field).index(i), e),
                    Ok(p) if !valid_bucket(&p.bucket) => {
                        c.error(storage.key(field).index(i), format!("`{}` is not a valid S3 bucket name", p.bucket))
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    fn validate_provider(&self, c: &mut Collector<'_>) {
        let p = YamlPath::root().key("provider");
        if let Some(region) = &self.provider.region {
            for (i, az) in self.provider.availability_zones.iter().enumerate() {
                if !az.starts_with(region.as_str()) {
                    c.error(
                        p.key("availability_zones").index(i),
                        format!("availability zone `{az}` is not in region `{region}`"),
                    );
                }
            }
        }
    }

    fn validate_node_types(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        let types = root.key("available_node_types");
        if self.available_node_types.is_empty() {
            c.error(types.clone(), "define at least a head node type and one worker node type");
        }
        match self.available_node_types.get(&self.head_node_type) {
            None => c.error(
                root.key("head_node_type"),
                format!("`{}` is not one of available_node_types", self.head_node_type),
            ),
            Some(head) => {
                let hp = types.key(&self.head_node_type);
                let cpu = head.resources.get(CPU);
                if cpu != Some(0.0) {
                    c.error(
                        hp.key("resources"),
                        "the head node could be given work: set `CPU: 0` so tasks never land on it",
                    );
                }
                for (name, q) in head.resources.iter() {
                    if name != CPU && *q > 0.0 {
                        c.error(
                            hp.key("resources").key(name),
                            format!("the head node could be given work that needs `{name}`: remove it"),
                        );
                    }
                }
                if head.min_workers > 0 || head.max_workers.unwrap_or(0) > 0 {
                    c.error(hp.key("min_workers"), "the head node type is launched exactly once; do not give it min_workers/max_workers");
                }
                if head.node_config.market == Market::Spot {
                    c.error(hp.key("node_config").key("market"), "the head node must be on-demand: a spot interruption would take the cluster's control plane with it");
                }
            }
        }
        for (name, t) in &self.available_node_types {
            let tp = types.key(name);
            if !valid_name(name.replace('_', "-").as_str()) {
                c.error(tp.clone(), format!("`{name}` is not a valid node type name: use letters, digits and '_'"));
            }
            let is_head = *name == self.head_node_type;
            if let Some(max) = t.max_workers {
                if t.min_workers > max {
                    c.error(
                        tp.key("min_workers"),
                        format!("min_workers ({}) is greater than max_workers ({max})", t.min_workers),
                    );
                }
            }
            if !is_head && t.min_workers > self.max_workers {
                c.error(
                    tp.key("min_workers"),
                    format!("min_workers ({}) is greater than the cluster's max_workers ({})", t.min_workers, self.max_workers),
                );
            }
            for (r, q) in t.resources.iter() {
                if *q < 0.0 || !q.is_finite() {
                    c.error(tp.key("resources").key(r), format!("resource `{r}` must be a non-negative number"));
                }
            }
            if !is_head && self.provider.kind == ProviderKind::Aws && t.resources.get(CPU).unwrap_or(0.0) <= 0.0 {
                c.error(tp.key("resources"), "a worker node type needs `CPU` greater than 0, or it can never run a task");
            }
            if self.provider.kind == ProviderKind::Aws {
                self.validate_aws_node_config(c, &tp, t);
            }
        }
        let min_sum: u32 = self.worker_types().map(|(_, t)| t.min_workers).sum();
        if min_sum > self.max_workers {
            c.error(
                root.key("max_workers"),
                format!("the node types' min_workers add up to {min_sum}, more than max_workers ({})", self.max_workers),
            );
        }
    }

    fn validate_aws_node_config(&self, c: &mut Collector<'_>, tp: &YamlPath, t: &NodeTypeSpec) {
        let nc = tp.key("node_config");
        let cfg = &t.node_config;
        if cfg.instance_types.is_empty() {
            c.error(nc.key("instance_types"), "list at least one instance type");
        }
        let mut archs = Vec::new();
        for (i, it) in cfg.instance_types.iter().enumerate() {
            match facts(it) {
                None => c.error(nc.key("instance_types").index(i), format!("`{it}` is not an EC2 instance type name")),
                Some(f) => archs.push((i, it, f.arch)),
            }
        }
        if let Some((_, first, a0)) = archs.first().cloned() {
            for (i, it, a) in &archs[1..] {
                if *a != a0 {
                    c.error(
                        nc.key("instance_types").index(*i),
                        format!("`{it}` is {a} but `{first}` is {a0}: one node type needs one architecture (its AMI and agent binary)"),
                    );
                }
            }
        }
        match &cfg.image {
            ImageSpec::Alias(a) if a != "al2023" && !a.starts_with("ami-") => c.error(
                nc.key("image"),
                format!("unknown image `{a}`: use `al2023` or `{{ami: ami-..., architecture: x86_64|arm64}}`"),
            ),
            ImageSpec::Alias(a) if a.starts_with("ami-") => c.error(
                nc.key("image"),
                format!("an explicit AMI needs its architecture: `image: {{ami: {a}, architecture: x86_64|arm64}}`"),
            ),
            ImageSpec::Explicit { ami, architecture } => {
                if !ami.starts_with("ami-") {
                    c.error(nc.key("image").key("ami"), format!("`{ami}` is not an AMI id (ami-...)"));
                }
                for (i, it, a) in &archs {
                    if a != architecture {
                        c.error(
                            nc.key("instance_types").index(*i),
                            format!("`{it}` is {a} but the AMI {ami} is {architecture}"),
                        );
                    }
                }
            }
            _ => {}
        }
        if cfg.root_volume.size_gb < 8 || cfg.root_volume.size_gb > 16384 {
            c.error(nc.key("root_volume").key("size_gb"), "must be between 8 and 16384 GiB");
        }
        if !["gp3", "gp2", "io1", "io2"].contains(&cfg.root_volume.volume_type.as_str()) {
            c.error(nc.key("root_volume").key("type"), format!("`{}` is not a root volume type (gp3, gp2, io1, io2)", cfg.root_volume.volume_type));
        }
        if cfg.market == Market::OnDemand && cfg.on_demand_base > 0 {
            c.error(nc.key("on_demand_base"), "on_demand_base only applies to `market: spot`");
        }
    }

    fn validate_network(&self, c: &mut Collector<'_>) {
        match self.network.form() {
            NetworkForm::Created(n) => {
                let np = YamlPath::root().key("network");
                for (field, written) in [
                    ("private_subnet_ids", !self.network.private_subnet_ids.is_empty()),
                    ("public_subnet_ids", !self.network.public_subnet_ids.is_empty()),
                    ("security_group_ids", !self.network.security_group_ids.is_empty()),
                ] {
                    if written {
                        c.error(
                            np.key(field),
                            format!("`{field}` belongs to an existing VPC: add `vpc_id` (the VPC these ids are in), or remove it to let fleetform create the network"),
                        );
                    }
                }
                self.validate_created_network(c, &n);
            }
            NetworkForm::Existing(n) => self.validate_existing_network(c, &n),
        }
    }

    fn validate_created_network(&self, c: &mut Collector<'_>, n: &CreatedNetwork) {
        let np = YamlPath::root().key("network");
        let vpc: Option<Ipv4Net> = match n.vpc_cidr.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                c.error(np.key("vpc_cidr"), format!("`{}` is not an IPv4 CIDR", n.vpc_cidr));
                None
            }
        };
        let mut nets: Vec<(YamlPath, Ipv4Net)> = Vec::new();
        for (list, subnets) in [("public_subnets", &n.public_subnets), ("private_subnets", &n.private_subnets)] {
            if subnets.is_empty() {
                c.error(np.key(list), "list at least one subnet");
            }
            for (i, s) in subnets.iter().enumerate() {
                let p = np.key(list).index(i);
                match s.parse::<Ipv4Net>() {
                    Err(_) => c.error(p, format!("`{s}` is not an IPv4 CIDR")),
                    Ok(n) => {
                        if let Some(v) = vpc {
                            if !v.contains(&n) {
                                c.error(p.clone(), format!("subnet {n} is outside the VPC {v}"));
                            }
                        }
                        if let Some((op, other)) = nets.iter().find(|(_, o)| overlaps(o, &n)) {
                            c.error(p.clone(), format!("subnet {n} overlaps {other} ({op})"));
                        }
                        nets.push((p, n));
                    }
                }
            }
        }
        if !n.nat_gateway {
            c.error(np.key("nat_gateway"), NO_NAT);
        }
        let azs = self.provider.availability_zones.len();
        if azs > 0 && n.private_subnets.len() > azs {
            c.error(
                np.key("private_subnets"),
                format!("{} private subnets but {azs} availability zones: each subnet needs its own zone", n.private_subnets.len()),
            );
        }
    }

    /// The existing form: ids that look like ids, no field of the created form, at least
    /// one private subnet. Whether the ids exist, and the subnets are private and reach
    /// S3 and SQS, is checked against AWS at plan time.
    fn validate_existing_network(&self, c: &mut Collector<'_>, n: &ExistingNetwork) {
        let np = YamlPath::root().key("network");
        let net = &self.network;
        for (field, written) in [
            ("vpc_cidr", net.vpc_cidr.is_some()),
            ("public_subnets", net.public_subnets.is_some()),
            ("private_subnets", net.private_subnets.is_some()),
            ("nat_gateway", net.nat_gateway.is_some()),
        ] {
            if written {
                c.error(
                    np.key(field),
                    format!(
                        "`{field}` cannot be used with `vpc_id`: fleetform creates no VPC, subnets or NAT in an existing VPC; \
                         remove `{field}` (or remove `vpc_id` to let fleetform create the network)"
                    ),
                );
            }
        }
        if !looks_like_id(&n.vpc_id, "vpc") {
            c.error(np.key("vpc_id"), format!("`{}` is not a VPC id (vpc- and 8 or 17 hex digits)", n.vpc_id));
        }
        if n.private_subnet_ids.is_empty() {
            c.error(np.key("private_subnet_ids"), "list at least one private subnet id (subnet-...): nodes are launched there");
        }
        let mut seen: BTreeMap<&str, YamlPath> = BTreeMap::new();
        for (list, ids, prefix, what) in [
            ("private_subnet_ids", &n.private_subnet_ids, "subnet", "subnet"),
            ("public_subnet_ids", &n.public_subnet_ids, "subnet", "subnet"),
            ("security_group_ids", &n.security_group_ids, "sg", "security group"),
        ] {
            for (i, id) in ids.iter().enumerate() {
                let p = np.key(list).index(i);
                if !looks_like_id(id, prefix) {
                    c.error(p.clone(), format!("`{id}` is not a {what} id ({prefix}- and 8 or 17 hex digits)"));
                }
                match seen.get(id.as_str()) {
                    Some(first) => c.error(p.clone(), format!("{id} is already listed at {first}")),
                    None => {
                        seen.insert(id.as_str(), p);
                    }
                }
            }
        }
    }
}

/// Why a created network needs its NAT gateway. The network fleetform creates gives the
/// private subnets a free S3 gateway endpoint, but nodes also call SQS (every agent) and
/// EC2, CloudFormation, SSM and STS (the head's autoscaler), and install packages
/// (`setup_commands`, a source build). Interface endpoints for those five would bill per
/// hour in each zone (about US$0.01 each: 10 in the default two zones, over twice a NAT
/// gateway's hourly price) and still leave no way to PyPI or crates.io. So `false` is
/// refused rather than answered with endpoints; a VPC that is private by design can be
/// brought with `vpc_id`, where the checks accept endpoints instead of a NAT.
const NO_NAT: &str = "`nat_gateway: false` leaves the private subnets with no route to SQS, EC2 or package mirrors (only S3 has a gateway \
     endpoint), so every node would fail at boot; interface endpoints for SQS, EC2, CloudFormation, SSM and STS would cost more per hour \
     than the NAT and still reach no package mirror: remove `nat_gateway` (it defaults to true), or bring a VPC that has the endpoints \
     (`vpc_id` and `private_subnet_ids`)";

/// `vpc-0abc...`, `subnet-...`, `sg-...`: the prefix, a dash, 8 or 17 lowercase hex digits.
fn looks_like_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)))
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn valid_bucket(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.parse::<Ipv4Addr>().is_err()
}

#[cfg(test)]
mod tests;

/// A local worker type's resources on this machine: without an explicit CPU, the
/// machine's cores shared among the type's agents (the local provider starts them so).
pub fn local_resources(declared: &crate::resources::Resources, agents: u32) -> crate::resources::Resources {
    use crate::resources::CPU;
    if declared.get(CPU).is_some() {
        return declared.clone();
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u32;
    declared.clone().with(CPU, (cores / agents.max(1)).max(1) as f64)
}
