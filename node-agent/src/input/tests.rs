//! The record readers on small generated files: byte-range splits read every record
//! exactly once, resuming at any unit gives the same rows, malformed records are named
//! by file and line. (Whole jobs through the agent: `exec::input_job_tests`.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use fleetform_core::input::{Compression, CsvOptions, InputFormat, OnError};
use fleetform_core::task::TaskSource;
use fleetform_runtime::Connections;
use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::units::RecordUnits;
use super::JobInput;

pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("fleetform-{what}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    pub(crate) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `bytes` compressed as a file named `*.gz` / `*.zst` would be.
pub(crate) fn compress(bytes: &[u8], c: Compression) -> Vec<u8> {
    match c {
        Compression::None => bytes.to_vec(),
        Compression::Gzip => {
            // Two gzip members, as `cat a.gz b.gz` makes: readers must not stop at the first.
            let half = bytes.len() / 2;
            let mut out = Vec::new();
            for part in [&bytes[..half], &bytes[half..]] {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(part).unwrap();
                out.extend(e.finish().unwrap());
            }
            out
        }
        Compression::Zstd => zstd::stream::encode_all(bytes, 3).unwrap(),
    }
}

fn input(schema: Schema, on_error: OnError, csv: CsvOptions) -> Arc<JobInput> {
    Arc::new(JobInput {
        schema: Arc::new(schema),
        on_error,
        csv,
        warned_unknown_field: Default::default(),
    })
}

fn text_input() -> Arc<JobInput> {
    input(
        Schema::new(vec![Field::new("text", DataType::Utf8, true)]),
        OnError::Fail,
        CsvOptions::default(),
    )
}

/// The tasks submit makes of one uncompressed file.
fn byte_ranges(
    path: &Path,
    format: InputFormat,
    bytes_per_task: u64,
    unit_bytes: u64,
) -> Vec<TaskSource> {
    let size = std::fs::metadata(path).unwrap().len();
    let uri = format!("file://{}", path.display());
    (0..size.div_ceil(bytes_per_task))
        .map(|i| {
            let start = i * bytes_per_task;
            TaskSource::ByteRange {
                uri: uri.clone(),
                format,
                start,
                end: (start + bytes_per_task).min(size),
                unit_bytes,
                est_rows: 0,
            }
        })
        .collect()
}

/// Read units [from, to) of a task (to = None: until its last unit) with a fresh reader,
/// as one attempt does.
fn read_units(
    src: &TaskSource,
    input: &Arc<JobInput>,
    batch: usize,
    from: usize,
    to: Option<usize>,
) -> anyhow::Result<Vec<RecordBatch>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut units = RecordUnits::open(src, input.clone(), batch, &Connections::from_env(), rt.handle())?;
    let mut out = Vec::new();
    let mut u = from;
    loop {
        if to == Some(u) || units.units().is_some_and(|n| u >= n) {
            break;
        }
        let read = units.read_unit(u, &mut |b| {
            out.push(b);
            Ok(())
        })?;
        u += 1;
        if read.last {
            break;
        }
    }
    Ok(out)
}

fn column(batches: &[RecordBatch], name: &str) -> Vec<String> {
    let mut v = Vec::new();
    for b in batches {
        let col = b.column_by_name(name).unwrap();
        let s = arrow_cast_to_strings(col.as_ref());
        v.extend(s);
    }
    v
}

fn arrow_cast_to_strings(col: &dyn Array) -> Vec<String> {
    if let Some(s) = col.as_any().downcast_ref::<StringArray>() {
        return (0..s.len())
            .map(|i| {
                if s.is_null(i) {
                    "<null>".into()
                } else {
                    s.value(i).to_string()
                }
            })
            .collect();
    }
    if let Some(n) = col.as_any().downcast_ref::<arrow_array::Int64Array>() {
        return (0..n.len())
            .map(|i| {
                if n.is_null(i) {
                    "<null>".into()
                } else {
                    n.value(i).to_string()
                }
            })
            .collect();
    }
    panic!("unexpected column type {:?}", col.data_type())
}

