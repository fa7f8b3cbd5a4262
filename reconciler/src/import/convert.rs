//! Ray's fields → fleetform's, one function per field. Every decision that is not a
//! plain copy (a value dropped, a default filled in, commands merged) leaves a note for
//! stderr pointing at the Ray file.

use fleetform_core::diag::YamlPath;
use fleetform_core::instance::{facts, Arch};
use fleetform_core::resources::CPU;
use fleetform_core::spec::Market;

use super::model::{Image, Imported, NodeType, RootVolume, Sourced};
use super::network;
use super::ray::{RayCluster, RayNodeType};
use super::Note;

/// Ray's defaults where fleetform's differ or where the note should say them.
const RAY_MAX_WORKERS: u32 = 2;
/// The root device names of the AMIs Ray and fleetform use (AL2023, Ubuntu, DLAMI).
const ROOT_DEVICES: &[&str] = &["/dev/xvda", "/dev/sda1"];

fn note(notes: &mut Vec<Note>, path: YamlPath, message: impl Into<String>) {
    notes.push(Note { path, message: message.into() });
}

fn root() -> YamlPath {
    YamlPath::root()
}

pub fn convert(source: &str, ray: &RayCluster, notes: &mut Vec<Note>) -> Imported {
    let cluster_name = cluster_name(ray, notes);
    let bucket = format!("fleetform-{}-data", cluster_name.value);
    note(notes, root(), format!(
        "storage.bucket: Ray has no equivalent and the aws provider needs one: wrote the placeholder `{bucket}`; \
         S3 bucket names are global, so change it to a name you own (fleetform creates it if it does not exist)"
    ));
    let head = ray.head_node_type.clone().unwrap_or_default();
    let mut node_types = vec![node_type(&head, &ray.available_node_types[&head], true, notes)];
    for (name, t) in ray.available_node_types.iter().filter(|(n, _)| **n != head) {
        node_types.push(node_type(name, t, false, notes));
    }
    Imported {
        source: source.to_string(),
        region: ray.provider.region.clone().map(|r| Sourced::new(r, "from provider.region")),
        zones: zones(ray),
        byo_network: network::collect(ray),
        bucket,
        max_workers: max_workers(ray, notes),
        upscaling_speed: ray.upscaling_speed.map(|v| Sourced::new(v, "from upscaling_speed")),
        target_utilization_fraction: ray.target_utilization_fraction.map(|v| Sourced::new(v, "from target_utilization_fraction")),
        idle_timeout_minutes: idle_timeout(ray, notes),
        setup_commands: setup_commands(ray, notes),
        head_node_type: Sourced::new(head, "from head_node_type"),
        node_types,
        cluster_name,
    }
}

fn cluster_name(ray: &RayCluster, notes: &mut Vec<Note>) -> Sourced<String> {
    let name = sanitize_name(&ray.cluster_name);
    if name != ray.cluster_name {
        note(notes, root().key("cluster_name"), format!(
            "`{}` is not a fleetform cluster name (1-32 lowercase letters, digits and '-', starting with a letter): wrote `{name}`",
            ray.cluster_name
        ));
    }
    Sourced::new(name, "from cluster_name")
}

/// The closest valid fleetform name: lowercase, other characters as '-', no repeated or
/// trailing '-', a letter first, at most 32 characters.
pub fn sanitize_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() { c } else { '-' };
        if !(c == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(c);
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "ray-");
    }
    out.truncate(32);
    out.trim_end_matches('-').to_string()
}

fn zones(ray: &RayCluster) -> Option<Sourced<Vec<String>>> {
    let z: Vec<String> = ray.provider.availability_zone.as_deref()?.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    (!z.is_empty()).then(|| Sourced::new(z, "from provider.availability_zone"))
}

fn max_workers(ray: &RayCluster, notes: &mut Vec<Note>) -> Sourced<u32> {
    match ray.max_workers {
        Some(n) => Sourced::new(n, "from max_workers"),
        None => {
            note(notes, root(), format!("max_workers: not set: wrote Ray's default ({RAY_MAX_WORKERS}); fleetform's own default would be 8"));
            Sourced::new(RAY_MAX_WORKERS, "Ray's default (max_workers is not set)")
        }
    }
}

