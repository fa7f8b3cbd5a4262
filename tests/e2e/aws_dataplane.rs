//! The queue and store conformance suites against SQS and S3 on a moto server: the same
//! suites the SQLite queue and the local directory pass (node-agent unit tests).

use std::io::{Read, Write};
use std::time::Duration;

use crate::moto::Moto;

/// Create a bucket on moto with a plain HTTP PUT (moto does not check signatures; the
/// project has no S3 SDK client: buckets come from CloudFormation, objects from
/// object_store).
fn create_bucket(moto: &Moto, bucket: &str) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", moto.port).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "create bucket: {resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_queue_conforms_on_moto() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let q = fleetform_runtime::queue::sqs::SqsQueue::new(&config, "conf");
    fleetform_runtime::queue::conformance::run(&q, "default", Duration::from_secs(1), fleetform_runtime::queue::conformance::StaleHandles::MayBeAccepted).await;
    let deleted = q.delete_all().await.unwrap();
    assert_eq!(deleted.len(), 2, "the class queue and its dead-letter queue: {deleted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_store_conforms_on_moto() {
    let moto = Moto::start();
    create_bucket(&moto, "conf-bucket");
    let config = moto.sdk_config().await;
    let loc = fleetform_runtime::location::open_with(&config, "s3://conf-bucket/prefix").await.unwrap();
    fleetform_runtime::store_conformance::run(loc).await;
}

/// Input read from S3 (moto): a gzip'd JSON Lines file (one task, streamed through a GET)
/// and a CSV file cut into byte ranges (ranged GETs), each row exactly once. Needs moto:
/// the point is object_store's GETs against something that answers like S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_gz_and_byte_split_csv_are_read_from_s3() {
    use object_store::{ObjectStoreExt, PutPayload};

    let moto = Moto::start();
    create_bucket(&moto, "inputs");
    let config = moto.sdk_config().await;
    let loc = fleetform_runtime::location::open_with(&config, "s3://inputs/raw").await.unwrap();
    let rows = 3_000;
    let jsonl: String = (0..rows).map(|i| format!("{{\"id\": {i}, \"text\": \"row {i}, from S3\"}}\n")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(jsonl.as_bytes()).unwrap();
    let csv: String = std::iter::once("id,text\n".to_string()).chain((0..rows).map(|i| format!("{i},\"row {i}, from S3\"\n"))).collect();
    for (key, body) in [("logs/a.jsonl.gz", gz.finish().unwrap()), ("table/t.csv", csv.into_bytes())] {
        loc.store.put(&loc.key(key), PutPayload::from(body)).await.unwrap();
    }

    let env = crate::harness::LocalEnv::new(1, 2);
    for (name, input, tasks) in [("s3-jsonl", "s3://inputs/raw/logs", "1 of 1 tasks"), ("s3-csv", "s3://inputs/raw/table/t.csv", "4 of 4 tasks")] {
        let job = env.write_job(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ninput: {{uri: {input}}}\noutput: {{uri: out-{name}, rows_per_file: 1000}}\nbatch_size: 500\n\
                 split: {{bytes_per_task: 20000, bytes_per_unit: 5000}}\n"
            ),
        );
        let mut cmd = env.cmd(&["run", job.to_str().unwrap()]);
        moto.configure(&mut cmd);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains(tasks), "{name}: {stdout}");
        let (manifest, ids, _) = crate::harness::read_output(&env.path(&format!("out-{name}")));
        assert_eq!(manifest.total_rows, rows as u64, "{name}");
        crate::harness::assert_exactly_once(&ids, rows);
    }
}

/// Parquet input from S3 (moto), output to S3: the chunks the steps leave unchanged are
/// copied as they are (passthrough) from ranged GETs, and the result is value for value
/// the local run's and the re-encoding run's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_from_s3_passes_through_and_equals_the_local_run() {
    use crate::harness::{clean_job, generate_job};
    use futures::TryStreamExt;
    use object_store::{ObjectStoreExt, PutPayload};

    let moto = Moto::start();
    create_bucket(&moto, "data");
    let config = moto.sdk_config().await;
    let bucket = fleetform_runtime::location::open_with(&config, "s3://data").await.unwrap();
    let env = crate::harness::LocalEnv::new(1, 2);
    let rows = 12_000;
    let g = generate_job(&env, rows, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    for f in std::fs::read_dir(env.path("raw")).unwrap() {
        let f = f.unwrap();
        let name = f.file_name().to_string_lossy().to_string();
        if name.ends_with(".parquet") {
            bucket.store.put(&bucket.key(&format!("raw/{name}")), PutPayload::from(std::fs::read(f.path()).unwrap())).await.unwrap();
        }
    }
    let mut outputs = Vec::new();
    for (input, output, passthrough) in [("raw", "clean-local", true), ("s3://data/raw", "s3://data/clean", true), ("s3://data/raw", "s3://data/reencoded", false)] {
        let job = clean_job(&env, input, output);
        let mut cmd = env.cmd(&["run", job.to_str().unwrap(), "--set", &format!("output.passthrough={passthrough}")]);
        moto.configure(&mut cmd);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{input} -> {output}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        let local = match output.strip_prefix("s3://data/") {
            None => env.path(output),
            Some(prefix) => {
                // Bring the S3 output down to read it as the local one is read.
                let dir = env.path(&format!("{prefix}-downloaded"));
                std::fs::create_dir_all(&dir).unwrap();
                let objects: Vec<_> = bucket.store.list(Some(&bucket.key(prefix))).try_collect().await.unwrap();
                for o in objects {
                    let body = bucket.store.get(&o.location).await.unwrap().bytes().await.unwrap();
                    std::fs::write(dir.join(o.location.filename().unwrap()), body).unwrap();
                }
                dir
            }
        };
        let (manifest, ids, batches) = crate::harness::read_output(&local);
        assert_eq!(manifest.total_rows, rows);
        crate::harness::assert_exactly_once(&ids, rows as i64);
        outputs.push(crate::harness::sorted_rows(&batches));
    }
    assert_eq!(outputs[0], outputs[1], "S3 passthrough changes no value");
    assert_eq!(outputs[1], outputs[2], "passthrough equals re-encoding");
}