/// A text file of `lines` random lines (some empty, some long), with or without a final
/// line break; returns the lines.
fn random_text(
    rng: &mut Xoshiro256PlusPlus,
    lines: usize,
    final_newline: bool,
) -> (Vec<u8>, Vec<String>) {
    let mut want = Vec::new();
    for _ in 0..lines {
        let len = match rng.next_u32() % 10 {
            0 => 0,
            1 => 200 + (rng.next_u32() % 300) as usize,
            _ => (rng.next_u32() % 40) as usize,
        };
        want.push(
            (0..len)
                .map(|_| (b'a' + (rng.next_u32() % 26) as u8) as char)
                .collect::<String>(),
        );
    }
    if !final_newline && want.last().is_some_and(|l| l.is_empty()) {
        // "a\n" is one line, "a" + an empty last line without a break would be too.
        want.last_mut().unwrap().push('z');
    }
    let mut bytes = want.join("\n").into_bytes();
    if final_newline {
        bytes.push(b'\n');
    }
    (bytes, want)
}

/// Hadoop's rule, checked by brute force: for random files and random task and unit
/// sizes (down to one byte), the units of all tasks together read every line once, in
/// order. Text keeps empty lines as rows; the last line needs no line break.
#[test]
fn byte_ranges_read_every_line_exactly_once_whatever_the_split() {
    let dir = TempDir::new("ranges");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let input = text_input();
    for case in 0..60 {
        let lines = 1 + (rng.next_u32() % 60) as usize;
        let (bytes, want) = random_text(&mut rng, lines, case % 3 != 0);
        let path = dir.write("t.txt", &bytes);
        let size = bytes.len() as u64;
        let per_task = 1 + rng.next_u64() % size.max(1);
        let per_unit = 1 + rng.next_u64() % per_task;
        let batch = 1 + (rng.next_u32() % 9) as usize;
        let mut got = Vec::new();
        for src in byte_ranges(&path, InputFormat::Text, per_task, per_unit) {
            got.extend(column(
                &read_units(&src, &input, batch, 0, None).unwrap(),
                "text",
            ));
        }
        assert_eq!(
            got, want,
            "case {case}: {size} bytes, {per_task} per task, {per_unit} per unit, batch {batch}"
        );
    }
}

/// The same for CSV, whose header line is no record (the unit holding byte 0 drops it),
/// and jsonl, whose blank lines are no records.
#[test]
fn csv_and_jsonl_ranges_read_every_record_once_and_skip_headers_and_blank_lines() {
    let dir = TempDir::new("ranges-csv");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let ids: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let mut csv = String::from("id,text\n");
    let mut jsonl = String::new();
    for id in &ids {
        let pad = "x".repeat((rng.next_u32() % 30) as usize);
        csv.push_str(&format!("{id},\"{pad}, quoted\"\n"));
        jsonl.push_str(&format!("{{\"id\": {id}, \"text\": \"{pad}\"}}\n"));
        if rng.next_u32() % 5 == 0 {
            jsonl.push_str("  \n");
        }
    }
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("text", DataType::Utf8, true),
    ]);
    let input = input(schema, OnError::Fail, CsvOptions::default());
    for (name, bytes, format) in [
        ("t.csv", &csv, InputFormat::Csv),
        ("t.jsonl", &jsonl, InputFormat::Jsonl),
    ] {
        let path = dir.write(name, bytes.as_bytes());
        for _ in 0..15 {
            let per_task = 1 + rng.next_u64() % 2000;
            let per_unit = 1 + rng.next_u64() % per_task;
            let mut got = Vec::new();
            for src in byte_ranges(&path, format, per_task, per_unit) {
                got.extend(column(
                    &read_units(&src, &input, 16, 0, None).unwrap(),
                    "id",
                ));
            }
            assert_eq!(got, ids, "{name}: {per_task} per task, {per_unit} per unit");
        }
    }
}

/// An attempt that starts at unit k (a checkpoint) reads exactly the rows an
/// uninterrupted run reads from unit k on, for byte ranges and for compressed streams.
#[test]
fn resuming_at_any_unit_reads_the_same_rows_as_an_uninterrupted_run() {
    let dir = TempDir::new("resume");
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let (bytes, want) = random_text(&mut rng, 400, true);
    let input = text_input();
    let plain = dir.write("r.txt", &bytes);
    let range = &byte_ranges(&plain, InputFormat::Text, u64::MAX, 97)[0];
    let gz = dir.write("r.txt.gz", &compress(&bytes, Compression::Gzip));
    let stream = TaskSource::Stream {
        uri: format!("file://{}", gz.display()),
        format: InputFormat::Text,
        compression: Compression::Gzip,
        bytes: 0,
        est_rows: 0,
    };
    for src in [range, &stream] {
        let whole = column(&read_units(src, &input, 13, 0, None).unwrap(), "text");
        assert_eq!(whole, want, "{}", src.describe());
        for k in [1, 2, 7, 20] {
            let mut got = column(&read_units(src, &input, 13, 0, Some(k)).unwrap(), "text");
            got.extend(column(
                &read_units(src, &input, 13, k, None).unwrap(),
                "text",
            ));
            assert_eq!(got, want, "{} resumed at unit {k}", src.describe());
        }
    }
}

