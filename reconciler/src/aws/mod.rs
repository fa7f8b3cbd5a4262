//! The AWS provider (issue 2). PLACEHOLDER while the module is being written.
pub mod commands {
    use std::path::Path;
    pub async fn plan(_f: &Path, _json: bool, _d: bool) -> anyhow::Result<i32> { anyhow::bail!("todo") }
    pub async fn apply(_f: &Path, _yes: bool) -> anyhow::Result<i32> { anyhow::bail!("todo") }
    pub async fn destroy(_f: &Path, _yes: bool, _d: bool) -> anyhow::Result<i32> { anyhow::bail!("todo") }
}
