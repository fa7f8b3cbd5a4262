//! Ray's fields → fleetform's, one function per field. Every decision that is not a
//! plain copy (a value dropped, a default filled in, commands merged) leaves a note for
//! stderr pointing at the Ray file.

use fleetform_core::diag::YamlPath;
use fleetform_core::instance::{facts, Arch};
use fleetform_core::resources::CPU;
use fleetform_core::spec::Market;

use super::gpu::{self, GPU};
use super::launch_template::{self, Templates};
use super::model::{Image, Imported, NodeType, RootVolume, Sourced};
use super::network;
use super::ray::{RayCluster, ROOT_DEVICES};
use super::sources::{self, Origin, TypeSource};
use super::Note;

/// Ray's `max_workers` when a file leaves it out (python/ray/autoscaler/aws/defaults.yaml:
/// `max_workers: 2`).
const RAY_MAX_WORKERS: u32 = 2;
/// Ray's `ImageId` keyword for its Deep Learning AMI of the region.
const LATEST_DLAMI: &str = "latest_dlami";
/// Why fleetform does not use Ray's image, said with each ImageId it replaces.
const WHY_AL2023: &str = "Ray's Deep Learning AMI is an Ubuntu image with NVIDIA drivers, CUDA and conda for Ray's Python processes; fleetform's agent is a static binary that runs on Amazon Linux 2023, so it uses `al2023`";

fn note(notes: &mut Vec<Note>, path: YamlPath, message: impl Into<String>) {
    notes.push(Note { path, message: message.into() });
}

fn root() -> YamlPath {
    YamlPath::root()
}

/// Convert; Err holds what makes the file impossible to import (at its place in the file).
pub fn convert(source: &str, ray: &RayCluster, templates: &Templates, notes: &mut Vec<Note>) -> Result<Imported, Vec<Note>> {
    let cluster_name = cluster_name(ray, notes);
    let bucket = format!("fleetform-{}-data", cluster_name.value);
    note(notes, root().key("storage").key("bucket"), format!(
        "Ray has no equivalent and the aws provider needs one: wrote the placeholder `{bucket}`; \
         S3 bucket names are global, so change it to a name you own (fleetform creates it if it does not exist)"
    ));
    let (_, mut types) = sources::node_types(ray, notes);
    let errors: Vec<Note> = types.iter_mut().filter_map(|ts| launch_template::apply(ts, templates, notes).err()).collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    let names = node_type_names(&types, notes);
    let mut node_types: Vec<NodeType> = types.iter().zip(&names).enumerate().map(|(i, (ts, n))| node_type(n, ts, i == 0, notes)).collect();
    if let Some(w) = head_workers(&types[0], &names, notes) {
        node_types.push(w);
    }
    let head = &types[0];
    let head_from = match head.origin {
        Origin::File if names[0] != head.name => format!("from head_node_type (`{}` renamed)", head.name),
        Origin::File => "from head_node_type".to_string(),
        Origin::Legacy => "the legacy head_node section".to_string(),
        Origin::Defaults => "Ray's default head (defaults.yaml)".to_string(),
    };
    Ok(Imported {
        source: source.to_string(),
        region: ray.provider.region.clone().map(|r| Sourced::new(r, "from provider.region")),
        zones: zones(ray),
        byo_network: network::collect(&types),
        bucket,
        max_workers: max_workers(ray, notes),
        upscaling_speed: ray.upscaling_speed.map(|v| Sourced::new(v, "from upscaling_speed")),
        target_utilization_fraction: ray.target_utilization_fraction.map(|v| Sourced::new(v, "from target_utilization_fraction")),
        idle_timeout_minutes: idle_timeout(ray, notes),
        setup_commands: setup_commands(ray, notes),
        head_node_type: Sourced::new(names[0].clone(), head_from),
        node_types,
        cluster_name,
    })
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
        Some(0) => {
            note(notes, root().key("max_workers"), "0: Ray runs the work on the head alone; fleetform never runs tasks on the head, \
                 so wrote `max_workers: 1` (one worker node at a time does the work)");
            Sourced::new(1, "max_workers is 0: the work needs one worker in fleetform")
        }
        Some(n) => Sourced::new(n, "from max_workers"),
        None => {
            note(notes, root().key("max_workers"), format!("not set: wrote Ray's default ({RAY_MAX_WORKERS}); fleetform's own default would be 8"));
            Sourced::new(RAY_MAX_WORKERS, "Ray's default (max_workers is not set)")
        }
    }
}

