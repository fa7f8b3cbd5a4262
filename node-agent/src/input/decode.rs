//! A block of framed records → one Arrow batch, with arrow-json (jsonl, json elements)
//! or arrow-csv; text lines become a string column directly.
//!
//! The whole block is parsed at once. Only when that fails (or yields a different
//! number of rows than records, e.g. a JSON object or a quoted CSV field spread over two
//! lines) is each record parsed alone, to name the malformed one(s): the error path pays
//! for the per-record decoders, the normal path does not.

use std::sync::Arc;

use anyhow::{anyhow, Result};
use arrow_array::builder::StringBuilder;
use arrow_array::RecordBatch;
use arrow_schema::{ArrowError, SchemaRef};
use fleetform_core::input::{InputFormat, OnError};

use super::records::RawBlock;
use super::JobInput;

/// How one task parses its records.
pub struct Decoding {
    pub format: InputFormat,
    pub input: Arc<JobInput>,
}

/// A decoded block: its rows, and the messages of the records skipped
/// (`on_error: skip`).
pub struct Decoded {
    pub batch: RecordBatch,
    pub skipped: Vec<String>,
}

impl Decoding {
    /// Decode `block`. `locate(position)` renders a record's `FILE:LINE` (it may read the
    /// file to count lines, so it is called for malformed records only).
    pub fn decode(
        &self,
        block: &RawBlock,
        locate: &dyn Fn(u64) -> Result<String>,
    ) -> Result<Decoded> {
        // The fast path, one parse of the whole block, unless JSON text holds what arrow
        // accepts and JSON does not (then each record is looked at alone).
        if !self.is_json() || !has_trailing_comma(&block.bytes) {
            if let Ok(batch) = self.parse(&block.bytes, block.len()) {
                if batch.num_rows() == block.len() {
                    return Ok(Decoded {
                        batch,
                        skipped: Vec::new(),
                    });
                }
            }
        }
        let mut good = Vec::with_capacity(block.bytes.len());
        let mut kept = 0;
        let mut skipped = Vec::new();
        for i in 0..block.len() {
            let record = block.record(i);
            match self.parse_one(record) {
                Ok(()) => {
                    good.extend_from_slice(record);
                    kept += 1;
                }
                Err(message) => {
                    let at = format!("{}: {message}; the record: {}", locate(block.position(i))?, quoted(record));
                    match self.input.on_error {
                        OnError::Fail => return Err(anyhow!("{at}")),
                        OnError::Skip => skipped.push(at),
                    }
                }
            }
        }
        let batch = self.parse(&good, kept).map_err(|e| {
            anyhow!(
                "{}: the records parse one by one but not together: {e}",
                locate(block.position(0)).unwrap_or_default()
            )
        })?;
        Ok(Decoded { batch, skipped })
    }

    /// Whether one record parses into exactly one row; the message names what is wrong.
    fn is_json(&self) -> bool {
        matches!(self.format, InputFormat::Jsonl | InputFormat::Json)
    }

    fn parse_one(&self, record: &[u8]) -> Result<(), String> {
        if self.is_json() && has_trailing_comma(record) {
            return Err("a comma before a closing `}` or `]` (a trailing comma is not JSON)".into());
        }
        if self.format == InputFormat::Csv && record.iter().filter(|&&b| b == b'"').count() % 2 == 1
        {
            return Err("a quoted field runs past the end of the line: fleetform reads one CSV record per line \
                        (fields with line breaks inside are not supported)"
                .into());
        }
        match self.parse(record, 1) {
            Ok(b) if b.num_rows() == 1 => Ok(()),
            Ok(b) => Err(format!(
                "the line holds {} records, expected one",
                b.num_rows()
            )),
            Err(e) => Err(clean_message(&e)),
        }
    }

    /// Parse `records` records held in `bytes` into one batch.
    fn parse(&self, bytes: &[u8], records: usize) -> Result<RecordBatch, ArrowError> {
        let schema = self.input.schema.clone();
        let batch_size = records.max(1);
        match self.format {
            InputFormat::Jsonl | InputFormat::Json => {
                let decoder = arrow_json::ReaderBuilder::new(schema.clone())
                    .with_batch_size(batch_size)
                    .build_decoder()?;
                drive(JsonDecoder(decoder), bytes, &schema)
            }
            InputFormat::Csv => {
                let decoder = arrow_csv::ReaderBuilder::new(schema.clone())
                    .with_header(false)
                    .with_delimiter(self.input.csv.delimiter_byte())
                    .with_batch_size(batch_size)
                    .build_decoder();
                drive(CsvDecoder(decoder), bytes, &schema)
            }
            InputFormat::Text => text_batch(bytes, &schema),
            InputFormat::Parquet => Err(ArrowError::InvalidArgumentError(
                "parquet is not read as records".into(),
            )),
        }
    }

