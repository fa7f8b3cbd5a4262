//! What nodes install from the cluster store (docs/DESIGN.md, decision 9): binaries given
//! with `--agent-binary`/`--fleetform-binary` or found in `dist/<uname -m>/`, else — when
//! neither this machine nor the store has one for an architecture (this machine cannot
//! cross-compile to aarch64) — a source bundle that the first node of the architecture
//! builds and publishes (`node_binaries` decides). Also the cluster spec the head's
//! reconciler reads, and the S3 client, built from the same `SdkConfig` as every AWS
//! client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use fleetform_core::{layout, ClusterSpec};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::aws::context::AwsContext;
use crate::aws::resources::launch_templates::sha256_hex;
use crate::aws::stages::state::{ArtifactSource, DesiredArtifact};
use crate::aws::names;
use crate::aws::resources::node_binaries::{self, Decision, Local, Stored};
use crate::binaries::{check_binary, BinaryArgs, AGENT};

/// Metadata a node writes on the `.sha256` of a binary it built and published
/// (node-agent/packaging/install-binary.sh): its instance id, and the source bundle's hash.
const BUILT_BY: &str = "fleetform-built-by";
const SOURCE_SHA256: &str = "fleetform-source-sha256";

/// object_store's credential hook over the SDK's provider chain: the same identity as
/// every SDK client, refreshed when it expires.
/// The cluster store bucket (whole bucket; keys are prefixed by the caller), configured
/// from the same SDK configuration as every other client.
pub fn bucket_store(ctx: &AwsContext) -> Result<Arc<dyn ObjectStore>> {
    let bucket = ctx.spec.storage.bucket.clone().context("the aws provider needs `storage.bucket`")?;
    fleetform_runtime::location::s3_store(&ctx.sdk, &bucket).context("configuring the S3 client for the cluster store")
}

fn key(prefix: &str, k: &str) -> ObjectPath {
    ObjectPath::from(format!("{prefix}{k}"))
}

fn sidecar(k: &str) -> String {
    format!("{k}.sha256")
}

/// Does the bucket exist? A listing of a missing bucket answers 404 `NoSuchBucket`,
/// which object_store reports as NotFound or as a generic error quoting S3's code.
pub async fn bucket_exists(store: &dyn ObjectStore) -> Result<bool> {
    match store.list_with_delimiter(Some(&ObjectPath::from("fleetform-probe/"))).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) if e.to_string().contains("NoSuchBucket") => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("checking the cluster store bucket")),
    }
}

/// The sha256 recorded beside each artifact, for the keys that have one, with what a
/// node that built it wrote there.
pub async fn observed(store: &dyn ObjectStore, prefix: &str, keys: &[String]) -> Result<BTreeMap<String, Stored>> {
    let mut out = BTreeMap::new();
    for k in keys {
        let what = || format!("reading {prefix}{}", sidecar(k));
        match store.get(&key(prefix, &sidecar(k))).await {
            Ok(r) => {
                let meta = |name: &'static str| r.attributes.get(&Attribute::Metadata(name.into())).map(|v| v.to_string());
                let (built_by, source_sha256) = (meta(BUILT_BY), meta(SOURCE_SHA256).filter(|s| s != "unknown"));
                let bytes = r.bytes().await.with_context(what)?;
                let sha256 = String::from_utf8_lossy(&bytes).trim().to_string();
                out.insert(k.clone(), Stored { sha256, built_by, source_sha256 });
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(what())),
        }
    }
    Ok(out)
}

/// Where `dist/` is: beside the cluster spec (so `-f path/cluster.yaml` finds
/// `path/dist/`), unless FLEETFORM_DIST_DIR says otherwise.
pub fn dist_dir(spec_path: &Path) -> PathBuf {
    std::env::var_os("FLEETFORM_DIST_DIR").map(PathBuf::from).unwrap_or_else(|| {
        spec_path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("dist")
    })
}