fn idle_timeout(ray: &RayCluster, notes: &mut Vec<Note>) -> Option<Sourced<f64>> {
    if ray.idle_timeout_minutes.is_none() {
        note(notes, root().key("idle_timeout_minutes"), "not set: Ray's default and fleetform's are both 5 minutes, so it is left out");
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
            if let Some(version) = ray_install(cmd) {
                note(notes, path.index(j), ray_install_message(version.as_deref()));
            }
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

/// Does the command pip-install Ray? `Some(Some(version))` when it pins one
/// (`ray==2.9.0`, `ray[default]==2.9.0`, a wheel URL `.../ray-3.0.0.dev0-cp310-...whl`).
pub(super) fn ray_install(cmd: &str) -> Option<Option<String>> {
    if !(cmd.contains("pip") && cmd.contains("install")) {
        return None;
    }
    let words = cmd.split(|c: char| c.is_whitespace() || "'\"&;|".contains(c));
    let mut found = None;
    for w in words.filter(|w| !w.is_empty()) {
        if let Some(i) = w.rfind("/ray-") {
            let version = w[i + 5..].split("-cp").next().unwrap_or("").to_string();
            return Some((!version.is_empty()).then_some(version));
        }
        let name_end = w.find(['[', '=', '<', '>', '~', '!']).unwrap_or(w.len());
        if &w[..name_end] == "ray" {
            let pinned = w.split_once("==").map(|(_, v)| v.to_string());
            found = Some(pinned.or(found.flatten()));
        }
    }
    found
}

fn ray_install_message(version: Option<&str>) -> String {
    let what = match version {
        Some(v) => format!("pins Ray {v}"),
        None => "installs Ray".to_string(),
    };
    format!(
        "{what}: fleetform's nodes do not run Ray (its agent runs the steps), so this matters only to your own code \
         that imports ray; remove it if none does (it lengthens every node's first boot)"
    )
}

/// A valid fleetform name for every node type (Ray's `ray.head.default` becomes
/// `ray_head_default`), unique, with a note for each one changed. Names Ray made up
/// (defaults, legacy sections) are written without a rename note: their origin's note
/// says where they came from.
fn node_type_names(types: &[TypeSource], notes: &mut Vec<Note>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for ts in types {
        let name = unique(sanitize_type_name(&ts.name), &out);
        if name != ts.name && ts.origin == Origin::File {
            note(notes, ts.at.clone(), format!(
                "`{}` is not a fleetform node type name (lowercase letters, digits and '_', starting with a letter, \
                 at most 32): wrote `{name}`{}",
                ts.name,
                if out.is_empty() { ", and head_node_type with it" } else { "" }
            ));
        }
        out.push(name);
    }
    out
}

/// `name`, or `name_2`, `name_3`... when taken (cut to stay within 32 characters).
fn unique(name: String, taken: &[String]) -> String {
    if !taken.contains(&name) {
        return name;
    }
    (2..)
        .map(|i| {
            let suffix = format!("_{i}");
            format!("{}{suffix}", &name[..name.len().min(32 - suffix.len())])
        })
        .find(|n| !taken.contains(n))
        .unwrap_or(name)
}

/// The closest valid node type name: lowercase, other characters as '_', no repeated or
/// trailing '_', a letter first, at most 32 characters.
pub fn sanitize_type_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '_' };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "ray_");
    }
    out.truncate(32);
    out.trim_end_matches('_').to_string()
}

