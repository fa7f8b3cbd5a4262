//! Which binary each node type installs and where it comes from (docs/DESIGN.md, decision
//! 9): a path given on the command line, `dist/<arch>/`, a binary already in the store
//! (uploaded by an earlier apply or published by a node), or a build by the first node of
//! the architecture from the source bundle (node-agent/packaging/install-binary.sh).
//! `decide` is pure: the files and the store are read by `agent_upload`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fleetform_core::instance::Arch;
use fleetform_core::{layout, ClusterSpec};

use crate::aws::stages::state::{ArtifactSource, DesiredArtifact, RemovedArtifact};
use crate::aws::names;
use crate::binaries::{AGENT, FLEETFORM};

/// A binary a node type installs: the head's `fleetform`, the workers' agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub node_type: String,
    pub arch: Arch,
    pub binary: &'static str,
    /// Its key in the store, `bin/<uname -m>/<binary>`.
    pub key: String,
}

pub fn wanted(spec: &ClusterSpec) -> Vec<Wanted> {
    spec.available_node_types
        .keys()
        .map(|name| {
            let arch = spec.arch_of(name).unwrap_or(Arch::X86_64);
            let is_head = *name == spec.head_node_type;
            let binary = if is_head { FLEETFORM } else { AGENT };
            let key = if is_head { names::reconciler_binary(arch.uname()) } else { layout::agent_binary(arch.uname()) };
            Wanted { node_type: name.clone(), arch, binary, key }
        })
        .collect()
}

/// A binary on this machine, checked to be an ELF of its architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct Local {
    pub path: PathBuf,
    /// The command-line flag that gave it; None for `dist/`.
    pub flag: Option<&'static str>,
    pub sha256: String,
    pub size: usize,
}

/// What the store holds beside a key: its `.sha256` and the metadata a node writes there
/// when it publishes a binary it built.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stored {
    pub sha256: String,
    /// The instance that built it (absent when apply uploaded it).
    pub built_by: Option<String>,
    /// The hash of the source bundle it was built from (the bundle's `.sha256`).
    pub source_sha256: Option<String>,
}

/// What the plan does about the binaries, and what it tells per node type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decision {
    pub artifacts: Vec<DesiredArtifact>,
    pub removed: Vec<RemovedArtifact>,
    pub notes: Vec<String>,
    /// Node types whose first node builds from the source bundle: apply uploads it.
    pub builders: Vec<String>,
}

/// How long the first node of an architecture takes when it builds (said in the plan).
pub const BUILD_COST: &str = "a release cargo build on the node, roughly 10-30 min; not measured on AWS";

/// Decide per wanted binary. `source_sha256` is the hash of the source tree apply would
/// bundle (None without one): a node-built binary from another source is removed so
/// that the first node builds it again, instead of nodes installing an old version.
pub fn decide(
    wanted: &[Wanted],
    local: &BTreeMap<String, Local>,
    stored: &BTreeMap<String, Stored>,
    source_sha256: Option<&str>,
    dist: &str,
) -> Decision {
    let mut d = Decision::default();
    for w in wanted {
        let who = format!("{} ({})", w.node_type, w.arch.uname());
        if let Some(l) = local.get(&w.key) {
            let from = match l.flag {
                Some(flag) => format!("{} ({flag})", l.path.display()),
                None => l.path.display().to_string(),
            };
            if !d.artifacts.iter().any(|a| a.key == w.key) {
                d.artifacts.push(DesiredArtifact {
                    key: w.key.clone(),
                    sha256: l.sha256.clone(),
                    source: ArtifactSource::File { path: l.path.display().to_string() },
                    description: format!("{from}, {} bytes", l.size),
                });
            }
            d.notes.push(format!("{who}: installs {} (from {from})", w.key));
            continue;
        }
        let flag = if w.binary == AGENT { "--agent-binary" } else { "--fleetform-binary" };
        let build = format!(
            "the first {arch} node builds {} from the source bundle and publishes it ({BUILD_COST}; needs the NAT); \
             the other {arch} nodes wait for it and download it",
            w.binary,
            arch = w.arch.uname()
        );
        match stored.get(&w.key) {
            Some(s) if is_stale(s, source_sha256) => {
                let by = s.built_by.as_deref().unwrap_or("a node");
                if !d.removed.iter().any(|r| r.key == w.key) {
                    d.removed.push(RemovedArtifact {
                        key: w.key.clone(),
                        reason: format!(
                            "delete: built by {by} from an older source bundle; the first {} node builds it again",
                            w.arch.uname()
                        ),
                    });
                }
                d.builders.push(w.node_type.clone());
                d.notes.push(format!("{who}: {build} (the {} in the store, built by {by}, is from an older source)", w.key));
            }
            Some(Stored { built_by: Some(by), .. }) => {
                d.notes.push(format!("{who}: installs {} already in the store (built by {by} from the source bundle)", w.key))
            }
            Some(_) => d.notes.push(format!("{who}: installs {} already in the store (uploaded by an earlier apply)", w.key)),
            None => {
                d.builders.push(w.node_type.clone());
                d.notes.push(format!(
                    "{who}: no {} given ({flag} {}=PATH) or in {dist}/{}/: {build}",
                    w.binary,
                    w.arch.uname(),
                    w.arch.uname()
                ));
            }
        }
    }
    d
}

