//! Crate layers: the workspace's crates depend on each other in one direction only.
//!
//! [`module_cycles`](crate::module_cycles) keeps the modules of one crate in layers; this
//! does the same one level up. The shipped crates form a stack, `fleetform-core` ←
//! `fleetform-runtime` ← `fleetform-agent` ← `fleetform`, and each may depend only on
//! crates below it, so the control plane's library never grows back into the agent and
//! no crate reaches up. Test support crates (`fleetform-testkit`) may depend on shipped
//! ones; a shipped crate's `[dependencies]` must never name them (dev-dependencies may).
//!
//! Std only, like the module check: the manifests are read line by line (`[package]`'s
//! `name`, the keys of `[dependencies]` and of `[dependencies.<name>]` tables), which is
//! all of TOML these manifests use for naming crates.

use std::fs;
use std::io;
use std::path::Path;

/// One normal dependency between two workspace crates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CrateEdge {
    /// The package that depends (`fleetform`).
    pub from: String,
    /// The workspace package it names in `[dependencies]` (`fleetform-runtime`).
    pub to: String,
}

/// Every `[dependencies]` edge between the members of the workspace at `root`, sorted.
pub fn workspace_edges(root: &Path) -> io::Result<Vec<CrateEdge>> {
    let members = members(&fs::read_to_string(root.join("Cargo.toml"))?);
    let mut manifests = Vec::new();
    for dir in &members {
        let text = fs::read_to_string(root.join(dir).join("Cargo.toml"))?;
        let name = package_name(&text)
            .ok_or_else(|| io::Error::other(format!("{dir}/Cargo.toml has no [package] name")))?;
        manifests.push((name, text));
    }
    let names: Vec<&str> = manifests.iter().map(|(n, _)| n.as_str()).collect();
    let mut edges: Vec<CrateEdge> = manifests
        .iter()
        .flat_map(|(from, text)| {
            normal_dependencies(text)
                .into_iter()
                .filter(|d| names.contains(&d.as_str()))
                .map(|to| CrateEdge { from: from.clone(), to })
        })
        .collect();
    edges.sort();
    Ok(edges)
}

/// What breaks the layering: each edge that does not go strictly down `layers` (lowest
/// first), or that goes from a layered crate to a test support crate, or that names a
/// crate in neither list. Empty when the crate graph is the stack it should be.
pub fn layering_violations(edges: &[CrateEdge], layers: &[&str], test_support: &[&str]) -> Vec<String> {
    let layer = |name: &str| layers.iter().position(|l| *l == name);
    let mut out = Vec::new();
    for e in edges {
        let known = |n: &str| layer(n).is_some() || test_support.contains(&n);
        if !known(&e.from) || !known(&e.to) {
            out.push(format!("{} → {}: a crate outside the layers {layers:?} and the test support {test_support:?}", e.from, e.to));
            continue;
        }
        match (layer(&e.from), layer(&e.to)) {
            (Some(from), Some(to)) if to >= from => out.push(format!(
                "{} → {}: an upward or sideways dependency (the layers, lowest first: {})",
                e.from,
                e.to,
                layers.join(" ← ")
            )),
            (Some(_), None) => out.push(format!("{} → {}: a shipped crate depends on test support (make it a dev-dependency)", e.from, e.to)),
            _ => {}
        }
    }
    out
}

/// Panic naming every violation, with the manifest to change.
pub fn assert_crate_layers(root: &Path, layers: &[&str], test_support: &[&str]) {
    let edges = workspace_edges(root).unwrap_or_else(|e| panic!("cannot read the workspace at {}: {e}", root.display()));
    let violations = layering_violations(&edges, layers, test_support);
    assert!(violations.is_empty(), "crate dependencies that break the layering (fix the [dependencies] of the first crate named):\n  {}", violations.join("\n  "));
}

/// The `members = [...]` of a workspace manifest.
fn members(workspace: &str) -> Vec<String> {
    let Some(start) = workspace.find("members") else { return Vec::new() };
    let rest = &workspace[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else { return Vec::new() };
    quoted(&rest[open + 1..close])
}

/// The strings in double quotes of a piece of TOML.
fn quoted(text: &str) -> Vec<String> {
    text.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

/// `name` of the `[package]` table.
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(value) = line.strip_prefix("name").map(str::trim_start).and_then(|l| l.strip_prefix('=')) {
                return quoted(value).into_iter().next();
            }
        }
    }
    None
}

/// The crates a manifest names under `[dependencies]` (`name = ..`, `name.workspace = ..`)
/// or as `[dependencies.name]` tables; not dev-, build- or target-specific dependencies.
fn normal_dependencies(manifest: &str) -> Vec<String> {
    let mut in_dependencies = false;
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_dependencies = table == "dependencies";
            if let Some(name) = table.strip_prefix("dependencies.") {
                out.push(name.trim_matches('"').to_string());
            }
            continue;
        }
        if !in_dependencies || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = line.split(['=', '.']).next().unwrap_or_default().trim().trim_matches('"');
        if !key.is_empty() {
            out.push(key.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYERS: [&str; 3] = ["core", "runtime", "agent"];

    fn edge(from: &str, to: &str) -> CrateEdge {
        CrateEdge { from: from.into(), to: to.into() }
    }

    #[test]
    fn dependencies_are_read_from_the_dependencies_table_only() {
        let manifest = "[package]\nname = \"agent\"\n\n[dependencies]\n# a comment\ncore.workspace = true\n\
                        runtime = { path = \"../runtime\" }\nserde = \"1\"\n\n[dependencies.\"extra\"]\nversion = \"1\"\n\n\
                        [dev-dependencies]\ntestkit.workspace = true\n\n[features]\naws = [\"runtime/aws\"]\n";
        assert_eq!(package_name(manifest).as_deref(), Some("agent"));
        assert_eq!(normal_dependencies(manifest), ["core", "runtime", "serde", "extra"]);
        assert_eq!(members("[workspace]\nmembers = [\"core\", \"node-agent\"]\n"), ["core", "node-agent"]);
    }

    #[test]
    fn only_downward_edges_pass() {
        let down = [edge("agent", "runtime"), edge("agent", "core"), edge("runtime", "core"), edge("testkit", "core")];
        assert!(layering_violations(&down, &LAYERS, &["testkit"]).is_empty());
        let up = layering_violations(&[edge("runtime", "agent")], &LAYERS, &["testkit"]);
        assert_eq!(up.len(), 1);
        assert!(up[0].starts_with("runtime → agent: an upward"), "{up:?}");
        let sideways = layering_violations(&[edge("runtime", "runtime")], &LAYERS, &["testkit"]);
        assert_eq!(sideways.len(), 1, "{sideways:?}");
        let support = layering_violations(&[edge("agent", "testkit")], &LAYERS, &["testkit"]);
        assert!(support[0].contains("depends on test support"), "{support:?}");
        let unknown = layering_violations(&[edge("newcrate", "core")], &LAYERS, &["testkit"]);
        assert!(unknown[0].contains("outside the layers"), "{unknown:?}");
    }
}
