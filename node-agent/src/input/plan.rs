//! Submit-time planning of file input: which files an input URI names and in which
//! format, and for jsonl/json/csv/text the schema (sampled from the first file) and the
//! tasks (byte ranges of uncompressed line formats, whole files otherwise, and files
//! smaller than a unit packed several to a task).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use arrow_schema::Schema;
use fleetform_core::input::{Compression, InputFormat};
use fleetform_core::job::JobSpec;
use fleetform_core::task::{TaskSource, WholeFile};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;

use super::raw::RawFile;
use super::records::{is_blank, JsonArrayReader, LineReader};
use super::schema::{self, Sample};
use fleetform_runtime::location::{self, Location};
use fleetform_runtime::Connections;

/// How much of the first file (decompressed) submit reads to infer the schema and the
/// mean record size: a few thousand typical records, a fraction of a second from S3.
pub const SAMPLE_BYTES: usize = 256 * 1024;

/// One input file found at submit.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The key relative to the location (what parquet's footer reader opens).
    pub name: String,
    pub uri: String,
    pub size: u64,
    pub format: InputFormat,
    pub compression: Compression,
}

/// The files `uri` names, sorted, and their one format: `uri` is a file when its name
/// has an input extension (`.jsonl.gz`, `.parquet`...), else a directory or prefix whose
/// input files (not starting with `_` or `.`) are read. `explicit` is `input.format`.
pub async fn list_files(
    conn: &Connections,
    uri: &str,
    explicit: Option<InputFormat>,
) -> Result<(Location, Vec<InputFile>, InputFormat)> {
    let (loc, mut files) = match single_file(conn, uri, explicit).await? {
        Some((loc, file)) => (loc, vec![file]),
        None => {
            let loc = Location::open_existing(conn, uri).await?;
            let files = files_below(&loc, explicit).await?;
            (loc, files)
        }
    };
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let format = one_format(uri, &files, explicit)?;
    if let Some(f) = files
        .iter()
        .find(|f| f.format == InputFormat::Parquet && f.compression != Compression::None)
    {
        bail!("{}: parquet files are compressed inside; a compressed .parquet file cannot be read (decompress it)", f.uri);
    }
    Ok((loc, files, format))
}

/// The input files below a location (of the format `explicit`, if given), skipping every
/// path with a part that starts with `_` or `.` (markers, hidden files, and `_staging/`,
/// where a job writes before it publishes), as pyarrow datasets and Spark do.
async fn files_below(loc: &Location, explicit: Option<InputFormat>) -> Result<Vec<InputFile>> {
    let metas: Vec<object_store::ObjectMeta> = loc
        .store
        .list(Some(&loc.key("")))
        .try_collect()
        .await
        .with_context(|| format!("cannot list {}", loc.uri))?;
    let mut files = Vec::new();
    for m in metas {
        let name = loc.relative(&m.location);
        if name.split('/').any(|part| part.starts_with(['_', '.'])) {
            continue;
        }
        match InputFormat::of_file(&name) {
            Some((format, compression)) if explicit.is_none_or(|e| e == format) => {
                files.push(entry(loc, name, m.size, format, compression))
            }
            _ => {}
        }
    }
    Ok(files)
}

/// `uri` as one file: its name has an input extension and it is no directory (local) or
/// prefix (an S3 key that does not exist as an object).
async fn single_file(
    conn: &Connections,
    uri: &str,
    explicit: Option<InputFormat>,
) -> Result<Option<(Location, InputFile)>> {
    let Some((found, compression)) = InputFormat::of_file(uri) else {
        return Ok(None);
    };
    if uri
        .strip_prefix("file://")
        .is_some_and(|p| std::path::Path::new(p).is_dir())
    {
        return Ok(None);
    }
    let (dir, name) = location::split_uri(uri)?;
    let loc = Location::open_existing(conn, &dir).await?;
    let size = match &loc.local_dir {
        // The user's own file, by its own name: object_store's local keys are its
        // percent-encoding of the name (`데이터.jsonl` would be looked up as `%EB%8D…`).
        Some(local) => std::fs::metadata(local.join(&name)).map(|m| m.len()).with_context(|| format!("cannot read the input file {uri}"))?,
        None => match loc.store.head(&loc.input_key(&name)).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read the input file {uri}")),
        },
    };
    let file = entry(&loc, name, size, explicit.unwrap_or(found), compression);
    Ok(Some((loc, file)))
}

