//! A task of several small files (`TaskSource::Files`), one unit per file: unit `u`
//! reads file `u` whole, through the same stream reader as a task of one whole file, so
//! framing, decoding, CSV headers and skipped-record reports are the same per file.

use std::sync::Arc;

use anyhow::Result;
use arrow_array::RecordBatch;
use fleetform_core::input::InputFormat;
use fleetform_core::task::{TaskSource, WholeFile};
use fleetform_runtime::Connections;

use super::units::{RecordUnits, UnitRead};
use super::JobInput;

pub struct FileGroup {
    format: InputFormat,
    files: Vec<WholeFile>,
    input: Arc<JobInput>,
    batch_size: usize,
    /// How the files' URIs open (S3 through the agent's AWS configuration).
    conn: Connections,
}

impl FileGroup {
    pub fn new(format: InputFormat, files: Vec<WholeFile>, input: Arc<JobInput>, batch_size: usize, conn: &Connections) -> FileGroup {
        FileGroup { format, files, input, batch_size, conn: conn.clone() }
    }

    pub fn units(&self) -> usize {
        self.files.len()
    }

    /// Read file `u` whole, handing each decoded batch to `f`.
    pub fn read_unit(&self, u: usize, handle: &tokio::runtime::Handle, f: &mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<UnitRead> {
        let file = self.files.get(u).ok_or_else(|| anyhow::anyhow!("unit {u} is past the task's {} files", self.files.len()))?;
        let whole = TaskSource::Stream {
            uri: file.uri.clone(),
            format: self.format,
            compression: file.compression,
            bytes: file.bytes,
            est_rows: 0,
        };
        let mut records = RecordUnits::open(&whole, self.input.clone(), self.batch_size, &self.conn, handle)?;
        let mut read = UnitRead { last: u + 1 >= self.files.len(), ..Default::default() };
        for block in 0.. {
            let got = records.read_unit(block, f)?;
            read.rows += got.rows;
            read.skipped.extend(got.skipped);
            if got.last {
                break;
            }
        }
        Ok(read)
    }
}
