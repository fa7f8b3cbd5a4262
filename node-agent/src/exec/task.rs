//! Running one task: stream its units through the pipeline into output chunks, upload
//! each finished chunk, checkpoint, and commit `done/<task>` exactly once.
//!
//! Runs on a blocking thread (the work is CPU-bound); store calls go through the
//! runtime handle.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::Utc;
use fleetform_core::layout;
use fleetform_core::task::{Checkpoint, Chunk, DoneRecord, JobRecord, SkippedRecords, TaskMessage};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::task_log::AttemptLog;
use crate::input::source::{needed_columns, UnitSource};
use crate::input::units::UnitRead;
use crate::ops::python::WorkerPool;
use crate::ops::steps::StageRun;
use crate::ops::unify;
use crate::output::passthrough::{PassthroughPlan, PassthroughWriter};
use crate::output::staging::{Staged, Staging, MEMORY_STAGE_MAX};
use crate::ops::Stages;
use crate::storage::Location;
use crate::store::{self, Store};

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

/// The output chunk being written: a staged local file until it is uploaded.
struct OpenChunk {
    first_unit: usize,
    staged: PathBuf,
    writer: Option<ChunkWriter>,
    rows: u64,
    /// Where the task resumes if this chunk is lost.
    resume: Resume,
}

enum ChunkWriter {
    /// Every column encoded from Arrow.
    Arrow(ArrowWriter<Staging>),
    /// Unchanged columns copied as compressed chunks (see `passthrough`).
    Passthrough(PassthroughWriter),
}

pub fn run_task(node: &NodeContext, job: &JobContext, msg: &TaskMessage, flags: &TaskFlags) -> Result<Outcome> {
    let log = AttemptLog::new(&node.node_id, msg);
    let outcome = run_attempt(node, job, msg, flags, &log);
    log.save(&node.store, &node.handle, true); // however the attempt ended: a failed one's prints explain it
    outcome
}

