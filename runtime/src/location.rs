//! Data locations by URI, on the `object_store` crate: `file:///dir`, a plain path, or
//! `s3://bucket/prefix`. S3 goes through the process's [`Connections`] (one AWS SDK
//! configuration: profiles, AWS_REGION, AWS_ENDPOINT_URL for moto), never hand-rolled
//! signing. S3 needs the `aws` feature (on by default); a local-only build opens
//! directories only.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::Connections;

/// A parsed data location: the store that holds it and the key prefix inside it.
#[derive(Clone, Debug)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The normalized URI (`file:///abs/dir` or `s3://bucket/prefix`), stored in job records.
    pub uri: String,
    /// Set for local locations: the directory on this machine.
    pub local_dir: Option<PathBuf>,
}

impl Location {
    /// The key of `name` below this location's prefix.
    pub fn key(&self, name: &str) -> Path {
        Path::from(self.joined(name))
    }
    /// `name` below the prefix, as text.
    fn joined(&self, name: &str) -> String {
        match self.prefix.as_ref() {
            "" => name.to_string(),
            prefix => format!("{prefix}/{name}"),
        }
    }
    /// The key of an input file `name` as its object store names it: the object's key
    /// itself (`데이터 1.jsonl` as the AWS CLI or the console uploaded it), where
    /// [`Location::key`] is fleetform's own percent-encoded naming of what it writes. A
    /// key object_store cannot take as it is (an empty segment: `a//b`) falls back to
    /// that encoding. Local input files are opened by their paths, not by key.
    pub fn input_key(&self, name: &str) -> Path {
        let joined = self.joined(name);
        Path::parse(&joined).unwrap_or_else(|_| Path::from(joined))
    }
    /// For a local location, the file that holds `name`: the file object_store reads
    /// and writes for [`Location::key`], whose parts it percent-encodes (`텍스트` is the
    /// file `%ED%85%8D…`). A path made by joining `name` itself would be another file.
    pub fn local_path(&self, name: &str) -> Option<PathBuf> {
        self.local_dir.as_ref().map(|dir| dir.join(self.key(name).as_ref()))
    }
    /// The name of `key` relative to this location's prefix, as [`Location::key`] was
    /// given it: object_store percent-encodes parts (`텍스트` is stored as `%ED%85%8D…`),
    /// and a name read back from a listing must be the name that was written.
    pub fn relative(&self, key: &Path) -> String {
        let k = key.as_ref();
        let p = self.prefix.as_ref();
        let rel = if p.is_empty() { k } else { k.strip_prefix(p).map(|s| s.trim_start_matches('/')).unwrap_or(k) };
        rel.split('/').map(decode_part).collect::<Vec<_>>().join("/")
    }
}

/// Undo object_store's encoding of one key part, only where it is that encoding: a key
/// written by another tool with a literal `%41` in it stays as it is (decoding it would
/// name another object).
fn decode_part(part: &str) -> String {
    match percent_encoding::percent_decode_str(part).decode_utf8() {
        Ok(name) if object_store::path::PathPart::from(name.as_ref()).as_ref() == part => name.into_owned(),
        _ => part.to_string(),
    }
}

/// Turn a relative path or `file://` URI into an absolute `file://` URI; leave others.
pub fn normalize_uri(uri: &str) -> Result<String> {
    if uri.starts_with("s3://") {
        return Ok(uri.trim_end_matches('/').to_string());
    }
    if let Some(rest) = uri.strip_prefix("file://") {
        if !rest.starts_with('/') {
            bail!("`{uri}`: file URIs need an absolute path (file:///dir); a plain relative path works too");
        }
        return Ok(format!("file://{}", rest.trim_end_matches('/')));
    }
    if uri.contains("://") {
        bail!("`{uri}`: unsupported scheme; use file:///dir, a path, or s3://bucket/prefix");
    }
    let p = std::path::Path::new(uri);
    let abs = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir()?.join(p) };
    Ok(format!("file://{}", lexical(&abs).display().to_string().trim_end_matches('/')))
}

/// A path without `.`, `..` and repeated separators, without touching the disk: `./a`,
/// `a//b/` and `x/../a` spell the same place as `a`.
fn lexical(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A local path with its symlinks resolved as far as it exists (the rest appended), so
/// two spellings of one directory through a link compare equal.
fn resolved(path: &std::path::Path) -> std::path::PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(|n| n.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    out.extend(rest.into_iter().rev());
    out
}

/// The segments that identify a normalized location: the bucket then the key's parts on
/// S3, the resolved path's parts locally.
fn segments(uri: &str) -> Vec<String> {
    match uri.strip_prefix("s3://") {
        Some(rest) => rest.split('/').filter(|s| !s.is_empty()).map(str::to_string).collect(),
        None => {
            let path = uri.strip_prefix("file://").unwrap_or(uri);
            let path = resolved(std::path::Path::new(path));
            path.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect()
        }
    }
}

/// How two normalized locations overlap, if they do: one job's output must be none of
/// these to its input, or it would read or delete its own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    Same,
    /// The first is inside the second.
    Inside,
    /// The first contains the second.
    Contains,
}

