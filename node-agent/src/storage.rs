//! Object storage by URI, on the `object_store` crate: `file:///dir`, a plain path, or
//! `s3://bucket/prefix`. S3 uses the standard AWS configuration chain (profiles,
//! AWS_REGION, AWS_ENDPOINT_URL for moto) through aws-config, never hand-rolled signing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use aws_credential_types::provider::ProvideCredentials;
use object_store::aws::{AmazonS3Builder, AwsCredential};
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

/// Open a location. Local directories are created if missing; S3 uses the process's
/// AWS configuration (standard chain).
pub async fn open(uri: &str) -> Result<Location> {
    if uri.starts_with("s3://") {
        return open_with(sdk_config().await, uri).await;
    }
    open_local(uri)
}

/// Open a location with an explicit AWS configuration (tests against moto).
pub async fn open_with(config: &aws_config::SdkConfig, uri: &str) -> Result<Location> {
    let uri = normalize_uri(uri)?;
    let Some(rest) = uri.strip_prefix("s3://") else { return open_local(&uri) };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let store = s3_store(config, bucket)?;
    Ok(Location { store, prefix: Path::from(prefix), uri: uri.clone(), local_dir: None })
}

fn open_local(uri: &str) -> Result<Location> {
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

/// The process-wide AWS configuration (standard chain), loaded once.
pub async fn sdk_config() -> &'static aws_config::SdkConfig {
    static CONFIG: tokio::sync::OnceCell<aws_config::SdkConfig> = tokio::sync::OnceCell::const_new();
    CONFIG
        .get_or_init(|| async { aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await })
        .await
}

/// An S3 bucket through object_store, configured from an AWS SDK configuration (region,
/// credentials chain, endpoint override).
pub fn s3_store(config: &aws_config::SdkConfig, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| anyhow!("no AWS region configured for s3://{bucket}: set AWS_REGION or a profile's region"))?;
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_region(region);
    if let Some(provider) = config.credentials_provider() {
        builder = builder.with_credentials(Arc::new(SdkCredentials(provider)));
    }
    if let Some(endpoint) = config.endpoint_url() {
        // An emulator (moto) or a VPC endpoint: path-style requests, plain HTTP allowed.
        builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
    }
    Ok(Arc::new(builder.build().with_context(|| format!("cannot configure S3 for bucket {bucket}"))?))
}

/// Credentials for object_store from aws-config's provider chain (profiles, SSO, instance
/// roles...), so S3 access follows exactly the same configuration as the AWS SDK clients.
#[derive(Debug)]
struct SdkCredentials(aws_credential_types::provider::SharedCredentialsProvider);

#[async_trait::async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;
    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let c = self.0.provide_credentials().await.map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: Box::new(e),
        })?;
        Ok(Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(|s| s.to_string()),
        }))
    }
}
