//! `fleetform reconcile [-f FILE] [--watch --interval N]`: the autoscaler loop for the
//! aws provider (`aws::provider`). The local provider's runs inside `fleetform up`.

use std::path::Path;

use anyhow::{bail, Result};
use fleetform_core::spec::{ClusterSpec, ProviderKind};

use crate::cluster;

pub async fn command(file: &Path, watch: bool, interval: u64) -> Result<i32> {
    let spec = cluster::load(file)?;
    if spec.provider.kind == ProviderKind::Local {
        bail!(
            "the local provider's autoscaler runs inside `fleetform up -f {}` (it owns the agent processes); \
             `fleetform status` shows its decisions",
            file.display()
        );
    }
    on_aws(&spec, watch, interval).await
}

#[cfg(feature = "aws")]
async fn on_aws(spec: &ClusterSpec, watch: bool, interval: u64) -> Result<i32> {
    crate::aws::provider::reconcile(spec, watch, interval).await
}

#[cfg(not(feature = "aws"))]
async fn on_aws(_spec: &ClusterSpec, _watch: bool, _interval: u64) -> Result<i32> {
    Err(fleetform_runtime::without_aws(
        "`fleetform reconcile` on the aws provider",
    ))
}
