//! Python steps: users' Ray `map_batches` functions, run unchanged in a long-lived worker
//! process per slot (as PySpark's Arrow UDF workers and Ray's workers do), fed Arrow IPC
//! batches over a pipe. `check` runs at submit; the rest on the node: the job's files
//! are fetched from the store (checked against the sha256 submit recorded), `runner.py`
//! is written to the spill directory, and a `WorkerPool` per job hands workers to tasks.

pub mod check;
mod log;
mod pool;
mod protocol;
mod worker;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use fleetform_core::task::JobRecord;

pub use check::{check_job, check_step, ship, CheckReport, CodeFile};
pub use log::{TaskLog, TASK_LOG_CAP};
pub use pool::{Checkout, WorkerPool};
pub use worker::{FunctionSpec, WorkerConfig};

use crate::ops::Stages;
use fleetform_runtime::store::Store;

const RUNNER_PY: &str = include_str!("runner.py");

/// How a shipped file is named and checked is the job lifecycle's (the runtime stores it
/// at submit); the node checks and names it the same way.
pub use fleetform_runtime::jobs::{code_file_name as file_name, sha256_hex};

/// Write `runner.py` under `dir`, named by its content, so agents of different versions
/// sharing a spill directory never run each other's runner. Returns its path.
pub fn install_runner(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("python").join(format!(
        "runner-{}.py",
        &sha256_hex(RUNNER_PY.as_bytes())[..12]
    ));
    if !path.exists() {
        write_atomically(&path, RUNNER_PY.as_bytes())?;
    }
    Ok(path)
}

/// The worker pool of a job with python steps (None without): fetches each shipped file
/// into `spill_dir/<job>/code/`, checking its sha256 against the job record.
pub async fn job_pool(
    store: &Store,
    record: &JobRecord,
    stages: &Stages,
    spill_dir: &Path,
    node_id: &str,
) -> Result<Option<WorkerPool>> {
    let Some(first) = stages.python_stages().next() else {
        return Ok(None);
    };
    let runner = install_runner(spill_dir)?;
    let mut functions = Vec::new();
    for stage in stages.python_stages() {
        let step = &stage.step;
        let shipped = record.code.iter().find(|c| c.file == step.file).ok_or_else(|| {
            anyhow!("steps[{}] (python): {} was not shipped with job {} (submit it with `fleetform submit` or `run`, which store the file)", stage.step_index, step.file, record.job_id)
        })?;
        let local = spill_dir
            .join(fleetform_core::layout::path_component(&record.job_id))
            .join("code")
            .join(&shipped.sha256)
            .join(file_name(&step.file));
        if !local.exists() {
            let bytes = store.get_bytes(&shipped.key).await?.ok_or_else(|| {
                anyhow!(
                    "{}/{} is missing: the job's copy of {}",
                    store.uri(),
                    shipped.key,
                    step.file
                )
            })?;
            let got = sha256_hex(&bytes);
            if got != shipped.sha256 {
                bail!("{}/{} has sha256 {got}, but job {} recorded {} for {}: the stored file changed after submit", store.uri(), shipped.key, record.job_id, shipped.sha256, step.file);
            }
            write_atomically(&local, &bytes)?;
        }
        functions.push(FunctionSpec {
            path: local.display().to_string(),
            display: step.file.clone(),
            function: step.function.clone(),
            batch_format: step.batch_format.as_str(),
        });
    }
    let cfg = WorkerConfig {
        interpreter: first.step.interpreter.clone(),
        runner,
        functions,
        node_id: node_id.to_string(),
    };
    Ok(Some(WorkerPool::new(cfg)))
}

/// Staged then renamed: a reader never sees half a file (two slots may write it at once).
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("a file under a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let staged = dir.join(format!(
        ".{}.{}",
        file_name(&path.display().to_string()),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&staged, bytes).with_context(|| format!("cannot write {}", staged.display()))?;
    std::fs::rename(&staged, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
pub(crate) mod tests;
