//! Running one task: stream its units through the pipeline into output chunks, upload
//! each finished chunk, checkpoint, and commit `done/<task>` exactly once.
//!
//! Runs on a blocking thread (the work is CPU-bound); store calls go through the
//! runtime handle.

mod unit_path;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use chrono::Utc;
use fleetform_core::layout;
use fleetform_core::task::{Checkpoint, Chunk, DoneRecord, JobRecord, SkippedRecords, TaskMessage, TaskSource};

use super::task_log::AttemptLog;
use crate::input::source::UnitSource;
use crate::input::units::UnitRead;
use crate::ops::python::WorkerPool;
use crate::ops::Stages;
use crate::output::{writer, Resume, TaskOutput};
use fleetform_runtime::location::Location;
use fleetform_runtime::store::Store;
use unit_path::UnitPath;

/// Everything a task needs about its job, built once per job per node.
pub struct JobContext {
    pub record: JobRecord,
    pub stages: Stages,
    /// The job's Python workers on this node, when it has python steps.
    pub python: Option<WorkerPool>,
    pub output: Location,
    /// How jsonl/json/csv/text records are parsed; None for parquet and the generator.
    pub input: Option<Arc<crate::input::JobInput>>,
}

/// Per-node facilities shared by all tasks.
#[derive(Clone)]
pub struct NodeContext {
    pub store: Store,
    pub node_id: String,
    pub spill_dir: PathBuf,
    pub handle: tokio::runtime::Handle,
    /// Hard drain (spot notice, SIGTERM): stop at the next unit boundary, checkpoint.
    pub drain: Arc<AtomicBool>,
    pub rows_done: Arc<AtomicU64>,
    pub units_done: Arc<AtomicU64>,
}

/// Signals specific to one task's attempt.
#[derive(Default)]
pub struct TaskFlags {
    /// The lease was lost or the job was cancelled: stop, commit nothing.
    pub stop: AtomicBool,
    /// Set by the task: it has computed everything, only its uploads and commit remain.
    pub computed: tokio::sync::Notify,
}

#[derive(Debug)]
pub enum Outcome {
    Done(DoneRecord),
    /// Another attempt committed this task already.
    AlreadyDone,
    /// Drained: progress is in the checkpoint; the task goes back to the queue.
    Interrupted(Checkpoint),
    /// Stopped without committing (lease lost, job cancelled).
    Stopped,
}

pub fn run_task(node: &NodeContext, job: &JobContext, msg: &TaskMessage, flags: &TaskFlags) -> Result<Outcome> {
    let log = AttemptLog::new(&node.node_id, msg);
    let outcome = run_attempt(node, job, msg, flags, &log);
    log.save(&node.store, &node.handle, true); // however the attempt ended: a failed one's prints explain it
    outcome
}

fn run_attempt(node: &NodeContext, job: &JobContext, msg: &TaskMessage, flags: &TaskFlags, log: &AttemptLog) -> Result<Outcome> {
    let started = Instant::now();
    let (h, job_id, task_id) = (&node.handle, &msg.job_id, &msg.task_id);
    if h.block_on(node.store.exists(&layout::done(job_id, task_id)))? {
        return Ok(Outcome::AlreadyDone);
    }
    let checkpoint: Option<Checkpoint> = h.block_on(node.store.get_json(&layout::checkpoint(job_id, task_id)))?;
    let spec = &job.record.spec;
    let mut source = UnitSource::open(&msg.source, spec, job.input.clone(), &node.store.conn, h)?;
    let units = source.units();
    let mut progress = Progress::resume(checkpoint.as_ref(), &msg.source, units);
    let stage_dir = node.spill_dir.join(layout::path_component(job_id));
    std::fs::create_dir_all(&stage_dir).with_context(|| format!("cannot create spill directory {}", stage_dir.display()))?;
    let props = writer::properties(spec.output.zstd_level, &job.stages.text_columns())?;
    let mut path = UnitPath::choose(job, &mut source, &props, task_id, log, flags)?;
    if let UnitPath::Passthrough { plan, .. } = &path {
        tracing::debug!(task = %task_id, ?plan, "passthrough");
    }
    let mut out = TaskOutput::new(&job.output, h, task_id, stage_dir);
    // A stream's units are known only at its end: `finished` is set by its last unit.
    let mut finished = units.is_some_and(|n| progress.next_unit >= n);
    while !finished {
        if flags.stop.load(Ordering::SeqCst) {
            out.abandon();
            return Ok(Outcome::Stopped);
        }
        if node.drain.load(Ordering::SeqCst) {
            return drain(node, msg, out, progress, log);
        }
        let (unit_started, rows_before, u) = (Instant::now(), progress.rows_in, progress.next_unit);
        let chunk = out.chunk(|| progress.here());
        let read = path.run_unit(&mut source, u, || format!("unit {u} of task {task_id} ({})", msg.source.describe()), chunk, &props, h)?;
        finished = read.last;
        progress.unit_done(task_id, read);
        tracing::debug!(task = %task_id, unit = u, "unit done");
        node.units_done.fetch_add(1, Ordering::Relaxed);
        crate::metrics::unit_done(progress.rows_in - rows_before, unit_started.elapsed());
        if out.chunk_full(&spec.output) || finished {
            out.close_chunk(progress.next_unit)?;
            if !finished {
                checkpoint_uploaded(node, msg, &mut out, &mut progress, log)?;
            }
        }
    }
    out.close_chunk(progress.next_unit)?;
    flags.computed.notify_one();
    progress.chunks.extend(out.wait_all()?);
    commit(node, msg, progress, started, log)
}

