//! Lines of the user's Ray file for what import says. The spec import writes is checked
//! by `fleetform validate`'s rules, whose messages name paths in that spec; the user never
//! wrote it (it may not even be on disk), so each path is mapped back to the Ray key it
//! came from (node types by their new name, fleetform's keys to Ray's) and located there.

use fleetform_core::diag::{Diagnostic, Diagnostics, Location, LocationIndex, Seg, YamlPath};

use super::model::Imported;

/// The first key of the file: where notes about the file as a whole, or about a key it
/// leaves out, point.
pub fn first_key(src: &str) -> Location {
    src.lines()
        .position(|l| l.starts_with(|c: char| !c.is_whitespace() && c != '#') && l != "---")
        .map(|i| Location { line: i + 1, column: 1 })
        .unwrap_or(Location { line: 1, column: 1 })
}

/// The spec's diagnostics, each at the Ray file's line it came from, the spec's path kept
/// in the message (it is what the message's own words refer to).
pub fn in_ray_file(d: &Diagnostics, imported: &Imported, file: &str, index: &LocationIndex, first: Location) -> Diagnostics {
    let items = d
        .items
        .iter()
        .map(|item| {
            let path = ray_path(&item.path, imported);
            let location = Some(index.locate(&path).unwrap_or(first));
            let message = match item.path.0.is_empty() {
                true => format!("in the imported spec: {}", item.message),
                false => format!("in the imported spec, {}: {}", item.path, item.message),
            };
            Diagnostic { path, location, message }
        })
        .collect();
    Diagnostics { file: file.to_string(), items }
}

/// The Ray file's path for a path of the imported spec.
pub fn ray_path(spec: &YamlPath, imported: &Imported) -> YamlPath {
    let key = |i: usize| match spec.0.get(i) {
        Some(Seg::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    let root = YamlPath::root();
    match key(0) {
        Some("available_node_types") => {
            let Some(t) = key(1).and_then(|n| imported.node_types.iter().find(|t| t.name == n)) else {
                return root.key("available_node_types");
            };
            node_type_path(&t.config_at, key(2), key(3))
        }
        Some("provider") if key(1) == Some("availability_zones") => root.key("provider").key("availability_zone"),
        // The bucket's placeholder is made from the cluster name.
        Some("storage") => root.key("cluster_name"),
        Some(k) => root.key(k),
        None => root,
    }
}

/// A path inside an imported node type → its place in the Ray node type (or legacy
/// section) whose node_config is at `config_at`.
fn node_type_path(config_at: &YamlPath, field: Option<&str>, config_field: Option<&str>) -> YamlPath {
    let type_at = match config_at.0.last() {
        Some(Seg::Key(k)) if k == "node_config" => YamlPath(config_at.0[..config_at.0.len() - 1].to_vec()),
        _ => config_at.clone(),
    };
    match (field, config_field) {
        (Some("node_config"), Some("instance_types")) => config_at.key("InstanceType"),
        (Some("node_config"), Some("market")) => config_at.key("InstanceMarketOptions").key("MarketType"),
        (Some("node_config"), Some("image")) => config_at.key("ImageId"),
        (Some("node_config"), Some("root_volume")) => config_at.key("BlockDeviceMappings"),
        (Some("node_config"), _) => config_at.clone(),
        (Some(k), _) => type_at.key(k),
        (None, _) => type_at,
    }
}
