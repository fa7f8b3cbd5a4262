//! PLACEHOLDER.
pub async fn up(_f: &std::path::Path) -> anyhow::Result<i32> { anyhow::bail!("todo") }
