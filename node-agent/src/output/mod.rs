//! Where a task's rows go: parquet chunks written to a staging place (`staging`), either
//! encoded from Arrow or with unchanged columns copied (`passthrough`, `writer`), then
//! uploaded under their final names while the task computes the next chunk (`upload`).

pub mod passthrough;
pub mod staging;
pub mod upload;
pub mod writer;

use std::path::PathBuf;

use anyhow::Result;
use fleetform_core::job::OutputSpec;
use fleetform_core::layout;
use fleetform_core::task::{Chunk, SkippedRecords};
use tokio::runtime::Handle;

use fleetform_runtime::location::Location;
use staging::MEMORY_STAGE_MAX;
use upload::Uploads;
use writer::OpenChunk;

/// Where a task can resume: a unit boundary and the counts up to it.
#[derive(Clone)]
pub struct Resume {
    pub unit: usize,
    pub rows_in: u64,
    pub skipped: SkippedRecords,
}

/// A task's output: the chunk being written and the chunks uploading.
pub struct TaskOutput<'a> {
    output: &'a Location,
    handle: &'a Handle,
    task_id: &'a str,
    /// The task's spill directory, where chunks are staged.
    stage_dir: PathBuf,
    open: Option<OpenChunk>,
    uploads: Uploads,
}

impl<'a> TaskOutput<'a> {
    pub fn new(output: &'a Location, handle: &'a Handle, task_id: &'a str, stage_dir: PathBuf) -> TaskOutput<'a> {
        TaskOutput { output, handle, task_id, stage_dir, open: None, uploads: Uploads::default() }
    }

    /// The chunk the next unit goes into: the open one, or a new one starting at `at()`.
    pub fn chunk(&mut self, at: impl FnOnce() -> Resume) -> &mut OpenChunk {
        let (output, stage_dir, task_id) = (self.output, &self.stage_dir, self.task_id);
        self.open.get_or_insert_with(|| {
            let resume = at();
            let staged = stage_dir.join(format!("{task_id}-{:05}.inprogress", resume.unit));
            // A local output is renamed into place from the spill disk; an object store's
            // chunk waits in memory first (`staging`).
            let memory = if output.local_dir.is_some() { 0 } else { MEMORY_STAGE_MAX };
            OpenChunk::new(resume.unit, staged, memory, resume)
        })
    }

    /// The open chunk reached the job's rows or bytes per file.
    pub fn chunk_full(&self, spec: &OutputSpec) -> bool {
        self.open.as_ref().is_some_and(|c| c.rows >= spec.max_rows_per_file() || spec.target_file_bytes.is_some_and(|t| c.staged_bytes() >= t))
    }

    /// Close the open chunk, if any, at `end_unit` and start uploading it under its
    /// deterministic name; the task goes on computing while it uploads.
    pub fn close_chunk(&mut self, end_unit: usize) -> Result<()> {
        let Some(c) = self.open.take() else { return Ok(()) };
        let (first_unit, rows, before) = (c.first_unit, c.rows, c.resume.clone());
        let Some(staged) = c.finish()? else { return Ok(()) }; // every row of these units was filtered out: no file
        let chunk = Chunk { file: layout::part(self.task_id, first_unit, end_unit), rows, first_unit, end_unit };
        self.uploads.start(self.handle, self.output, staged, chunk, before)
    }

    /// The chunks uploaded so far, in order (stopping at the first still uploading).
    pub fn uploaded(&mut self) -> Result<Vec<Chunk>> {
        self.uploads.collect_finished(self.handle)
    }

    /// Where to resume if the uploads still running are lost.
    pub fn resume_point(&self) -> Option<Resume> {
        self.uploads.resume_point()
    }

    /// Every chunk, once all uploads have finished.
    pub fn wait_all(&mut self) -> Result<Vec<Chunk>> {
        self.uploads.wait_all(self.handle)
    }

    /// Stopped (lease lost, job cancelled): drop the open chunk, abandon the uploads.
    pub fn abandon(&mut self) {
        if let Some(c) = self.open.take() {
            c.discard();
        }
        self.uploads.abandon();
    }
}