/// A malformed record fails the task with `FILE:LINE: message`, the true line of the
/// file even in a range that starts late; with `on_error: skip` it is counted instead.
#[test]
fn a_malformed_record_is_named_by_file_and_line_or_skipped() {
    let dir = TempDir::new("malformed");
    let mut jsonl = String::new();
    for i in 1..=500 {
        match i {
            321 => jsonl.push_str("{\"id\": 321, \"text\": \"no closing brace\"\n"),
            400 => jsonl.push_str("{\"id\": \"four hundred\", \"text\": \"a string id\"}\n"),
            _ => jsonl.push_str(&format!("{{\"id\": {i}, \"text\": \"row {i}\"}}\n")),
        }
    }
    let path = dir.write("bad.jsonl", jsonl.as_bytes());
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("text", DataType::Utf8, true),
    ]);
    let fail = input(schema.clone(), OnError::Fail, CsvOptions::default());
    let ranges = byte_ranges(&path, InputFormat::Jsonl, 1024, 256);
    let errors: Vec<String> = ranges
        .iter()
        .filter_map(|r| read_units(r, &fail, 64, 0, None).err())
        .map(|e| format!("{e:#}"))
        .collect();
    let file = path.display();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("{file}:321: ")),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with(&format!("{file}:400: ")) && errors[1].contains("four hundred"),
        "{}",
        errors[1]
    );

    let skip = input(schema, OnError::Skip, CsvOptions::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (mut rows, mut skipped) = (0, Vec::new());
    for r in &ranges {
        let mut units = RecordUnits::open(r, skip.clone(), 64, &Connections::from_env(), rt.handle()).unwrap();
        for u in 0..units.units().unwrap() {
            let read = units.read_unit(u, &mut |_| Ok(())).unwrap();
            rows += read.rows;
            skipped.extend(read.skipped);
        }
    }
    assert_eq!(rows, 498);
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(
        skipped[0].starts_with(&format!("{file}:321: ")),
        "{skipped:?}"
    );
    // A trailing comma is not JSON, although arrow's reader takes it.
    let trailing = dir.write("trailing.jsonl", b"{\"id\": 1, \"text\": \"a\"}\n{\"id\": 400, \"text\": \"x\",}\n");
    let ranges_t = byte_ranges(&trailing, InputFormat::Jsonl, 1024, 256);
    let e = ranges_t.iter().filter_map(|r| read_units(r, &fail, 64, 0, None).err()).map(|e| format!("{e:#}")).next();
    let e = e.expect("a trailing comma fails the task");
    assert!(e.contains("trailing.jsonl:2: a comma before a closing `}` or `]`"), "{e}");
    // The record is quoted exactly as it is in the file, commas and all.
    assert!(
        skipped[1].ends_with("; the record: `{\"id\": \"four hundred\", \"text\": \"a string id\"}`"),
        "{skipped:?}"
    );
}

/// CSV: a value that does not fit its column and a line with too many fields, named by
/// line (not arrow-csv's line count inside its own decoder); a compressed stream too.
#[test]
fn csv_errors_carry_the_file_line_not_the_decoders() {
    let dir = TempDir::new("csv-errors");
    let mut csv = String::from("id,text\n");
    for i in 1..=50 {
        csv.push_str(&match i {
            30 => "x30,thirty\n".to_string(),
            _ => format!("{i},row {i}\n"),
        });
    }
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("text", DataType::Utf8, true),
    ]);
    let fail = input(schema, OnError::Fail, CsvOptions::default());
    let gz = dir.write("e.csv.gz", &compress(csv.as_bytes(), Compression::Gzip));
    let stream = TaskSource::Stream {
        uri: format!("file://{}", gz.display()),
        format: InputFormat::Csv,
        compression: Compression::Gzip,
        bytes: 0,
        est_rows: 0,
    };
    let err = format!("{:#}", read_units(&stream, &fail, 8, 0, None).unwrap_err());
    // Line 31 of the file: the header is line 1.
    assert!(err.starts_with(&format!("{}:31: ", gz.display())), "{err}");
    assert!(err.contains("'x30'") && !err.contains("at line"), "{err}");
}

