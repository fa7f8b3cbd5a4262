//! The node types `ray up` launches, read the way Ray reads the file: its own
//! `available_node_types`, else the legacy `head_node`/`worker_nodes` sections, else Ray's
//! defaults. Each comes with the places in the user's file its fields are read from, so
//! every note (and every validation error of the imported spec) points at a line there.
//!
//! Ray's rules, from ray-project/ray:
//! - `fillout_defaults` (python/ray/autoscaler/_private/util.py) starts from
//!   python/ray/autoscaler/aws/defaults.yaml and replaces its *top-level* keys with the
//!   file's (`defaults.update(config)`): a file without `available_node_types` gets the
//!   defaults' two node types whole;
//! - defaults.yaml (read at 00ded8e3): `ray.head.default` is an m5.large with a 256 GB
//!   `/dev/sda1` and `resources: {}`; `ray.worker.default` is an m5.large with
//!   `min_workers: 0` and `InstanceMarketOptions: {MarketType: spot}` ("Run workers on
//!   spot by default"); `head_node_type: ray.head.default`; `max_workers: 2`; no ImageId
//!   (Ray's AWS provider then picks its Deep Learning AMI);
//! - `merge_legacy_yaml_with_defaults` (same file): a non-empty `head_node` becomes the
//!   node_config of `ray-legacy-head-node-type` (min 0, max 0, resources from
//!   `head_node.resources`), a non-empty `worker_nodes` that of
//!   `ray-legacy-worker-node-type` with the top-level `min_workers` and `max_workers`;
//!   an empty or missing section takes the default node type's settings instead;
//! - `fill_node_type_min_max_workers`: a type without `max_workers` gets the cluster's
//!   (the head's gets 0), without `min_workers` gets 0.

use fleetform_core::diag::YamlPath;

use super::ray::{BlockDevice, Ebs, MarketOptions, RayCluster, RayNodeConfig, RayNodeType};
use super::Note;

/// defaults.yaml's instance type for both default node types.
pub const DEFAULT_INSTANCE_TYPE: &str = "m5.large";
/// defaults.yaml's head root volume (`/dev/sda1`, `VolumeSize: 256`).
const DEFAULT_HEAD_ROOT_GB: u32 = 256;
/// Ray's names for the node types of a legacy file (ray/autoscaler/tags.py).
const LEGACY_HEAD: &str = "ray-legacy-head-node-type";
const LEGACY_WORKER: &str = "ray-legacy-worker-node-type";
const DEFAULT_HEAD: &str = super::ray::DEFAULT_HEAD_TYPE;
const DEFAULT_WORKER: &str = "ray.worker.default";

/// Where a node type came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Origin {
    /// The file's `available_node_types`.
    File,
    /// A legacy `head_node`/`worker_nodes` section.
    Legacy,
    /// Ray's defaults.yaml (nothing in the file).
    Defaults,
}

/// One node type as Ray launches it, with the paths in the user's file its fields come
/// from (a missing key's path still locates to its nearest parent that is there).
#[derive(Debug, Clone)]
pub struct TypeSource {
    /// Ray's name for it.
    pub name: String,
    pub t: RayNodeType,
    pub origin: Origin,
    /// The node type itself (what a rename note points at).
    pub at: YamlPath,
    pub resources_at: YamlPath,
    pub min_at: YamlPath,
    pub max_at: YamlPath,
    /// Its node_config: `available_node_types.X.node_config`, or `head_node`.
    pub config_at: YamlPath,
}

fn root() -> YamlPath {
    YamlPath::root()
}

/// The head's Ray name and every node type, the head first.
pub fn node_types(ray: &RayCluster, notes: &mut Vec<Note>) -> (String, Vec<TypeSource>) {
    if !ray.available_node_types.is_empty() {
        for key in ["head_node", "worker_nodes"] {
            let given = if key == "head_node" { &ray.head_node } else { &ray.worker_nodes };
            if given.is_some() {
                note(notes, root().key(key), "not imported: Ray ignores the legacy section too when `available_node_types` is set");
            }
        }
        if ray.head_defaulted {
            note(notes, root().key("head_node_type"), "not set: Ray's default `ray.head.default` (defaults.yaml) is the head");
        }
        if ray.min_workers.is_some() {
            note(notes, root().key("min_workers"), "not imported: Ray ignores the top-level min_workers when `available_node_types` is set (min_workers is per node type)");
        }
        for (name, t) in &ray.available_node_types {
            if t.node_config.resources.is_some() {
                let at = root().key("available_node_types").key(name.as_str()).key("node_config").key("resources");
                note(notes, at, "not imported: resources belong to the node type, not its node_config (EC2 would refuse the key)");
            }
        }
        let head = ray.head_node_type.clone().unwrap_or_default();
        let mut out = vec![from_file(&head, &ray.available_node_types[&head])];
        out.extend(ray.available_node_types.iter().filter(|(n, _)| **n != head).map(|(n, t)| from_file(n, t)));
        return (head, out);
    }
    if ray.legacy {
        note(notes, root(), "legacy format (`head_node`/`worker_nodes`, no `available_node_types`): imported as Ray reads it, one head and one worker node type");
        let head = match &ray.head_node {
            Some(cfg) => legacy(LEGACY_HEAD, "head_node", cfg, true, ray, notes),
            None => defaults_head(LEGACY_HEAD, "head_node", notes),
        };
        let worker = match &ray.worker_nodes {
            Some(cfg) => legacy(LEGACY_WORKER, "worker_nodes", cfg, false, ray, notes),
            None => defaults_worker(LEGACY_WORKER, "worker_nodes", notes),
        };
        return (LEGACY_HEAD.into(), vec![head, worker]);
    }
    note(notes, root().key("available_node_types"), format!(
        "not set: Ray uses the node types of its defaults.yaml, so they are written here: `{DEFAULT_HEAD}` \
         ({DEFAULT_INSTANCE_TYPE}, the head) and `{DEFAULT_WORKER}` ({DEFAULT_INSTANCE_TYPE}, spot, min_workers 0)"
    ));
    (DEFAULT_HEAD.into(), vec![defaults_head(DEFAULT_HEAD, "available_node_types", notes), defaults_worker(DEFAULT_WORKER, "available_node_types", notes)])
}