fn entry(
    loc: &Location,
    name: String,
    size: u64,
    format: InputFormat,
    compression: Compression,
) -> InputFile {
    InputFile {
        uri: format!("{}/{}", loc.uri, name),
        name,
        size,
        format,
        compression,
    }
}

/// The format every file has, or an error saying how to choose.
fn one_format(
    uri: &str,
    files: &[InputFile],
    explicit: Option<InputFormat>,
) -> Result<InputFormat> {
    let mut formats: Vec<InputFormat> = files.iter().map(|f| f.format).collect();
    formats.dedup();
    formats.sort_by_key(|f| f.name());
    formats.dedup();
    match (formats.as_slice(), explicit) {
        ([], Some(f)) => bail!("no {} files under {uri} (looked for names ending in .{})", f.name(), f.name()),
        ([], None) => bail!("no input files under {uri}: names ending in .parquet, .jsonl, .ndjson, .json, .csv or .txt (optionally .gz or .zst)"),
        ([one], _) => Ok(*one),
        (many, _) => {
            let counts: Vec<String> =
                many.iter().map(|f| format!("{} ({} files)", f.name(), files.iter().filter(|x| x.format == *f).count())).collect();
            bail!("{uri} holds files of several formats: {}; set `input.format` to read one of them", counts.join(", "))
        }
    }
}

/// The tasks and schema of a jsonl/json/csv/text job.
pub struct RecordPlan {
    pub sources: Vec<TaskSource>,
    pub schema: Schema,
    pub warnings: Vec<String>,
}

/// Sample the first non-empty file for the schema and records per byte, then cut every
/// file into tasks. Empty files make no task.
pub async fn plan(
    conn: &Connections,
    spec: &JobSpec,
    format: InputFormat,
    files: Vec<InputFile>,
) -> Result<RecordPlan> {
    let files: Vec<InputFile> = files.into_iter().filter(|f| f.size > 0).collect();
    let Some(first) = files.first().cloned() else {
        bail!(
            "every {} input file is empty: nothing to read",
            format.name()
        );
    };
    let handle = tokio::runtime::Handle::current();
    let conn = conn.clone();
    let csv_header = format == InputFormat::Csv && spec.input.csv.header;
    let (sample, records_per_byte) =
        tokio::task::spawn_blocking(move || sample_file(&conn, &first, csv_header, &handle))
            .await
            .map_err(|e| anyhow!("sampling the input failed: {e}"))??;
    let resolved = schema::resolve(
        format,
        spec.input.schema.as_ref(),
        &spec.input.csv,
        &display(&files[0].uri),
        &sample,
    )?;
    let estimate = |bytes: u64| (bytes as f64 * records_per_byte).round() as u64;
    let mut sources = Vec::new();
    let mut small = Vec::new();
    for f in files {
        if f.size < spec.split.bytes_per_unit {
            small.push(f);
            continue;
        }
        if !f.format.splits_by_bytes(f.compression) {
            let est_rows = estimate(f.size);
            sources.push(TaskSource::Stream { uri: f.uri, format, compression: f.compression, bytes: f.size, est_rows });
            continue;
        }
        let mut start = 0;
        while start < f.size {
            let end = (start + spec.split.bytes_per_task).min(f.size);
            sources.push(TaskSource::ByteRange {
                uri: f.uri.clone(),
                format,
                start,
                end,
                unit_bytes: spec.split.bytes_per_unit,
                est_rows: estimate(end - start),
            });
            start = end;
        }
    }
    sources.extend(pack_small_files(small, spec.split.bytes_per_task, format, estimate));
    Ok(RecordPlan {
        sources,
        schema: resolved.schema,
        warnings: resolved.warnings,
    })
}

