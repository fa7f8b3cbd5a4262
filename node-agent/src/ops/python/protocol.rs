//! The frames the agent and its Python worker exchange (described in `runner.py`): a
//! kind byte, a u64 little-endian length, the payload. Batches travel as Arrow IPC
//! streams, so a batch crosses the pipe as its column buffers, with no per-row encoding.

use std::io::{self, Read, Write};

use anyhow::{anyhow, Context, Result};
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;

pub const INIT: u8 = b'I';
pub const READY: u8 = b'R';
pub const BATCH: u8 = b'B';
pub const ERROR: u8 = b'E';
/// What the user's code printed or logged, ahead of a reply.
pub const OUTPUT: u8 = b'L';

/// Larger than any header a sane worker sends, smaller than memory: a length beyond it
/// means the stream is out of step (a bug), not a batch.
const MAX_FRAME: u64 = 16 << 30;

pub struct Frame {
    pub kind: u8,
    pub payload: Vec<u8>,
}

pub fn write_frame(w: &mut impl Write, kind: u8, parts: &[&[u8]]) -> io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    w.write_all(&[kind])?;
    w.write_all(&(len as u64).to_le_bytes())?;
    for p in parts {
        w.write_all(p)?;
    }
    w.flush()
}

/// The next frame, or None at a clean end of stream (the worker exited between frames).
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Frame>> {
    let mut head = [0u8; 9];
    match r.read_exact(&mut head[..1]) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut head[1..])?;
    let len = u64::from_le_bytes(head[1..].try_into().expect("8 bytes"));
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes: the worker's output is out of step"),
        ));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(Some(Frame {
        kind: head[0],
        payload,
    }))
}

/// A batch request: the function's index, then the rows as one IPC stream of the slices.
pub fn encode_batch(
    function_index: u32,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    let mut out = function_index.to_le_bytes().to_vec();
    let mut w =
        StreamWriter::try_new(&mut out, schema).context("cannot start the Arrow IPC stream")?;
    for b in batches {
        w.write(b)
            .context("cannot encode a batch for the python worker")?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}

/// The batches of one IPC stream, and its schema (a function may return no rows).
pub fn decode_stream(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut buf = Buffer::from_vec(bytes);
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while !buf.is_empty() {
        if let Some(b) = decoder
            .decode(&mut buf)
            .context("the python worker's reply is not an Arrow IPC stream")?
        {
            batches.push(b);
        }
    }
    decoder
        .finish()
        .context("the python worker's reply ends mid-stream")?;
    let schema = decoder
        .schema()
        .ok_or_else(|| anyhow!("the python worker's reply has no schema"))?;
    Ok((schema, batches))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    use super::*;

    #[test]
    fn frames_and_slices_round_trip() {
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..10));
        let text: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..10).map(|i| format!("row {i}")),
        ));
        let batch = RecordBatch::try_from_iter(vec![("id", ids), ("text", text)]).unwrap();
        let slices = [batch.slice(2, 3), batch.slice(7, 2)];
        let payload = encode_batch(7, &batch.schema(), &slices).unwrap();
        let mut wire = Vec::new();
        write_frame(&mut wire, BATCH, &[&payload]).unwrap();
        let mut r = wire.as_slice();
        let frame = read_frame(&mut r).unwrap().unwrap();
        assert_eq!(frame.kind, BATCH);
        assert!(
            read_frame(&mut r).unwrap().is_none(),
            "clean end after the frame"
        );
        assert_eq!(
            u32::from_le_bytes(frame.payload[..4].try_into().unwrap()),
            7
        );
        let (schema, got) = decode_stream(frame.payload[4..].to_vec()).unwrap();
        assert_eq!(schema, batch.schema());
        assert_eq!(got, slices.to_vec(), "slices arrive as their own rows");
    }

    #[test]
    fn a_truncated_frame_is_an_error_not_an_end() {
        let mut wire = Vec::new();
        write_frame(&mut wire, ERROR, &[b"0123456789"]).unwrap();
        let err = read_frame(&mut &wire[..wire.len() - 1])
            .err()
            .expect("truncated");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