fn note(notes: &mut Vec<Note>, path: YamlPath, message: impl Into<String>) {
    notes.push(Note { path, message: message.into() });
}

fn from_file(name: &str, t: &RayNodeType) -> TypeSource {
    let at = root().key("available_node_types").key(name);
    TypeSource {
        name: name.to_string(),
        t: t.clone(),
        origin: Origin::File,
        resources_at: at.key("resources"),
        min_at: at.key("min_workers"),
        max_at: at.key("max_workers"),
        config_at: at.key("node_config"),
        at,
    }
}

/// A legacy section as `merge_legacy_yaml_with_defaults` turns it into a node type. An
/// instance type left out (example-subnets.yaml names only subnets) is taken from the
/// default node types, which is what the section replaced.
fn legacy(name: &str, key: &str, cfg: &RayNodeConfig, is_head: bool, ray: &RayCluster, notes: &mut Vec<Note>) -> TypeSource {
    let at = root().key(key);
    let mut node_config = cfg.clone();
    if node_config.instance_type.is_none() && node_config.launch_template.is_none() {
        note(notes, at.clone(), format!(
            "no InstanceType: wrote {DEFAULT_INSTANCE_TYPE}, the instance type of Ray's default node types (its defaults.yaml)"
        ));
        node_config.instance_type = Some(DEFAULT_INSTANCE_TYPE.into());
    }
    let resources = node_config.resources.take();
    let (min_workers, max_workers) = if is_head { (None, None) } else { (ray.min_workers, None) };
    TypeSource {
        name: name.to_string(),
        t: RayNodeType { resources, min_workers, max_workers, node_config, worker_setup_commands: None },
        origin: Origin::Legacy,
        resources_at: at.key("resources"),
        min_at: if is_head { at.clone() } else { root().key("min_workers") },
        max_at: if is_head { at.clone() } else { root().key("max_workers") },
        config_at: at.clone(),
        at,
    }
}

/// defaults.yaml's `ray.head.default`, under `name`; `at` is where the file would have
/// said otherwise.
fn defaults_head(name: &str, at: &str, notes: &mut Vec<Note>) -> TypeSource {
    let at = root().key(at);
    if at.to_string() == "head_node" {
        note(notes, at.clone(), format!("empty or missing: Ray uses its default head ({DEFAULT_INSTANCE_TYPE}, 256 GB root volume)"));
    }
    let node_config = RayNodeConfig {
        instance_type: Some(DEFAULT_INSTANCE_TYPE.into()),
        block_devices: vec![BlockDevice {
            device_name: Some("/dev/sda1".into()),
            ebs: Some(Ebs { volume_size: Some(DEFAULT_HEAD_ROOT_GB), volume_type: None }),
        }],
        ..Default::default()
    };
    defaults_type(name, at, RayNodeType { resources: Some(Default::default()), node_config, ..Default::default() })
}

/// defaults.yaml's `ray.worker.default`: m5.large on spot, min_workers 0.
fn defaults_worker(name: &str, at: &str, notes: &mut Vec<Note>) -> TypeSource {
    let at = root().key(at);
    if at.to_string() == "worker_nodes" {
        note(notes, at.clone(), format!("empty or missing: Ray uses its default workers ({DEFAULT_INSTANCE_TYPE}, spot)"));
    }
    let node_config = RayNodeConfig {
        instance_type: Some(DEFAULT_INSTANCE_TYPE.into()),
        market_options: Some(MarketOptions { market_type: Some("spot".into()) }),
        ..Default::default()
    };
    defaults_type(name, at, RayNodeType { resources: Some(Default::default()), min_workers: Some(0), node_config, ..Default::default() })
}

fn defaults_type(name: &str, at: YamlPath, t: RayNodeType) -> TypeSource {
    TypeSource {
        name: name.to_string(),
        t,
        origin: Origin::Defaults,
        resources_at: at.clone(),
        min_at: at.clone(),
        max_at: at.clone(),
        config_at: at.clone(),
        at,
    }
}
