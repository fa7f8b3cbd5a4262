//! S3 through object_store, configured by aws-config (the `aws` feature).

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use aws_credential_types::provider::ProvideCredentials;
use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::path::Path;
use object_store::ObjectStore;

use super::{normalize_uri, open_local, Location};

/// Open a location through an explicit AWS configuration (what [`crate::Connections`]
/// holds; tests against moto call it directly).
pub async fn open_with(config: &aws_config::SdkConfig, uri: &str) -> Result<Location> {
    let uri = normalize_uri(uri)?;
    let Some(rest) = uri.strip_prefix("s3://") else { return open_local(&uri) };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let store = s3_store(config, bucket)?;
    Ok(Location { store, prefix: Path::from(prefix), uri: uri.clone(), local_dir: None })
}

/// An S3 bucket through object_store, configured from an AWS SDK configuration (region,
/// credentials chain, endpoint override).
pub fn s3_store(config: &aws_config::SdkConfig, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    let region = config
        .region()
        .map(|r| r.to_string())
        .ok_or_else(|| anyhow!("no AWS region configured for s3://{bucket}: set AWS_REGION or a profile's region"))?;
    // UNSIGNED-PAYLOAD: the request is signed, its body is not hashed into the signature.
    // Over HTTPS (every real S3 endpoint) TLS already guarantees the body's integrity, and
    // hashing it would cost a SHA-256 of every byte uploaded here and again at the server
    // (the AWS SDKs and pyarrow's S3 client do the same).
    let mut builder = AmazonS3Builder::new().with_bucket_name(bucket).with_region(region).with_unsigned_payload(true);
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