/// What the task has done: the units behind it (this attempt's and the checkpoint's), the
/// chunks uploaded, the rows read.
struct Progress {
    next_unit: usize,
    chunks: Vec<Chunk>,
    skipped: SkippedRecords,
    rows_in: u64,
    rows_this_attempt: u64,
    processed: usize,
    from_checkpoint: usize,
}

impl Progress {
    fn resume(checkpoint: Option<&Checkpoint>, src: &TaskSource, units: Option<usize>) -> Progress {
        let (next_unit, chunks, skipped) = match checkpoint {
            Some(cp) => (cp.next_unit, cp.chunks.clone(), cp.skipped.clone()),
            None => (0, Vec::new(), SkippedRecords::default()),
        };
        let rows_in = checkpoint_rows_in(checkpoint, src, units);
        Progress { next_unit, chunks, skipped, rows_in, rows_this_attempt: 0, processed: 0, from_checkpoint: next_unit }
    }

    /// The unit boundary the task is at.
    fn here(&self) -> Resume {
        Resume { unit: self.next_unit, rows_in: self.rows_in, skipped: self.skipped.clone() }
    }

    fn unit_done(&mut self, task_id: &str, read: UnitRead) {
        self.rows_in += read.rows;
        self.rows_this_attempt += read.rows;
        note_skipped(task_id, &mut self.skipped, read.skipped);
        self.processed += 1;
        self.next_unit += 1;
    }
}

/// Drained: keep every finished unit: close the chunk early, finish every upload and
/// record where to resume.
fn drain(node: &NodeContext, msg: &TaskMessage, mut out: TaskOutput, mut progress: Progress, log: &AttemptLog) -> Result<Outcome> {
    out.close_chunk(progress.next_unit)?;
    progress.chunks.extend(out.wait_all()?);
    log.save(&node.store, &node.handle, false);
    let cp = write_checkpoint(node, msg, &progress.here(), &progress.chunks)?;
    Ok(Outcome::Interrupted(cp))
}

/// Resume after the uploaded chunks; a chunk still uploading is redone.
fn checkpoint_uploaded(node: &NodeContext, msg: &TaskMessage, out: &mut TaskOutput, progress: &mut Progress, log: &AttemptLog) -> Result<()> {
    progress.chunks.extend(out.uploaded()?);
    let at = out.resume_point().unwrap_or_else(|| progress.here());
    log.save(&node.store, &node.handle, false);
    write_checkpoint(node, msg, &at, &progress.chunks)?;
    Ok(())
}

/// Every chunk is uploaded: commit `done/<task>` once (another attempt may have).
fn commit(node: &NodeContext, msg: &TaskMessage, progress: Progress, started: Instant, log: &AttemptLog) -> Result<Outcome> {
    let (h, job_id, task_id) = (&node.handle, &msg.job_id, &msg.task_id);
    let rows_out: u64 = progress.chunks.iter().map(|c| c.rows).sum();
    let record = DoneRecord {
        task_id: task_id.clone(),
        node_id: node.node_id.clone(),
        chunks: progress.chunks,
        rows_in: progress.rows_in,
        rows_out,
        units_processed: progress.processed,
        units_from_checkpoint: progress.from_checkpoint,
        seconds: started.elapsed().as_secs_f64(),
        finished_at: Utc::now(),
        skipped: progress.skipped,
    };
    node.rows_done.fetch_add(progress.rows_this_attempt, Ordering::Relaxed);
    // Before the commit: a reader that sees the task done finds its whole output.
    log.save(&node.store, &node.handle, true);
    if h.block_on(node.store.create_json(&layout::done(job_id, task_id), &record))? {
        let _ = h.block_on(node.store.delete(&layout::checkpoint(job_id, task_id)));
        Ok(Outcome::Done(record))
    } else {
        Ok(Outcome::AlreadyDone)
    }
}

/// Rows the checkpointed units held: recorded in the checkpoint; for checkpoints of older
/// agents, estimated by unit share (reporting only).
fn checkpoint_rows_in(cp: Option<&Checkpoint>, src: &TaskSource, units: Option<usize>) -> u64 {
    let Some(cp) = cp else { return 0 };
    match (cp.rows_in, units) {
        (Some(rows), _) => rows,
        (None, Some(n)) if n > 0 => src.rows() * cp.next_unit as u64 / n as u64,
        (None, _) => 0,
    }
}

/// Count and log malformed records skipped (`input.on_error: skip`): each is logged up to
/// the examples the done record keeps, so a file of bad lines does not flood the log.
fn note_skipped(task_id: &str, skipped: &mut SkippedRecords, messages: Vec<String>) {
    for m in messages {
        if skipped.count < SkippedRecords::EXAMPLES as u64 {
            tracing::warn!(task = %task_id, "skipped a malformed record (input.on_error: skip): {m}");
        }
        skipped.add(m);
    }
}

fn write_checkpoint(node: &NodeContext, msg: &TaskMessage, at: &Resume, chunks: &[Chunk]) -> Result<Checkpoint> {
    let cp = Checkpoint {
        task_id: msg.task_id.clone(),
        next_unit: at.unit,
        chunks: chunks.to_vec(),
        node_id: node.node_id.clone(),
        written_at: Utc::now(),
        rows_in: Some(at.rows_in),
        skipped: at.skipped.clone(),
    };
    node.handle.block_on(node.store.put_json(&layout::checkpoint(&msg.job_id, &msg.task_id), &cp))?;
    crate::metrics::checkpoint_written();
    Ok(cp)
}
