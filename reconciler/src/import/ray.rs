//! The `ray up` cluster YAML, as far as fleetform reads it. Parsing goes through the
//! core's `load_yaml_tolerating`, so a malformed file gets the same file:line:column
//! messages as `fleetform validate`; keys Ray accepts but fleetform does not map are
//! returned (see [`super::unmapped`]) instead of being reported as unknown.

use std::collections::BTreeMap;

use fleetform_core::diag::{load_yaml_tolerating, Collector, Diagnostics, LocationIndex, YamlPath};
use serde::Deserialize;

use super::unmapped;

#[derive(Debug, Deserialize)]
pub struct RayCluster {
    pub cluster_name: String,
    #[serde(default)]
    pub max_workers: Option<u32>,
    #[serde(default)]
    pub upscaling_speed: Option<f64>,
    #[serde(default)]
    pub idle_timeout_minutes: Option<f64>,
    /// Legacy (Ray's old autoscaler), but fleetform has the same field.
    #[serde(default)]
    pub target_utilization_fraction: Option<f64>,
    /// Legacy: the minimum of the `worker_nodes` type (Ray drops it otherwise).
    #[serde(default)]
    pub min_workers: Option<u32>,
    pub provider: RayProvider,
    #[serde(default)]
    pub available_node_types: BTreeMap<String, RayNodeType>,
    /// Legacy format: the head's node_config, used when there is no `available_node_types`.
    #[serde(default)]
    pub head_node: Option<RayNodeConfig>,
    /// Legacy format: the workers' node_config, used when there is no `available_node_types`.
    #[serde(default)]
    pub worker_nodes: Option<RayNodeConfig>,
    #[serde(default)]
    pub head_node_type: Option<String>,
    #[serde(default)]
    pub setup_commands: Vec<String>,
    #[serde(default)]
    pub head_setup_commands: Vec<String>,
    #[serde(default)]
    pub worker_setup_commands: Vec<String>,
    /// No `available_node_types` but a `head_node` or `worker_nodes` key: Ray's legacy
    /// format (`is_legacy_config` in `fillout_defaults`, ray/autoscaler/_private/util.py).
    #[serde(skip)]
    pub legacy: bool,
    /// `head_node_type` was left out and is Ray's default (defaults.yaml:
    /// `head_node_type: ray.head.default`, kept by `defaults.update(config)`).
    #[serde(skip)]
    pub head_defaulted: bool,
}

/// defaults.yaml's `head_node_type`.
pub const DEFAULT_HEAD_TYPE: &str = "ray.head.default";

#[derive(Debug, Deserialize)]
pub struct RayProvider {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub region: Option<String>,
    /// Comma-separated, e.g. `us-west-2a,us-west-2b`.
    #[serde(default)]
    pub availability_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RayNodeType {
    #[serde(default)]
    pub resources: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    pub min_workers: Option<u32>,
    #[serde(default)]
    pub max_workers: Option<u32>,
    #[serde(default)]
    pub node_config: RayNodeConfig,
    /// Per node type, replacing the top-level `worker_setup_commands` for this type.
    #[serde(default)]
    pub worker_setup_commands: Option<Vec<String>>,
}

/// EC2 RunInstances parameters (Ray passes node_config through to boto3).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RayNodeConfig {
    #[serde(rename = "InstanceType", default)]
    pub instance_type: Option<String>,
    #[serde(rename = "ImageId", default)]
    pub image_id: Option<String>,
    #[serde(rename = "InstanceMarketOptions", default)]
    pub market_options: Option<MarketOptions>,
    #[serde(rename = "BlockDeviceMappings", default)]
    pub block_devices: Vec<BlockDevice>,
    #[serde(rename = "SubnetId", default)]
    pub subnet_id: Option<String>,
    #[serde(rename = "SubnetIds", default)]
    pub subnet_ids: Vec<String>,
    #[serde(rename = "SecurityGroupIds", default)]
    pub security_group_ids: Vec<String>,
    /// EC2's: the template whose fields node_config overrides.
    #[serde(rename = "LaunchTemplate", default)]
    pub launch_template: Option<LaunchTemplate>,
    /// Only in the legacy `head_node`/`worker_nodes` sections, where Ray reads the type's
    /// resources from (`merge_legacy_yaml_with_defaults` in ray/autoscaler/_private/util.py).
    #[serde(default)]
    pub resources: Option<BTreeMap<String, f64>>,
}

/// `LaunchTemplate` of node_config: an id or a name, and a version (a number,
/// `$Latest` or `$Default`; EC2's default version when left out).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LaunchTemplate {
    #[serde(rename = "LaunchTemplateId", default)]
    pub id: Option<String>,
    #[serde(rename = "LaunchTemplateName", default)]
    pub name: Option<String>,
    #[serde(rename = "Version", default)]
    pub version: Option<serde_norway::Value>,
}

