//! Ray's own cluster files (tests/e2e/ray-corpus/, byte-identical to ray-project/ray's)
//! and the seed's: each imports into a spec that validates and keeps what Ray would run.
//! What Ray would run is worked out here from the Ray file itself, by Ray's rules
//! (defaults.yaml, the legacy sections, `fill_node_type_min_max_workers`), not taken from
//! the importer's output.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fleetform_core::spec::{ImageSpec, Market};
use fleetform_core::ClusterSpec;
use serde_norway::Value;

use super::launch_template::{TemplateData, Templates};
use super::*;

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/ray-corpus");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    assert!(files.len() >= 9, "the corpus: {:?}", files.iter().map(|f| &f.0).collect::<Vec<_>>());
    files.push(("cluster-spot.yaml".into(), include_str!("../../../examples/ray/cluster-spot.yaml").into()));
    files
}

fn import(name: &str, src: &str) -> (ClusterSpec, String, Vec<String>) {
    let c = convert_file(name, src).unwrap_or_else(|d| panic!("{name}: {d}"));
    let text = c.spec_text().unwrap_or_else(|(t, d)| panic!("{name}: {d}\n{t}"));
    let spec = ClusterSpec::from_yaml(name, &text).unwrap_or_else(|d| panic!("{name}: {d}"));
    (spec, text, c.note_lines(name))
}

/// A node type as `ray up` launches it.
#[derive(Debug)]
struct RayType {
    name: String,
    instance_type: String,
    min: u32,
    /// Effective: the type's max_workers, at most the cluster's.
    max: u32,
    spot: bool,
    resources: BTreeMap<String, f64>,
}

fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.get(k).filter(|x| !x.is_null())
}

fn u(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64).map(|n| n as u32)
}

/// Ray's reading of the file: its node types (head first) and the cluster's max_workers.
fn ray_reading(src: &str) -> (Vec<RayType>, u32) {
    let doc: Value = serde_norway::from_str(src).unwrap();
    // defaults.yaml: max_workers 2; head_node_type ray.head.default; both default types m5.large,
    // the worker spot with min_workers 0; the head 0..0.
    let global = u(get(&doc, "max_workers")).unwrap_or(2);
    let ty = |name: &str, cfg: Option<&Value>, res: Option<&Value>, min: Option<u32>, max: Option<u32>, head: bool| {
        let it = cfg.and_then(|c| get(c, "InstanceType")).and_then(Value::as_str).unwrap_or("m5.large");
        let spot = cfg
            .and_then(|c| get(c, "InstanceMarketOptions"))
            .and_then(|m| get(m, "MarketType"))
            .and_then(Value::as_str)
            == Some("spot");
        let resources = res
            .and_then(Value::as_mapping)
            .map(|m| m.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_f64().unwrap())).collect())
            .unwrap_or_default();
        let max = max.unwrap_or(if head { 0 } else { global }).min(global);
        RayType { name: name.into(), instance_type: it.into(), min: min.unwrap_or(0), max, spot, resources }
    };
    let default_worker: Value = serde_norway::from_str("{InstanceType: m5.large, InstanceMarketOptions: {MarketType: spot}}").unwrap();
    if let Some(types) = get(&doc, "available_node_types").and_then(Value::as_mapping) {
        let head = get(&doc, "head_node_type").and_then(Value::as_str).unwrap_or("ray.head.default");
        let mut out: Vec<RayType> = Vec::new();
        for (k, t) in types {
            let n = k.as_str().unwrap();
            let r = ty(n, get(t, "node_config"), get(t, "resources"), u(get(t, "min_workers")), u(get(t, "max_workers")), n == head);
            if n == head { out.insert(0, r) } else { out.push(r) }
        }
        return (out, global);
    }
    let section = |k: &str| get(&doc, k).filter(|v| v.as_mapping().is_some_and(|m| !m.is_empty()));
    let legacy = doc.get("head_node").is_some() || doc.get("worker_nodes").is_some();
    let (h, w) = if legacy { ("ray-legacy-head-node-type", "ray-legacy-worker-node-type") } else { ("ray.head.default", "ray.worker.default") };
    let head = ty(h, section("head_node"), section("head_node").and_then(|s| get(s, "resources")), None, None, true);
    let worker = match section("worker_nodes") {
        Some(cfg) => ty(w, Some(cfg), get(cfg, "resources"), u(get(&doc, "min_workers")), None, false),
        None => ty(w, Some(&default_worker), None, Some(0), None, false),
    };
    (vec![head, worker], global)
}

