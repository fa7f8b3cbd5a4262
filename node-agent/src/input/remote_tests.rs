//! Remote parquet input against an in-memory object store that records every GET: the
//! footer costs one request, only the column chunks asked for are fetched, no byte
//! twice, and the decoded values equal a local read's.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutOptions, PutPayload, PutResult,
};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use super::remote::{Prefetcher, RemoteFile};
use super::row_groups;

/// An in-memory store that records the range of every GET.
#[derive(Debug, Default)]
struct Recording {
    inner: InMemory,
    gets: Mutex<Vec<Option<GetRange>>>,
}

impl std::fmt::Display for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recording")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Recording {
    async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> object_store::Result<PutResult> {
        self.inner.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(&self, p: &Path, o: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
        self.gets.lock().unwrap().push(o.range.clone());
        self.inner.get_opts(p, o).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}

/// A file of `groups` row groups with a small `id`, a `text` and a large `extra` column.
fn parquet_file(groups: usize, rows: usize) -> Bytes {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("extra", DataType::Utf8, true),
    ]));
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::try_new(1).unwrap())).build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(props)).unwrap();
    for g in 0..groups {
        let ids: Vec<i64> = (0..rows).map(|i| (g * rows + i) as i64).collect();
        let text: Vec<String> = ids.iter().map(|i| format!("row {i} Text")).collect();
        // Pseudo-random, so that zstd cannot shrink it to nothing.
        let extra: Vec<String> = ids.iter().map(|i| format!("{:x}", (*i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(ids)), Arc::new(StringArray::from(text)), Arc::new(StringArray::from(extra))],
        )
        .unwrap();
        w.write(&b).unwrap();
        w.flush().unwrap();
    }
    Bytes::from(w.into_inner().unwrap())
}

fn fetched(r: &Option<GetRange>) -> Range<u64> {
    match r {
        Some(GetRange::Bounded(r)) => r.clone(),
        other => panic!("expected a bounded range, got {other:?}"),
    }
}

#[test]
fn a_task_fetches_the_footer_once_and_only_the_chunks_it_reads() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let h = rt.handle().clone();
    let file = parquet_file(4, 3000);
    let store = Arc::new(Recording::default());
    let path = Path::from("in/a.parquet");
    h.block_on(store.put(&path, PutPayload::from(file.clone()))).unwrap();

    let (remote, meta) = h.block_on(RemoteFile::open(store.clone(), path, "mem://in/a.parquet", None)).unwrap();
    assert_eq!(store.gets.lock().unwrap().as_slice(), &[Some(GetRange::Suffix(64 * 1024))], "one suffix GET opens the file");
    let meta = Arc::new(meta);
    // Row groups 1..4 of the file, columns `id` and `text` (not `extra`).
    let columns = [0usize, 1];
    let plan: Vec<_> = (1..4).map(|rg| row_groups::segments(&meta, rg, &columns)).collect();
    let mut prefetch = Prefetcher::new(remote, plan);
    let arrow_meta = ArrowReaderMetadata::try_new(meta.clone(), ArrowReaderOptions::new()).unwrap();
    let local_meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).unwrap();
    for u in 0..3 {
        let bytes = prefetch.take(u, &h).unwrap();
        let mask = ProjectionMask::roots(meta.file_metadata().schema_descr(), [0, 1]);
        let remote_rows: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, arrow_meta.clone())
            .with_row_groups(vec![u + 1])
            .with_projection(mask.clone())
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        let local_rows: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), local_meta.clone())
            .with_row_groups(vec![u + 1])
            .with_projection(mask)
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect();
        assert_eq!(remote_rows, local_rows, "row group {}", u + 1);
    }
    drop(prefetch);

    // What was fetched: after the footer, exactly the `id` and `text` chunks of row groups
    // 1..4 (adjacent ones coalesced), no byte twice and nothing of `extra` or row group 0.
    let gets = store.gets.lock().unwrap().clone();
    let mut ranges: Vec<Range<u64>> = gets[1..].iter().map(fetched).collect();
    ranges.sort_by_key(|r| r.start);
    for w in ranges.windows(2) {
        assert!(w[0].end <= w[1].start, "fetched twice: {ranges:?}");
    }
    let footer_start = file.len() as u64 - 64 * 1024.min(file.len() as u64);
    let wanted: Vec<Range<u64>> = (1..4)
        .flat_map(|rg| columns.map(|c| meta.row_group(rg).column(c).byte_range()))
        .map(|(s, l)| s..(s + l).min(footer_start.max(s)))
        .filter(|r| !r.is_empty())
        .collect();
    let covered = |at: u64| ranges.iter().any(|r| r.contains(&at));
    for r in &wanted {
        assert!(covered(r.start) && covered(r.end - 1), "chunk {r:?} not fetched: {ranges:?}");
    }
    for rg in 0..4 {
        let (s, l) = meta.row_group(rg).column(2).byte_range();
        let extra = s..s + l;
        assert!(ranges.iter().all(|r| r.end <= extra.start || r.start >= extra.end), "`extra` of row group {rg} fetched: {ranges:?}");
    }
    let (s, _) = meta.row_group(0).column(0).byte_range();
    assert!(ranges.iter().all(|r| r.start > s), "row group 0 fetched");
}

/// With the footer's length from submit, a task's first GET brings exactly the footer:
/// none of the last row group's bytes, which another task of the same file may read.
#[test]
fn with_the_footer_length_known_the_first_get_brings_exactly_the_footer() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let h = rt.handle().clone();
    let file = parquet_file(4, 3000);
    let store = Arc::new(Recording::default());
    let path = Path::from("in/a.parquet");
    h.block_on(store.put(&path, PutPayload::from(file.clone()))).unwrap();
    let last8: [u8; 8] = file[file.len() - 8..].try_into().unwrap();
    let footer = parquet::file::metadata::FooterTail::try_new(&last8).unwrap().metadata_length() as u64 + 8;

    let (guessed, _) = h.block_on(RemoteFile::open(store.clone(), path.clone(), "mem://in/a.parquet", None)).unwrap();
    assert_eq!(guessed.footer_bytes(), footer, "the length submit records");
    let (exact, meta) = h.block_on(RemoteFile::open(store.clone(), path, "mem://in/a.parquet", Some(footer))).unwrap();
    assert_eq!(exact.footer_bytes(), footer);
    assert_eq!(meta.num_row_groups(), 4);
    assert_eq!(store.gets.lock().unwrap().last().unwrap(), &Some(GetRange::Suffix(footer)), "one GET of exactly the footer");
}
