//! The imported spec as YAML text. Written by hand because serde's serialisers drop
//! comments, and the comments (where each value came from) are the point; the result is
//! parsed back with `ClusterSpec::from_yaml` before it is written anywhere. The `network:`
//! block comes from `network`; both write their values with `yaml`.

use std::fmt::Write as _;

use super::model::{Image, Imported, NodeType, Sourced};
use super::network;
use super::yaml::{comment, flow_list, scalar};

/// Numbers as YAML reads them: `8`, `0.5`.
fn number(v: f64) -> String {
    format!("{v}")
}

fn line<T>(out: &mut String, indent: &str, key: &str, value: &str, s: &Sourced<T>) {
    let _ = writeln!(out, "{indent}{key}: {value}{}", comment(&s.from));
}

pub fn render(i: &Imported) -> String {
    let mut out = format!(
        "# Imported from {} by `fleetform import ray`. Each value says where it came from;\n\
         # the keys fleetform does not map were listed on stderr, with what it does instead.\n\
         # Next: `fleetform validate -f <this file>`, then `fleetform plan -f <this file>`.\n",
        i.source
    );
    line(&mut out, "", "cluster_name", &scalar(&i.cluster_name.value), &i.cluster_name);
    out.push_str("\nprovider:\n  type: aws\n");
    if let Some(r) = &i.region {
        line(&mut out, "  ", "region", &scalar(&r.value), r);
    }
    if let Some(z) = &i.zones {
        line(&mut out, "  ", "availability_zones", &flow_list(&z.value), z);
    }
    out.push('\n');
    out.push_str(&network::block(i));
    let _ = writeln!(out, "storage:\n  bucket: {}{}\n", scalar(&i.bucket), comment("change me: S3 bucket names are global"));
    scaling(&mut out, i);
    setup_commands(&mut out, i);
    line(&mut out, "", "head_node_type", &scalar(&i.head_node_type.value), &i.head_node_type);
    out.push_str("available_node_types:\n");
    for t in &i.node_types {
        node_type(&mut out, t);
    }
    out
}

fn scaling(out: &mut String, i: &Imported) {
    line(out, "", "max_workers", &i.max_workers.value.to_string(), &i.max_workers);
    for (key, v) in [
        ("upscaling_speed", &i.upscaling_speed),
        ("target_utilization_fraction", &i.target_utilization_fraction),
        ("idle_timeout_minutes", &i.idle_timeout_minutes),
    ] {
        if let Some(v) = v {
            line(out, "", key, &number(v.value), v);
        }
    }
    out.push('\n');
}

fn setup_commands(out: &mut String, i: &Imported) {
    if i.setup_commands.is_empty() {
        return;
    }
    let _ = writeln!(out, "setup_commands:{}", comment("run once on every AWS node at first boot, as root, before its agent"));
    for c in &i.setup_commands {
        let _ = writeln!(out, "  - {}{}", scalar(&c.value), comment(&c.from));
    }
    out.push('\n');
}

fn node_type(out: &mut String, t: &NodeType) {
    let _ = writeln!(out, "  {}:", scalar(&t.name));
    let res: Vec<String> = t.resources.value.iter().map(|(k, q)| format!("{}: {}", scalar(k), number(*q))).collect();
    line(out, "    ", "resources", &format!("{{{}}}", res.join(", ")), &t.resources);
    if let Some(m) = &t.min_workers {
        line(out, "    ", "min_workers", &m.value.to_string(), m);
    }
    if let Some(m) = &t.max_workers {
        line(out, "    ", "max_workers", &m.value.to_string(), m);
    }
    out.push_str("    node_config:\n");
    let ind = "      ";
    line(out, ind, "instance_types", &flow_list(&t.instance_types.value), &t.instance_types);
    line(out, ind, "market", t.market.value.as_str(), &t.market);
    match &t.image {
        None => {
            let _ = writeln!(out, "{ind}image: al2023{}", comment("fleetform's default: the Ray file has no ImageId"));
        }
        Some(s) => match &s.value {
            Image::Al2023 => line(out, ind, "image", "al2023", s),
            Image::Ami { id, arch } => line(out, ind, "image", &format!("{{ami: {}, architecture: {arch}}}", scalar(id)), s),
        },
    }
    if let Some(rv) = &t.root_volume {
        if rv.size_gb.is_some() || rv.volume_type.is_some() {
            let _ = writeln!(out, "{ind}root_volume:");
            if let Some(s) = &rv.size_gb {
                line(out, "        ", "size_gb", &s.value.to_string(), s);
            }
            if let Some(v) = &rv.volume_type {
                line(out, "        ", "type", &scalar(&v.value), v);
            }
        }
    }
    out.push('\n');
}
