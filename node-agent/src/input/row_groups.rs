//! A row group's column chunks in memory: only the chunks a task needs, read in as few
//! reads as S3's economics allow, then decoded (or copied, `passthrough`) from memory.
//!
//! One path for both inputs: a local file is read with one positioned read per segment
//! (instead of the parquet reader's many small buffered reads), an S3 object with ranged
//! GETs, several in flight, and the next row group fetched while this one is processed
//! (`remote`). Reading from memory also lets passthrough copy chunks in large writes.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::reader::{ChunkReader, Length};

/// Chunks closer together than this are read as one segment: a request costs more than
/// the gap's bytes (an S3 GET's first byte takes tens of milliseconds).
const COALESCE_GAP: u64 = 64 * 1024;
/// A segment of several chunks grows to at most this; one larger chunk is its own segment.
const MAX_SEGMENT: u64 = 8 * 1024 * 1024;
/// One ranged read fetches at most this: a large chunk is fetched in parts, concurrently
/// (a single S3 connection streams far below a node's network bandwidth).
pub const MAX_READ: u64 = 8 * 1024 * 1024;

/// The byte ranges of leaf `columns` of row group `rg`, coalesced into segments that each
/// hold whole column chunks, in file order.
pub fn segments(meta: &ParquetMetaData, rg: usize, columns: &[usize]) -> Vec<Range<u64>> {
    let row_group = meta.row_group(rg);
    let mut chunks: Vec<Range<u64>> = columns
        .iter()
        .map(|&c| {
            let (start, len) = row_group.column(c).byte_range();
            start..start + len
        })
        .collect();
    chunks.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for c in chunks {
        match out.last_mut() {
            Some(last) if c.start <= last.end + COALESCE_GAP && c.end - last.start <= MAX_SEGMENT => last.end = last.end.max(c.end),
            _ => out.push(c),
        }
    }
    out
}

/// A segment cut into reads of at most `MAX_READ` bytes.
pub fn reads(segment: &Range<u64>) -> Vec<Range<u64>> {
    (segment.start..segment.end)
        .step_by(MAX_READ as usize)
        .map(|start| start..(start + MAX_READ).min(segment.end))
        .collect()
}

/// The fetched segments of one row group: a `ChunkReader` over just those bytes.
#[derive(Clone)]
pub struct RowGroupBytes {
    inner: Arc<Segments>,
}

struct Segments {
    file_len: u64,
    /// (file offset, bytes), in file order, not overlapping.
    parts: Vec<(u64, Bytes)>,
}

impl Drop for Segments {
    fn drop(&mut self) {
        crate::metrics::input_buffered(-(self.bytes() as i64));
    }
}

impl Segments {
    fn bytes(&self) -> usize {
        self.parts.iter().map(|(_, b)| b.len()).sum()
    }
}

impl RowGroupBytes {
    /// Segments as read; they count as buffered input until the last clone is dropped.
    pub fn new(file_len: u64, parts: Vec<(u64, Bytes)>) -> RowGroupBytes {
        let inner = Segments { file_len, parts };
        crate::metrics::input_buffered(inner.bytes() as i64);
        RowGroupBytes { inner: Arc::new(inner) }
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.inner.bytes()
    }

    /// The bytes from `start` to the end of the segment that holds it.
    fn tail_from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        let parts = &self.inner.parts;
        let i = parts.partition_point(|(off, _)| *off <= start);
        let found = i.checked_sub(1).map(|i| &parts[i]).filter(|(off, b)| start < off + b.len() as u64);
        match found {
            Some((off, b)) => Ok(b.slice((start - off) as usize..)),
            None => Err(parquet::errors::ParquetError::General(format!(
                "byte {start} of the input was not fetched (a column the task was not planned to read)"
            ))),
        }
    }
}

impl Length for RowGroupBytes {
    fn len(&self) -> u64 {
        self.inner.file_len
    }
}

impl ChunkReader for RowGroupBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        use bytes::Buf;
        Ok(self.tail_from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let tail = self.tail_from(start)?;
        if tail.len() < length {
            return Err(parquet::errors::ParquetError::General(format!(
                "bytes {start}..{} of the input span two fetched segments",
                start + length as u64
            )));
        }
        Ok(tail.slice(..length))
    }
}

/// Read segments of a local file: one positioned read each.
pub fn read_local(file: &File, file_len: u64, segments: &[Range<u64>], what: &str) -> Result<RowGroupBytes> {
    let mut parts = Vec::with_capacity(segments.len());
    for s in segments {
        let mut buf = BytesMut::zeroed((s.end - s.start) as usize);
        file.read_exact_at(&mut buf, s.start).with_context(|| format!("cannot read bytes {}..{} of {what}", s.start, s.end))?;
        parts.push((s.start, buf.freeze()));
    }
    Ok(RowGroupBytes::new(file_len, parts))
}

/// Join the reads of one segment into one buffer (a single read is kept as it came).
pub fn join(mut pieces: Vec<Bytes>) -> Bytes {
    if pieces.len() == 1 {
        return pieces.pop().expect("one piece");
    }
    let mut out = BytesMut::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for p in pieces {
        out.extend_from_slice(&p);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_cut_at_the_limit_and_cover_the_segment() {
        let s = 10..10 + 2 * MAX_READ + 5;
        let r = reads(&s);
        assert_eq!(r, vec![10..10 + MAX_READ, 10 + MAX_READ..10 + 2 * MAX_READ, 10 + 2 * MAX_READ..s.end]);
    }

    #[test]
    fn a_reader_serves_ranges_inside_a_segment_and_refuses_others() {
        let rg = RowGroupBytes::new(1000, vec![(100, Bytes::from(vec![1u8; 50])), (400, Bytes::from((0..100u8).collect::<Vec<_>>()))]);
        assert_eq!(rg.get_bytes(410, 5).unwrap().as_ref(), &[10, 11, 12, 13, 14]);
        assert_eq!(rg.get_bytes(100, 50).unwrap().len(), 50);
        assert!(rg.get_bytes(140, 20).is_err(), "runs past its segment");
        assert!(rg.get_bytes(200, 1).is_err(), "between segments");
        assert!(rg.get_bytes(50, 1).is_err(), "before the first");
        assert_eq!(rg.bytes(), 150);
        assert_eq!(rg.len(), 1000);
    }
}
