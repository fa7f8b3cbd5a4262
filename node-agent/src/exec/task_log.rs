//! A task attempt's output (what its python steps print or log), saved to the store with
//! the job: `jobs/<job>/logs/<task>/<attempt>/<seq>.log`, one segment at each checkpoint
//! and one at the attempt's end, so `fleetform job logs` has it after any later run, and
//! `fleetform run` can show it as it comes. Every attempt keeps its own: a retry that
//! resumes from a checkpoint prints only for the units it runs, so replacing the earlier
//! attempt's output would lose the rest.

use chrono::Utc;
use fleetform_core::layout;
use fleetform_core::task::TaskMessage;

use crate::ops::python::TaskLog;
use fleetform_runtime::store::Store;

pub struct AttemptLog {
    pub output: TaskLog,
    job_id: String,
    task_id: String,
    /// `20261207T195501123Z-<node>`: attempts sort by their start.
    attempt: String,
}

impl AttemptLog {
    pub fn new(node_id: &str, msg: &TaskMessage) -> AttemptLog {
        AttemptLog {
            output: TaskLog::new(),
            job_id: msg.job_id.clone(),
            task_id: msg.task_id.clone(),
            attempt: format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%S%3fZ"), layout::path_component(node_id)),
        }
    }

    /// Save what was printed since the last save (`last`: the attempt ends). A store
    /// error costs only the log: the attempt's data and commit do not wait on it.
    pub fn save(&self, store: &Store, handle: &tokio::runtime::Handle, last: bool) {
        let Some((seq, text)) = self.output.take_segment(last) else { return };
        let key = layout::task_log(&self.job_id, &self.task_id, &self.attempt, seq);
        if let Err(e) = handle.block_on(store.put_bytes(&key, text.into_bytes())) {
            tracing::warn!(task = %self.task_id, "cannot save the python steps' output to {}/{key}: {e:#}", store.uri());
        }
    }
}
