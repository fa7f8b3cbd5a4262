//! A cluster spec and where its store and queue live, shared by every command.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use fleetform_core::spec::{ClusterSpec, ProviderKind};

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
}

impl Handles {
    pub async fn of(spec: &ClusterSpec) -> Result<Handles> {
        match spec.provider.kind {
            ProviderKind::Local => {
                let store = spec.storage.path.clone().unwrap_or_else(|| format!(".fleetform/{}/store", spec.cluster_name));
                let store_uri = fleetform_agent::storage::normalize_uri(&store)?;
                let store_dir = PathBuf::from(store_uri.trim_start_matches("file://"));
                let state_dir = store_dir.parent().map(Path::to_path_buf).unwrap_or_else(|| store_dir.clone());
                let queue_uri = format!("sqlite://{}", state_dir.join("queue.sqlite").display());
                Ok(Handles { store_uri, queue_uri, state_dir })
            }
            ProviderKind::Aws => {
                let bucket = spec.storage.bucket.clone().ok_or_else(|| anyhow!("storage.bucket is required"))?;
                let prefix = spec.storage.prefix.clone().unwrap_or_else(|| format!("{}/", spec.cluster_name));
                Ok(Handles {
                    store_uri: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
                    queue_uri: format!("sqs://{}", spec.cluster_name),
                    state_dir: PathBuf::from(format!(".fleetform/{}", spec.cluster_name)),
                })
            }
        }
    }
}