fn node_type(name: &str, ts: &TypeSource, is_head: bool, notes: &mut Vec<Note>) -> NodeType {
    let t = &ts.t;
    let instance_type = t.node_config.instance_type.clone().unwrap_or_default();
    // The head is launched once; the workers Ray would run of its type are `head_workers`.
    let (min_workers, max_workers) = if is_head { (None, None) } else { worker_counts(ts) };
    let from_type = match ts.origin {
        Origin::Defaults => "Ray's default (defaults.yaml)".to_string(),
        _ => format!("from {}", ts.config_at.key("InstanceType")),
    };
    NodeType {
        name: name.to_string(),
        config_at: ts.config_at.clone(),
        resources: resources(ts, &instance_type, is_head, notes),
        min_workers,
        max_workers,
        instance_types: Sourced::new(vec![instance_type.clone()], from_type),
        market: market(ts, is_head, notes),
        image: image(ts, &instance_type, notes),
        root_volume: root_volume(ts, notes),
    }
}

/// Ray runs `min_workers`..`max_workers` nodes of the head's type beside the head (they
/// run tasks, the head only the control plane). fleetform launches the head type exactly
/// once, so those workers become a node type of their own with the same node_config.
fn head_workers(head: &TypeSource, names: &[String], notes: &mut Vec<Note>) -> Option<NodeType> {
    let (min, max) = (head.t.min_workers.unwrap_or(0), head.t.max_workers);
    // fill_node_type_min_max_workers: the head's max defaults to 0, so min alone launches none.
    let max = max.unwrap_or(0);
    if max == 0 {
        if min > 0 {
            note(notes, head.min_at.clone(), "not imported: Ray gives the head type `max_workers: 0` by default, so it runs no workers of it");
        }
        return None;
    }
    let name = unique(format!("{}_workers", &names[0][..names[0].len().min(24)]), names);
    note(notes, head.max_at.clone(), format!(
        "Ray runs {min} to {max} workers of the head's type beside the head; fleetform launches the head type exactly once, \
         so they are the node type `{name}` (same node_config, min_workers {min}, max_workers {max})"
    ));
    // Its notes (vCPUs, image) would repeat the head's, at the same lines: the note above says it.
    let mut t = node_type(&name, head, false, &mut Vec::new());
    t.min_workers = Some(Sourced::new(min, format!("from {} (workers of the head's type)", head.min_at)));
    t.max_workers = Some(Sourced::new(max, format!("from {} (workers of the head's type)", head.max_at)));
    Some(t)
}

fn worker_counts(ts: &TypeSource) -> (Option<Sourced<u32>>, Option<Sourced<u32>>) {
    (
        ts.t.min_workers.map(|n| Sourced::new(n, format!("from {}", ts.min_at))),
        ts.t.max_workers.map(|n| Sourced::new(n, format!("from {}", ts.max_at))),
    )
}

