//! The output chunk being written: parquet into a staging place (`staging`), encoded from
//! Arrow or with unchanged columns copied (`passthrough`), one row group per input unit.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::passthrough::{PassthroughPlan, PassthroughWriter};
use super::staging::{Staged, Staging};
use super::Resume;

/// The writer settings of every chunk of a task: zstd at the job's level, and no
/// dictionary for the text columns the steps write (they rarely repeat).
pub fn properties(zstd_level: i32, text_columns: &[String]) -> Result<WriterProperties> {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(zstd_level)?))
        .set_max_row_group_row_count(None); // one row group per input unit: we flush
    for col in text_columns {
        props = props.set_column_dictionary_enabled(col.as_str().into(), false);
    }
    Ok(props.build())
}

/// The output chunk being written: a staged local file until it is uploaded.
pub struct OpenChunk {
    pub first_unit: usize,
    staged: PathBuf,
    /// Bytes staged in memory before spilling to `staged` (0 for a local output).
    memory: u64,
    writer: Option<ChunkWriter>,
    pub rows: u64,
    /// Where the task resumes if this chunk is lost.
    pub resume: Resume,
}

enum ChunkWriter {
    /// Every column encoded from Arrow.
    Arrow(ArrowWriter<Staging>),
    /// Unchanged columns copied as compressed chunks (see `passthrough`).
    Passthrough(PassthroughWriter),
}

impl OpenChunk {
    pub fn new(first_unit: usize, staged: PathBuf, memory: u64, resume: Resume) -> OpenChunk {
        OpenChunk { first_unit, staged, memory, writer: None, rows: 0, resume }
    }

    /// Write rows encoded from Arrow; the first batch gives the chunk its schema.
    pub fn write_arrow(&mut self, batch: &RecordBatch, props: &WriterProperties) -> Result<()> {
        if self.writer.is_none() {
            self.writer = Some(ChunkWriter::Arrow(ArrowWriter::try_new(self.staging()?, batch.schema(), Some(props.clone()))?));
        }
        let Some(ChunkWriter::Arrow(w)) = self.writer.as_mut() else { bail!("an output chunk mixes passthrough and Arrow writes") };
        self.rows += batch.num_rows() as u64;
        w.write(batch)?;
        Ok(())
    }

    /// The passthrough writer of this chunk, created by its first unit.
    pub fn passthrough(&mut self, plan: &PassthroughPlan, props: &WriterProperties) -> Result<&mut PassthroughWriter> {
        if self.writer.is_none() {
            self.writer = Some(ChunkWriter::Passthrough(PassthroughWriter::create(self.staging()?, plan, props.clone())?));
        }
        let Some(ChunkWriter::Passthrough(w)) = self.writer.as_mut() else { bail!("an output chunk mixes passthrough and Arrow writes") };
        Ok(w)
    }

    /// The unit's rows are all written: close the row group (row-group boundary = unit
    /// boundary). A passthrough writer writes whole row groups already.
    pub fn end_unit(&mut self) -> Result<()> {
        if let Some(ChunkWriter::Arrow(w)) = self.writer.as_mut() {
            w.flush()?;
        }
        Ok(())
    }

    /// Bytes written to the staged file so far.
    pub fn staged_bytes(&self) -> u64 {
        match &self.writer {
            Some(ChunkWriter::Arrow(w)) => (w.bytes_written() + w.in_progress_size()) as u64,
            Some(ChunkWriter::Passthrough(w)) => w.bytes_written(),
            None => 0,
        }
    }

    /// Close the writer: the staged bytes, or None when every row of these units was
    /// filtered out (no file).
    pub fn finish(self) -> Result<Option<Staged>> {
        let staging = match self.writer {
            None => return Ok(None),
            Some(ChunkWriter::Arrow(w)) => w.into_inner().context("cannot finish the output file")?,
            Some(ChunkWriter::Passthrough(w)) => w.close().context("cannot finish the output file")?,
        };
        Ok(Some(staging.finish()?))
    }

    /// Stopped: drop what was written.
    pub fn discard(self) {
        drop(self.writer);
        let _ = std::fs::remove_file(&self.staged); // spilled to the disk, if it was
    }

    /// Where this chunk's bytes wait until it is complete: the spill disk for a local
    /// output (renamed into place), memory first for an object store (`staging`).
    fn staging(&self) -> Result<Staging> {
        Staging::new(self.staged.clone(), self.memory).with_context(|| format!("cannot stage {}", self.staged.display()))
    }
}
