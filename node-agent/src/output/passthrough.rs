//! Column-chunk passthrough: when the steps keep every row (no filter) and a column is
//! neither read into a new value nor changed, its compressed bytes are copied from the
//! input row group into the output row group as they are, instead of being decoded and
//! encoded again. Only the columns the steps read are decoded; only the columns they
//! write are encoded. The output is the same data in valid parquet; copied columns keep
//! their input compression, so passthrough applies only when that is the job's (zstd).
//!
//! Applies to parquet input, local or in an object store: the copy reads the row group's
//! chunks from memory (`row_groups`).

use std::sync::Arc;

use anyhow::{Context, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ParquetRecordBatchReaderBuilder};
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory};
use parquet::arrow::{add_encoded_arrow_schema_to_metadata, ArrowSchemaConverter, ProjectionMask};
use parquet::basic::Compression;
use parquet::column::writer::ColumnCloseResult;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use crate::input::row_groups::RowGroupBytes;
use super::staging::Staging;
use crate::ops::Pipeline;

/// Where each output column comes from.
#[derive(Debug, Clone)]
enum Source {
    /// Copied from this input leaf column.
    Copy(usize),
    /// Computed by the steps.
    Computed,
}

/// Decided once per task from the input footer and the steps.
#[derive(Debug, Clone)]
pub struct PassthroughPlan {
    out_schema: SchemaRef,
    sources: Vec<Source>,
    /// The input columns the steps read (the only ones decoded).
    projection: Vec<usize>,
}

impl PassthroughPlan {
    /// The input columns decoded.
    pub fn decoded(&self) -> &[usize] {
        &self.projection
    }

    /// The input columns copied as they are.
    pub fn copied(&self) -> impl Iterator<Item = usize> + '_ {
        self.sources.iter().filter_map(|s| match s {
            Source::Copy(j) => Some(*j),
            Source::Computed => None,
        })
    }
}

impl PassthroughPlan {
    /// A plan, or None when passthrough does not apply (then the task encodes everything).
    pub fn new(meta: &ArrowReaderMetadata, pipeline: &Pipeline, props: &WriterProperties) -> Option<PassthroughPlan> {
        if pipeline.changes_rows() {
            return None;
        }
        let in_schema = meta.schema().clone();
        let out = pipeline.apply(RecordBatch::new_empty(in_schema.clone())).ok()?;
        let out_schema = out.schema();
        let out_descr = ArrowSchemaConverter::new().with_coerce_types(props.coerce_types()).convert(&out_schema).ok()?;
        let in_descr = meta.metadata().file_metadata().schema_descr();
        // Flat schemas only: one parquet leaf per Arrow field, in and out.
        if in_descr.num_columns() != in_schema.fields().len() || out_descr.num_columns() != out_schema.fields().len() {
            return None;
        }
        let written = pipeline.written_columns();
        let read = pipeline.text_columns();
        let rg0 = meta.metadata().row_groups().first()?;
        let mut sources = Vec::with_capacity(out_schema.fields().len());
        let mut copies = 0;
        for (i, f) in out_schema.fields().iter().enumerate() {
            let input = in_schema.index_of(f.name()).ok();
            let copy = input.filter(|&j| {
                !written.contains(f.name())
                    && in_schema.field(j) == f.as_ref()
                    && in_descr.column(j).as_ref() == out_descr.column(i).as_ref()
                    && matches!(rg0.column(j).compression(), Compression::ZSTD(_))
                    && matches!(props.compression(out_descr.column(i).path()), Compression::ZSTD(_))
            });
            match copy {
                Some(j) => {
                    copies += 1;
                    sources.push(Source::Copy(j));
                }
                None => sources.push(Source::Computed),
            }
        }
        if copies == 0 {
            return None;
        }
        let projection: Vec<usize> =
            in_schema.fields().iter().enumerate().filter(|(_, f)| read.contains(f.name())).map(|(i, _)| i).collect();
        Some(PassthroughPlan { out_schema, sources, projection })
    }
}

/// An output file written row group by row group from copied and computed chunks.
pub struct PassthroughWriter {
    writer: SerializedFileWriter<Staging>,
    factory: ArrowRowGroupWriterFactory,
    plan: PassthroughPlan,
    row_groups: usize,
}

impl PassthroughWriter {
    pub fn create(staging: Staging, plan: &PassthroughPlan, props: WriterProperties) -> Result<PassthroughWriter> {
        let mut props = props;
        add_encoded_arrow_schema_to_metadata(&plan.out_schema, &mut props);
        let descr = ArrowSchemaConverter::new().with_coerce_types(props.coerce_types()).convert(&plan.out_schema)?;
        let writer = SerializedFileWriter::new(staging, descr.root_schema_ptr(), Arc::new(props))?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, plan.out_schema.clone());
        Ok(PassthroughWriter { writer, factory, plan: plan.clone(), row_groups: 0 })
    }

    /// Process one input row group: decode the read columns, run the steps, encode the
    /// computed columns, copy the others. Returns (rows in, rows out).
    pub fn write_row_group(
        &mut self,
        input: RowGroupBytes,
        meta: &ArrowReaderMetadata,
        rg: usize,
        batch_size: usize,
        pipeline: &Pipeline,
    ) -> Result<u64> {
        let mut writers: Vec<Option<ArrowColumnWriter>> =
            self.factory.create_column_writers(self.row_groups)?.into_iter().map(Some).collect();
        let mask = ProjectionMask::roots(meta.metadata().file_metadata().schema_descr(), self.plan.projection.clone());
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(input.clone(), meta.clone())
            .with_row_groups(vec![rg])
            .with_projection(mask)
            .with_batch_size(batch_size)
            .build()?;
        let mut rows = 0u64;
        for batch in reader {
            let out = pipeline.apply(batch?)?;
            rows += out.num_rows() as u64;
            for (i, field) in self.plan.out_schema.fields().iter().enumerate() {
                if let Source::Computed = self.plan.sources[i] {
                    let col = out.column_by_name(field.name()).context("a computed column is missing")?;
                    let w = writers[i].as_mut().expect("one writer per column");
                    for leaf in compute_leaves(field, col)? {
                        w.write(&leaf)?;
                    }
                }
            }
        }
        let rg_meta = meta.metadata().row_group(rg);
        let mut computed: Vec<Option<ArrowColumnChunk>> = Vec::with_capacity(writers.len());
        for (i, w) in writers.iter_mut().enumerate() {
            computed.push(match self.plan.sources[i] {
                Source::Computed => Some(w.take().expect("writer").close()?),
                Source::Copy(_) => None,
            });
        }
        let mut rg_writer = self.writer.next_row_group()?;
        for (i, src) in self.plan.sources.iter().enumerate() {
            match src {
                Source::Computed => computed[i].take().expect("computed chunk").append_to_row_group(&mut rg_writer)?,
                Source::Copy(j) => {
                    let column = rg_meta.column(*j);
                    rg_writer.append_column(
                        &input,
                        ColumnCloseResult {
                            bytes_written: column.compressed_size() as u64,
                            rows_written: rg_meta.num_rows() as u64,
                            metadata: column.clone(),
                            bloom_filter: None,
                            column_index: None,
                            offset_index: None,
                        },
                    )?;
                }
            }
        }
        rg_writer.close()?;
        self.row_groups += 1;
        Ok(rows)
    }

    /// Bytes written to the staged file so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.bytes_written() as u64
    }

    /// Write the footer; the chunk's bytes are then complete in its staging.
    pub fn close(self) -> Result<Staging> {
        Ok(self.writer.into_inner()?)
    }
}