pub fn overlap(a: &str, b: &str) -> Option<Overlap> {
    if a.starts_with("s3://") != b.starts_with("s3://") {
        return None;
    }
    let (a, b) = (segments(a), segments(b));
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    match (common == a.len(), common == b.len()) {
        (true, true) => Some(Overlap::Same),
        (false, true) => Some(Overlap::Inside),
        (true, false) => Some(Overlap::Contains),
        (false, false) => None,
    }
}

/// Split a file URI into its location (directory or bucket) and object key, for
/// [`Location::open`] and [`Location::key`].
pub fn split_uri(uri: &str) -> Result<(String, String)> {
    let (dir, name) = uri.rsplit_once('/').ok_or_else(|| anyhow!("`{uri}` is not a file URI"))?;
    Ok((dir.to_string(), name.to_string()))
}

impl Location {
    /// Open a location. Local directories are created if missing; S3 goes through
    /// `conn`'s AWS configuration.
    pub async fn open(conn: &Connections, uri: &str) -> Result<Location> {
        if uri.starts_with("s3://") {
            return open_s3(conn, uri).await;
        }
        open_local(uri)
    }

    /// Open a location to read from: like [`Location::open`], but a local directory must
    /// exist (reading creates nothing: `validate` and `submit` leave no directories behind).
    pub async fn open_existing(conn: &Connections, uri: &str) -> Result<Location> {
        let normalized = normalize_uri(uri)?;
        if let Some(dir) = normalized.strip_prefix("file://") {
            if !std::path::Path::new(dir).is_dir() {
                bail!("`{uri}` does not exist ({dir}); relative paths are taken from the current directory");
            }
        }
        Location::open(conn, uri).await
    }
}

#[cfg(feature = "aws")]
async fn open_s3(conn: &Connections, uri: &str) -> Result<Location> {
    s3::open_with(conn.aws().await, uri).await
}

#[cfg(not(feature = "aws"))]
async fn open_s3(_conn: &Connections, uri: &str) -> Result<Location> {
    Err(crate::without_aws(&format!("`{uri}`")))
}

pub(crate) fn open_local(uri: &str) -> Result<Location> {
    let uri = normalize_uri(uri)?;
    if let Some(dir) = uri.strip_prefix("file://") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create directory {}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(&dir)
            .with_context(|| format!("cannot open directory {}", dir.display()))?;
        return Ok(Location { store: Arc::new(store), prefix: Path::default(), uri, local_dir: Some(dir) });
    }
    Err(anyhow!("unsupported URI {uri}"))
}

#[cfg(feature = "aws")]
pub use s3::{open_with, s3_store};

#[cfg(feature = "aws")]
mod s3;

#[cfg(test)]
mod key_tests {
    /// Names listed back are the names written, whatever object_store encodes.
    #[tokio::test]
    async fn listed_names_are_the_names_written() {
        let dir = std::env::temp_dir().join(format!("fleetform-keys-{}", uuid::Uuid::new_v4()));
        let loc = super::Location::open(&crate::Connections::from_env(), dir.to_str().unwrap()).await.unwrap();
        let names = ["jobs/텍스트-정제-1/job.json", "jobs/a<b#c{d?é\"-2/job.json", "plain/x.json"];
        for n in names {
            crate::store::put_json(&loc, n, &1).await.unwrap();
        }
        let mut listed = crate::store::list(&loc, "").await.unwrap();
        listed.sort();
        let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(listed, want);
        for n in &listed {
            assert_eq!(crate::store::get_json::<u32>(&loc, n).await.unwrap(), Some(1), "{n}");
        }
        // object_store's own encoding is undone; anything else is left alone.
        assert_eq!(super::decode_part("%ED%85%8D"), "텍");
        assert_eq!(super::decode_part("a%41"), "a%41");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[cfg(all(test, not(feature = "aws")))]
mod local_only_tests {
    /// A local-only build names what is missing and how to get it, for S3 and SQS alike.
    #[tokio::test]
    async fn s3_and_sqs_say_the_build_leaves_aws_out() {
        let conn = crate::Connections::from_env();
        let err = super::Location::open(&conn, "s3://bucket/prefix").await.unwrap_err().to_string();
        assert!(err.starts_with("`s3://bucket/prefix`: this fleetform was built without the AWS provider"), "{err}");
        assert!(err.contains("cargo install --path reconciler"), "{err}");
        let err = crate::queue::Queue::open(&conn, "sqs://c").await.err().unwrap().to_string();
        assert!(err.starts_with("the queue sqs://c: this fleetform was built without the AWS provider"), "{err}");
    }
}