fn run_attempt(node: &NodeContext, job: &JobContext, msg: &TaskMessage, flags: &TaskFlags, log: &AttemptLog) -> Result<Outcome> {
    let started = Instant::now();
    let h = &node.handle;
    let job_id = &msg.job_id;
    let task_id = &msg.task_id;
    if h.block_on(node.store.exists(&layout::done(job_id, task_id)))? {
        return Ok(Outcome::AlreadyDone);
    }
    let checkpoint: Option<Checkpoint> = h.block_on(node.store.get_json(&layout::checkpoint(job_id, task_id)))?;
    let (mut next_unit, mut chunks, mut skipped) = match &checkpoint {
        Some(cp) => (cp.next_unit, cp.chunks.clone(), cp.skipped.clone()),
        None => (0, Vec::new(), SkippedRecords::default()),
    };
    let from_checkpoint = next_unit;
    let spec = &job.record.spec;
    let mut source = UnitSource::open(&msg.source, spec, job.input.clone(), h)?;
    let units = source.units();
    let mut rows_in = checkpoint_rows_in(&checkpoint, &msg.source, units);
    let stage_dir = node.spill_dir.join(layout::path_component(job_id));
    std::fs::create_dir_all(&stage_dir).with_context(|| format!("cannot create spill directory {}", stage_dir.display()))?;

    let native = job.stages.native_only();
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(spec.output.zstd_level)?))
        .set_max_row_group_row_count(None); // one row group per input unit: we flush
    for col in job.stages.text_columns() {
        props = props.set_column_dictionary_enabled(col.as_str().into(), false);
    }
    let props = props.build();
    // A python step may change any column: passthrough only for native steps.
    let passthrough = match (&source, native) {
        (UnitSource::Parquet(p), Some(pipeline)) if spec.output.passthrough => PassthroughPlan::new(&p.meta, pipeline, &props),
        _ => None,
    };
    read_only_needed_columns(&mut source, native, passthrough.as_ref())?;
    let mut python = job.stages.has_python().then(|| PythonUnits {
        run: StageRun::new(&job.stages, job.python.as_ref(), task_id, &log.output, &flags.stop),
        schema: None,
    });
    if let Some(plan) = &passthrough {
        tracing::debug!(task = %task_id, ?plan, "passthrough");
    }
    let mut open: Option<OpenChunk> = None;
    let mut uploads = Uploads::default();
    let mut rows_this_attempt = 0u64;
    let mut processed = 0usize;
    // A stream's units are known only at its end: `finished` is set by its last unit.
    let mut finished = units.is_some_and(|n| next_unit >= n);
    while !finished {
        if flags.stop.load(Ordering::SeqCst) {
            discard(open.take());
            uploads.abandon();
            return Ok(Outcome::Stopped);
        }
        if node.drain.load(Ordering::SeqCst) {
            // Keep every finished unit: close the chunk early, finish every upload and
            // record where to resume.
            if let Some(c) = open.take() {
                finish_chunk(node, job, task_id, c, next_unit, &mut uploads)?;
            }
            chunks.extend(uploads.wait_all(h)?);
            log.save(&node.store, &node.handle, false);
            let cp = write_checkpoint(node, job_id, task_id, next_unit, &chunks, rows_in, &skipped)?;
            return Ok(Outcome::Interrupted(cp));
        }
        let (unit_started, rows_before) = (Instant::now(), rows_in);
        let chunk = open.get_or_insert_with(|| OpenChunk {
            first_unit: next_unit,
            staged: stage_dir.join(format!("{task_id}-{next_unit:05}.inprogress")),
            writer: None,
            rows: 0,
            resume: Resume { unit: next_unit, rows_in, skipped: skipped.clone() },
        });
        if let (Some(plan), UnitSource::Parquet(p), Some(pipeline)) = (&passthrough, &mut source, native) {
            if chunk.writer.is_none() {
                chunk.writer = Some(ChunkWriter::Passthrough(PassthroughWriter::create(chunk.staging(job)?, plan, props.clone())?));
            }
            let Some(ChunkWriter::Passthrough(w)) = chunk.writer.as_mut() else { unreachable!("set above") };
            let input = p.row_group(next_unit, h)?;
            let rows = w.write_row_group(input, &p.meta, p.first + next_unit, p.batch, pipeline)?;
            rows_in += rows;
            rows_this_attempt += rows;
            chunk.rows += rows;
            finished = units.is_some_and(|n| next_unit + 1 >= n);
        } else if let Some(py) = python.as_mut() {
            let unit = format!("unit {next_unit} of task {task_id} ({})", msg.source.describe());
            let read = py.run_unit(&mut source, next_unit, unit, h, chunk, &props, job)?;
            rows_in += read.rows;
            rows_this_attempt += read.rows;
            finished = read.last;
            note_skipped(task_id, &mut skipped, read.skipped);
        } else {
            let pipeline = native.expect("a job without python steps is one native pipeline");
            let read = source.read_unit(next_unit, h, &mut |batch: RecordBatch| {
                let out = pipeline.apply(batch)?;
                if out.num_rows() == 0 {
                    return Ok(());
                }
                if chunk.writer.is_none() {
                    chunk.writer = Some(ChunkWriter::Arrow(ArrowWriter::try_new(chunk.staging(job)?, out.schema(), Some(props.clone()))?));
                }
                chunk.rows += out.num_rows() as u64;
                let Some(ChunkWriter::Arrow(w)) = chunk.writer.as_mut() else { unreachable!("set above") };
                w.write(&out)?;
                Ok(())
            })?;
            rows_in += read.rows;
            rows_this_attempt += read.rows;
            finished = read.last;
            note_skipped(task_id, &mut skipped, read.skipped);
            if let Some(ChunkWriter::Arrow(w)) = chunk.writer.as_mut() {
                w.flush()?; // row-group boundary = unit boundary
            }
        }
        processed += 1;
        next_unit += 1;
        tracing::debug!(task = %task_id, unit = next_unit - 1, "unit done");
        node.units_done.fetch_add(1, Ordering::Relaxed);
        crate::metrics::unit_done(rows_in - rows_before, unit_started.elapsed());
        let full = chunk.rows >= spec.output.max_rows_per_file() || spec.output.target_file_bytes.is_some_and(|t| staged_bytes(chunk) >= t);
        if full || finished {
            let c = open.take().expect("open chunk");
            finish_chunk(node, job, task_id, c, next_unit, &mut uploads)?;
            if !finished {
                // Resume after the uploaded chunks; a chunk still uploading is redone.
                chunks.extend(uploads.collect_finished(h)?);
                let at = uploads.resume_point().unwrap_or(Resume { unit: next_unit, rows_in, skipped: skipped.clone() });
                log.save(&node.store, &node.handle, false);
                write_checkpoint(node, job_id, task_id, at.unit, &chunks, at.rows_in, &at.skipped)?;
            }
        }
    }
    if let Some(c) = open.take() {
        finish_chunk(node, job, task_id, c, next_unit, &mut uploads)?;
    }
    flags.computed.notify_one();
    chunks.extend(uploads.wait_all(h)?);
    let rows_out: u64 = chunks.iter().map(|c| c.rows).sum();
    let record = DoneRecord {
        task_id: task_id.clone(),
        node_id: node.node_id.clone(),
        chunks,
        rows_in,
        rows_out,
        units_processed: processed,
        units_from_checkpoint: from_checkpoint,
        seconds: started.elapsed().as_secs_f64(),
        finished_at: Utc::now(),
        skipped,
    };
    node.rows_done.fetch_add(rows_this_attempt, Ordering::Relaxed);
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
fn checkpoint_rows_in(cp: &Option<Checkpoint>, src: &fleetform_core::task::TaskSource, units: Option<usize>) -> u64 {
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

/// Close the writer and start uploading the staged file under its deterministic name;
/// the task goes on computing while it uploads (`Uploads`).
fn finish_chunk(node: &NodeContext, job: &JobContext, task_id: &str, c: OpenChunk, end_unit: usize, uploads: &mut Uploads) -> Result<()> {
    let staging = match c.writer {
        None => return Ok(()), // every row of these units was filtered out: no file
        Some(ChunkWriter::Arrow(w)) => w.into_inner().context("cannot finish the output file")?,
        Some(ChunkWriter::Passthrough(w)) => w.close().context("cannot finish the output file")?,
    };
    let staged = staging.finish()?;
    let name = layout::part(task_id, c.first_unit, end_unit);
    let chunk = Chunk { file: name.clone(), rows: c.rows, first_unit: c.first_unit, end_unit };
    let output = job.output.clone();
    let upload = node.handle.spawn(async move {
        let (bytes, in_memory) = (staged.bytes(), matches!(staged, Staged::Memory { .. }));
        let done = store::upload_staged(&output, &name, staged).await.with_context(|| format!("cannot upload {name} to {}", output.uri));
        Staged::uploaded(bytes, in_memory);
        done
    });
    uploads.start(&node.handle, Uploading { chunk, before: c.resume, upload })
}

/// Where a task can resume: a unit boundary and the counts up to it.
#[derive(Clone)]
struct Resume {
    unit: usize,
    rows_in: u64,
    skipped: SkippedRecords,
}

/// An output chunk whose upload runs in the background.
struct Uploading {
    chunk: Chunk,
    /// Where to resume if this upload does not finish: the chunk's first unit.
    before: Resume,
    upload: tokio::task::JoinHandle<Result<u64>>,
}

/// A task's uploads, so that a chunk uploads while the next one is computed. At most
/// `UPLOADS_IN_FLIGHT`: staged files wait on the spill disk, and a slow store must slow
/// the task down, not fill the disk.
#[derive(Default)]
struct Uploads {
    pending: VecDeque<Uploading>,
    /// Uploaded, in unit order, not yet handed to the task's chunk list.
    done: Vec<Chunk>,
}

const UPLOADS_IN_FLIGHT: usize = 2;

impl Uploads {
    fn start(&mut self, h: &tokio::runtime::Handle, u: Uploading) -> Result<()> {
        while self.pending.len() >= UPLOADS_IN_FLIGHT {
            self.wait_oldest(h)?;
        }
        self.pending.push_back(u);
        Ok(())
    }

    fn wait_oldest(&mut self, h: &tokio::runtime::Handle) -> Result<()> {
        let u = self.pending.pop_front().expect("an upload");
        h.block_on(u.upload).context("an upload panicked")??;
        self.done.push(u.chunk);
        Ok(())
    }

    /// The chunks uploaded so far, in order (stopping at the first still uploading).
    fn collect_finished(&mut self, h: &tokio::runtime::Handle) -> Result<Vec<Chunk>> {
        while self.pending.front().is_some_and(|u| u.upload.is_finished()) {
            self.wait_oldest(h)?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// Every chunk, once all uploads have finished.
    fn wait_all(&mut self, h: &tokio::runtime::Handle) -> Result<Vec<Chunk>> {
        while !self.pending.is_empty() {
            self.wait_oldest(h)?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    /// Where to resume if the uploads still running are lost.
    fn resume_point(&self) -> Option<Resume> {
        self.pending.front().map(|u| u.before.clone())
    }

    /// Stopped (lease lost, job cancelled): the uploads are abandoned with the attempt.
    fn abandon(&mut self) {
        for u in self.pending.drain(..) {
            u.upload.abort();
        }
    }
}

/// Bytes written to the staged file so far.
fn staged_bytes(c: &OpenChunk) -> u64 {
    match &c.writer {
        Some(ChunkWriter::Arrow(w)) => (w.bytes_written() + w.in_progress_size()) as u64,
        Some(ChunkWriter::Passthrough(w)) => w.bytes_written(),
        None => 0,
    }
}

/// Fetch and decode only the input columns the task needs (see `row_groups`): for a
/// native pipeline, what its steps read and what it hands on; with passthrough, what it
/// decodes and what it copies; python steps may use any column, so they get all.
fn read_only_needed_columns(source: &mut UnitSource, native: Option<&crate::ops::Pipeline>, plan: Option<&PassthroughPlan>) -> Result<()> {
    let (UnitSource::Parquet(p), Some(pipeline)) = (source, native) else { return Ok(()) };
    let (fetch_roots, decode) = match plan {
        Some(plan) => {
            let mut fetch: Vec<usize> = plan.decoded().iter().copied().chain(plan.copied()).collect();
            fetch.sort_unstable();
            fetch.dedup();
            (fetch, plan.decoded().to_vec())
        }
        None => {
            let needed = needed_columns(&p.meta, pipeline)?;
            (needed.clone(), needed)
        }
    };
    let fetch = p.leaves_of(&fetch_roots);
    p.read_only(fetch, &decode);
    Ok(())
}

fn discard(c: Option<OpenChunk>) {
    if let Some(c) = c {
        drop(c.writer);
        let _ = std::fs::remove_file(&c.staged); // spilled to the disk, if it was
    }
}

impl OpenChunk {
    /// Where this chunk's bytes wait until it is complete: the spill disk for a local
    /// output (renamed into place), memory first for an object store (`staging`).
    fn staging(&self, job: &JobContext) -> Result<Staging> {
        let memory = if job.output.local_dir.is_some() { 0 } else { MEMORY_STAGE_MAX };
        Staging::new(self.staged.clone(), memory).with_context(|| format!("cannot stage {}", self.staged.display()))
    }
}

fn write_checkpoint(
    node: &NodeContext,
    job_id: &str,
    task_id: &str,
    next_unit: usize,
    chunks: &[Chunk],
    rows_in: u64,
    skipped: &SkippedRecords,
) -> Result<Checkpoint> {
    let cp = Checkpoint {
        task_id: task_id.to_string(),
        next_unit,
        chunks: chunks.to_vec(),
        node_id: node.node_id.clone(),
        written_at: Utc::now(),
        rows_in: Some(rows_in),
        skipped: skipped.clone(),
    };
    node.handle.block_on(node.store.put_json(&layout::checkpoint(job_id, task_id), &cp))?;
    crate::metrics::checkpoint_written();
    Ok(cp)
}

/// A task of a job with python steps: its stages, and the schema its output has had so
/// far (a task's output parquet has one schema).
struct PythonUnits<'a> {
    run: StageRun<'a>,
    schema: Option<SchemaRef>,
}

impl PythonUnits<'_> {
    /// Run unit `u` through the stages into the chunk. The unit's output is gathered
    /// first, so a column a python step typed `null` in one batch and `string` in another
    /// is written as `string`. Returns what the source read.
    #[allow(clippy::too_many_arguments)]
    fn run_unit(
        &mut self,
        source: &mut UnitSource,
        u: usize,
        unit: String,
        h: &tokio::runtime::Handle,
        chunk: &mut OpenChunk,
        props: &WriterProperties,
        job: &JobContext,
    ) -> Result<UnitRead> {
        let mut outs: Vec<RecordBatch> = Vec::new();
        self.run.start_unit(unit);
        let run = &mut self.run;
        let mut gather = |b| {
            outs.push(b);
            Ok(())
        };
        let read = source.read_unit(u, h, &mut |batch| run.push(batch, &mut gather))?;
        run.finish_unit(&mut gather)?;
        outs.retain(|b| b.num_rows() > 0);
        let Some(first) = outs.first() else { return Ok(read) };
        let mut target = self.schema.clone().unwrap_or_else(|| first.schema());
        for b in &outs {
            target = unify::unify(&target, &b.schema()).map_err(|e| schema_error(job, &e))?;
        }
        if let Some(before) = &self.schema {
            if *before != target {
                let e = format!("earlier units wrote [{}], this one needs [{}]", unify::describe(before), unify::describe(&target));
                return Err(schema_error(job, &e));
            }
        }
        self.schema = Some(target.clone());
        if chunk.writer.is_none() {
            chunk.writer = Some(ChunkWriter::Arrow(ArrowWriter::try_new(chunk.staging(job)?, target.clone(), Some(props.clone()))?));
        }
        let Some(ChunkWriter::Arrow(w)) = chunk.writer.as_mut() else { unreachable!("python jobs write with Arrow") };
        for b in outs {
            chunk.rows += b.num_rows() as u64;
            w.write(&unify::conform(b, &target).map_err(|e| schema_error(job, &e))?)?;
        }
        w.flush()?; // row-group boundary = unit boundary
        Ok(read)
    }
}

/// The task's output would need two schemas: name the python steps and the fix.
fn schema_error(job: &JobContext, detail: &str) -> anyhow::Error {
    let steps: Vec<String> = job.stages.python_stages().map(|s| format!("steps[{}] {}", s.step_index, s.step.describe())).collect();
    anyhow::anyhow!(
        "the output of the python step(s) {} changes schema within the task: {detail}; a task's output has one schema: \
         give such columns one type in the function (e.g. `batch[\"x\"] = batch[\"x\"].astype(\"string\")`)",
        steps.join(", ")
    )
}