impl LaunchTemplate {
    /// How the Ray file names it: `lt-0123 (version $Latest)`.
    pub fn describe(&self) -> String {
        let which = self.id.as_deref().or(self.name.as_deref()).unwrap_or("(no id or name)");
        format!("{which} (version {})", self.version_string().unwrap_or_else(|| "$Default".into()))
    }
    /// The version as EC2 takes it: `2`, `$Latest`.
    pub fn version_string(&self) -> Option<String> {
        match self.version.as_ref()? {
            serde_norway::Value::String(s) => Some(s.clone()),
            serde_norway::Value::Number(n) => Some(n.to_string()),
            other => serde_norway::to_string(other).ok().map(|s| s.trim().to_string()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct MarketOptions {
    #[serde(rename = "MarketType", default)]
    pub market_type: Option<String>,
}

/// The root device names of the AMIs Ray and fleetform use (AL2023, Ubuntu, DLAMI).
pub const ROOT_DEVICES: &[&str] = &["/dev/xvda", "/dev/sda1"];

#[derive(Debug, Clone, Deserialize)]
pub struct BlockDevice {
    #[serde(rename = "DeviceName", default)]
    pub device_name: Option<String>,
    #[serde(rename = "Ebs", default)]
    pub ebs: Option<Ebs>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ebs {
    #[serde(rename = "VolumeSize", default)]
    pub volume_size: Option<u32>,
    #[serde(rename = "VolumeType", default)]
    pub volume_type: Option<String>,
}

/// A parsed file: the model, where each path is (for notes), and the keys left unmapped.
pub struct Parsed {
    pub ray: RayCluster,
    pub index: LocationIndex,
    pub unmapped: Vec<YamlPath>,
}

/// Parse and check a Ray cluster file; every problem at once, with locations.
pub fn parse(file: &str, src: &str) -> Result<Parsed, Diagnostics> {
    let index = LocationIndex::build(src);
    placeholders(file, src, &index)?;
    let (mut ray, mut c, unmapped) = load_yaml_tolerating::<RayCluster>(file, src, &index, unmapped::tolerated)?;
    ray.legacy_sections(src);
    ray.check(&mut c);
    c.finish()?;
    Ok(Parsed { ray, index, unmapped })
}

/// `${VAR}` left in values: the file is the template of a shell heredoc, not yet expanded.
/// Reported alone: the type errors they cause (`max_workers: ${N}`) would only confuse.
fn placeholders(file: &str, src: &str, index: &LocationIndex) -> Result<(), Diagnostics> {
    let Ok(value) = serde_norway::from_str::<serde_norway::Value>(src) else {
        return Ok(()); // load_yaml reports the syntax error with its location
    };
    let mut c = Collector::new(file, index);
    walk_strings(&value, &YamlPath::root(), &mut |path, s| {
        if let Some(var) = placeholder(s) {
            c.error(
                path.clone(),
                format!(
                    "`{var}` is an unexpanded shell variable: expand the variables first, \
                     e.g. `envsubst < {file} > filled.yaml`, then import filled.yaml"
                ),
            );
        }
    });
    c.finish()
}

/// The first `${...}` in `s`.
fn placeholder(s: &str) -> Option<&str> {
    let start = s.find("${")?;
    let end = s[start..].find('}').map(|e| start + e + 1).unwrap_or(s.len());
    Some(&s[start..end])
}

fn walk_strings(v: &serde_norway::Value, path: &YamlPath, f: &mut dyn FnMut(&YamlPath, &str)) {
    use serde_norway::Value as V;
    match v {
        V::String(s) => f(path, s),
        V::Sequence(items) => items.iter().enumerate().for_each(|(i, x)| walk_strings(x, &path.index(i), f)),
        V::Mapping(m) => {
            for (k, x) in m {
                if let Some(k) = k.as_str() {
                    walk_strings(x, &path.key(k), f);
                }
            }
        }
        V::Tagged(t) => walk_strings(&t.value, path, f),
        _ => {}
    }
}

impl RayCluster {
    /// Ray's reading of `head_node`/`worker_nodes`: the format is legacy when either key
    /// is there without `available_node_types`, and an empty section (`head_node: {}`,
    /// as example-full.yaml ends) is falsy, so Ray uses its default node type for it.
    fn legacy_sections(&mut self, src: &str) {
        let value: serde_norway::Value = serde_norway::from_str(src).unwrap_or_default();
        let has = |k: &str| value.get(k).is_some();
        self.legacy = self.available_node_types.is_empty() && (has("head_node") || has("worker_nodes"));
        let empty = |k: &str| value.get(k).is_none_or(|v| v.is_null() || v.as_mapping().is_some_and(|m| m.is_empty()));
        if empty("head_node") {
            self.head_node = None;
        }
        if empty("worker_nodes") {
            self.worker_nodes = None;
        }
        if self.head_node_type.is_none() && self.available_node_types.contains_key(DEFAULT_HEAD_TYPE) {
            self.head_node_type = Some(DEFAULT_HEAD_TYPE.into());
            self.head_defaulted = true;
        }
    }

    /// What the import needs beyond the types: an AWS file, a head type that exists, and
    /// an instance type per node type (or a launch template that may hold it).
    fn check(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        if self.provider.kind != "aws" {
            c.error(
                root.key("provider").key("type"),
                format!("provider type `{}`: fleetform imports AWS clusters only (`type: aws`)", self.provider.kind),
            );
        }
        // Without available_node_types Ray uses its defaults (or the legacy sections), and
        // names the head itself: see `super::sources`.
        if self.available_node_types.is_empty() {
            return;
        }
        match &self.head_node_type {
            None => c.error(
                root.key("head_node_type"),
                format!("missing, and Ray's default (`{DEFAULT_HEAD_TYPE}`) is not one of available_node_types: name the head's node type"),
            ),
            Some(h) if !self.available_node_types.contains_key(h) => {
                c.error(root.key("head_node_type"), format!("`{h}` is not one of available_node_types"))
            }
            Some(_) => {}
        }
        for (name, t) in &self.available_node_types {
            if t.node_config.instance_type.is_none() && t.node_config.launch_template.is_none() {
                c.error(
                    root.key("available_node_types").key(name).key("node_config"),
                    "no `InstanceType`: fleetform needs the instance type of every node type",
                );
            }
        }
    }
}