/// One slot, output to S3: the slot goes to the next task as soon as a task has computed,
/// so a task's last upload (and its commit) overlaps the next task's work instead of
/// holding the slot. Without that, one slot's tasks would run strictly one after another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_last_upload_overlaps_the_next_tasks_work() {
    use crate::harness::{clean_job, generate_job};
    use object_store::{ObjectStoreExt, PutPayload};

    let moto = Moto::start();
    create_bucket(&moto, "data");
    let config = moto.sdk_config().await;
    let bucket = fleetform_runtime::location::open_with(&config, "s3://data").await.unwrap();
    let env = crate::harness::LocalEnv::new(1, 1);
    let rows = 16_000;
    let g = generate_job(&env, rows, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    for f in std::fs::read_dir(env.path("raw")).unwrap().flatten() {
        let name = f.file_name().to_string_lossy().to_string();
        if name.ends_with(".parquet") {
            bucket.store.put(&bucket.key(&format!("raw/{name}")), PutPayload::from(std::fs::read(f.path()).unwrap())).await.unwrap();
        }
    }
    let job = clean_job(&env, "s3://data/raw", "s3://data/clean");
    let mut cmd = env.cmd(&["run", job.to_str().unwrap()]);
    moto.configure(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut jobs = std::fs::read_dir(env.store().join("jobs")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string());
    let id = jobs.find(|j| j.starts_with("clean-text-")).expect("the clean job's record");
    let mut spans: Vec<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> = env
        .done_records(&id)
        .iter()
        .map(|d| (d.finished_at - chrono::Duration::milliseconds((d.seconds * 1000.0) as i64), d.finished_at))
        .collect();
    assert!(spans.len() >= 4, "{spans:?}");
    spans.sort();
    let overlapping = spans.windows(2).filter(|w| w[1].0 < w[0].1).count();
    assert!(overlapping > 0, "each task started only after the previous one had finished uploading: {spans:?}");
}

/// Many small files on S3, uploaded by the AWS CLI as a user uploads them (keys in any
/// script, `aws s3 cp --recursive`): packed into a few tasks, every row once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_s3_files_uploaded_by_the_aws_cli_make_few_tasks() {
    let moto = Moto::start();
    create_bucket(&moto, "inputs");
    let env = crate::harness::LocalEnv::new(1, 2);
    let dir = env.path("upload");
    std::fs::create_dir_all(&dir).unwrap();
    let (files, per_file) = (200, 15);
    for f in 0..files {
        let name = if f % 2 == 0 { format!("part-{f:03}.jsonl") } else { format!("데이터 {f:03}.jsonl") };
        let body: String = (0..per_file).map(|r| format!("{{\"id\": {}, \"text\": \"row {r} of file {f}\"}}\n", f * per_file + r)).collect();
        std::fs::write(dir.join(name), body).unwrap();
    }
    let mut upload = std::process::Command::new("aws");
    moto.configure(&mut upload);
    let out = upload.args(["s3", "cp", "--recursive", "--only-show-errors", dir.to_str().unwrap(), "s3://inputs/small/"]).output().expect("the AWS CLI (.ci/venv/bin first on PATH)");
    assert!(out.status.success(), "aws s3 cp: {}", String::from_utf8_lossy(&out.stderr));

    let job = env.write_job(
        "small.yaml",
        "name: s3-small\ninput: {uri: s3://inputs/small}\noutput: {uri: out-small}\nsplit: {bytes_per_task: 20000, bytes_per_unit: 5000}\n",
    );
    let mut cmd = env.cmd(&["run", job.to_str().unwrap()]);
    moto.configure(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let bytes: u64 = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    let tasks = bytes.div_ceil(20000);
    assert!(stdout.contains(&format!("{tasks} of {tasks} tasks")), "{files} files of {bytes} bytes in all: {stdout}");
    let (manifest, ids, _) = crate::harness::read_output(&env.path("out-small"));
    assert_eq!(manifest.total_rows, (files * per_file) as u64);
    crate::harness::assert_exactly_once(&ids, (files * per_file) as i64);
}
