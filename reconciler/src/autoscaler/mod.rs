//! The autoscaler (issue 5). PLACEHOLDER while the module is being written.
pub async fn command(_file: &std::path::Path, _watch: bool, _interval: u64) -> anyhow::Result<i32> {
    anyhow::bail!("reconcile is not built yet")
}
