//! Object storage by URI, on the `object_store` crate: `file:///dir`, a plain path, or
//! `s3://bucket/prefix`. S3 uses the standard AWS configuration chain (profiles,
//! AWS_REGION, AWS_ENDPOINT_URL for moto) through aws-config, never hand-rolled signing.
//! S3 needs the `aws` feature (on by default); a local-only build opens directories only.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

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
        if self.prefix.as_ref().is_empty() {
            Path::from(name)
        } else {
            Path::from(format!("{}/{}", self.prefix.as_ref(), name))
        }
    }
    /// The name of `key` relative to this location's prefix.
    pub fn relative(&self, key: &Path) -> String {
        let k = key.as_ref();
        let p = self.prefix.as_ref();
        if p.is_empty() {
            k.to_string()
        } else {
            k.strip_prefix(p).map(|s| s.trim_start_matches('/').to_string()).unwrap_or_else(|| k.to_string())
        }
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
    Ok(format!("file://{}", abs.display().to_string().trim_end_matches('/')))
}

/// Split a file URI into its location (directory or bucket) and object key, for
/// [`open`] and [`Location::key`].
pub fn split_uri(uri: &str) -> Result<(String, String)> {
    let (dir, name) = uri.rsplit_once('/').ok_or_else(|| anyhow!("`{uri}` is not a file URI"))?;
    Ok((dir.to_string(), name.to_string()))
}

/// Open a location. Local directories are created if missing; S3 uses the process's
/// AWS configuration (standard chain).
pub async fn open(uri: &str) -> Result<Location> {
    if uri.starts_with("s3://") {
        return open_s3(uri).await;
    }
    open_local(uri)
}

#[cfg(feature = "aws")]
async fn open_s3(uri: &str) -> Result<Location> {
    s3::open_with(s3::sdk_config().await, uri).await
}

#[cfg(not(feature = "aws"))]
async fn open_s3(uri: &str) -> Result<Location> {
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
pub use s3::{open_with, s3_store, sdk_config, use_sdk_config};

#[cfg(feature = "aws")]
mod s3;

#[cfg(all(test, not(feature = "aws")))]
mod local_only_tests {
    /// A local-only build names what is missing and how to get it, for S3 and SQS alike.
    #[tokio::test]
    async fn s3_and_sqs_say_the_build_leaves_aws_out() {
        let err = super::open("s3://bucket/prefix").await.unwrap_err().to_string();
        assert!(err.starts_with("`s3://bucket/prefix`: this fleetform was built without the AWS provider"), "{err}");
        assert!(err.contains("cargo install --path reconciler"), "{err}");
        let err = crate::queue::Queue::open("sqs://c").await.err().unwrap().to_string();
        assert!(err.starts_with("the queue sqs://c: this fleetform was built without the AWS provider"), "{err}");
    }
}
