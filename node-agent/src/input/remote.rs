//! Parquet input in an object store (S3): the footer with one suffix GET, then for each
//! row group only the column chunks the task needs, in concurrent ranged GETs, with the
//! next row group in flight while this one is processed.
//!
//! Memory: a slot holds at most `SLOT_INPUT_BUFFER_BYTES` of fetched input (the row group
//! being processed plus the one in flight); a row group that would exceed it is fetched
//! only when its turn comes. The agent reports what it holds in
//! `fleetform_agent_input_buffered_bytes` and what it fetched in
//! `fleetform_agent_input_fetched_bytes`.

use std::ops::Range;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use parquet::file::metadata::{FooterTail, ParquetMetaData, ParquetMetaDataReader};
use tokio::task::JoinHandle;

use super::row_groups::{self, RowGroupBytes};

/// Fetched input one slot may hold: the current row group and the next one in flight.
pub const SLOT_INPUT_BUFFER_BYTES: u64 = 512 * 1024 * 1024;
/// Without the footer's length from submit (`TaskSource::Parquet::footer_bytes`), the first
/// GET of a file asks for its last 64 KiB: the footer of a file of a few hundred row
/// groups fits, so opening a file is one request.
const FOOTER_GUESS: u64 = 64 * 1024;
/// Ranged GETs in flight per slot (S3 serves thousands per prefix per second; eight keep
/// one slot's input streaming at several times one connection's rate).
const CONCURRENT_READS: usize = 8;

/// One remote parquet file, opened by a task.
pub struct RemoteFile {
    store: Arc<dyn ObjectStore>,
    path: Path,
    uri: String,
    len: u64,
    /// The bytes the footer GET brought (they also end the last row group's data).
    tail: (u64, Bytes),
    footer_bytes: u64,
}

impl RemoteFile {
    /// Open `path`: one suffix GET of exactly the footer when its length is known, else of
    /// a guess (two GETs when the footer is larger than that).
    pub async fn open(store: Arc<dyn ObjectStore>, path: Path, uri: &str, footer_bytes: Option<u64>) -> Result<(RemoteFile, ParquetMetaData)> {
        let suffix = footer_bytes.filter(|&n| n >= 8).unwrap_or(FOOTER_GUESS);
        let options = GetOptions { range: Some(GetRange::Suffix(suffix)), ..Default::default() };
        let got = store.get_opts(&path, options).await.with_context(|| format!("cannot read {uri}"))?;
        let (len, start) = (got.meta.size, got.range.start);
        let mut tail = got.bytes().await.with_context(|| format!("cannot read {uri}"))?;
        crate::metrics::input_fetched(tail.len() as u64);
        if tail.len() < 8 {
            bail!("{uri} is not a parquet file: it has {len} bytes");
        }
        let last8: [u8; 8] = tail[tail.len() - 8..].try_into().expect("8 bytes");
        let footer = FooterTail::try_new(&last8).with_context(|| format!("{uri} is not a parquet file"))?;
        let need = footer.metadata_length() as u64 + 8;
        let mut tail_start = start;
        if need > tail.len() as u64 {
            let more = get(&store, &path, len.saturating_sub(need)..start).await.with_context(|| format!("cannot read {uri}"))?;
            tail_start = len.saturating_sub(need);
            tail = row_groups::join(vec![more, tail]);
        }
        let meta_bytes = &tail[tail.len() - need as usize..tail.len() - 8];
        let meta = ParquetMetaDataReader::decode_metadata(meta_bytes).with_context(|| format!("{uri} is not a readable parquet file"))?;
        let file = RemoteFile { store, path, uri: uri.to_string(), len, tail: (tail_start, tail), footer_bytes: need };
        Ok((file, meta))
    }

    /// The footer's length: metadata and its 8-byte tail.
    pub fn footer_bytes(&self) -> u64 {
        self.footer_bytes
    }

    /// Fetch `segments`: each cut into reads of at most `MAX_READ`, all in flight together
    /// up to `CONCURRENT_READS`; bytes the footer GET already brought are not fetched again.
    pub async fn fetch(self: Arc<Self>, segments: Vec<Range<u64>>) -> Result<RowGroupBytes> {
        let (tail_start, tail) = (self.tail.0, self.tail.1.clone());
        let mut plan: Vec<(usize, Range<u64>)> = Vec::new();
        for (i, s) in segments.iter().enumerate() {
            let remote_end = s.end.min(tail_start).max(s.start);
            plan.extend(row_groups::reads(&(s.start..remote_end)).into_iter().map(|r| (i, r)));
            if remote_end < s.end {
                plan.push((i, remote_end..s.end)); // served from the footer's bytes
            }
        }
        let this = self.clone();
        let pieces: Vec<(usize, Bytes)> = futures::stream::iter(plan)
            .map(|(i, r)| {
                let this = this.clone();
                let tail = tail.clone();
                async move {
                    if r.start >= tail_start {
                        return Ok((i, tail.slice((r.start - tail_start) as usize..(r.end - tail_start) as usize)));
                    }
                    let b = get(&this.store, &this.path, r.clone()).await.with_context(|| format!("cannot read bytes {}..{} of {}", r.start, r.end, this.uri))?;
                    crate::metrics::input_fetched(b.len() as u64);
                    anyhow::Ok((i, b))
                }
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let mut by_segment: Vec<Vec<Bytes>> = vec![Vec::new(); segments.len()];
        for (i, b) in pieces {
            by_segment[i].push(b);
        }
        let parts = segments.iter().zip(by_segment).map(|(s, p)| (s.start, row_groups::join(p))).collect();
        Ok(RowGroupBytes::new(self.len, parts))
    }
}

async fn get(store: &Arc<dyn ObjectStore>, path: &Path, r: Range<u64>) -> object_store::Result<Bytes> {
    store.get_range(path, r).await
}

/// A task's remote row groups, read one after another with the next one prefetched.
pub struct Prefetcher {
    file: Arc<RemoteFile>,
    /// Segments of each row group of the task, in order.
    plan: Vec<Vec<Range<u64>>>,
    in_flight: Option<(usize, JoinHandle<Result<RowGroupBytes>>)>,
}

impl Prefetcher {
    pub fn new(file: RemoteFile, plan: Vec<Vec<Range<u64>>>) -> Prefetcher {
        Prefetcher { file: Arc::new(file), plan, in_flight: None }
    }

    /// Row group `u` of the task (task-relative), then start fetching `u + 1` when both
    /// fit the slot's buffer.
    pub fn take(&mut self, u: usize, handle: &tokio::runtime::Handle) -> Result<RowGroupBytes> {
        let current = match self.in_flight.take() {
            Some((v, job)) if v == u => handle.block_on(job).context("the input prefetch panicked")??,
            other => {
                if let Some((_, job)) = other {
                    job.abort(); // not the unit asked for (a resumed task): drop it
                }
                handle.block_on(self.file.clone().fetch(self.plan[u].clone()))?
            }
        };
        if let Some(next) = self.plan.get(u + 1) {
            let next_bytes: u64 = next.iter().map(|r| r.end - r.start).sum();
            if current.bytes() as u64 + next_bytes <= SLOT_INPUT_BUFFER_BYTES {
                self.in_flight = Some((u + 1, handle.spawn(self.file.clone().fetch(next.clone()))));
            }
        }
        Ok(current)
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        if let Some((_, job)) = self.in_flight.take() {
            job.abort();
        }
    }
}
