//! Keys of a Ray cluster file that fleetform does not map, and what fleetform does
//! instead. Ray's top level and node types are closed (a typo there is an error, as in
//! Ray's own schema); `provider`, `node_config` (EC2 RunInstances parameters) and the
//! parts of it fleetform reads are open: any key there is legitimate, so an unmodelled
//! one is a note, not an error.

use std::collections::BTreeMap;

use fleetform_core::diag::{Seg, YamlPath};

/// Sections (as [`shape`]s) where every key Ray or EC2 accepts may appear.
const OPEN_SECTIONS: &[&str] = &[
    "provider",
    "available_node_types.*.node_config",
    "available_node_types.*.node_config.InstanceMarketOptions",
    "available_node_types.*.node_config.BlockDeviceMappings[]",
    "available_node_types.*.node_config.BlockDeviceMappings[].Ebs",
    "available_node_types.*.node_config.LaunchTemplate",
];

const IAM: &str = "fleetform creates its own scoped instance profiles (fleetform-<cluster>-head may launch and \
terminate only this cluster's nodes; fleetform-<cluster>-worker reaches only the cluster's bucket prefix and queues)";
const FILES: &str = "fleetform copies no files to nodes: put input data in S3 (job specs read `s3://...`), and nodes \
get the fleetform binaries from the cluster store";
const SSH: &str = "fleetform nodes are reached through the EC2 Instance Connect Endpoint with no SSH key: \
`aws ec2-instance-connect ssh --instance-id i-...`";

/// Keys known to be unmapped, by shape, with what fleetform does instead.
const NOTES: &[(&str, &str)] = &[
    ("auth", SSH),
    ("docker", "fleetform runs its agent on the host, not in a container; put what the image installed into setup_commands"),
    ("file_mounts", FILES),
    ("cluster_synced_files", FILES),
    ("file_mounts_sync_continuously", FILES),
    ("rsync_exclude", FILES),
    ("rsync_filter", FILES),
    ("initialization_commands", "Ray runs them before Docker starts; fleetform has no Docker step: move what is still needed into setup_commands"),
    ("head_start_ray_commands", "fleetform starts its own systemd unit on the head (fleetform-reconcile, the autoscaler)"),
    ("worker_start_ray_commands", "fleetform starts its own systemd unit on workers (fleetform-agent)"),
    ("initial_workers", "legacy: `fleetform apply` starts min_workers of each node type"),
    ("autoscaling_mode", "legacy: fleetform's autoscaler has one mode (upscaling_speed sets how fast it grows)"),
    ("no_restart", "set by `ray up --no-restart`: fleetform has no Ray processes to restart"),
    ("metadata", "fleetform does not use it: put labels into the spec's top-level `tags`"),
    ("provider.use_internal_ips", "fleetform nodes only have private IPs (no public IP on any node); the CLI talks to AWS APIs and the cluster store, never to a node's IP"),
    ("provider.use_external_head_ip", "the head has no public IP in fleetform; use the Instance Connect Endpoint"),
    ("provider.cache_stopped_nodes", "fleetform terminates nodes it removes (none are stopped and reused), so `fleetform destroy` leaves nothing"),
    ("provider.security_group", "fleetform creates the security groups (SSH only from the Instance Connect Endpoint)"),
    ("provider.key_pair", SSH),
    ("available_node_types.*.docker", "fleetform runs its agent on the host, not in a container"),
    ("available_node_types.*.labels", "fleetform schedules by resources only: express labels as custom resources"),
    ("available_node_types.*.node_config.IamInstanceProfile", IAM),
    ("available_node_types.*.node_config.KeyName", SSH),
    ("available_node_types.*.node_config.TagSpecifications", "fleetform tags everything with fleetform:cluster and fleetform:node-type; put your own tags in the spec's top-level `tags`"),
    ("available_node_types.*.node_config.UserData", "fleetform writes the user data itself: put commands into setup_commands"),
    ("available_node_types.*.node_config.MetadataOptions", "fleetform requires IMDSv2 with a hop limit of 1"),
    ("available_node_types.*.node_config.NetworkInterfaces", "fleetform builds the network interface (no public IP, its security groups)"),
    ("available_node_types.*.node_config.Placement", "fleetform places nodes across provider.availability_zones itself"),
    ("available_node_types.*.node_config.InstanceMarketOptions.SpotOptions", "fleetform launches spot through CreateFleet with price-capacity-optimized allocation across the node type's instance types and zones (no max price: you pay the spot price, capped at on-demand); interruption behaviour is terminate"),
    ("available_node_types.*.node_config.BlockDeviceMappings[].Ebs.Iops", "root volume IOPS are the volume type's default"),
    ("available_node_types.*.node_config.BlockDeviceMappings[].Ebs.Throughput", "root volume throughput is the volume type's default"),
    ("available_node_types.*.node_config.BlockDeviceMappings[].Ebs.Encrypted", "fleetform always encrypts the root volume"),
    ("available_node_types.*.node_config.BlockDeviceMappings[].Ebs.DeleteOnTermination", "fleetform always deletes the root volume with its node"),
];

/// Where a key of no note lands: said once, generally.
const GENERIC: &str = "fleetform has no equivalent: check that the cluster does not depend on it";

/// The path with node type names as `*` and sequence indices as `[]`; the legacy
/// `head_node`/`worker_nodes` sections are node_configs, so they read as one.
pub fn shape(p: &YamlPath) -> String {
    let mut out = String::new();
    if let [Seg::Key(k), rest @ ..] = &p.0[..] {
        if (k == "head_node" || k == "worker_nodes") && !rest.is_empty() {
            let as_config = YamlPath::root().key("available_node_types").key(k.as_str()).key("node_config");
            return shape(&YamlPath([as_config.0, rest.to_vec()].concat()));
        }
    }
    for (i, seg) in p.0.iter().enumerate() {
        match seg {
            Seg::Index(_) => out.push_str("[]"),
            Seg::Key(_) if i == 1 && matches!(&p.0[0], Seg::Key(k) if k == "available_node_types") => out.push_str(".*"),
            Seg::Key(k) if i == 0 => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
        }
    }
    out
}

/// Is this unknown key one Ray accepts (so: a note, not an error)?
pub fn tolerated(p: &YamlPath) -> bool {
    let s = shape(p);
    let section = s.rsplit_once('.').map(|(sec, _)| sec).unwrap_or("");
    OPEN_SECTIONS.contains(&section) || NOTES.iter().any(|(k, _)| *k == s)
}

/// One note per kind of key (the first occurrence's path, and how many more there are).
pub fn notes(paths: &[YamlPath]) -> Vec<(YamlPath, String)> {
    let mut by_shape: BTreeMap<String, Vec<&YamlPath>> = BTreeMap::new();
    for p in paths {
        by_shape.entry(shape(p)).or_default().push(p);
    }
    let mut out: Vec<(YamlPath, String)> = by_shape
        .into_iter()
        .map(|(s, ps)| {
            let what = NOTES.iter().find(|(k, _)| *k == s).map(|(_, n)| *n).unwrap_or(GENERIC);
            let more = match ps.len() {
                1 => String::new(),
                n => format!(" (and {} more like it)", n - 1),
            };
            (ps[0].clone(), format!("not imported{more}: {what}"))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}
