//! PLACEHOLDER.
pub async fn command(_f: &std::path::Path, _c: crate::cli::ChaosCommand) -> anyhow::Result<i32> { anyhow::bail!("todo") }