/// The spec's name for a Ray node type: fleetform names are lowercase with '_'.
fn spec_name(ray: &str) -> String {
    ray.to_lowercase().replace('.', "_")
}

#[test]
fn every_corpus_file_imports_into_a_spec_that_validates_and_keeps_its_meaning() {
    for (file, src) in corpus() {
        let (spec, text, notes) = import(&file, &src);
        let (types, global) = ray_reading(&src);
        // Ray's max_workers 0 runs the work on the head; fleetform's head runs none.
        assert_eq!(spec.max_workers, global.max(1), "{file}");
        let head = &types[0];
        assert_eq!(spec.head_node_type, spec_name(&head.name), "{file}");
        let h = &spec.available_node_types[&spec.head_node_type];
        assert_eq!((h.node_config.instance_types.as_slice(), h.node_config.market), (&[head.instance_type.clone()][..], Market::OnDemand), "{file}");
        let mut expected_workers: Vec<(String, &RayType)> = types[1..].iter().map(|t| (spec_name(&t.name), t)).collect();
        if head.max > 0 {
            expected_workers.push((format!("{}_workers", spec_name(&head.name)), head));
        }
        assert_eq!(spec.worker_types().count(), expected_workers.len(), "{file}:\n{text}");
        for (name, t) in expected_workers {
            let s = spec.available_node_types.get(&name).unwrap_or_else(|| panic!("{file}: no node type {name}:\n{text}"));
            let why = format!("{file}: {name}");
            assert_eq!(s.node_config.instance_types, std::slice::from_ref(&t.instance_type), "{why}");
            assert_eq!(s.node_config.market, if t.spot { Market::Spot } else { Market::OnDemand }, "{why}");
            assert_eq!(s.min_workers, t.min, "{why}");
            let ray_max = if global == 0 { 1 } else { t.max };
            assert_eq!(spec.type_max_workers(&name), ray_max, "{why}");
            for (r, q) in &t.resources {
                assert_eq!(s.resources.get(r), Some(*q), "{why}: {r} kept");
            }
            assert!(s.resources.cpu() > 0.0, "{why}: CPU");
        }
        assert!(notes.iter().all(|n| n.starts_with(&format!("{file}:")) && n[file.len() + 1..].starts_with(|c: char| c.is_ascii_digit())), "{file}: every note at a line:\n{}", notes.join("\n"));
    }
}

fn note_of<'a>(notes: &'a [String], needle: &str) -> &'a str {
    notes.iter().find(|n| n.contains(needle)).unwrap_or_else(|| panic!("no note with {needle:?} in:\n{}", notes.join("\n")))
}

fn corpus_file(name: &str) -> String {
    corpus().into_iter().find(|(f, _)| f == name).unwrap().1
}