/// A task of small files names at most this many bytes of URIs: its queue message stays
/// far below SQS's 256 KiB limit (a few hundred files of S3 keys).
const MAX_URI_BYTES_PER_TASK: usize = 64 * 1024;

/// Files smaller than a unit, packed in name order into tasks of about `bytes_per_task`
/// (each file one unit: a resumed task re-reads only the files it had not finished).
fn pack_small_files(
    files: Vec<InputFile>,
    bytes_per_task: u64,
    format: InputFormat,
    estimate: impl Fn(u64) -> u64,
) -> Vec<TaskSource> {
    let mut tasks = Vec::new();
    let mut group: Vec<WholeFile> = Vec::new();
    let (mut bytes, mut uri_bytes) = (0u64, 0usize);
    for f in files {
        let full = !group.is_empty() && (bytes + f.size > bytes_per_task || uri_bytes + f.uri.len() > MAX_URI_BYTES_PER_TASK);
        if full {
            tasks.push(TaskSource::Files { format, files: std::mem::take(&mut group), est_rows: estimate(bytes) });
            (bytes, uri_bytes) = (0, 0);
        }
        bytes += f.size;
        uri_bytes += f.uri.len();
        group.push(WholeFile { uri: f.uri, compression: f.compression, bytes: f.size });
    }
    if !group.is_empty() {
        tasks.push(TaskSource::Files { format, files: group, est_rows: estimate(bytes) });
    }
    tasks
}

/// A file's name in messages: the path for local files.
fn display(uri: &str) -> String {
    uri.strip_prefix("file://").unwrap_or(uri).to_string()
}

/// The first records of a file (at most `SAMPLE_BYTES`, whole records, each ending in
/// `\n`; the CSV header counted as no record) and records per stored byte.
fn sample_file(
    conn: &Connections,
    file: &InputFile,
    csv_header: bool,
    handle: &tokio::runtime::Handle,
) -> Result<(Sample, f64)> {
    let raw = RawFile::open(conn, &file.uri, handle)?;
    let stored = Arc::new(AtomicU64::new(0));
    let reader = raw.decoded(file.compression, Some(stored.clone()))?;
    let mut sample = Sample {
        bytes: Vec::new(),
        records: 0,
    };
    let push = |record: &[u8], sample: &mut Sample| {
        sample.bytes.extend_from_slice(record);
        if record.last() != Some(&b'\n') {
            sample.bytes.push(b'\n');
        }
    };
    let mut reached_end = true;
    if file.format == InputFormat::Json {
        let mut array = JsonArrayReader::new(reader, &raw.display);
        while let Some((element, _)) = array.next_element()? {
            push(element, &mut sample);
            sample.records += 1;
            if sample.bytes.len() >= SAMPLE_BYTES {
                reached_end = false;
                break;
            }
        }
    } else {
        let mut lines = LineReader::new(reader, 0);
        let mut header = csv_header;
        while let Some((line, _)) = lines
            .next_line()
            .with_context(|| format!("cannot read {}", raw.display))?
        {
            if file.format != InputFormat::Text && is_blank(line) {
                continue;
            }
            push(line, &mut sample);
            if !std::mem::take(&mut header) {
                sample.records += 1;
            }
            if sample.bytes.len() >= SAMPLE_BYTES {
                reached_end = false;
                break;
            }
        }
        if !reached_end && file.compression == Compression::None {
            stored.store(lines.pos, Ordering::Relaxed); // exact, where the reader's read-ahead is not
        }
    }
    let stored = if reached_end {
        file.size
    } else {
        stored.load(Ordering::Relaxed)
    };
    let per_byte = if stored == 0 {
        0.0
    } else {
        sample.records as f64 / stored as f64
    };
    Ok((sample, per_byte))
}
