//! Where a task's rows come from, one *unit* at a time: an input parquet row group, a
//! block of generated rows, a unit of jsonl/json/csv/text records, or one whole small file
//! of a task of several (`crate::input`).
//! Reading unit by unit bounds memory to one row group and gives the checkpoint its
//! boundaries.

use std::fs::File;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use fleetform_core::job::{GenerateSpec, JobSpec};
use fleetform_core::task::TaskSource;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;

use super::remote::{Prefetcher, RemoteFile};
use super::row_groups::{self, RowGroupBytes};
use crate::input::file_group::FileGroup;
use crate::input::units::{RecordUnits, UnitRead};
use crate::input::JobInput;
use crate::ops::Pipeline;
use fleetform_runtime::location::{self, Location};
use fleetform_runtime::Connections;

pub enum UnitSource {
    Parquet(Box<ParquetInput>),
    Generate { spec: GenerateSpec, first_row: u64, rows: u64, batch: usize },
    Records(Box<RecordUnits>),
    Files(FileGroup),
}

/// A task's row groups of one parquet file, local or in an object store. Each unit is
/// read into memory first (only the column chunks the task needs: `row_groups`), then
/// decoded or copied from there.
pub struct ParquetInput {
    pub meta: ArrowReaderMetadata,
    /// The file's first row group in the task.
    pub first: usize,
    units: usize,
    pub batch: usize,
    /// Leaf columns read from the input: decoded, or copied by passthrough.
    fetch: Vec<usize>,
    /// Root columns decoded into Arrow.
    decode: ProjectionMask,
    from: ParquetFrom,
}

enum ParquetFrom {
    Local { what: String, file: File, len: u64 },
    /// Opened, not yet reading: the prefetcher starts with the first unit.
    Remote(Option<RemoteFile>),
    Reading(Prefetcher),
}

impl UnitSource {
    /// Open a task's source; `input` is how the job's records are parsed (None for
    /// parquet and the generator); remote files open through `conn`, and `handle` runs
    /// their async reads.
    pub fn open(
        src: &TaskSource,
        job: &JobSpec,
        input: Option<Arc<JobInput>>,
        conn: &Connections,
        handle: &tokio::runtime::Handle,
    ) -> Result<UnitSource> {
        let batch = job.batch_size;
        match src {
            TaskSource::ByteRange { .. } | TaskSource::Stream { .. } => {
                let input = input.ok_or_else(|| anyhow!("a {} task of a job without an input schema", src.describe()))?;
                Ok(UnitSource::Records(Box::new(RecordUnits::open(src, input, batch, conn, handle)?)))
            }
            TaskSource::Files { format, files, .. } => {
                let input = input.ok_or_else(|| anyhow!("a {} task of a job without an input schema", src.describe()))?;
                Ok(UnitSource::Files(FileGroup::new(*format, files.clone(), input, batch, conn)))
            }
            TaskSource::Generate { first_row, rows } => {
                let spec = job.input.generate.clone().ok_or_else(|| anyhow!("generator task of a job without `input.generate`"))?;
                Ok(UnitSource::Generate { spec, first_row: *first_row, rows: *rows, batch })
            }
            TaskSource::Parquet { uri, first_row_group, end_row_group, footer_bytes, .. } => {
                let units = end_row_group.saturating_sub(*first_row_group);
                let (meta, from) = match uri.strip_prefix("file://") {
                    Some(path) => {
                        let file = File::open(path).with_context(|| format!("cannot open input {path}"))?;
                        let len = file.metadata().with_context(|| format!("cannot stat input {path}"))?.len();
                        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
                            .with_context(|| format!("{path} is not a readable parquet file"))?;
                        (meta, ParquetFrom::Local { what: path.to_string(), file, len })
                    }
                    None => {
                        let (dir, name) = location::split_uri(uri)?;
                        let loc = handle.block_on(Location::open(conn, &dir))?;
                        let (remote, meta) = handle.block_on(RemoteFile::open(loc.store.clone(), loc.input_key(&name), uri, *footer_bytes))?;
                        let meta = ArrowReaderMetadata::try_new(Arc::new(meta), ArrowReaderOptions::new())
                            .with_context(|| format!("{uri} is not a readable parquet file"))?;
                        (meta, ParquetFrom::Remote(Some(remote)))
                    }
                };
                check_row_groups(uri, meta.metadata().num_row_groups(), *end_row_group)?;
                let leaves = meta.metadata().file_metadata().schema_descr().num_columns();
                let input = ParquetInput { meta, first: *first_row_group, units, batch, fetch: (0..leaves).collect(), decode: ProjectionMask::all(), from };
                Ok(UnitSource::Parquet(Box::new(input)))
            }
        }
    }