#[test]
fn ray_default_names_are_renamed_with_their_references() {
    let (spec, text, notes) = import("example-full.yaml", &corpus_file("example-full.yaml"));
    assert_eq!(spec.head_node_type, "ray_head_default");
    assert!(text.contains("head_node_type: ray_head_default   # from head_node_type (`ray.head.default` renamed)"), "{text}");
    assert!(note_of(&notes, "`ray.head.default` is not a fleetform node type name").starts_with("example-full.yaml:61:5: note: available_node_types.ray.head.default: "));
    assert!(note_of(&notes, "`ray.worker.default` is not").contains("wrote `ray_worker_default`"));
    // Two names that clean to the same one stay apart.
    let src = "cluster_name: c\nprovider: {type: aws, region: us-east-1}\nhead_node_type: A.b\navailable_node_types:\n  \
               A.b: {node_config: {InstanceType: m5.large}}\n  a_b: {node_config: {InstanceType: m5.large}}\n  a.b: {node_config: {InstanceType: m5.large}}\n";
    let (spec, _, _) = import("r.yaml", src);
    let names: Vec<&String> = spec.available_node_types.keys().collect();
    assert_eq!(names, ["a_b", "a_b_2", "a_b_3"]);
}

#[test]
fn latest_dlami_and_a_missing_image_id_become_al2023_with_the_reason() {
    let (spec, _, notes) = import("example-launch-templates.yaml", &corpus_file("example-launch-templates.yaml"));
    assert!(spec.available_node_types.values().all(|t| t.node_config.image == ImageSpec::default()));
    let n = note_of(&notes, "`latest_dlami` (Ray's Deep Learning AMI): wrote `image: al2023`");
    assert!(n.starts_with("example-launch-templates.yaml:45:7: ") && n.contains("static binary that runs on Amazon Linux 2023"), "{n}");
    let (spec, _, notes) = import("example-minimal.yaml", &corpus_file("example-minimal.yaml"));
    assert_eq!(spec.available_node_types["ray_worker_default"].node_config.image, ImageSpec::default());
    assert!(note_of(&notes, "no ImageId: Ray would launch its Deep Learning AMI").starts_with("example-minimal.yaml:24:9: "));
    assert!(note_of(&notes, "head_node_type: not set: Ray's default `ray.head.default`").starts_with("example-minimal.yaml:2:1: "));
}

#[test]
fn no_node_types_at_all_are_ray_defaults() {
    let (spec, text, notes) = import("m.yaml", &corpus_file("example-minimal@72382412.yaml"));
    let head = &spec.available_node_types["ray_head_default"];
    assert_eq!((head.node_config.instance_types[0].as_str(), head.node_config.root_volume.size_gb), ("m5.large", 256));
    let w = &spec.available_node_types["ray_worker_default"];
    assert_eq!((w.node_config.instance_types[0].as_str(), w.node_config.market, w.min_workers), ("m5.large", Market::Spot, 0));
    assert!(text.contains("market: spot   # Ray's default workers are spot (defaults.yaml)"), "{text}");
    assert!(note_of(&notes, "available_node_types: not set: Ray uses the node types of its defaults.yaml").starts_with("m.yaml:2:1: "));
}

#[test]
fn legacy_head_node_and_worker_nodes_sections_are_node_types() {
    let (spec, _, notes) = import("l.yaml", &corpus_file("example-full-legacy.yaml"));
    assert_eq!(spec.head_node_type, "ray-legacy-head-node-type");
    let w = &spec.available_node_types["ray-legacy-worker-node-type"];
    assert_eq!((w.node_config.market, w.min_workers, spec.type_max_workers("ray-legacy-worker-node-type")), (Market::Spot, 0, 2));
    assert!(matches!(&w.node_config.image, ImageSpec::Explicit { ami, .. } if ami == "ami-0a2363a9cff180a64"));
    assert_eq!(spec.available_node_types["ray-legacy-head-node-type"].node_config.root_volume.size_gb, 100);
    assert!(note_of(&notes, "legacy format").starts_with("l.yaml:2:1: "));
    // example-subnets.yaml names only subnets: the instance type is the defaults' one.
    let (spec, _, notes) = import("s.yaml", &corpus_file("example-subnets.yaml"));
    assert_eq!(spec.available_node_types["ray-legacy-worker-node-type"].node_config.instance_types, ["m5.large"]);
    assert!(note_of(&notes, "worker_nodes: no InstanceType: wrote m5.large").starts_with("s.yaml:27:1: "));
    // An empty section next to available_node_types (example-full.yaml ends so) is ignored, as Ray does.
    let (_, _, notes) = import("example-full.yaml", &corpus_file("example-full.yaml"));
    assert!(!notes.iter().any(|n| n.contains("head_node:")), "{notes:?}");
}

