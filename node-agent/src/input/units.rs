//! A jsonl/json/csv/text task read unit by unit (the checkpoint boundaries), and
//! [`UnitRead`], what reading one unit of any input gave.
//!
//! Byte ranges: unit `u` owns the records whose first byte lies in its sub-range
//! [start + u·unit_bytes, …) of the task's range. It starts reading one byte before its
//! start and drops everything up to the first line break (the tail of a record the
//! previous unit owns: Hadoop's LineRecordReader rule; at byte 0 nothing is dropped), and
//! reads past its end to finish its last record. So every record is read by exactly one
//! unit, whatever the split sizes, and a resumed task re-reads exactly its missing units.
//!
//! Streams (compressed files, JSON arrays): unit `u` is records [u·batch, (u+1)·batch).
//! A compressed stream cannot be entered in the middle, so resuming at unit k re-reads and
//! decompresses the first k units without parsing them: the cost of a resume is reading
//! the file up to the checkpoint again (no parsing, no output), paid once per resume.

use std::io::{BufReader, Cursor};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use arrow_array::RecordBatch;
use fleetform_core::input::{Compression, InputFormat};
use fleetform_core::task::TaskSource;
use fleetform_runtime::Connections;

use super::decode::Decoding;
use super::raw::{ByteReader, RawFile, READ_BUFFER};
use super::records::{is_blank, JsonArrayReader, LineReader, RawBlock};
use super::JobInput;

type Buffered = BufReader<ByteReader>;

/// What reading one unit gave: of records here, and of parquet row groups and generated
/// rows in `input::source`.
#[derive(Debug, Default)]
pub struct UnitRead {
    /// Rows handed on (input rows; skipped records not counted).
    pub rows: u64,
    /// `FILE:LINE: error` of each malformed record skipped (`input.on_error: skip`).
    pub skipped: Vec<String>,
    /// This was the task's last unit.
    pub last: bool,
}

pub struct RecordUnits {
    file: RawFile,
    kind: Kind,
    decoding: Decoding,
    batch_size: usize,
    /// The first block an attempt reads is checked for fields not in the schema.
    checked_unknown_fields: bool,
}

enum Kind {
    ByteRange {
        start: u64,
        end: u64,
        unit_bytes: u64,
    },
    Stream {
        compression: Compression,
        open: Option<OpenStream>,
    },
}

/// A stream being read, positioned at the start of unit `next_unit`.
struct OpenStream {
    records: StreamRecords,
    next_unit: usize,
}

enum StreamRecords {
    Lines(LineReader<Buffered>),
    Array(JsonArrayReader<Buffered>),
}

impl RecordUnits {
    /// Open a task's file (on its blocking thread). CSV files with a header have it
    /// checked against the job's columns first.
    pub fn open(
        src: &TaskSource,
        input: Arc<JobInput>,
        batch_size: usize,
        conn: &Connections,
        handle: &tokio::runtime::Handle,
    ) -> Result<RecordUnits> {
        let (uri, format, kind) = match src {
            TaskSource::ByteRange {
                uri,
                format,
                start,
                end,
                unit_bytes,
                ..
            } => (
                uri,
                *format,
                Kind::ByteRange {
                    start: *start,
                    end: *end,
                    unit_bytes: (*unit_bytes).max(1),
                },
            ),
            TaskSource::Stream {
                uri,
                format,
                compression,
                ..
            } => (
                uri,
                *format,
                Kind::Stream {
                    compression: *compression,
                    open: None,
                },
            ),
            other => bail!("{} is not a record input task", other.describe()),
        };
        let file = RawFile::open(conn, uri, handle)?;
        let units = RecordUnits {
            file,
            kind,
            decoding: Decoding { format, input },
            batch_size: batch_size.max(1),
            checked_unknown_fields: false,
        };
        if units.has_header() {
            let compression = match &units.kind {
                Kind::Stream { compression, .. } => *compression,
                Kind::ByteRange { .. } => Compression::None,
            };
            let mut lines = LineReader::new(units.file.decoded(compression, None)?, 0);
            units.check_header(&mut lines)?;
        }
        Ok(units)
    }

