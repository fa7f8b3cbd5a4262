//! Where an output chunk's bytes wait while the task writes it, until it is complete and
//! goes to the job's output under its final name (which is known only then: it names the
//! chunk's last unit).
//!
//! A local output: a file on the spill disk, renamed into place (no second copy). An
//! object store (S3): memory, up to `MEMORY_STAGE_MAX`, handed to the upload without a
//! copy; staging those bytes on the disk would write every output byte to it and read it
//! back before the upload. A chunk larger than that spills to the disk and is uploaded
//! from there, so memory stays bounded whatever `rows_per_file` asks for.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};

/// The spill file's write buffer: parquet hands over pages and copied chunks in small
/// pieces (8 KiB for copies), and one write per MiB is far fewer system calls.
const FILE_WRITE_BUFFER: usize = 1024 * 1024;
/// In-memory staging grows in blocks of this size (no reallocation, no copy on growth).
const BLOCK: usize = 1024 * 1024;
/// The most an object-store chunk holds in memory before it spills to the disk. With
/// `UPLOADS_IN_FLIGHT` finished chunks uploading beside the open one, a slot holds at most
/// three times this of output.
pub const MEMORY_STAGE_MAX: u64 = 64 * 1024 * 1024;

/// A chunk being written.
pub struct Staging {
    /// Spill file's path (created only when the chunk goes to the disk).
    path: PathBuf,
    memory_max: u64,
    blocks: Vec<Bytes>,
    current: BytesMut,
    file: Option<BufWriter<File>>,
    bytes: u64,
}

/// A finished chunk, ready to go to the output: the runtime's store uploads it.
pub use fleetform_runtime::store::Staged;

impl Staging {
    /// Stage in memory up to `memory_max` bytes (0: straight to the file at `path`).
    pub fn new(path: PathBuf, memory_max: u64) -> Result<Staging> {
        let mut s = Staging { path, memory_max, blocks: Vec::new(), current: BytesMut::new(), file: None, bytes: 0 };
        if memory_max == 0 {
            s.spill()?;
        }
        Ok(s)
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Move what memory holds to the spill file and write there from now on.
    fn spill(&mut self) -> std::io::Result<()> {
        let file = File::create(&self.path)?;
        let mut w = BufWriter::with_capacity(FILE_WRITE_BUFFER, file);
        for b in self.blocks.drain(..) {
            w.write_all(&b)?;
        }
        w.write_all(&self.current)?;
        crate::metrics::output_buffered(-(self.bytes as i64)); // all of it is on the disk now
        self.current = BytesMut::new();
        self.file = Some(w);
        Ok(())
    }

    /// The chunk is complete: its bytes, in memory or in the flushed spill file.
    pub fn finish(mut self) -> Result<Staged> {
        match self.file.take() {
            Some(w) => {
                let mut file = w.into_inner().map_err(|e| e.into_error()).with_context(|| format!("cannot write {}", self.path.display()))?;
                file.flush().with_context(|| format!("cannot write {}", self.path.display()))?;
                Ok(Staged::File { path: self.path.clone(), bytes: self.bytes })
            }
            None => {
                let last = std::mem::take(&mut self.current);
                if !last.is_empty() {
                    self.blocks.push(last.freeze());
                }
                // Handed over: the upload reports their release when it ends (`staging::uploaded`).
                let blocks = std::mem::take(&mut self.blocks);
                Ok(Staged::Memory { blocks, bytes: std::mem::replace(&mut self.bytes, 0) })
            }
        }
    }
}

impl Write for Staging {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() && self.bytes + buf.len() as u64 > self.memory_max {
            self.spill()?;
        }
        self.bytes += buf.len() as u64;
        if let Some(f) = self.file.as_mut() {
            return f.write_all(buf).map(|()| buf.len());
        }
        crate::metrics::output_buffered(buf.len() as i64);
        let mut rest = buf;
        while !rest.is_empty() {
            if self.current.capacity() == self.current.len() {
                if !self.current.is_empty() {
                    self.blocks.push(std::mem::take(&mut self.current).freeze());
                }
                self.current = BytesMut::with_capacity(BLOCK);
            }
            let n = rest.len().min(self.current.capacity() - self.current.len());
            self.current.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(()) // `finish` flushes the spill file; memory needs nothing
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.file.is_none() {
            crate::metrics::output_buffered(-(self.bytes as i64));
        }
    }
}

/// The upload of a staged chunk's bytes ended (either way): memory they held is free.
pub fn uploaded(bytes: u64, in_memory: bool) {
    if in_memory {
        crate::metrics::output_buffered(-(bytes as i64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(s: Staged) -> Vec<u8> {
        match s {
            Staged::Memory { blocks, .. } => blocks.concat(),
            Staged::File { path, .. } => std::fs::read(path).unwrap(),
        }
    }

    #[test]
    fn small_chunks_stay_in_memory_and_large_ones_spill_with_every_byte() {
        let dir = std::env::temp_dir().join(format!("fleetform-staging-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..3 * BLOCK + 17).map(|i| (i % 251) as u8).collect();
        let mut s = Staging::new(dir.join("a"), 4 * BLOCK as u64).unwrap();
        for piece in data.chunks(8192 + 5) {
            s.write_all(piece).unwrap();
        }
        let staged = s.finish().unwrap();
        assert!(matches!(staged, Staged::Memory { .. }), "under the bound: in memory");
        assert!(!dir.join("a").exists(), "nothing on the disk");
        assert_eq!(written(staged), data);

        let mut s = Staging::new(dir.join("b"), 2 * BLOCK as u64).unwrap();
        for piece in data.chunks(100_000) {
            s.write_all(piece).unwrap();
        }
        let staged = s.finish().unwrap();
        assert!(matches!(staged, Staged::File { .. }), "over the bound: spilled");
        assert_eq!(staged.bytes(), data.len() as u64);
        assert_eq!(written(staged), data);

        let mut s = Staging::new(dir.join("c"), 0).unwrap();
        s.write_all(&data[..10]).unwrap();
        assert_eq!(written(s.finish().unwrap()), &data[..10], "no memory allowed: a file from the first byte");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
