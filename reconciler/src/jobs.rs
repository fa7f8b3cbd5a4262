//! PLACEHOLDER.
use std::path::Path;
pub async fn submit_command(_f: &Path, _j: &Path, _s: &[String], _w: bool) -> anyhow::Result<i32> { anyhow::bail!("todo") }
pub async fn run_command(_f: &Path, _j: &Path, _s: &[String]) -> anyhow::Result<i32> { anyhow::bail!("todo") }
pub async fn job_command(_f: &Path, _c: crate::cli::JobCommand) -> anyhow::Result<i32> { anyhow::bail!("todo") }
