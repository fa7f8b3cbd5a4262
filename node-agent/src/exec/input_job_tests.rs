//! Whole jobs reading jsonl, json, csv and text, plain and compressed, through submit
//! (listing, sampling, splitting), the queue and an agent, compared row by row with the
//! input; malformed lines failing or skipped; a drained job resumed by another agent.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use fleetform_core::input::{Compression, InputFormat};
use fleetform_core::layout;
use fleetform_core::task::{DoneRecord, JobRecord, Manifest};

use super::failure_tests::TestAgent;
use crate::input::tests::compress;

/// Rows of (id, text, label); texts carry commas, quotes, backslashes and non-ASCII.
fn rows(n: i64) -> Vec<(i64, String, String)> {
    (0..n)
        .map(|i| {
            let text = match i % 4 {
                0 => format!("plain row {i}"),
                1 => format!("a, \"quoted\" row {i}"),
                2 => format!("back\\slash {i} and 한글 ✓"),
                _ => format!("{} {i}", "long".repeat(i as usize % 40)),
            };
            (
                i,
                text,
                ["news", "blog", "forum", "wiki"][i as usize % 4].to_string(),
            )
        })
        .collect()
}

fn encode(format: InputFormat, rows: &[(i64, String, String)]) -> Vec<u8> {
    // Keys in this order (serde_json's `json!` would sort them): columns keep the file's order.
    let quote = |s: &str| serde_json::to_string(s).unwrap();
    let json = |(id, text, label): &(i64, String, String)| {
        format!(
            "{{\"id\": {id}, \"text\": {}, \"label\": {}}}",
            quote(text),
            quote(label)
        )
    };
    match format {
        InputFormat::Jsonl => rows
            .iter()
            .map(|r| json(r) + "\n")
            .collect::<String>()
            .into_bytes(),
        InputFormat::Json => format!(
            "[\n{}\n]\n",
            rows.iter().map(json).collect::<Vec<_>>().join(",\n")
        )
        .into_bytes(),
        InputFormat::Csv => {
            let mut s = String::from("id,text,label\n");
            for (id, text, label) in rows {
                s.push_str(&format!("{id},\"{}\",{label}\n", text.replace('"', "\"\"")));
            }
            s.into_bytes()
        }
        InputFormat::Text => rows
            .iter()
            .map(|r| r.1.clone() + "\n")
            .collect::<String>()
            .into_bytes(),
        InputFormat::Parquet => unreachable!("not a record format"),
    }
}

fn file_name(format: InputFormat, compression: Compression) -> String {
    let ext = match format {
        InputFormat::Jsonl => "jsonl",
        InputFormat::Json => "json",
        InputFormat::Csv => "csv",
        InputFormat::Text => "txt",
        InputFormat::Parquet => "parquet",
    };
    let suffix = match compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zstd => ".zst",
    };
    format!("part-a.{ext}{suffix}")
}

/// A job reading `input` into `output`, with small splits so that one small file makes
/// several tasks of several units.
fn job_yaml(name: &str, input: &Path, output: &Path, extra: &str) -> String {
    format!(
        "name: {name}\ninput: {{uri: {}{extra}}}\noutput: {{uri: {}, rows_per_file: 50}}\nbatch_size: 16\n\
         split: {{bytes_per_task: 3000, bytes_per_unit: 700}}\nmax_failures: 1\n",
        input.display(),
        output.display()
    )
}

/// Every output row, as `column=value` joined, sorted.
fn output_rows(dir: &Path, manifest: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    for f in &manifest.files {
        let file = std::fs::File::open(dir.join(&f.file)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for b in reader {
            out.extend(batch_rows(&b.unwrap()));
        }
    }
    out.sort();
    out
}

fn batch_rows(b: &RecordBatch) -> Vec<String> {
    (0..b.num_rows())
        .map(|i| {
            let cells: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| {
                    let v = if let Some(s) = c.as_any().downcast_ref::<StringArray>() {
                        s.value(i).to_string()
                    } else if let Some(n) = c.as_any().downcast_ref::<Int64Array>() {
                        n.value(i).to_string()
                    } else {
                        panic!("unexpected type of {}: {:?}", f.name(), c.data_type())
                    };
                    format!("{}={v}", f.name())
                })
                .collect();
            cells.join("|")
        })
        .collect()
}