/// A file whose header differs from the job's columns fails with both lists.
#[test]
fn a_csv_header_unlike_the_jobs_columns_is_refused() {
    let dir = TempDir::new("csv-header");
    let path = dir.write("h.csv", b"text,id\nx,1\n");
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("text", DataType::Utf8, true),
    ]);
    let src = &byte_ranges(&path, InputFormat::Csv, 1 << 20, 1 << 20)[0];
    let err = format!(
        "{:#}",
        read_units(
            src,
            &input(schema, OnError::Fail, CsvOptions::default()),
            8,
            0,
            None
        )
        .unwrap_err()
    );
    assert!(
        err.contains("the header's columns (text, id) are not the job's (id, text"),
        "{err}"
    );
}

/// A JSON array's elements are rows; a malformed element is named by its line.
#[test]
fn json_array_elements_are_rows_and_errors_name_the_line() {
    let dir = TempDir::new("json-array");
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("text", DataType::Utf8, true),
    ]);
    let fail = input(schema, OnError::Fail, CsvOptions::default());
    let good = "[\n  {\"id\": 1, \"text\": \"a\"},\n  {\"id\": 2},\n  {\"text\": \"c\", \"id\": 3, \"extra\": true}\n]\n";
    let src = |p: &Path| TaskSource::Stream {
        uri: format!("file://{}", p.display()),
        format: InputFormat::Json,
        compression: Compression::None,
        bytes: 0,
        est_rows: 0,
    };
    let p = dir.write("a.json", good.as_bytes());
    let batches = read_units(&src(&p), &fail, 2, 0, None).unwrap();
    assert_eq!(column(&batches, "id"), ["1", "2", "3"]);
    assert_eq!(
        column(&batches, "text"),
        ["a", "<null>", "c"],
        "a missing field is null, an unknown one dropped"
    );
    let p = dir.write(
        "b.json",
        b"[\n {\"id\": 1},\n {\"id\": tru},\n {\"id\": 3}\n]",
    );
    let err = format!("{:#}", read_units(&src(&p), &fail, 2, 0, None).unwrap_err());
    assert!(err.starts_with(&format!("{}:3: ", p.display())), "{err}");
}

/// The unknown-field check finds a field the schema lacks.
#[test]
fn a_field_not_in_the_schema_is_found_for_the_warning() {
    let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
    let decoding = super::decode::Decoding {
        format: InputFormat::Jsonl,
        input: input(schema, OnError::Fail, CsvOptions::default()),
    };
    let mut block = super::records::RawBlock::default();
    block.push(b"{\"id\": 1}\n", 0);
    assert_eq!(decoding.unknown_field(&block), None);
    block.push(b"{\"id\": 2, \"label\": \"x\"}\n", 10);
    let m = decoding.unknown_field(&block).expect("the field is found");
    assert!(m.contains("'label'"), "{m}");
}

/// Files named in any script are found by their own names, one named directly or all
/// of a directory (object_store's local keys are percent-encodings of the names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_files_named_in_any_script_are_found_directly_and_in_a_directory() {
    let dir = TempDir::new("unicode-names");
    dir.write("데이터 1.jsonl", b"{\"id\": 1}\n");
    dir.write("é%41.jsonl", b"{\"id\": 2}\n{\"id\": 3}\n");
    let direct = format!("file://{}/데이터 1.jsonl", dir.0.display());
    let (_, files, format) = super::plan::list_files(&Connections::from_env(), &direct, None).await.unwrap();
    assert_eq!((files.len(), files[0].size, format), (1, 10, InputFormat::Jsonl));
    let (_, files, _) = super::plan::list_files(&Connections::from_env(), &format!("file://{}", dir.0.display()), None).await.unwrap();
    let names: Vec<(&str, u64)> = files.iter().map(|f| (f.name.as_str(), f.size)).collect();
    assert_eq!(names, [("é%41.jsonl", 20), ("데이터 1.jsonl", 10)]);
}
