//! JSON Lines, JSON, CSV and text input (parquet has its own path in `source`).
//!
//! Submit (`plan`) lists the files, samples the first one for the schema and a row
//! estimate, and cuts the files into tasks: byte ranges of uncompressed jsonl/csv/text
//! (a record belongs to the range holding its first byte), whole files otherwise, and
//! files smaller than a unit several to a task (`file_group`). A task
//! (`units`) reads its records unit by unit on its blocking thread, through `raw` (local
//! file or S3 GET, decompressed), `records` (framing) and `decode` (arrow-json,
//! arrow-csv), so memory stays bounded by one block of `batch_size` records.

mod decode;
pub mod file_group;
pub mod generate;
pub mod plan;
mod raw;
mod records;
pub(crate) mod remote;
pub(crate) mod row_groups;
pub mod schema;
pub mod source;
pub mod units;

#[cfg(test)]
mod remote_tests;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use arrow_schema::SchemaRef;
use fleetform_core::input::{CsvOptions, OnError};
use fleetform_core::task::JobRecord;

/// What every task of a job needs to parse its records, built once per job per node.
pub struct JobInput {
    pub schema: SchemaRef,
    pub on_error: OnError,
    pub csv: CsvOptions,
    /// The unknown-field warning was logged on this node (one per job, not per row).
    warned_unknown_field: AtomicBool,
}

impl JobInput {
    /// None for jobs without a record schema (parquet input, the generator).
    pub fn for_job(record: &JobRecord) -> Result<Option<Arc<JobInput>>> {
        let Some(value) = &record.input_schema else {
            return Ok(None);
        };
        Ok(Some(Arc::new(JobInput {
            schema: schema::from_record(value)?,
            on_error: record.spec.input.on_error,
            csv: record.spec.input.csv.clone(),
            warned_unknown_field: AtomicBool::new(false),
        })))
    }

    /// Log that records hold a field the schema lacks, once per job on this node.
    fn warn_unknown_field(&self, file: &str, message: &str) {
        if !self.warned_unknown_field.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{file}: a field that is not in the job's schema is dropped ({message}); further ones are dropped without a warning. \
                 List it in `input.schema` to keep it."
            );
        }
    }
}