    /// The task's number of units; None when only reading to the end tells (streams).
    pub fn units(&self) -> Option<usize> {
        match self {
            UnitSource::Parquet(p) => Some(p.units),
            UnitSource::Generate { rows, batch, .. } => Some(rows.div_ceil(*batch as u64) as usize),
            UnitSource::Records(r) => r.units(),
            UnitSource::Files(g) => Some(g.units()),
        }
    }

    /// Read unit `u` (task-relative), handing each batch to `f`.
    pub fn read_unit(
        &mut self,
        u: usize,
        handle: &tokio::runtime::Handle,
        f: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<UnitRead> {
        match self {
            UnitSource::Records(r) => return r.read_unit(u, f),
            UnitSource::Files(g) => return g.read_unit(u, handle, f),
            UnitSource::Parquet(_) | UnitSource::Generate { .. } => {}
        }
        let last = self.units().is_some_and(|n| u + 1 >= n);
        let mut rows = 0u64;
        match self {
            UnitSource::Parquet(p) => {
                let rg = p.first + u;
                let bytes = p.row_group(u, handle)?;
                let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, p.meta.clone())
                    .with_row_groups(vec![rg])
                    .with_projection(p.decode.clone())
                    .with_batch_size(p.batch)
                    .build()?;
                for b in reader {
                    let b = b.with_context(|| format!("cannot decode row group {rg} of {}", p.what()))?;
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
                let b = super::generate::batch(spec, start, (end - start) as usize);
                rows += b.num_rows() as u64;
                f(b)?;
            }
            UnitSource::Records(_) | UnitSource::Files(_) => unreachable!("read above"),
        }
        Ok(UnitRead { rows, skipped: Vec::new(), last })
    }
}

impl ParquetInput {
    /// Read only these columns: `fetch` (leaf indices) from the input, of which `decode`
    /// (root indices) are decoded. Decided once per task, before the first unit.
    pub fn read_only(&mut self, fetch: Vec<usize>, decode: &[usize]) {
        let descr = self.meta.metadata().file_metadata().schema_descr();
        self.decode = ProjectionMask::roots(descr, decode.iter().copied());
        self.fetch = fetch;
    }

    /// The leaf columns under these root columns.
    pub fn leaves_of(&self, roots: &[usize]) -> Vec<usize> {
        let descr = self.meta.metadata().file_metadata().schema_descr();
        (0..descr.num_columns()).filter(|&l| roots.contains(&descr.get_column_root_idx(l))).collect()
    }

    /// The column chunks the task reads of its unit `u`, in memory.
    pub fn row_group(&mut self, u: usize, handle: &tokio::runtime::Handle) -> Result<RowGroupBytes> {
        let meta = self.meta.metadata().clone();
        let segments = |rg: usize| row_groups::segments(&meta, rg, &self.fetch);
        match &mut self.from {
            ParquetFrom::Local { what, file, len } => row_groups::read_local(file, *len, &segments(self.first + u), what),
            ParquetFrom::Remote(remote) => {
                let plan = (self.first..self.first + self.units).map(segments).collect();
                let mut prefetch = Prefetcher::new(remote.take().expect("opened"), plan);
                let bytes = prefetch.take(u, handle);
                self.from = ParquetFrom::Reading(prefetch);
                bytes
            }
            ParquetFrom::Reading(prefetch) => prefetch.take(u, handle),
        }
    }

    fn what(&self) -> &str {
        match &self.from {
            ParquetFrom::Local { what, .. } => what,
            _ => "the input",
        }
    }
}

/// The input columns a native pipeline needs: those its steps read or overwrite, and
/// those it hands on to the output. The others (dropped ones) are never fetched.
pub fn needed_columns(meta: &ArrowReaderMetadata, pipeline: &Pipeline) -> Result<Vec<usize>> {
    let in_schema = meta.schema();
    let out = pipeline.apply(RecordBatch::new_empty(in_schema.clone()))?;
    let read = pipeline.text_columns();
    let out_schema = out.schema();
    Ok(in_schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| read.contains(f.name()) || out_schema.field_with_name(f.name()).is_ok())
        .map(|(i, _)| i)
        .collect())
}

fn check_row_groups(uri: &str, actual: usize, end: usize) -> Result<()> {
    if end > actual {
        bail!("{uri} has {actual} row groups but the task expects {end}: the file changed after the job was submitted");
    }
    Ok(())
}
