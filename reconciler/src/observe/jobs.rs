//! The jobs section of the view, read incrementally: job records, task lists, done and
//! failure records never change once written (create-if-absent), so each is read once;
//! a finished job is not read again. A round costs, per unfinished job, two LISTs and a
//! HEAD (plus one GET per record new since the last round), whatever the store holds.

use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use chrono::{DateTime, Utc};
use fleetform_runtime::store::Store;
use fleetform_core::layout;
use fleetform_core::task::{DoneRecord, FailureRecord, JobRecord, Manifest, NodeHeartbeat, TaskMessage};
use futures::future::try_join_all;

use super::model::{FailureView, JobState, JobView, LogLine};
use super::LOG_LINES;

/// Jobs read at once: bounded, so a store with hundreds of unfinished jobs is not asked
/// for a thousand objects in the same instant.
const CONCURRENT_JOBS: usize = 16;

/// What the observer remembers of one job between rounds.
pub struct CachedJob {
    record: JobRecord,
    /// Input rows of each task (from `tasks.json`).
    task_rows: HashMap<String, u64>,
    /// Done tasks and their log line (read once each).
    done: BTreeMap<String, LogLine>,
    failed: BTreeMap<String, FailureRecord>,
    cancelled: bool,
    manifest: Option<Manifest>,
}

#[derive(Default)]
pub struct JobCache {
    jobs: BTreeMap<String, CachedJob>,
}

impl CachedJob {
    fn rows_done(&self) -> u64 {
        self.done.keys().filter_map(|t| self.task_rows.get(t)).sum()
    }

    /// Nothing about it can change any more: it has its manifest, or it was cancelled
    /// and no node still holds one of its tasks.
    fn settled(&self, running: u64) -> bool {
        self.manifest.is_some() || (self.cancelled && running == 0)
    }
}

impl JobCache {
    /// Read what is new in the store: new jobs, and the records of unfinished ones.
    pub async fn refresh(&mut self, store: &Store, running: &HashMap<String, u64>) -> Result<()> {
        let ids: Vec<String> = store
            .list_dirs(layout::jobs_prefix())
            .await?
            .into_iter()
            .filter_map(|d| d.trim_end_matches('/').rsplit('/').next().map(str::to_string))
            .collect();
        let new: Vec<&String> = ids.iter().filter(|id| !self.jobs.contains_key(*id)).collect();
        for chunk in new.chunks(CONCURRENT_JOBS) {
            for job in try_join_all(chunk.iter().map(|id| load(store, id))).await?.into_iter().flatten() {
                self.jobs.insert(job.record.job_id.clone(), job);
            }
        }
        let mut open: Vec<&mut CachedJob> =
            self.jobs.values_mut().filter(|j| !j.settled(running.get(&j.record.job_id).copied().unwrap_or(0))).collect();
        for chunk in open.chunks_mut(CONCURRENT_JOBS) {
            try_join_all(chunk.iter_mut().map(|j| update(store, j))).await?;
        }
        Ok(())
    }

    /// The views, newest job first. `rates` gives rows/s over a window where known.
    pub fn views(&self, running: &HashMap<String, u64>, rates: &HashMap<String, (f64, f64)>, now: DateTime<Utc>) -> Vec<JobView> {
        let mut views: Vec<JobView> =
            self.jobs.values().map(|j| view(j, running.get(&j.record.job_id).copied().unwrap_or(0), rates.get(&j.record.job_id), now)).collect();
        views.sort_by(|a, b| b.submitted_at.cmp(&a.submitted_at).then_with(|| b.job_id.cmp(&a.job_id)));
        views
    }
}

/// A job seen for the first time: its record and task list. None while it is being
/// submitted (the task list is written before the record).
async fn load(store: &Store, id: &str) -> Result<Option<CachedJob>> {
    let Some(record) = store.get_json::<JobRecord>(&layout::job(id)).await? else { return Ok(None) };
    let tasks: Vec<TaskMessage> = store.get_json(&layout::tasks(id)).await?.unwrap_or_default();
    let task_rows = tasks.iter().map(|t| (t.task_id.clone(), t.source.rows())).collect();
    Ok(Some(CachedJob { record, task_rows, done: BTreeMap::new(), failed: BTreeMap::new(), cancelled: false, manifest: None }))
}

fn task_of(key: &str) -> Option<String> {
    key.rsplit('/').next()?.strip_suffix(".json").map(str::to_string)
}