/// Built by a node from a source bundle other than the one apply would upload now.
fn is_stale(s: &Stored, source_sha256: Option<&str>) -> bool {
    match (&s.built_by, &s.source_sha256, source_sha256) {
        (Some(_), Some(built_from), Some(now)) => built_from != now,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSHOP: &str = include_str!("../../../../cluster.yaml");

    fn on_disk(path: &str, flag: Option<&'static str>) -> Local {
        Local { path: path.into(), flag, sha256: "aa".into(), size: 3 }
    }

    fn node_built(by: &str, source: &str) -> Stored {
        Stored { sha256: "bb".into(), built_by: Some(by.into()), source_sha256: Some(source.into()) }
    }

    #[test]
    fn wanted_per_node_type() {
        let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let w: Vec<(String, &str, String)> = wanted(&spec).into_iter().map(|w| (w.node_type, w.binary, w.key)).collect();
        assert_eq!(
            w,
            [
                ("arm_worker_node".to_string(), AGENT, "bin/aarch64/fleetform-agent".to_string()),
                ("head".to_string(), FLEETFORM, "bin/x86_64/fleetform".to_string()),
                ("x86_worker_node".to_string(), AGENT, "bin/x86_64/fleetform-agent".to_string()),
            ]
        );
    }

    #[test]
    fn each_node_type_takes_one_path() {
        let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let wanted = wanted(&spec);
        let local = BTreeMap::from([
            ("bin/x86_64/fleetform-agent".to_string(), on_disk("dist/x86_64/fleetform-agent", None)),
            ("bin/aarch64/fleetform-agent".to_string(), on_disk("/tmp/arm-agent", Some("--agent-binary"))),
        ]);
        // Given and dist/ binaries upload; the head has none anywhere: its node builds.
        let d = decide(&wanted, &local, &BTreeMap::new(), Some("src1"), "dist");
        let keys: Vec<&str> = d.artifacts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["bin/aarch64/fleetform-agent", "bin/x86_64/fleetform-agent"]);
        assert_eq!(d.artifacts[0].description, "/tmp/arm-agent (--agent-binary), 3 bytes");
        assert_eq!(d.builders, ["head"]);
        assert!(d.removed.is_empty());
        assert_eq!(
            d.notes,
            [
                "arm_worker_node (aarch64): installs bin/aarch64/fleetform-agent (from /tmp/arm-agent (--agent-binary))".to_string(),
                format!(
                    "head (x86_64): no fleetform given (--fleetform-binary x86_64=PATH) or in dist/x86_64/: the first x86_64 node builds \
                     fleetform from the source bundle and publishes it ({BUILD_COST}; needs the NAT); the other x86_64 nodes wait for it \
                     and download it"
                ),
                "x86_worker_node (x86_64): installs bin/x86_64/fleetform-agent (from dist/x86_64/fleetform-agent)".to_string(),
            ]
        );

        // What the store holds counts: a node-built binary of this source, an uploaded one.
        let stored = BTreeMap::from([
            ("bin/x86_64/fleetform".to_string(), node_built("i-0head", "src1")),
            ("bin/aarch64/fleetform-agent".to_string(), Stored { sha256: "cc".into(), ..Default::default() }),
        ]);
        let only_x86 = BTreeMap::from([("bin/x86_64/fleetform-agent".to_string(), on_disk("dist/x86_64/fleetform-agent", None))]);
        let d = decide(&wanted, &only_x86, &stored, Some("src1"), "dist");
        assert!(d.builders.is_empty() && d.removed.is_empty(), "nothing to build, nothing overwritten: {d:?}");
        assert_eq!(d.artifacts.len(), 1);
        assert_eq!(
            d.notes[0],
            "arm_worker_node (aarch64): installs bin/aarch64/fleetform-agent already in the store (uploaded by an earlier apply)"
        );
        assert_eq!(
            d.notes[1],
            "head (x86_64): installs bin/x86_64/fleetform already in the store (built by i-0head from the source bundle)"
        );

        // A new source: the node-built binary goes, the next head builds it again.
        let d = decide(&wanted, &only_x86, &stored, Some("src2"), "dist");
        assert_eq!(d.builders, ["head"]);
        assert_eq!(
            d.removed,
            [RemovedArtifact {
                key: "bin/x86_64/fleetform".into(),
                reason: "delete: built by i-0head from an older source bundle; the first x86_64 node builds it again".into()
            }]
        );
        assert!(
            d.notes[1].ends_with("(the bin/x86_64/fleetform in the store, built by i-0head, is from an older source)"),
            "{}",
            d.notes[1]
        );
        // Without a source tree to compare with, it stays.
        assert!(decide(&wanted, &only_x86, &stored, None, "dist").removed.is_empty());
    }
}
