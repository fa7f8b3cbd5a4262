//! A cluster spec and where its store and queue live, shared by every command.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_runtime::Connections;
use fleetform_core::spec::{ClusterSpec, ProviderKind};

/// The spec infrastructure commands read when no `-f` is given.
pub const DEFAULT_SPEC: &str = "cluster.yaml";

/// Where `run`/`up` write the path of the spec they ran, so that `status` and `job` in the
/// same directory find that cluster without `-f` (the local cluster the README's first
/// command started, rather than the AWS spec in ./cluster.yaml).
const LAST_USED: &str = ".fleetform/last-cluster";

/// Remember `file` as the cluster last run from this directory. Best effort: a read-only
/// directory only costs the convenience.
pub fn remember(file: &Path) {
    let Ok(abs) = std::fs::canonicalize(file) else { return };
    let last = Path::new(LAST_USED);
    if let Some(dir) = last.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(last, abs.display().to_string());
}

/// The spec `run`/`up` last used in this directory, if it still exists.
pub fn last_used() -> Option<PathBuf> {
    let path = PathBuf::from(std::fs::read_to_string(LAST_USED).ok()?.trim());
    path.is_file().then_some(path)
}

/// Load and validate a cluster spec; the error carries every problem found.
pub fn load(file: &Path) -> Result<ClusterSpec> {
    ClusterSpec::load(file).map_err(|d| anyhow!("{d}"))
}

/// Where a cluster keeps its state.
#[derive(Debug, Clone)]
pub struct Handles {
    /// The cluster store: `file:///abs/dir` or `s3://bucket/prefix`.
    pub store_uri: String,
    /// `sqlite:///abs/queue.sqlite` or `sqs://<cluster>`.
    pub queue_uri: String,
    /// Local provider: the directory with the store, the queue, node logs.
    pub state_dir: PathBuf,
    /// How this command reaches S3 and SQS: on the aws provider the one SDK configuration
    /// built from the spec (`provider.region`, then the standard chain); the store, the
    /// queues and every job input and output on S3 go through it. On the local provider
    /// the standard chain, read only if a job names an s3:// location.
    pub conn: Connections,
}

impl Handles {
    pub async fn of(spec: &ClusterSpec) -> Result<Handles> {
        match spec.provider.kind {
            ProviderKind::Local => {
                let store = spec.storage.path.clone().unwrap_or_else(|| format!(".fleetform/{}/store", spec.cluster_name));
                let store_uri = fleetform_runtime::location::normalize_uri(&store)?;
                let store_dir = PathBuf::from(store_uri.trim_start_matches("file://"));
                let state_dir = store_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| store_dir.clone());
                let queue_uri = format!("sqlite://{}", state_dir.join("queue.sqlite").display());
                Ok(Handles { store_uri, queue_uri, state_dir, conn: Connections::from_env() })
            }
            ProviderKind::Aws => {
                let bucket = spec.storage.bucket.clone().ok_or_else(|| anyhow!("storage.bucket is required"))?;
                let prefix = spec.storage.prefix.clone().unwrap_or_else(|| format!("{}/", spec.cluster_name));
                Ok(Handles {
                    store_uri: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
                    queue_uri: format!("sqs://{}", spec.cluster_name),
                    state_dir: PathBuf::from(format!(".fleetform/{}", spec.cluster_name)),
                    conn: aws_connections(spec).await?,
                })
            }
        }
    }

    /// The cluster store, through this command's connections.
    pub async fn store(&self) -> Result<Store> {
        Store::open(&self.conn, &self.store_uri).await
    }

    /// The task queues, through this command's connections.
    pub async fn queue(&self) -> Result<Queue> {
        Queue::open(&self.conn, &self.queue_uri).await
    }

    /// The AWS clients of this command, from the same configuration as its store and queues.
    #[cfg(feature = "aws")]
    pub async fn aws_context(&self, spec: &ClusterSpec) -> Result<crate::aws::AwsContext> {
        let sdk = self.conn.aws().await.clone();
        crate::aws::AwsContext::connect_with(spec, sdk, Default::default()).await
    }
}

/// The aws provider's connections: the SDK configuration built once from the spec, which
/// must end up with a region (the spec's, AWS_REGION or a profile's).
#[cfg(feature = "aws")]
async fn aws_connections(spec: &ClusterSpec) -> Result<Connections> {
    let sdk = crate::aws::context::sdk_config(spec).await;
    if sdk.region().is_none() {
        return Err(crate::aws::errors::AwsError::NoRegion.into());
    }
    Ok(Connections::with_sdk(sdk))
}

/// Without the AWS provider nothing of an aws spec is read from AWS: its store and queue
/// give the `without_aws` error when opened.
#[cfg(not(feature = "aws"))]
async fn aws_connections(_spec: &ClusterSpec) -> Result<Connections> {
    Ok(Connections::from_env())
}