#[test]
fn a_head_type_with_workers_becomes_a_second_node_type() {
    let (spec, text, notes) = import("example-multi-node-type.yaml", &corpus_file("example-multi-node-type.yaml"));
    let head = &spec.available_node_types["cpu_4_ondemand"];
    assert_eq!((head.min_workers, head.max_workers), (0, None));
    let w = &spec.available_node_types["cpu_4_ondemand_workers"];
    assert_eq!((w.min_workers, w.max_workers, w.node_config.instance_types[0].as_str()), (1, Some(5), "m4.xlarge"));
    assert_eq!(w.resources.cpu(), 4.0, "m4.xlarge's vCPUs");
    assert!(text.contains("min_workers: 1   # from available_node_types.cpu_4_ondemand.min_workers (workers of the head's type)"), "{text}");
    assert!(note_of(&notes, "Ray runs 1 to 5 workers of the head's type").starts_with("example-multi-node-type.yaml:29:9: "));
}

#[test]
fn gpu_types_get_a_gpu_resource_and_the_truth_about_it() {
    let (spec, _, notes) = import("example-multi-node-type.yaml", &corpus_file("example-multi-node-type.yaml"));
    assert_eq!(spec.available_node_types["gpu_8_ondemand"].resources.to_string(), "{CPU: 32, GPU: 4}");
    assert_eq!(spec.available_node_types["gpu_1_ondemand"].resources.to_string(), "{CPU: 4, Custom2: 2, GPU: 1}");
    assert_eq!(spec.available_node_types["cpu_16_spot"].resources.get("GPU"), None);
    assert!(note_of(&notes, "no GPU: wrote `GPU: 4`, the GPUs of p3.8xlarge").starts_with("example-multi-node-type.yaml:48:5: "));
    let what = note_of(&notes, "fleetform treats `GPU` like any custom resource");
    assert!(what.contains("does not count GPUs per task") && what.contains("no NVIDIA driver"), "{what}");
    // A GPU head: its GPUs are unused, and said so.
    let (_, _, notes) = import("example-gpu-docker.yaml", &corpus_file("example-gpu-docker.yaml"));
    assert!(note_of(&notes, "the head's p2.xlarge has 1 GPU(s) that fleetform never uses").starts_with("example-gpu-docker.yaml:55:9: "));
}

#[test]
fn launch_templates_are_said_offline_and_filled_in_when_resolved() {
    let (_, _, notes) = import("lt.yaml", &corpus_file("example-launch-templates.yaml"));
    let n = note_of(&notes, "launch template ExampleLaunchTemplate (version 2) not read");
    assert!(n.starts_with("lt.yaml:53:7: ") && n.contains("--resolve-launch-templates"), "{n}");
    // No InstanceType but in the template: refused offline (at the template's line), filled when resolved.
    let src = "cluster_name: c\nprovider: {type: aws, region: us-east-1}\nhead_node_type: h\navailable_node_types:\n  \
               h: {node_config: {InstanceType: m5.large}}\n  w:\n    node_config:\n      LaunchTemplate: {LaunchTemplateName: tpl}\n";
    let e = convert_file("r.yaml", src).err().expect("no instance type").to_string();
    assert!(e.contains("r.yaml:8:7: available_node_types.w.node_config.LaunchTemplate: no InstanceType in node_config, and launch template tpl (version $Default) was not read"), "{e}");
    let data = TemplateData {
        instance_type: Some("c7g.xlarge".into()),
        image_id: Some("ami-0123456789abcdef0".into()),
        market_type: Some("spot".into()),
        root: Some(("/dev/xvda".into(), Some(200), Some("gp3".into()))),
        unmapped: vec!["UserData".into()],
    };
    let templates: Templates = [("tpl (version $Default)".to_string(), data)].into();
    let c = convert_with("r.yaml", src, None, &templates).unwrap_or_else(|e| panic!("{e:?}"));
    let spec = ClusterSpec::from_yaml("c.yaml", &c.spec_text().unwrap()).unwrap();
    let w = &spec.available_node_types["w"].node_config;
    assert_eq!((w.instance_types[0].as_str(), w.market, w.root_volume.size_gb), ("c7g.xlarge", Market::Spot, 200));
    assert!(matches!(&w.image, ImageSpec::Explicit { ami, architecture } if ami == "ami-0123456789abcdef0" && architecture.to_string() == "arm64"));
    let notes = c.note_lines("r.yaml");
    let n = note_of(&notes, "read tpl (version $Default)");
    assert!(n.contains("took InstanceType, ImageId, InstanceMarketOptions.MarketType, BlockDeviceMappings from it") && n.contains("not imported from it: UserData"), "{n}");
}