    /// The message of the first field of `block` that is not in the schema, if any
    /// (jsonl and json only: a CSV header is checked against the schema as a whole).
    /// Parses the block again in strict mode: done for one block per task.
    pub fn unknown_field(&self, block: &RawBlock) -> Option<String> {
        if !matches!(self.format, InputFormat::Jsonl | InputFormat::Json) || block.is_empty() {
            return None;
        }
        let schema = self.input.schema.clone();
        let strict = arrow_json::ReaderBuilder::new(schema.clone())
            .with_batch_size(block.len())
            .with_strict_mode(true);
        match strict
            .build_decoder()
            .map(JsonDecoder)
            .and_then(|d| drive(d, &block.bytes, &schema))
        {
            Err(e) if e.to_string().contains("missing from schema") => Some(clean_message(&e)),
            _ => None,
        }
    }
}

/// The part of arrow-json's and arrow-csv's decoders this module drives.
trait PushDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError>;
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError>;
}

struct JsonDecoder(arrow_json::reader::Decoder);
struct CsvDecoder(arrow_csv::reader::Decoder);

impl PushDecoder for JsonDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.0.decode(buf)
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.0.flush()
    }
}

impl PushDecoder for CsvDecoder {
    fn decode(&mut self, buf: &[u8]) -> Result<usize, ArrowError> {
        self.0.decode(buf)
    }
    fn flush(&mut self) -> Result<Option<RecordBatch>, ArrowError> {
        self.0.flush()
    }
}

/// Feed all of `bytes` (the decoder's batch size is the record count, so one flush at
/// the end holds every row; bytes left after a full batch mean extra records).
fn drive(
    mut d: impl PushDecoder,
    bytes: &[u8],
    schema: &SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let mut offset = 0;
    let mut rows = 0;
    let mut batch = None;
    while offset < bytes.len() {
        let n = d.decode(&bytes[offset..])?;
        offset += n;
        if n == 0 {
            // The batch is full: flush it; more rows than records is the caller's check.
            let b = d.flush()?;
            rows += b.as_ref().map_or(0, |b| b.num_rows());
            if rows == 0 {
                return Err(ArrowError::ParseError(
                    "the decoder made no progress".into(),
                ));
            }
            batch = concat(batch, b, schema)?;
        }
    }
    let last = d.flush()?;
    let batch = concat(batch, last, schema)?;
    Ok(batch.unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

fn concat(
    a: Option<RecordBatch>,
    b: Option<RecordBatch>,
    schema: &SchemaRef,
) -> Result<Option<RecordBatch>, ArrowError> {
    Ok(match (a, b) {
        (Some(a), Some(b)) => Some(arrow_select::concat::concat_batches(schema, [&a, &b])?),
        (a, b) => a.or(b),
    })
}

/// Text lines (each ending in `\n`, a `\r` before it dropped) as the `text` column.
fn text_batch(bytes: &[u8], schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut col = StringBuilder::with_capacity(bytes.len() / 64 + 1, bytes.len());
    if !bytes.is_empty() {
        for line in body.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let s = std::str::from_utf8(line).map_err(|e| {
                ArrowError::ParseError(format!(
                    "the line is not valid UTF-8 (byte {} of the line)",
                    e.valid_up_to() + 1
                ))
            })?;
            col.append_value(s);
        }
    }
    RecordBatch::try_new(schema.clone(), vec![Arc::new(col.finish())])
}

/// arrow-csv counts lines from the start of its own decoder ("at line 1"), which is
/// wrong for a record parsed alone: the caller prefixes the file's true line instead.
fn clean_message(e: &ArrowError) -> String {
    // The line arrow counts is relative to the block (the caller names the file's line),
    // and arrow-csv's "Row data: '[a b c]'" joins the fields with spaces: the record is
    // quoted as it is in the file instead (`quoted`).
    static NOISE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = NOISE.get_or_init(|| {
        regex::Regex::new(r" (?:at|for) line \d+|\.? ?Row data: '\[.*\]'$").expect("a valid pattern")
    });
    re.replace_all(&e.to_string(), "").into_owned()
}

/// Whether JSON text has a comma right before a closing `}` or `]` (outside strings):
/// arrow's JSON reader accepts `{"a": 1,}`, which no JSON parser does (RFC 8259).
fn has_trailing_comma(bytes: &[u8]) -> bool {
    let (mut strings, mut after_comma) = (super::records::JsonStrings::default(), false);
    for &b in bytes {
        if strings.step(b) {
            after_comma = false;
            continue;
        }
        match b {
            b',' => after_comma = true,
            b'}' | b']' if after_comma => return true,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ => after_comma = false,
        }
    }
    false
}

/// A record as it is in the file (without its line break), cut to a readable length.
const QUOTED_MAX_CHARS: usize = 200;

fn quoted(record: &[u8]) -> String {
    let text = String::from_utf8_lossy(record);
    let text = text.trim_end_matches(['\n', '\r']);
    match text.char_indices().nth(QUOTED_MAX_CHARS) {
        Some((cut, _)) => format!("`{}`… ({} bytes)", &text[..cut], record.len()),
        None => format!("`{text}`"),
    }
}