fn idle_timeout(ray: &RayCluster, notes: &mut Vec<Note>) -> Option<Sourced<f64>> {
    if ray.idle_timeout_minutes.is_none() {
        note(notes, root(), "idle_timeout_minutes: not set: Ray's default and fleetform's are both 5 minutes, so it is left out");
    }
    ray.idle_timeout_minutes.map(|v| Sourced::new(v, "from idle_timeout_minutes"))
}

/// `setup_commands`, then head-only and worker-only commands: fleetform has one list for
/// every node, so Ray's per-role lists are appended (and the note says so).
fn setup_commands(ray: &RayCluster, notes: &mut Vec<Note>) -> Vec<Sourced<String>> {
    let mut lists: Vec<(YamlPath, &Vec<String>)> = vec![
        (root().key("setup_commands"), &ray.setup_commands),
        (root().key("head_setup_commands"), &ray.head_setup_commands),
        (root().key("worker_setup_commands"), &ray.worker_setup_commands),
    ];
    for (name, t) in &ray.available_node_types {
        if let Some(list) = &t.worker_setup_commands {
            lists.push((root().key("available_node_types").key(name).key("worker_setup_commands"), list));
        }
    }
    let mut out: Vec<Sourced<String>> = Vec::new();
    for (i, (path, list)) in lists.iter().enumerate() {
        let mut skipped = 0;
        for (j, cmd) in list.iter().enumerate() {
            if i > 0 && out.iter().any(|c| c.value == *cmd) {
                skipped += 1;
                continue;
            }
            let also = if i == 0 { "" } else { " (now on every node)" };
            out.push(Sourced::new(cmd.clone(), format!("from {}{also}", path.index(j))));
        }
        if i > 0 && !list.is_empty() {
            let dup = if skipped > 0 { format!(" ({skipped} already in the list left out)") } else { String::new() };
            note(notes, path.clone(), format!(
                "appended to setup_commands{dup}: fleetform runs one list on every node, the head included, \
                 so check that these commands are harmless where Ray did not run them"
            ));
        }
    }
    if !out.is_empty() {
        note(notes, root().key("setup_commands"), "kept; fleetform runs them as root at first boot (Ray ran them over SSH as auth.ssh_user), so `pip install` installs system-wide");
    }
    out
}

fn node_type(name: &str, t: &RayNodeType, is_head: bool, notes: &mut Vec<Note>) -> NodeType {
    let p = root().key("available_node_types").key(name);
    let instance_type = t.node_config.instance_type.clone().unwrap_or_default();
    let (min_workers, max_workers) = if is_head { head_counts(&p, t, notes) } else { worker_counts(&p, t) };
    NodeType {
        name: name.to_string(),
        resources: resources(&p, t, &instance_type, is_head, notes),
        min_workers,
        max_workers,
        instance_types: Sourced::new(vec![instance_type.clone()], format!("from {}", p.key("node_config").key("InstanceType"))),
        market: market(&p, t, is_head, notes),
        image: image(&p, t, &instance_type, notes),
        root_volume: root_volume(&p, t, notes),
    }
}

fn head_counts(p: &YamlPath, t: &RayNodeType, notes: &mut Vec<Note>) -> (Option<Sourced<u32>>, Option<Sourced<u32>>) {
    for (key, n) in [("min_workers", t.min_workers), ("max_workers", t.max_workers)] {
        if n.unwrap_or(0) > 0 {
            note(notes, p.key(key), "dropped: fleetform launches the head node type exactly once");
        }
    }
    (None, None)
}

fn worker_counts(p: &YamlPath, t: &RayNodeType) -> (Option<Sourced<u32>>, Option<Sourced<u32>>) {
    (
        t.min_workers.map(|n| Sourced::new(n, format!("from {}", p.key("min_workers")))),
        t.max_workers.map(|n| Sourced::new(n, format!("from {}", p.key("max_workers")))),
    )
}