#[test]
fn a_pinned_ray_is_said() {
    let src = "cluster_name: c\nprovider: {type: aws, region: us-east-1}\nsetup_commands:\n  - pip install -U \"ray[default,data]==2.9.3\" pandas\n  - echo ok\n";
    let (_, _, notes) = import("r.yaml", src);
    assert!(note_of(&notes, "pins Ray 2.9.3").starts_with("r.yaml:4:5: note: setup_commands[0]: pins Ray 2.9.3: fleetform's nodes do not run Ray"));
    assert_eq!(notes.iter().filter(|n| n.contains("Ray 2") || n.contains("installs Ray")).count(), 1, "{notes:?}");
    // defaults.yaml's own command: the version is in the wheel's name, not in the bucket's path.
    let wheel = "which ray || pip install -U \"ray[default] @ https://s3-us-west-2.amazonaws.com/ray-wheels/latest/ray-3.0.0.dev0-cp310-cp310-manylinux2014_x86_64.whl\"";
    assert_eq!(super::convert::ray_install(wheel), Some(Some("3.0.0.dev0".to_string())));
    assert_eq!(super::convert::ray_install("pip install rayon-tools raylib"), None);
    let (_, _, notes) = import("example-ml.yaml", &corpus_file("example-ml.yaml"));
    assert!(note_of(&notes, "installs Ray:").starts_with("example-ml.yaml:118:7: "));
}

#[test]
fn spec_errors_and_notes_name_lines_of_the_ray_file() {
    // The spec's validation fails (min_workers above the cluster's max): the error is at the
    // Ray file's min_workers of the renamed type, not in a document the user never wrote.
    let src = "cluster_name: c\nmax_workers: 1\nprovider: {type: aws, region: us-east-1}\navailable_node_types:\n  \
               ray.head.default: {node_config: {InstanceType: m5.large}}\n  ray.worker.default:\n    min_workers: 3\n    node_config: {InstanceType: m5.large}\n";
    let c = convert_file("r.yaml", src).unwrap();
    let (_, d) = c.spec_text().unwrap_err();
    let e = d.to_string();
    assert!(e.starts_with("r.yaml:2:1: max_workers: in the imported spec, max_workers: the node types' min_workers add up to 3"), "{e}");
    assert!(
        e.contains("\nr.yaml:7:5: available_node_types.ray.worker.default.min_workers: in the imported spec, available_node_types.ray_worker_default.min_workers: min_workers (3) is greater than the cluster's max_workers (1)"),
        "{e}"
    );
    assert!(!e.contains("<stdout>") && !e.contains("imported.yaml"), "{e}");
    // Ray's own `file_mounts: {` ... `}` (closing brace at column 0) does not cost the keys after it their lines.
    let (_, _, notes) = import("example-gpu-docker.yaml", &corpus_file("example-gpu-docker.yaml"));
    assert!(note_of(&notes, "head_setup_commands: appended").starts_with("example-gpu-docker.yaml:120:1: "));
}
