//! What nodes install from the cluster store (DESIGN.md decision 9): the binaries in
//! `dist/<uname -m>/`, or — when `dist/` has none for an architecture (this machine
//! cannot cross-compile to aarch64) — a source bundle that the node builds on first
//! boot. Also the cluster spec the head's reconciler reads, and the S3 client, built
//! from the same `SdkConfig` as every AWS client.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
// The SDK crates re-export the credential types (aws-credential-types is not a direct dependency).
use fleetform_core::instance::Arch;
use fleetform_core::{layout, ClusterSpec};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use super::context::AwsContext;
use super::launch_templates::sha256_hex;
use super::model::{ArtifactSource, DesiredArtifact};
use super::names;

/// object_store's credential hook over the SDK's provider chain: the same identity as
/// every SDK client, refreshed when it expires.
/// The cluster store bucket (whole bucket; keys are prefixed by the caller), configured
/// from the same SDK configuration as every other client.
pub fn bucket_store(ctx: &AwsContext) -> Result<Arc<dyn ObjectStore>> {
    let bucket = ctx.spec.storage.bucket.clone().context("the aws provider needs `storage.bucket`")?;
    fleetform_agent::storage::s3_store(&ctx.sdk, &bucket).context("configuring the S3 client for the cluster store")
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

/// The sha256 recorded beside each artifact, for the keys that have one.
pub async fn observed(store: &dyn ObjectStore, prefix: &str, keys: &[String]) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for k in keys {
        match store.get(&key(prefix, &sidecar(k))).await {
            Ok(r) => {
                let bytes = r.bytes().await.with_context(|| format!("reading {prefix}{}", sidecar(k)))?;
                out.insert(k.clone(), String::from_utf8_lossy(&bytes).trim().to_string());
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {prefix}{}", sidecar(k)))),
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

/// The artifacts this spec needs, and a note per node type saying how it gets fleetform.
pub fn desired(spec: &ClusterSpec, spec_path: &Path) -> Result<(Vec<DesiredArtifact>, Vec<String>)> {
    let dist = dist_dir(spec_path);
    let mut artifacts = Vec::new();
    let mut notes = Vec::new();
    let mut bundle_for = Vec::new();
    for name in spec.available_node_types.keys() {
        let arch = spec.arch_of(name).unwrap_or(Arch::X86_64);
        let binary = if *name == spec.head_node_type { "fleetform" } else { "fleetform-agent" };
        let key = if binary == "fleetform" { names::reconciler_binary(arch.uname()) } else { layout::agent_binary(arch.uname()) };
        let local = dist.join(arch.uname()).join(binary);
        if local.is_file() {
            let bytes = std::fs::read(&local).with_context(|| format!("reading {}", local.display()))?;
            if !artifacts.iter().any(|a: &DesiredArtifact| a.key == key) {
                artifacts.push(DesiredArtifact {
                    key: key.clone(),
                    sha256: sha256_hex(&bytes),
                    source: ArtifactSource::File { path: local.display().to_string() },
                    description: format!("{} ({} bytes)", local.display(), bytes.len()),
                });
            }
            notes.push(format!("{name} ({}): installs {key} (from {})", arch.uname(), local.display()));
        } else {
            notes.push(format!(
                "{name} ({}): no {} — nodes build {binary} from the source bundle on first boot (several minutes; needs the NAT)",
                arch.uname(),
                local.display()
            ));
            bundle_for.push(name.clone());
        }
    }
    if !bundle_for.is_empty() {
        let Some(root) = source_dir() else {
            bail!(
                "node types {} have no binary in {} and there is no fleetform source tree to bundle: build them \
                 (e.g. `cargo build --release --target aarch64-unknown-linux-gnu`), copy them to {}/<uname -m>/, or set FLEETFORM_SOURCE_DIR",
                bundle_for.join(", "),
                dist.display(),
                dist.display()
            );
        };
        artifacts.push(DesiredArtifact {
            key: layout::source_bundle().to_string(),
            sha256: source_hash(&root).with_context(|| format!("hashing the source tree {}", root.display()))?,
            source: ArtifactSource::SourceBundle { root: root.display().to_string() },
            description: format!("source bundle of {}", root.display()),
        });
    }
    let spec_bytes = std::fs::read(spec_path).with_context(|| format!("reading {}", spec_path.display()))?;
    artifacts.push(DesiredArtifact {
        key: names::SPEC_KEY.to_string(),
        sha256: sha256_hex(&spec_bytes),
        source: ArtifactSource::File { path: spec_path.display().to_string() },
        description: format!("{} (the head's reconciler reads it)", spec_path.display()),
    });
    Ok((artifacts, notes))
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

/// Delete every object in the bucket (before `destroy --delete-data` deletes it).
pub async fn empty_bucket(store: &Arc<dyn ObjectStore>) -> Result<usize> {
    let locations = store.list(None).map_ok(|m| m.location).boxed();
    let deleted: Vec<ObjectPath> = store.delete_stream(locations).try_collect().await.context("emptying the cluster store bucket")?;
    Ok(deleted.len())
}

#[cfg(test)]
mod tests {
    use super::*;

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
