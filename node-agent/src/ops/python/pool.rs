//! A job's Python workers on one node: one per slot running the job, long-lived across
//! its tasks (starting pandas costs about half a second), checked out by a task and
//! returned when it ends. Idle workers are reaped after a while and killed with the job's
//! context.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::log::TaskLog;
use super::worker::{CallError, PythonWorker, WorkerConfig};
use crate::ops::PythonStage;

pub struct WorkerPool {
    pub(super) cfg: WorkerConfig,
    idle: Mutex<Vec<(PythonWorker, Instant)>>,
}

impl WorkerPool {
    pub fn new(cfg: WorkerConfig) -> WorkerPool {
        WorkerPool {
            cfg,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A worker for one task: an idle one if there is one, else one started on first use.
    /// What the task's calls print goes to `log`.
    pub fn checkout<'a>(&'a self, task: &str, log: &'a TaskLog) -> Checkout<'a> {
        let worker = self.lock().pop().map(|(w, _)| w);
        if let Some(w) = &worker {
            w.set_task(task);
        }
        Checkout {
            pool: self,
            worker,
            task: task.to_string(),
            log,
        }
    }

    /// Kill workers idle for longer than `after`; returns how many.
    pub fn reap_idle(&self, after: Duration) -> usize {
        let mut idle = self.lock();
        let before = idle.len();
        idle.retain(|(_, since)| since.elapsed() < after);
        before - idle.len()
    }

    pub fn idle_workers(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PythonWorker, Instant)>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A task's worker; goes back to the pool when dropped (unless it had to be killed).
pub struct Checkout<'a> {
    pool: &'a WorkerPool,
    worker: Option<PythonWorker>,
    task: String,
    log: &'a TaskLog,
}

impl Checkout<'_> {
    /// Call the stage's function on these rows. A worker that dies is replaced and the
    /// rows sent again, once; `rows` says which rows these are, for the messages.
    pub fn call(
        &mut self,
        stage: &PythonStage,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        stop: &AtomicBool,
        rows: &str,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let step = format!("steps[{}] (python)", stage.step_index);
        let limit = stage.step.timeout_seconds.map(Duration::from_secs);
        let mut first_death: Option<String> = None;
        loop {
            let log = self.log;
            let result = self.worker(stop, limit).and_then(|w| {
                w.call(stage.function_index as u32, schema, batches, log, stop, limit)
            });
            let error = match result {
                Ok(out) => return Ok(out),
                Err(e) => e,
            };
            match error {
                CallError::Died(how) => {
                    self.worker = None;
                    if let Some(first) = first_death {
                        return Err(anyhow!(
                            "{step}: the worker running {} died twice on {rows}.\nFirst: {first}\nThen, after a restart: {how}",
                            stage.step.describe()
                        ));
                    }
                    tracing::warn!(task = %self.task, "{step}: {how}; restarting the worker and retrying {rows}");
                    first_death = Some(how);
                }
                CallError::Python { message, traceback } => {
                    let tb = if traceback.is_empty() {
                        String::new()
                    } else {
                        format!("\n{}", traceback.trim_end())
                    };
                    return Err(anyhow!("{step}: {message}, on {rows}{tb}"));
                }
                CallError::TimedOut(limit) => {
                    self.worker = None;
                    return Err(anyhow!("{step}: {} took longer than timeout_seconds ({}) on {rows}; the worker was stopped", stage.step.describe(), limit.as_secs()));
                }
                CallError::Stopped => {
                    self.worker = None;
                    return Err(anyhow!("{step}: stopped while {} ran on {rows} (the task's lease was lost or the job cancelled)", stage.step.describe()));
                }
                CallError::Other(e) => {
                    self.worker = None;
                    return Err(e.context(format!("{step}: {} on {rows}", stage.step.describe())));
                }
            }
        }
    }

    fn worker(
        &mut self,
        stop: &AtomicBool,
        limit: Option<Duration>,
    ) -> Result<&mut PythonWorker, CallError> {
        if self.worker.is_none() {
            let w = PythonWorker::start(&self.pool.cfg, &self.task, self.log, stop, limit)?;
            tracing::info!(task = %self.task, pid = w.pid(), versions = %w.versions, "python worker started");
            self.worker = Some(w);
        }
        Ok(self.worker.as_mut().expect("set above"))
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            self.pool.lock().push((w, Instant::now()));
        }
    }
}