/// CPU first. The head gets `CPU: 0` and nothing else (fleetform's validate rejects a
/// head that could be given work); a worker without CPU gets its instance type's vCPUs,
/// which Ray would have detected at run time.
fn resources(p: &YamlPath, t: &RayNodeType, instance_type: &str, is_head: bool, notes: &mut Vec<Note>) -> Sourced<Vec<(String, f64)>> {
    let rp = p.key("resources");
    let given = t.resources.clone().unwrap_or_default();
    let from = if t.resources.is_some() { format!("from {rp}") } else { format!("{rp} is not set") };
    if is_head {
        let dropped: Vec<String> = given.iter().filter(|(k, q)| *k != CPU && **q > 0.0).map(|(k, q)| format!("{k}: {q}")).collect();
        if !dropped.is_empty() {
            note(notes, rp.clone(), format!(
                "dropped {} from the head: fleetform rejects resources on the head (it could be given work); kept `CPU: 0`",
                dropped.join(", ")
            ));
        }
        if given.get(CPU).copied().unwrap_or(1.0) != 0.0 {
            note(notes, rp.clone(), "the head gets `CPU: 0`: fleetform never runs tasks on the head");
        }
        let why = if dropped.is_empty() { from } else { format!("{from}; {} dropped, see stderr", dropped.join(", ")) };
        return Sourced::new(vec![(CPU.to_string(), 0.0)], why);
    }
    let mut out: Vec<(String, f64)> = Vec::new();
    let mut from = from;
    match (given.get(CPU), facts(instance_type)) {
        (Some(c), _) => out.push((CPU.to_string(), *c)),
        (None, Some(f)) => {
            out.push((CPU.to_string(), f.vcpus as f64));
            note(notes, rp.clone(), format!(
                "no CPU: wrote `CPU: {}`, the vCPUs of {instance_type} (Ray detects it at run time; fleetform needs it in the spec)",
                f.vcpus
            ));
            from = format!("{from}; CPU from the vCPUs of {instance_type}");
        }
        (None, None) => {}
    }
    out.extend(given.into_iter().filter(|(k, _)| k != CPU));
    Sourced::new(out, from)
}

fn market(p: &YamlPath, t: &RayNodeType, is_head: bool, notes: &mut Vec<Note>) -> Sourced<Market> {
    let mp = p.key("node_config").key("InstanceMarketOptions").key("MarketType");
    match t.node_config.market_options.as_ref().and_then(|m| m.market_type.as_deref()) {
        Some("spot") if is_head => {
            note(notes, mp.clone(), "the head must be on-demand in fleetform (a spot interruption would take the control plane with it): wrote `market: on-demand`");
            Sourced::new(Market::OnDemand, format!("{mp} is spot, but the head must be on-demand"))
        }
        Some("spot") => Sourced::new(Market::Spot, format!("from {mp}")),
        Some(other) => {
            note(notes, mp.clone(), format!("market type `{other}` has no fleetform equivalent: wrote `market: on-demand`"));
            Sourced::new(Market::OnDemand, format!("{mp} is {other}"))
        }
        None => Sourced::new(Market::OnDemand, "Ray launches on-demand without InstanceMarketOptions"),
    }
}

fn image(p: &YamlPath, t: &RayNodeType, instance_type: &str, notes: &mut Vec<Note>) -> Option<Sourced<Image>> {
    let ip = p.key("node_config").key("ImageId");
    let Some(ami) = t.node_config.image_id.clone() else {
        note(notes, p.key("node_config"), "no ImageId: fleetform uses `al2023`, the latest Amazon Linux 2023 (Ray would use its Deep Learning AMI)");
        return None;
    };
    // An unknown instance type fails the spec's validation, which names it.
    let arch = facts(instance_type).map(|f| f.arch).unwrap_or(Arch::X86_64);
    Some(Sourced::new(Image::Ami { id: ami, arch }, format!("from {ip}; {arch} like {instance_type}")))
}

fn root_volume(p: &YamlPath, t: &RayNodeType, notes: &mut Vec<Note>) -> Option<RootVolume> {
    let bp = p.key("node_config").key("BlockDeviceMappings");
    let mut found = None;
    for (i, d) in t.node_config.block_devices.iter().enumerate() {
        let name = d.device_name.as_deref().unwrap_or("");
        if found.is_none() && ROOT_DEVICES.contains(&name) {
            found = Some((i, d));
        } else {
            note(notes, bp.index(i), format!(
                "`{name}` is not imported: fleetform manages only the root volume (instance-store NVMe, on `d` types, becomes the spill directory)"
            ));
        }
    }
    let (i, d) = found?;
    let ebs = d.ebs.as_ref()?;
    let ep = bp.index(i).key("Ebs");
    Some(RootVolume {
        size_gb: ebs.volume_size.map(|v| Sourced::new(v, format!("from {}", ep.key("VolumeSize")))),
        volume_type: ebs.volume_type.clone().map(|v| Sourced::new(v, format!("from {}", ep.key("VolumeType")))),
    })
}