/// The fleetform source tree to bundle: FLEETFORM_SOURCE_DIR, else the workspace this
/// binary was built from when it is still there.
pub fn source_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("FLEETFORM_SOURCE_DIR") {
        return Some(PathBuf::from(d));
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?.to_path_buf();
    built.join("Cargo.toml").is_file().then_some(built)
}

const SKIP_DIRS: &[&str] = &["target", ".git", "dist", ".fleetform", "node_modules", "__pycache__"];

/// Files of the source tree, sorted, relative to `root`.
pub fn source_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let e = e?;
            let p = e.path();
            let name = e.file_name();
            let ft = e.file_type()?;
            if ft.is_dir() {
                if !SKIP_DIRS.iter().any(|s| name == *s) {
                    walk(root, &p, out)?;
                }
            } else if ft.is_file() {
                out.push(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort();
    Ok(out)
}

/// A hash of the tree's names and contents: what the bundle would contain.
pub fn source_hash(root: &Path) -> Result<String> {
    let mut h = Sha256::new();
    for f in source_files(root)? {
        let bytes = std::fs::read(root.join(&f)).with_context(|| format!("reading {}", f.display()))?;
        h.update(f.to_string_lossy().as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(hex::encode(h.finalize()))
}

/// Build the tarball with the system tar (GNU tar: the `--mtime`/`--owner` flags make it
/// reproducible) and gzip -n.
pub fn build_source_bundle(root: &Path) -> Result<Vec<u8>> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let files = source_files(root)?;
    let mut list = Vec::new();
    for f in &files {
        list.extend_from_slice(f.to_string_lossy().as_bytes());
        list.push(0);
    }
    let mut tar = Command::new("tar")
        .args(["--null", "-T", "-", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar to build the source bundle")?;
    let mut stdin = tar.stdin.take().context("tar stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&list));
    let gz = Command::new("gzip").args(["-n", "-c"]).stdin(tar.stdout.take().context("tar stdout")?).output().context("running gzip")?;
    writer.join().map_err(|_| anyhow::anyhow!("writing the file list to tar"))??;
    if !tar.wait()?.success() || !gz.status.success() {
        bail!("building the source bundle of {} failed: {}", root.display(), String::from_utf8_lossy(&gz.stderr));
    }
    Ok(gz.stdout)
}

/// The store keys `desired` decides about: every binary a node type installs, the
/// source bundle and the spec. Observe these before calling it.
pub fn keys(spec: &ClusterSpec) -> Vec<String> {
    let mut keys: Vec<String> = node_binaries::wanted(spec).into_iter().map(|w| w.key).collect();
    keys.sort();
    keys.dedup();
    keys.extend([layout::source_bundle().to_string(), names::SPEC_KEY.to_string()]);
    keys
}

/// The artifacts this spec needs, what to remove, and a note per node type saying how
/// it gets its binary, given the binaries on this machine and what the store holds.
pub fn desired(spec: &ClusterSpec, spec_path: &Path, given: &BinaryArgs, stored: &BTreeMap<String, Stored>) -> Result<Decision> {
    let dist = dist_dir(spec_path);
    let wanted = node_binaries::wanted(spec);
    let mut local = BTreeMap::new();
    for w in &wanted {
        if local.contains_key(&w.key) {
            continue;
        }
        let (path, flag) = match given.given(w.binary, w.arch) {
            Some(p) => (p.to_path_buf(), Some(if w.binary == AGENT { "--agent-binary" } else { "--fleetform-binary" })),
            None => (dist.join(w.arch.uname()).join(w.binary), None),
        };
        if flag.is_none() && !path.is_file() {
            continue;
        }
        // Flags were checked when parsed; dist/ files are checked here.
        check_binary(&path, w.arch).map_err(|e| anyhow::anyhow!("{e} (node type `{}`)", w.node_type))?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        local.insert(w.key.clone(), Local { sha256: sha256_hex(&bytes), size: bytes.len(), path, flag });
    }
    let root = source_dir();
    let source_sha256 = match &root {
        Some(root) if wanted.iter().any(|w| !local.contains_key(&w.key)) => {
            Some(source_hash(root).with_context(|| format!("hashing the source tree {}", root.display()))?)
        }
        _ => None,
    };
    let mut d = node_binaries::decide(&wanted, &local, stored, source_sha256.as_deref(), &dist.display().to_string());
    d.notes.extend(unused_flags(given, &wanted));
    if !d.builders.is_empty() {
        let (Some(root), Some(sha256)) = (root, source_sha256) else {
            bail!(
                "node types {} have no binary here or in the store, and there is no fleetform source tree for their nodes to build \
                 from: give one with --agent-binary ARCH=PATH (--fleetform-binary for the head), copy it to {}/<uname -m>/, \
                 or set FLEETFORM_SOURCE_DIR",
                d.builders.join(", "),
                dist.display()
            );
        };
        d.artifacts.push(DesiredArtifact {
            key: layout::source_bundle().to_string(),
            sha256,
            source: ArtifactSource::SourceBundle { root: root.display().to_string() },
            description: format!("source bundle of {}", root.display()),
        });
    }
    let spec_bytes = std::fs::read(spec_path).with_context(|| format!("reading {}", spec_path.display()))?;
    d.artifacts.push(DesiredArtifact {
        key: names::SPEC_KEY.to_string(),
        sha256: sha256_hex(&spec_bytes),
        source: ArtifactSource::File { path: spec_path.display().to_string() },
        description: format!("{} (the head's reconciler reads it)", spec_path.display()),
    });
    Ok(d)
}

/// A binary given for an architecture no node type of that kind has: said, not uploaded.
fn unused_flags(given: &BinaryArgs, wanted: &[node_binaries::Wanted]) -> Vec<String> {
    let flags = [("--agent-binary", AGENT, &given.agent), ("--fleetform-binary", crate::binaries::FLEETFORM, &given.fleetform)];
    let mut out = Vec::new();
    for (flag, binary, list) in flags {
        for g in list.iter().filter(|g| !wanted.iter().any(|w| w.binary == binary && w.arch == g.arch)) {
            out.push(format!(
                "{flag} {}={}: no node type installs {binary} on {}, so it is not uploaded",
                g.arch.uname(),
                g.path.display(),
                g.arch.uname()
            ));
        }
    }
    out
}

/// Upload an artifact, then its sha256 beside it (last, so an interrupted upload is redone).
pub async fn upload(store: &dyn ObjectStore, prefix: &str, a: &DesiredArtifact) -> Result<()> {
    let bytes = match &a.source {
        ArtifactSource::File { path } => std::fs::read(path).with_context(|| format!("reading {path}"))?,
        ArtifactSource::SourceBundle { root } => {
            let root = PathBuf::from(root);
            tokio::task::spawn_blocking(move || build_source_bundle(&root)).await??
        }
    };
    store
        .put(&key(prefix, &a.key), PutPayload::from(bytes))
        .await
        .with_context(|| format!("uploading {prefix}{}", a.key))?;
    store
        .put(&key(prefix, &sidecar(&a.key)), PutPayload::from(a.sha256.clone().into_bytes()))
        .await
        .with_context(|| format!("uploading {prefix}{}", sidecar(&a.key)))?;
    Ok(())
}

/// Delete an artifact: its sha256 first, so that nodes stop taking it as published.
pub async fn remove(store: &dyn ObjectStore, prefix: &str, k: &str) -> Result<()> {
    for path in [key(prefix, &sidecar(k)), key(prefix, k)] {
        match store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting {path}"))),
        }
    }
    Ok(())
}

/// Delete every object in the bucket (before `destroy --delete-data` deletes it).
pub async fn empty_bucket(store: &Arc<dyn ObjectStore>) -> Result<usize> {
    let locations = store.list(None).map_ok(|m| m.location).boxed();
    let deleted: Vec<ObjectPath> = store.delete_stream(locations).try_collect().await.context("emptying the cluster store bucket")?;
    Ok(deleted.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binaries::test_elf::fake_elf;
    use crate::binaries::GivenBinary;
    use fleetform_core::instance::Arch;

    const WORKSHOP: &str = include_str!("../../../../cluster.yaml");

    #[test]
    fn given_binaries_win_over_dist_and_dist_is_checked_too() {
        let dir = tempfile::tempdir().unwrap();
        let spec_path = dir.path().join("cluster.yaml");
        std::fs::write(&spec_path, WORKSHOP).unwrap();
        let spec = ClusterSpec::from_yaml("cluster.yaml", WORKSHOP).unwrap();
        let dist = dir.path().join("dist/x86_64");
        std::fs::create_dir_all(&dist).unwrap();
        std::fs::write(dist.join("fleetform-agent"), fake_elf(Arch::X86_64, b"agent from dist")).unwrap();
        std::fs::write(dist.join("fleetform"), fake_elf(Arch::X86_64, b"fleetform from dist")).unwrap();
        let given_path = dir.path().join("arm-agent");
        std::fs::write(&given_path, fake_elf(Arch::Arm64, b"agent given")).unwrap();
        let given = BinaryArgs {
            agent: vec![GivenBinary { arch: Arch::Arm64, path: given_path.clone() }],
            fleetform: vec![GivenBinary { arch: Arch::Arm64, path: given_path.clone() }],
        };
        let d = desired(&spec, &spec_path, &given, &BTreeMap::new()).unwrap();
        let keys: Vec<&str> = d.artifacts.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            ["bin/aarch64/fleetform-agent", "bin/x86_64/fleetform", "bin/x86_64/fleetform-agent", "cluster.yaml"],
            "no source bundle"
        );
        assert_eq!(d.artifacts[0].sha256, sha256_hex(&fake_elf(Arch::Arm64, b"agent given")));
        assert_eq!(
            d.notes[0],
            format!("arm_worker_node (aarch64): installs bin/aarch64/fleetform-agent (from {} (--agent-binary))", given_path.display())
        );
        assert_eq!(
            d.notes.last().unwrap(),
            &format!(
                "--fleetform-binary aarch64={}: no node type installs fleetform on aarch64, so it is not uploaded",
                given_path.display()
            )
        );

        // A wrong file in dist/ stops the plan, naming it.
        std::fs::write(dist.join("fleetform-agent"), fake_elf(Arch::Arm64, b"")).unwrap();
        let err = desired(&spec, &spec_path, &given, &BTreeMap::new()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{} is an aarch64 executable, not x86_64: build it for x86_64 (target x86_64-unknown-linux-gnu) (node type `x86_worker_node`)",
                dist.join("fleetform-agent").display()
            )
        );
    }

    #[test]
    fn source_bundle_is_reproducible_and_skips_build_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[workspace]\n").unwrap();
        std::fs::create_dir_all(dir.path().join("core/src")).unwrap();
        std::fs::write(dir.path().join("core/src/lib.rs"), "pub fn f() {}\n").unwrap();
        std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
        std::fs::write(dir.path().join("target/debug/big"), "x").unwrap();
        let files = source_files(dir.path()).unwrap();
        assert_eq!(files, vec![PathBuf::from("Cargo.toml"), PathBuf::from("core/src/lib.rs")]);
        let a = build_source_bundle(dir.path()).unwrap();
        assert_eq!(a, build_source_bundle(dir.path()).unwrap(), "same tree, same bytes");
        let h = source_hash(dir.path()).unwrap();
        std::fs::write(dir.path().join("core/src/lib.rs"), "pub fn g() {}\n").unwrap();
        assert_ne!(h, source_hash(dir.path()).unwrap());
    }
}