    /// Units of a byte range; None for a stream (known at its end).
    pub fn units(&self) -> Option<usize> {
        match &self.kind {
            Kind::ByteRange {
                start,
                end,
                unit_bytes,
            } => Some((end - start).div_ceil(*unit_bytes) as usize),
            Kind::Stream { .. } => None,
        }
    }

    /// Read unit `u`, handing each decoded batch to `f`.
    pub fn read_unit(
        &mut self,
        u: usize,
        f: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<UnitRead> {
        match self.kind {
            Kind::ByteRange { .. } => self.read_range_unit(u, f),
            Kind::Stream { .. } => self.read_stream_unit(u, f),
        }
    }

    fn has_header(&self) -> bool {
        self.decoding.format == InputFormat::Csv && self.decoding.input.csv.header
    }

    fn read_range_unit(
        &mut self,
        u: usize,
        f: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<UnitRead> {
        let Kind::ByteRange {
            start,
            end,
            unit_bytes,
        } = self.kind
        else {
            unreachable!("a byte-range task")
        };
        let from = start + u as u64 * unit_bytes;
        let to = (from + unit_bytes).min(end);
        if from >= end {
            bail!("unit {u} is past the end of the task's byte range {start}..{end}");
        }
        let mut lines = self.lines_owned_from(from)?;
        if from == 0 && self.has_header() {
            lines.next_line()?; // the header is no record (checked at open)
        }
        let mut read = UnitRead {
            last: Some(u + 1) >= self.units(),
            ..Default::default()
        };
        let mut block = RawBlock::default();
        while lines.pos < to {
            let line = lines
                .next_line()
                .with_context(|| format!("cannot read {}", self.file.display))?;
            let Some((line, pos)) = line else { break };
            if self.decoding.format != InputFormat::Text && is_blank(line) {
                continue;
            }
            block.push(line, pos);
            if block.len() == self.batch_size {
                self.emit(&mut block, Position::Offset, &mut read, f)?;
            }
        }
        self.emit(&mut block, Position::Offset, &mut read, f)?;
        Ok(read)
    }

    /// Lines from the first record starting at or after `from`.
    fn lines_owned_from(&self, from: u64) -> Result<LineReader<Buffered>> {
        if from == 0 {
            return Ok(LineReader::new(
                BufReader::with_capacity(READ_BUFFER, self.file.read_from(0)?),
                0,
            ));
        }
        let mut lines = LineReader::new(
            BufReader::with_capacity(READ_BUFFER, self.file.read_from(from - 1)?),
            from - 1,
        );
        // The rest of the line holding byte from-1 belongs to an earlier unit (or is the
        // line break just before `from`, when a record starts exactly there).
        lines
            .next_line()
            .with_context(|| format!("cannot read {}", self.file.display))?;
        Ok(lines)
    }

    fn read_stream_unit(
        &mut self,
        u: usize,
        f: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<UnitRead> {
        let positioned =
            matches!(&self.kind, Kind::Stream { open: Some(s), .. } if s.next_unit == u);
        if !positioned {
            let stream = self.open_stream_at(u)?;
            let Kind::Stream { open, .. } = &mut self.kind else {
                unreachable!("a stream task")
            };
            *open = Some(stream);
        }
        let mut block = RawBlock::default();
        {
            let Kind::Stream {
                open: Some(stream), ..
            } = &mut self.kind
            else {
                unreachable!("opened above")
            };
            while block.len() < self.batch_size {
                if !stream.records.next_into(
                    Some(&mut block),
                    self.decoding.format,
                    &self.file.display,
                )? {
                    break;
                }
            }
            stream.next_unit = u + 1;
        }
        let mut read = UnitRead {
            last: block.len() < self.batch_size,
            ..Default::default()
        };
        self.emit(&mut block, Position::Line, &mut read, f)?;
        Ok(read)
    }

    /// Open the stream from its start and pass over the records of units before `u`
    /// (a resume; see the module comment for the cost).
    fn open_stream_at(&self, u: usize) -> Result<OpenStream> {
        let Kind::Stream { compression, .. } = self.kind else {
            unreachable!("a stream task")
        };
        let reader = self.file.decoded(compression, None)?;
        let format = self.decoding.format;
        let mut records = match format {
            InputFormat::Json => {
                StreamRecords::Array(JsonArrayReader::new(reader, &self.file.display))
            }
            _ => StreamRecords::Lines(LineReader::new(reader, 0)),
        };
        if self.has_header() {
            if let StreamRecords::Lines(lines) = &mut records {
                lines.next_line()?;
            }
        }
        for skipped in 0..u * self.batch_size {
            if !records.next_into(None, format, &self.file.display)? {
                bail!(
                    "{} holds {skipped} records, but the task's checkpoint says it read {} (units of {}): the file changed after the job was submitted",
                    self.file.display,
                    u * self.batch_size,
                    self.batch_size
                );
            }
        }
        Ok(OpenStream {
            records,
            next_unit: u,
        })
    }

    /// Decode a block and hand its rows on; counts rows and skipped records.
    fn emit(
        &mut self,
        block: &mut RawBlock,
        position: Position,
        read: &mut UnitRead,
        f: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        if !self.checked_unknown_fields {
            self.checked_unknown_fields = true;
            if let Some(message) = self.decoding.unknown_field(block) {
                self.decoding
                    .input
                    .warn_unknown_field(&self.file.display, &message);
            }
        }
        let file = &self.file;
        let locate = |pos: u64| -> Result<String> {
            let line = match position {
                Position::Offset => file.line_at(pos)?,
                Position::Line => pos,
            };
            Ok(format!("{}:{line}", file.display))
        };
        let decoded = self.decoding.decode(block, &locate)?;
        block.clear();
        read.rows += decoded.batch.num_rows() as u64;
        read.skipped.extend(decoded.skipped);
        if decoded.batch.num_rows() > 0 {
            f(decoded.batch)?;
        }
        Ok(())
    }

    /// The file's header names the job's columns, in order (tasks of other files of the
    /// job parse with the columns of the first one).
    fn check_header(&self, lines: &mut LineReader<Buffered>) -> Result<()> {
        let display = &self.file.display;
        let Some((header, _)) = lines
            .next_line()
            .with_context(|| format!("cannot read {display}"))?
        else {
            bail!("{display}: the file is empty, so it has no header line");
        };
        let format = arrow_csv::reader::Format::default()
            .with_header(true)
            .with_delimiter(self.decoding.input.csv.delimiter_byte());
        let (names, _) = format
            .infer_schema(Cursor::new(header), Some(0))
            .map_err(|e| anyhow!("{display}:1: cannot read the header: {e}"))?;
        let got: Vec<&str> = names.fields().iter().map(|f| f.name().as_str()).collect();
        let want: Vec<&str> = self
            .decoding
            .input
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        if got != want {
            bail!(
                "{display}:1: the header's columns ({}) are not the job's ({}, from its first file): every CSV file of a job needs the same header",
                got.join(", "),
                want.join(", ")
            );
        }
        Ok(())
    }
}

/// What a block's record positions are.
#[derive(Clone, Copy)]
enum Position {
    /// Byte offsets (byte ranges): the line number is counted when needed.
    Offset,
    /// Line numbers (streams read from the start).
    Line,
}

impl StreamRecords {
    /// Move to the next record, appending it to `block` (or dropping it when None).
    /// Blank jsonl/csv lines are no records. False at the end of the stream.
    fn next_into(
        &mut self,
        block: Option<&mut RawBlock>,
        format: InputFormat,
        display: &str,
    ) -> Result<bool> {
        match self {
            StreamRecords::Lines(lines) => loop {
                let number = lines.line + 1;
                let line = lines
                    .next_line()
                    .with_context(|| format!("cannot read {display}"))?;
                let Some((line, _)) = line else {
                    return Ok(false);
                };
                if format != InputFormat::Text && is_blank(line) {
                    continue;
                }
                if let Some(b) = block {
                    b.push(line, number);
                }
                return Ok(true);
            },
            StreamRecords::Array(array) => match array.next_element()? {
                None => Ok(false),
                Some((element, line)) => {
                    if let Some(b) = block {
                        b.push(element, line);
                    }
                    Ok(true)
                }
            },
        }
    }
}