/// One round of an unfinished job: new done and failure records, cancel, manifest.
async fn update(store: &Store, j: &mut CachedJob) -> Result<()> {
    let id = j.record.job_id.clone();
    let (done_prefix, failed_prefix, cancel) = (layout::done_prefix(&id), layout::failed_prefix(&id), layout::cancel(&id));
    let (done_keys, failed_keys, cancelled) = futures::try_join!(store.list(&done_prefix), store.list(&failed_prefix), store.exists(&cancel))?;
    j.cancelled = cancelled;
    let new_done: Vec<String> =
        done_keys.iter().filter_map(|k| task_of(k)).filter(|t| !j.done.contains_key(t)).map(|t| layout::done(&id, &t)).collect();
    let records = try_join_all(new_done.iter().map(|k| store.get_json::<DoneRecord>(k))).await?;
    for d in records.into_iter().flatten() {
        let line = format!(
            "{} done on {}: {} rows in, {} out, {} files, {:.2}s ({} units, {} from checkpoint)",
            d.task_id,
            d.node_id,
            d.rows_in,
            d.rows_out,
            d.chunks.len(),
            d.seconds,
            d.units_processed,
            d.units_from_checkpoint
        );
        j.done.insert(d.task_id.clone(), LogLine { at: d.finished_at, line });
    }
    let new_failed: Vec<String> =
        failed_keys.iter().filter_map(|k| task_of(k)).filter(|t| !j.failed.contains_key(t)).map(|t| layout::failed(&id, &t)).collect();
    let records = try_join_all(new_failed.iter().map(|k| store.get_json::<FailureRecord>(k))).await?;
    for f in records.into_iter().flatten() {
        j.failed.insert(f.task_id.clone(), f);
    }
    // The manifest can only exist once every task is done or failed: no GET before.
    if j.done.len() + j.failed.len() >= j.record.tasks {
        j.manifest = store.get_json(&layout::success(&id)).await?;
    }
    Ok(())
}

fn state_of(j: &CachedJob, running: u64) -> JobState {
    match &j.manifest {
        _ if j.cancelled => JobState::Cancelled,
        Some(m) if !m.failed_tasks.is_empty() => JobState::FinishedWithFailures,
        Some(m) if !m.published() => JobState::NotPublished,
        Some(_) => JobState::Succeeded,
        None if j.done.is_empty() && j.failed.is_empty() && running == 0 => JobState::Queued,
        None => JobState::Running,
    }
}

fn log_of(j: &CachedJob) -> Vec<LogLine> {
    let r = &j.record;
    let mut lines = vec![LogLine { at: r.submitted_at, line: format!("submitted {} tasks, {} rows", r.tasks, r.total_rows) }];
    lines.extend(j.done.values().cloned());
    lines.extend(j.failed.values().map(|f| LogLine {
        at: f.at,
        line: format!("{} FAILED on {} after {} attempts: {} ({})", f.task_id, f.node_id, f.failures, f.error, f.input),
    }));
    if let Some(m) = &j.manifest {
        lines.push(LogLine { at: m.finished_at, line: format!("finished: {} files, {} rows", m.files.len(), m.total_rows) });
    }
    lines.sort_by_key(|l| l.at);
    lines.split_off(lines.len().saturating_sub(LOG_LINES))
}

/// `window` is (rows/s, seconds) measured over the observer's recent rounds.
fn view(j: &CachedJob, running: u64, window: Option<&(f64, f64)>, now: DateTime<Utc>) -> JobView {
    let r = &j.record;
    let state = state_of(j, running);
    let rows_done = j.rows_done();
    let finished_at = j.manifest.as_ref().map(|m| m.finished_at);
    let lifetime = (finished_at.unwrap_or(now) - r.submitted_at).num_milliseconds() as f64 / 1000.0;
    let (rate, rate_window) = match window {
        Some((rate, secs)) if !state.is_final() => (Some(*rate), Some(*secs)),
        _ if lifetime > 0.0 && rows_done > 0 => (Some(rows_done as f64 / lifetime), None),
        _ => (None, None),
    };
    let remaining_rows = r.total_rows.saturating_sub(rows_done);
    let eta = match rate {
        Some(x) if x > 0.0 && !state.is_final() => Some(remaining_rows as f64 / x),
        _ => None,
    };
    JobView {
        job_id: r.job_id.clone(),
        name: r.spec.name.clone(),
        class: r.queue_class.clone(),
        state,
        submitted_at: r.submitted_at,
        finished_at,
        tasks: r.tasks as u64,
        done: j.done.len() as u64,
        failed: j.failed.len() as u64,
        running: if state.is_final() { 0 } else { running },
        total_rows: r.total_rows,
        rows_done,
        rows_per_second: rate,
        rate_window_seconds: rate_window,
        eta_seconds: eta,
        failures: j
            .failed
            .values()
            .map(|f| FailureView { task_id: f.task_id.clone(), input: f.input.clone(), error: f.error.clone(), node_id: f.node_id.clone(), at: f.at })
            .collect(),
        log: log_of(j),
    }
}

/// Tasks each job has running, from the heartbeats (`tasks_in_flight` holds `job/task`).
pub fn running_per_job(beats: &HashMap<String, NodeHeartbeat>) -> HashMap<String, u64> {
    let mut out: HashMap<String, u64> = HashMap::new();
    for hb in beats.values().filter(|h| !h.stopped) {
        for t in &hb.tasks_in_flight {
            if let Some((job, _)) = t.split_once('/') {
                *out.entry(job.to_string()).or_default() += 1;
            }
        }
    }
    out
}
