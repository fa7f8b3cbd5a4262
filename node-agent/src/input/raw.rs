//! The bytes of one input file from an offset, as a blocking `std::io::Read`: a local
//! file (seek), or an S3 object (a GET from that offset, streamed in the chunks the HTTP
//! client delivers, never collected whole), decompressed when the file is.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use fleetform_core::input::Compression;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use fleetform_runtime::location::{self, Location};
use fleetform_runtime::Connections;

pub type ByteReader = Box<dyn Read + Send>;

/// Buffer of the line and element readers: large enough that S3 chunks and zstd frames
/// flow without many small reads, small next to a batch.
pub const READ_BUFFER: usize = 256 * 1024;

/// Opens one input file at any offset, as often as a task needs (once per unit for
/// byte ranges, once per attempt for streams).
pub struct RawFile {
    /// `file:///...` or `s3://...`, as stored in the task.
    pub uri: String,
    /// What error messages call the file: the path for local files, else the URI.
    pub display: String,
    place: Place,
    handle: tokio::runtime::Handle,
    /// (offset, newlines before it) of the last line-number lookup, so lookups at rising
    /// offsets (skipped records of one range) scan each byte once.
    newline_cache: Mutex<(u64, u64)>,
}

enum Place {
    Local(PathBuf),
    Remote {
        store: Arc<dyn ObjectStore>,
        key: Path,
    },
}

impl RawFile {
    /// Must be called on a blocking thread: S3 locations are opened through `conn`, on
    /// `handle`.
    pub fn open(conn: &Connections, uri: &str, handle: &tokio::runtime::Handle) -> Result<RawFile> {
        let (place, display) = match uri.strip_prefix("file://") {
            Some(path) => (Place::Local(PathBuf::from(path)), path.to_string()),
            None => {
                let (dir, name) = location::split_uri(uri)?;
                let loc = handle.block_on(Location::open(conn, &dir))?;
                (
                    Place::Remote {
                        store: loc.store.clone(),
                        key: loc.input_key(&name),
                    },
                    uri.to_string(),
                )
            }
        };
        Ok(RawFile {
            uri: uri.to_string(),
            display,
            place,
            handle: handle.clone(),
            newline_cache: Mutex::new((0, 0)),
        })
    }

    /// The file's bytes from `offset` to its end.
    pub fn read_from(&self, offset: u64) -> Result<ByteReader> {
        match &self.place {
            Place::Local(path) => {
                let mut f = File::open(path)
                    .with_context(|| format!("cannot open input {}", path.display()))?;
                f.seek(SeekFrom::Start(offset)).with_context(|| {
                    format!("cannot seek to byte {offset} of {}", path.display())
                })?;
                Ok(Box::new(f))
            }
            Place::Remote { store, key } => {
                // A GET to the end of the object; a reader that stops early drops the
                // stream, which ends the transfer.
                let options = GetOptions {
                    range: (offset > 0).then_some(GetRange::Offset(offset)),
                    ..Default::default()
                };
                let got = self
                    .handle
                    .block_on(store.get_opts(key, options))
                    .with_context(|| format!("cannot read {} from byte {offset}", self.uri))?;
                Ok(Box::new(StreamReader {
                    stream: got.into_stream(),
                    chunk: Bytes::new(),
                    handle: self.handle.clone(),
                }))
            }
        }
    }

    /// The file's content from its start, decompressed, buffered. `raw_bytes` counts the
    /// bytes read from storage (before decompression), for the submit-time estimate.
    pub fn decoded(
        &self,
        compression: Compression,
        raw_bytes: Option<Arc<AtomicU64>>,
    ) -> Result<BufReader<ByteReader>> {
        let mut raw = self.read_from(0)?;
        if let Some(counter) = raw_bytes {
            raw = Box::new(CountingReader {
                inner: raw,
                count: counter,
            });
        }
        let inner: ByteReader = match compression {
            Compression::None => raw,
            // Multi-member: `cat a.gz b.gz` and bgzip files are valid gzip streams.
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(READ_BUFFER, raw),
            )),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(raw)
                    .with_context(|| format!("cannot start decompressing {}", self.display))?,
            ),
        };
        Ok(BufReader::with_capacity(READ_BUFFER, inner))
    }

    /// The 1-based line number of the line starting at byte `offset` (uncompressed files).
    /// Reads the file up to there: only used to report a malformed record.
    pub fn line_at(&self, offset: u64) -> Result<u64> {
        let mut cache = self.newline_cache.lock().unwrap_or_else(|p| p.into_inner());
        let (from, mut newlines) = if cache.0 <= offset { *cache } else { (0, 0) };
        let mut r =
            BufReader::with_capacity(READ_BUFFER, self.read_from(from)?.take(offset - from));
        loop {
            let buf = r
                .fill_buf()
                .with_context(|| format!("cannot read {}", self.display))?;
            if buf.is_empty() {
                break;
            }
            newlines += buf.iter().filter(|&&b| b == b'\n').count() as u64;
            let n = buf.len();
            r.consume(n);
        }
        *cache = (offset, newlines);
        Ok(newlines + 1)
    }
}

/// An object_store byte stream as a blocking reader: one chunk held at a time.
struct StreamReader {
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    handle: tokio::runtime::Handle,
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.handle.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(b)) => self.chunk = b,
                Some(Err(e)) => {
                    return Err(std::io::Error::other(anyhow!(
                        "reading the object failed: {e}"
                    )))
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

struct CountingReader {
    inner: ByteReader,
    count: Arc<AtomicU64>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
