//! PLACEHOLDER.
pub async fn show(_f: &std::path::Path, _json: bool) -> anyhow::Result<i32> { anyhow::bail!("todo") }