fn expected_rows(format: InputFormat, rows: &[(i64, String, String)]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|(id, text, label)| match format {
            InputFormat::Text => format!("text={text}"),
            _ => format!("id={id}|text={text}|label={label}"),
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_format_and_compression_gives_back_its_rows() {
    let agent = TestAgent::start().await;
    let input = rows(240);
    let mut tasks_of = BTreeMap::new();
    for format in [
        InputFormat::Jsonl,
        InputFormat::Json,
        InputFormat::Csv,
        InputFormat::Text,
    ] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let name = file_name(format, compression);
            let dir = agent.dir.join(format!("in-{name}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join(&name),
                compress(&encode(format, &input), compression),
            )
            .unwrap();
            let out = agent.dir.join(format!("out-{name}"));
            let job = agent
                .submit_yaml(&job_yaml("formats", &dir, &out, ""))
                .await;
            let p = agent.finished(&job).await;
            assert!(p.failed.is_empty(), "{name}: {:?}", p.failed);
            let manifest = p.manifest.unwrap();
            assert_eq!(
                output_rows(&out, &manifest),
                expected_rows(format, &input),
                "{name}"
            );
            let record: JobRecord = agent
                .shared
                .store
                .get_json(&layout::job(&job))
                .await
                .unwrap()
                .unwrap();
            assert!(
                record.rows_estimated && record.total_rows > 0,
                "{name}: rows are estimated from the sample"
            );
            tasks_of.insert(name, record.tasks);
        }
    }
    // Uncompressed line formats split by bytes; compressed files and JSON arrays do not.
    for (name, tasks) in &tasks_of {
        let splits = !name.ends_with(".gz") && !name.ends_with(".zst") && !name.ends_with(".json");
        assert_eq!(*tasks > 1, splits, "{name}: {tasks} tasks");
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_line_fails_the_job_naming_file_and_line_or_is_skipped_and_counted() {
    let agent = TestAgent::start().await;
    let input = rows(200);
    // Line 150 loses its closing brace.
    let text = String::from_utf8(encode(InputFormat::Jsonl, &input)).unwrap();
    let mut lines: Vec<String> = text.lines().map(|l| l.to_string() + "\n").collect();
    lines[149] = lines[149].replacen('}', "", 1);
    let bytes = lines.concat();
    let dir = agent.dir.join("bad-in");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.jsonl");
    std::fs::write(&file, &bytes).unwrap();

    let job = agent
        .submit_yaml(&job_yaml("bad", &dir, &agent.dir.join("bad-out"), ""))
        .await;
    let p = agent.finished(&job).await;
    assert_eq!(p.failed.len(), 1, "{p:?}");
    let error = &p.failed[0].error;
    assert!(
        error.starts_with(&format!("{}:150: ", file.display())),
        "{error}"
    );
    assert_eq!(p.manifest.unwrap().failed_tasks.len(), 1);

    let out = agent.dir.join("skip-out");
    let job = agent
        .submit_yaml(&job_yaml("skip", &dir, &out, ", on_error: skip"))
        .await;
    let p = agent.finished(&job).await;
    assert!(p.failed.is_empty(), "{:?}", p.failed);
    let manifest = p.manifest.unwrap();
    assert_eq!((manifest.skipped_records, manifest.total_rows), (1, 199));
    let mut done: Vec<DoneRecord> = Vec::new();
    for t in &p.done {
        done.extend(
            agent
                .shared
                .store
                .get_json::<DoneRecord>(&layout::done(&job, t))
                .await
                .unwrap(),
        );
    }
    let examples: Vec<&String> = done
        .iter()
        .flat_map(|d| d.skipped.examples.iter())
        .collect();
    assert_eq!(examples.len(), 1);
    assert!(
        examples[0].starts_with(&format!("{}:150: ", file.display())),
        "{examples:?}"
    );
    let mut want = expected_rows(InputFormat::Jsonl, &input);
    want.retain(|r| !r.starts_with("id=149|"));
    assert_eq!(output_rows(&out, &manifest), want);
    agent.stop().await;
}

/// A drained agent checkpoints its task mid-file; a second agent resumes it from the
/// checkpoint, and the output holds every row once — for a byte range and a stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_drained_mid_file_resumes_from_its_checkpoint_with_every_row_once() {
    for name in ["big.jsonl", "big.csv.gz"] {
        let format = if name.contains("csv") {
            InputFormat::Csv
        } else {
            InputFormat::Jsonl
        };
        let compression = if name.ends_with(".gz") {
            Compression::Gzip
        } else {
            Compression::None
        };
        let agent = TestAgent::start().await;
        let input = rows(20_000);
        let dir = agent.dir.join("in");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(name),
            compress(&encode(format, &input), compression),
        )
        .unwrap();
        let out = agent.dir.join("out");
        let yaml = format!(
            "name: resume\ninput: {{uri: {}}}\noutput: {{uri: {}, rows_per_file: 200}}\nbatch_size: 100\n\
             split: {{bytes_per_task: 100000000, bytes_per_unit: 8000}}\n",
            dir.display(),
            out.display()
        );
        let job = agent.submit_yaml(&yaml).await;
        // Drain once the task has checkpointed (a chunk of 200 rows closed), mid-file.
        let checkpoint = agent
            .dir
            .join("store")
            .join(layout::checkpoint(&job, &layout::task_id(0)));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !checkpoint.exists() {
            assert!(
                Instant::now() < deadline,
                "{name}: no checkpoint was written"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let dir_of_agent = agent.dir.clone();
        agent.drain().await;
        let second = TestAgent::start_in(dir_of_agent).await;
        let p = second.finished(&job).await;
        let manifest = p.manifest.clone().unwrap();
        assert!(p.failed.is_empty(), "{name}: {:?}", p.failed);
        let done: DoneRecord = second
            .shared
            .store
            .get_json(&layout::done(&job, &layout::task_id(0)))
            .await
            .unwrap()
            .unwrap();
        assert!(
            done.units_from_checkpoint > 0,
            "{name}: the second agent resumed from the checkpoint: {done:?}"
        );
        assert_eq!(
            done.rows_in, 20_000,
            "{name}: rows of the checkpointed units are counted once"
        );
        assert_eq!(
            output_rows(&out, &manifest),
            expected_rows(format, &input),
            "{name}"
        );
        second.stop().await;
    }
}

/// Write `input` as `files` small files of `format` (the CSV ones each with its header),
/// named so that their order is the rows' order.
fn write_small_files(dir: &Path, format: InputFormat, compression: Compression, input: &[(i64, String, String)], files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let per = input.len().div_ceil(files);
    for (i, chunk) in input.chunks(per).enumerate() {
        let name = file_name(format, compression).replace("part-a", &format!("part-{i:05}"));
        std::fs::write(dir.join(name), compress(&encode(format, chunk), compression)).unwrap();
    }
}

/// Many files smaller than a unit are packed into a few tasks (one unit each), every row
/// read once, each CSV file's header checked and skipped, and a malformed record still
/// named by its own file and line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_files_make_few_tasks_with_every_row_once() {
    let agent = TestAgent::start().await;
    let input = rows(600);
    for (format, compression) in [(InputFormat::Jsonl, Compression::None), (InputFormat::Csv, Compression::Gzip)] {
        let dir = agent.dir.join(format!("small-{}-{compression:?}", format.name()));
        write_small_files(&dir, format, compression, &input, 300);
        let out = agent.dir.join(format!("small-out-{}-{compression:?}", format.name()));
        let yaml = format!(
            "name: small\ninput: {{uri: {}}}\noutput: {{uri: {}}}\nbatch_size: 16\nsplit: {{bytes_per_task: 20000, bytes_per_unit: 4000}}\n",
            dir.display(),
            out.display()
        );
        let job = agent.submit_yaml(&yaml).await;
        let p = agent.finished(&job).await;
        assert!(p.failed.is_empty(), "{format:?}: {:?}", p.failed);
        let record: JobRecord = agent.shared.store.get_json(&layout::job(&job)).await.unwrap().unwrap();
        let stored: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert_eq!(record.tasks as u64, stored.div_ceil(20000).max(1), "{format:?}: 300 files of {stored} bytes in all, packed by bytes_per_task");
        assert_eq!(output_rows(&out, &p.manifest.unwrap()), expected_rows(format, &input), "{format:?}");
    }

    // Record 2 of file 123 loses its closing brace: the error names that file and line.
    let dir = agent.dir.join("small-bad");
    write_small_files(&dir, InputFormat::Jsonl, Compression::None, &input, 300);
    let bad = dir.join("part-00123.jsonl");
    let text = std::fs::read_to_string(&bad).unwrap();
    std::fs::write(&bad, text.replacen("\"}\n", "\"\n", 2).replacen("\"\n", "\"}\n", 1)).unwrap();
    let yaml = format!(
        "name: small-bad\ninput: {{uri: {}}}\noutput: {{uri: {}}}\nsplit: {{bytes_per_task: 20000, bytes_per_unit: 4000}}\nmax_failures: 1\n",
        dir.display(),
        agent.dir.join("small-bad-out").display()
    );
    let p = agent.finished(&agent.submit_yaml(&yaml).await).await;
    assert_eq!(p.failed.len(), 1, "{p:?}");
    assert!(p.failed[0].error.starts_with(&format!("{}:2: ", bad.display())), "{}", p.failed[0].error);
    agent.stop().await;
}

/// A task of many small files drained mid-way resumes at the first file it had not
/// checkpointed: every row once, and the resumed attempt starts past unit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_task_of_small_files_resumes_at_its_next_file() {
    let agent = TestAgent::start().await;
    let input = rows(30_000);
    let dir = agent.dir.join("in");
    write_small_files(&dir, InputFormat::Jsonl, Compression::None, &input, 3000);
    let out = agent.dir.join("out");
    let yaml = format!(
        "name: resume-small\ninput: {{uri: {}}}\noutput: {{uri: {}, rows_per_file: 200}}\nbatch_size: 100\n\
         split: {{bytes_per_task: 100000000, bytes_per_unit: 8000}}\n",
        dir.display(),
        out.display()
    );
    let job = agent.submit_yaml(&yaml).await;
    let checkpoint = agent.dir.join("store").join(layout::checkpoint(&job, &layout::task_id(0)));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checkpoint.exists() {
        assert!(Instant::now() < deadline, "no checkpoint was written");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let dir_of_agent = agent.dir.clone();
    agent.drain().await;
    let second = TestAgent::start_in(dir_of_agent).await;
    let p = second.finished(&job).await;
    assert!(p.failed.is_empty(), "{:?}", p.failed);
    let done: DoneRecord = second.shared.store.get_json(&layout::done(&job, &layout::task_id(0))).await.unwrap().unwrap();
    assert!(done.units_from_checkpoint > 0, "resumed from the checkpoint: {done:?}");
    // Tasks hold at most 64 KiB of file names: several here, each file in one of them.
    let mut rows_in = 0;
    for t in &p.done {
        rows_in += second.shared.store.get_json::<DoneRecord>(&layout::done(&job, t)).await.unwrap().unwrap().rows_in;
    }
    assert_eq!(rows_in, 30_000, "rows of the checkpointed files are counted once");
    assert_eq!(output_rows(&out, &p.manifest.unwrap()), expected_rows(InputFormat::Jsonl, &input));
    second.stop().await;
}
