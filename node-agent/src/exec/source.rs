//! Where a task's rows come from, one *unit* at a time: an input parquet row group, a
//! block of generated rows, or a unit of jsonl/json/csv/text records (`crate::input`).
//! Reading unit by unit bounds memory to one row group and gives the checkpoint its
//! boundaries.
// ParquetObjectReader is deprecated in parquet 60 in favour of a hand-written
// AsyncFileReader (arrow-rs#10308); it still works and is the least code for now.
#![allow(deprecated)]

use std::fs::File;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use fleetform_core::job::GenerateSpec;
use fleetform_core::task::TaskSource;
use futures::StreamExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};

use super::task::JobContext;
use crate::input::units::RecordUnits;
use crate::storage;

pub enum UnitSource {
    LocalParquet { path: PathBuf, file: File, meta: ArrowReaderMetadata, first: usize, units: usize, batch: usize },
    RemoteParquet { reader: ParquetObjectReader, meta: ArrowReaderMetadata, first: usize, units: usize, batch: usize },
    Generate { spec: GenerateSpec, first_row: u64, rows: u64, batch: usize },
    Records(Box<RecordUnits>),
}

/// What reading one unit gave.
#[derive(Debug, Default)]
pub struct UnitRead {
    /// Rows handed on (input rows; skipped records not counted).
    pub rows: u64,
    /// `FILE:LINE: error` of each malformed record skipped (`input.on_error: skip`).
    pub skipped: Vec<String>,
    /// This was the task's last unit.
    pub last: bool,
}

/// Split an input URI into its location (directory or bucket) and object key.
pub fn split_uri(uri: &str) -> Result<(String, String)> {
    let (dir, name) = uri.rsplit_once('/').ok_or_else(|| anyhow!("`{uri}` is not a file URI"))?;
    Ok((dir.to_string(), name.to_string()))
}

impl UnitSource {
    /// Open a task's source; `handle` runs async reads for remote files.
    pub fn open(src: &TaskSource, ctx: &JobContext, handle: &tokio::runtime::Handle) -> Result<UnitSource> {
        let job = &ctx.record.spec;
        let batch = job.batch_size;
        match src {
            TaskSource::ByteRange { .. } | TaskSource::Stream { .. } => {
                let input = ctx.input.clone().ok_or_else(|| anyhow!("a {} task of a job without an input schema", src.describe()))?;
                Ok(UnitSource::Records(Box::new(RecordUnits::open(src, input, batch, handle)?)))
            }
            TaskSource::Generate { first_row, rows } => {
                let spec = job.input.generate.clone().ok_or_else(|| anyhow!("generator task of a job without `input.generate`"))?;
                Ok(UnitSource::Generate { spec, first_row: *first_row, rows: *rows, batch })
            }
            TaskSource::Parquet { uri, first_row_group, end_row_group, .. } => {
                let units = end_row_group.saturating_sub(*first_row_group);
                if let Some(path) = uri.strip_prefix("file://") {
                    let path = PathBuf::from(path);
                    let file = File::open(&path).with_context(|| format!("cannot open input {}", path.display()))?;
                    let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                        .with_context(|| format!("{} is not a readable parquet file", path.display()))?;
                    check_row_groups(uri, meta.metadata().num_row_groups(), *end_row_group)?;
                    return Ok(UnitSource::LocalParquet { path, file, meta, first: *first_row_group, units, batch });
                }
                let (dir, name) = split_uri(uri)?;
                let loc = handle.block_on(storage::open(&dir))?;
                let reader = ParquetObjectReader::new(loc.store.clone(), loc.key(&name));
                let mut r2 = reader.clone();
                let meta = handle
                    .block_on(ArrowReaderMetadata::load_async(&mut r2, ArrowReaderOptions::new()))
                    .with_context(|| format!("{uri} is not a readable parquet file"))?;
                check_row_groups(uri, meta.metadata().num_row_groups(), *end_row_group)?;
                Ok(UnitSource::RemoteParquet { reader, meta, first: *first_row_group, units, batch })
            }
        }
    }

    /// The task's number of units; None when only reading to the end tells (streams).
    pub fn units(&self) -> Option<usize> {
        match self {
            UnitSource::LocalParquet { units, .. } | UnitSource::RemoteParquet { units, .. } => Some(*units),
            UnitSource::Generate { rows, batch, .. } => Some(rows.div_ceil(*batch as u64) as usize),
            UnitSource::Records(r) => r.units(),
        }
    }

    /// Read unit `u` (task-relative), handing each batch to `f`.
    pub fn read_unit(
        &mut self,
        u: usize,
        handle: &tokio::runtime::Handle,
        f: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<UnitRead> {
        if let UnitSource::Records(r) = self {
            return r.read_unit(u, f);
        }
        let last = self.units().is_some_and(|n| u + 1 >= n);
        let mut rows = 0u64;
        match self {
            UnitSource::LocalParquet { path, file, meta, first, batch, .. } => {
                let file = file.try_clone()?;
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
                    .with_row_groups(vec![*first + u])
                    .with_batch_size(*batch)
                    .build()?;
                for b in reader {
                    let b = b.with_context(|| format!("cannot decode row group {} of {}", *first + u, path.display()))?;
                    rows += b.num_rows() as u64;
                    f(b)?;
                }
            }
            UnitSource::RemoteParquet { reader, meta, first, batch, .. } => {
                let mut stream = ParquetRecordBatchStreamBuilder::new_with_metadata(reader.clone(), meta.clone())
                    .with_row_groups(vec![*first + u])
                    .with_batch_size(*batch)
                    .build()?;
                while let Some(b) = handle.block_on(stream.next()) {
                    let b = b.with_context(|| format!("cannot decode row group {}", *first + u))?;
                    rows += b.num_rows() as u64;
                    f(b)?;
                }
            }
            UnitSource::Generate { spec, first_row, rows: total, batch } => {
                let start = *first_row + (u * *batch) as u64;
                let end = (start + *batch as u64).min(*first_row + *total);
                if start >= end {
                    bail!("unit {u} is past the end of the task");
                }
                let b = crate::generate::batch(spec, start, (end - start) as usize);
                rows += b.num_rows() as u64;
                f(b)?;
            }
            UnitSource::Records(_) => unreachable!("read above"),
        }
        Ok(UnitRead { rows, skipped: Vec::new(), last })
    }
}

fn check_row_groups(uri: &str, actual: usize, end: usize) -> Result<()> {
    if end > actual {
        bail!("{uri} has {actual} row groups but the task expects {end}: the file changed after the job was submitted");
    }
    Ok(())
}