/// CPU first. The head gets `CPU: 0` and nothing else (fleetform's validate rejects a
/// head that could be given work); a worker without CPU gets its instance type's vCPUs
/// and without GPU its GPUs, which Ray would have detected at launch.
fn resources(ts: &TypeSource, instance_type: &str, is_head: bool, notes: &mut Vec<Note>) -> Sourced<Vec<(String, f64)>> {
    let rp = ts.resources_at.clone();
    let given = ts.t.resources.clone().unwrap_or_default();
    let from = if ts.t.resources.is_some() { format!("from {rp}") } else { format!("{rp} is not set") };
    if is_head {
        return head_resources(&rp, &given, from, instance_type, notes);
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
    if !given.contains_key(GPU) {
        match gpu::gpus(instance_type) {
            Some(0) => {}
            Some(n) => {
                out.push((GPU.to_string(), n as f64));
                note(notes, rp.clone(), format!("no GPU: wrote `GPU: {n}`, the GPUs of {instance_type} (Ray detects them at launch)"));
                from = format!("{from}; GPU from {instance_type}");
            }
            None => note(notes, rp.clone(), format!(
                "{instance_type} has GPUs but import does not know how many: add `GPU: n` to the node type's resources"
            )),
        }
    }
    out.extend(given.into_iter().filter(|(k, _)| k != CPU));
    if out.iter().any(|(k, q)| k == GPU && *q > 0.0) {
        note(notes, rp.clone(), gpu::WHAT_FLEETFORM_DOES);
    }
    Sourced::new(out, from)
}

fn head_resources(rp: &YamlPath, given: &std::collections::BTreeMap<String, f64>, from: String, instance_type: &str, notes: &mut Vec<Note>) -> Sourced<Vec<(String, f64)>> {
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
    if let Some(n) = gpu::gpus(instance_type).filter(|n| *n > 0) {
        note(notes, rp.clone(), format!(
            "the head's {instance_type} has {n} GPU(s) that fleetform never uses (no tasks run on the head): \
             a CPU instance type costs less for the control plane"
        ));
    }
    let why = if dropped.is_empty() { from } else { format!("{from}; {} dropped, see stderr", dropped.join(", ")) };
    Sourced::new(vec![(CPU.to_string(), 0.0)], why)
}

fn market(ts: &TypeSource, is_head: bool, notes: &mut Vec<Note>) -> Sourced<Market> {
    let mp = ts.config_at.key("InstanceMarketOptions").key("MarketType");
    match ts.t.node_config.market_options.as_ref().and_then(|m| m.market_type.as_deref()) {
        Some("spot") if is_head => {
            note(notes, mp.clone(), "the head must be on-demand in fleetform (a spot interruption would take the control plane with it): wrote `market: on-demand`");
            Sourced::new(Market::OnDemand, format!("{mp} is spot, but the head must be on-demand"))
        }
        Some("spot") if ts.origin == Origin::Defaults => Sourced::new(Market::Spot, "Ray's default workers are spot (defaults.yaml)"),
        Some("spot") => Sourced::new(Market::Spot, format!("from {mp}")),
        Some(other) => {
            note(notes, mp.clone(), format!("market type `{other}` has no fleetform equivalent: wrote `market: on-demand`"));
            Sourced::new(Market::OnDemand, format!("{mp} is {other}"))
        }
        None => Sourced::new(Market::OnDemand, "Ray launches on-demand without InstanceMarketOptions"),
    }
}

/// An explicit AMI is kept; Ray's Deep Learning AMI (no ImageId, or `latest_dlami`)
/// becomes `al2023`.
fn image(ts: &TypeSource, instance_type: &str, notes: &mut Vec<Note>) -> Option<Sourced<Image>> {
    let ip = ts.config_at.key("ImageId");
    match ts.t.node_config.image_id.clone() {
        None => {
            note(notes, ts.config_at.clone(), format!("no ImageId: Ray would launch its Deep Learning AMI; wrote `image: al2023`. {WHY_AL2023}"));
            Some(Sourced::new(Image::Al2023, "no ImageId: Ray's Deep Learning AMI, fleetform's al2023"))
        }
        Some(ami) if ami == LATEST_DLAMI => {
            note(notes, ip.clone(), format!("`{LATEST_DLAMI}` (Ray's Deep Learning AMI): wrote `image: al2023`. {WHY_AL2023}"));
            Some(Sourced::new(Image::Al2023, format!("{ip} is {LATEST_DLAMI}: fleetform's al2023")))
        }
        Some(ami) => {
            // An unknown instance type fails the spec's validation, which names it.
            let arch = facts(instance_type).map(|f| f.arch).unwrap_or(Arch::X86_64);
            Some(Sourced::new(Image::Ami { id: ami, arch }, format!("from {ip}; {arch} like {instance_type}")))
        }
    }
}

fn root_volume(ts: &TypeSource, notes: &mut Vec<Note>) -> Option<RootVolume> {
    let bp = ts.config_at.key("BlockDeviceMappings");
    let defaults = ts.origin == Origin::Defaults;
    let mut found = None;
    for (i, d) in ts.t.node_config.block_devices.iter().enumerate() {
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
    let from = |k: &str| if defaults { "Ray's default head root volume (defaults.yaml)".to_string() } else { format!("from {}", ep.key(k)) };
    Some(RootVolume {
        size_gb: ebs.volume_size.map(|v| Sourced::new(v, from("VolumeSize"))),
        volume_type: ebs.volume_type.clone().map(|v| Sourced::new(v, from("VolumeType"))),
    })
}
