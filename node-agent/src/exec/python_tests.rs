//! Jobs with python steps, run by an agent in this process (SQLite queue, local store)
//! with real workers: `python3` from PATH with pyarrow and pandas. Needs more than the
//! worker tests: shipping through the store, re-chunking at unit boundaries, steps mixed
//! in both orders, one output schema, failures reported after `max_failures`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use fleetform_core::task::Manifest;
use fleetform_core::JobSpec;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use super::failure_tests::TestAgent;
use crate::plan;
use fleetform_runtime::jobs::JobProgress;
use crate::ops::python::tests::require_python;
use crate::ops::python::{self as py};

const SEED: &str = include_str!("../../../examples/jobs/preprocess.py");

async fn agent() -> TestAgent {
    require_python();
    TestAgent::start_with_lease(Duration::from_secs(10), 2).await
}

/// Write the job file (and its python files) under the agent's dir, submit it as the CLI
/// does (check, ship, submit) and wait for its end.
async fn run_job(agent: &TestAgent, name: &str, yaml: &str, files: &[(&str, &str)]) -> JobProgress {
    let dir = agent.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, src) in files {
        std::fs::write(dir.join(file), src).unwrap();
    }
    let job_file = dir.join("job.yaml");
    std::fs::write(
        &job_file,
        yaml.replace("OUT", &dir.join("out").display().to_string())
            .replace("IN", &dir.join("in").display().to_string()),
    )
    .unwrap();
    let spec = JobSpec::load(&job_file, &[]).unwrap();
    let (code, warnings) = py::ship(&job_file, &spec).expect("the python steps check");
    assert!(warnings.is_empty(), "{warnings:?}");
    let id = plan::submit_with_code(&agent.shared.store, &agent.shared.queue, spec, &code)
        .await
        .expect("submit")
        .job_id;
    agent.finished(&id).await
}

/// Every output row of a finished job, by column, in id order.
fn output(dir: &Path) -> (Vec<String>, BTreeMap<i64, Vec<Option<String>>>) {
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join("_SUCCESS")).unwrap()).unwrap();
    let mut rows = BTreeMap::new();
    let mut columns = Vec::new();
    for f in &manifest.files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(dir.join(&f.file)).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for b in reader {
            let b = b.unwrap();
            columns = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect();
            let ids = b
                .column_by_name("id")
                .unwrap()
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .clone();
            for i in 0..b.num_rows() {
                let values = b.columns().iter().map(|c| value(c, i)).collect();
                assert!(
                    rows.insert(ids.value(i), values).is_none(),
                    "row {} appears twice",
                    ids.value(i)
                );
            }
        }
    }
    (columns, rows)
}

fn value(c: &ArrayRef, i: usize) -> Option<String> {
    if c.is_null(i) {
        return None;
    }
    let mut v = None;
    if crate::ops::strings::visit_strings(&c.slice(i, 1), &mut |s| v = s.map(str::to_string))
        .is_ok()
    {
        return v;
    }
    Some(
        arrow_array::cast::as_primitive_array::<arrow_array::types::Int64Type>(c)
            .value(i)
            .to_string(),
    )
}

/// Text that cleaning gets wrong easily: every kind of whitespace Python knows, Hangul
/// syllables beside jamo, emoji, fullwidth forms, Greek final sigma, dotted İ, titlecase
/// ǅ, ß, combining marks, controls; and rows of code points from across Unicode.
fn adversarial(rows: usize) -> Vec<String> {
    let fixed = [
        "Hello, World!!! 2026 @Ray_Data#",
        "Tab\tNL\nVT\u{b}FF\u{c}CR\r FS\u{1c}GS\u{1d}RS\u{1e}US\u{1f} NEL\u{85} NBSP\u{a0} OGHAM\u{1680} EM\u{2003} LS\u{2028} PS\u{2029} IDEO\u{3000}",
        "각 각 ㄱㅏ 한국어 텍스트 ＡＢＣ１２３ 😀🚀✨ ΌΣΟΣ ΣΑΣ İstanbul ǅ ß e\u{301} \u{0}\u{7f}",
        "",
    ];
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..rows)
        .map(|i| match fixed.get(i % 7) {
            Some(s) => format!("{s} #{i}"),
            None => (0..40)
                .filter_map(|_| {
                    let r = next();
                    let pick = (r >> 8) as u32;
                    char::from_u32(match r % 3 {
                        0 => pick % 0x110000,       // anywhere (surrogates are skipped)
                        1 => 0xAC00 + pick % 11172, // Hangul syllables
                        _ => 0x20 + pick % 0x60,    // ASCII, punctuation included
                    })
                })
                .collect(),
        })
        .collect()
}

/// A parquet input with row groups of `group` rows.
fn write_input(dir: &Path, texts: &[Option<String>], group: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(0..texts.len() as i64));
    let text: ArrayRef = Arc::new(StringArray::from(texts.to_vec()));
    let batch = RecordBatch::try_from_iter(vec![("id", ids), ("text", text)]).unwrap();
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group))
        .build();
    let mut w = ArrowWriter::try_new(
        std::fs::File::create(dir.join("input.parquet")).unwrap(),
        batch.schema(),
        Some(props),
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// What pandas itself makes of the input: the seed function called once on the whole
/// file (`to_pandas`, the function, `from_pandas`), or the exception it raises.
const PANDAS_ITSELF: &str = r#"
import json, sys, types
import pyarrow as pa, pyarrow.parquet as pq
m = types.ModuleType("preprocess")
exec(compile(open(sys.argv[1], encoding="utf-8").read(), "preprocess.py", "exec"), m.__dict__)
table = pq.read_table(sys.argv[2])
try:
    out = pa.Table.from_pandas(m.preprocess_text(table.to_pandas()), preserve_index=False)
except Exception as e:
    print(json.dumps({"error": f"raised {type(e).__name__}: {e}"}))
    sys.exit(0)
cols = out.column_names
print(json.dumps({"columns": cols, "rows": {str(i): [None if v is None else str(v) for v in r] for i, r in zip(out["id"].to_pylist(), zip(*[out[c].to_pylist() for c in cols]))}}))
"#;

fn pandas_itself(job_dir: &Path) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .args(["-c", PANDAS_ITSELF])
        .arg(job_dir.join("preprocess.py"))
        .arg(job_dir.join("in/input.parquet"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const SEED_JOB: &str = "name: NAME\ninput: {uri: IN}\noutput: {uri: OUT}\nsteps:\n  - python: {file: preprocess.py, function: preprocess_text, batch_format: pandas, batch_size: 256}\nsplit: {row_groups_per_task: 2}\nmax_failures: 2\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_function_on_adversarial_text_equals_pandas_own_call() {
    let agent = agent().await;
    let texts: Vec<Option<String>> = adversarial(3000).into_iter().map(Some).collect();
    write_input(&agent.dir.join("seed/in"), &texts, 700);
    let p = run_job(
        &agent,
        "seed",
        &SEED_JOB.replace("NAME", "seed"),
        &[("preprocess.py", SEED)],
    )
    .await;
    assert!(p.failed.is_empty(), "{:?}", p.failed);
    let expected = pandas_itself(&agent.dir.join("seed"));
    let (columns, rows) = output(&agent.dir.join("seed/out"));
    assert_eq!(serde_json::json!(columns), expected["columns"]);
    assert_eq!(rows.len(), 3000);
    for (id, values) in &rows {
        assert_eq!(
            &serde_json::json!(values),
            &expected["rows"][id.to_string()],
            "row {id}"
        );
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_fails_as_it_does_in_pandas_with_the_traceback_and_row_range_after_max_failures() {
    let agent = agent().await;
    let mut texts: Vec<Option<String>> = adversarial(1000).into_iter().map(Some).collect();
    texts[600] = None; // row group 0 holds rows 0..700: the third call, rows 512..700
    write_input(&agent.dir.join("nulls/in"), &texts, 700);
    let p = run_job(
        &agent,
        "nulls",
        &SEED_JOB.replace("NAME", "nulls"),
        &[("preprocess.py", SEED)],
    )
    .await;
    let expected = pandas_itself(&agent.dir.join("nulls"));
    let pandas_error = expected["error"].as_str().expect("pandas raises too");
    assert_eq!(p.failed.len(), 1, "{p:?}");
    let f = &p.failed[0];
    assert_eq!(f.failures, 2, "reported after max_failures");
    assert!(f.error.starts_with(&format!("steps[0] (python): preprocess_text (preprocess.py:6) {pandas_error}, on rows 512..700 of unit 0 of task t000000")), "{}", f.error);
    assert!(
        f.error
            .contains("File \"preprocess.py\", line 24, in clean"),
        "{}",
        f.error
    );
    agent.stop().await;
}

const MIXED: &str = r#"
import pandas as pd

def tag(batch: pd.DataFrame) -> pd.DataFrame:
    batch["call_rows"] = len(batch)
    batch["shout"] = batch["cleaned"].str.upper()
    batch["sparse"] = [None if i < 1500 else f"v{i}" for i in batch["id"]]
    return batch

def keep_even(table):
    import pyarrow.compute as pc
    return table.filter(pc.equal(pc.bit_wise_and(table["id"], 1), 0))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_python_steps_mix_in_both_orders_in_calls_of_batch_size_rows() {
    let agent = agent().await;
    // Units of 2500 generated rows, python batches of 1000: calls of 1000, 1000 and 500.
    let yaml = "name: mixed\ninput: {generate: {rows: 5000, seed: 5, text_length: 30, noise: 0.2}}\noutput: {uri: OUT}\nbatch_size: 2500\nsplit: {rows_per_task: 5000}\nsteps:\n\
        \x20 - regex_replace: {column: text, pattern: '[^a-z ]', replacement: '', output: cleaned}\n\
        \x20 - python: {file: mixed.py, function: tag, batch_size: 1000}\n\
        \x20 - lowercase: {column: shout, output: quiet}\n\
        \x20 - python: {file: mixed.py, function: keep_even, batch_format: pyarrow, batch_size: 700}\n\
        \x20 - drop_columns: {columns: [text]}\n";
    let p = run_job(&agent, "mixed", yaml, &[("mixed.py", MIXED)]).await;
    assert!(p.failed.is_empty(), "{:?}", p.failed);
    let (columns, rows) = output(&agent.dir.join("mixed/out"));
    assert_eq!(
        columns,
        [
            "id",
            "label",
            "cleaned",
            "call_rows",
            "shout",
            "sparse",
            "quiet"
        ]
    );
    assert_eq!(rows.len(), 2500, "keep_even kept every other row");
    let col = |name: &str| columns.iter().position(|c| c == name).unwrap();
    let mut calls: BTreeMap<String, usize> = BTreeMap::new();
    for (id, v) in &rows {
        assert_eq!(id % 2, 0);
        *calls
            .entry(v[col("call_rows")].clone().unwrap())
            .or_default() += 1;
        assert_eq!(
            v[col("quiet")],
            v[col("cleaned")],
            "lowercase(upper(cleaned)) is cleaned"
        );
        let sparse = v[col("sparse")].clone();
        assert_eq!(
            sparse,
            (*id >= 1500).then(|| format!("v{id}")),
            "null-typed batches were unified with typed ones"
        );
    }
    // Per unit of 2500 rows: 2000 rows in calls of 1000, 500 in the last call (halved).
    assert_eq!(
        calls,
        BTreeMap::from([("1000".to_string(), 2000), ("500".to_string(), 500)])
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_return_type_fails_the_job_naming_the_function() {
    let agent = agent().await;
    let yaml = "name: wrong\ninput: {generate: {rows: 100, seed: 1, text_length: 10}}\noutput: {uri: OUT}\nmax_failures: 1\nsteps:\n  - python: {file: w.py, function: as_list}\n";
    let p = run_job(
        &agent,
        "wrong",
        yaml,
        &[(
            "w.py",
            "def as_list(batch):\n    return batch.to_dict('records')\n",
        )],
    )
    .await;
    assert_eq!(p.failed.len(), 1);
    assert!(p.failed[0].error.starts_with("steps[0] (python): as_list (w.py:1) returned builtins.list; a python step must return a pandas.DataFrame, a pyarrow.Table or a dict of columns ({name: list, numpy array, pandas Series or pyarrow Array}), on rows 0..100 of unit 0"), "{}", p.failed[0].error);
    agent.stop().await;
}

/// Nodes fetch the job's file from the store and check it against the recorded sha256.
#[tokio::test]
async fn a_shipped_file_that_changed_in_the_store_is_refused() {
    let dir = crate::ops::python::tests::temp_dir("tamper");
    let store = fleetform_runtime::store::Store::open(&fleetform_runtime::Connections::from_env(), &dir.join("store").display().to_string())
        .await
        .unwrap();
    let spec = JobSpec::from_yaml("j.yaml", "name: j\ninput: {generate: {rows: 1}}\noutput: {uri: /tmp/x}\nsteps:\n  - python: {file: lib/t.py, function: f}\n").unwrap();
    let stages = crate::ops::Stages::compile(&spec.steps).unwrap();
    let sha = py::sha256_hex(b"def f(b):\n    return b\n");
    let key = fleetform_core::layout::code("j-1", &sha, "t.py");
    store
        .put_bytes(&key, b"def f(b):\n    return b  # changed\n".to_vec())
        .await
        .unwrap();
    let mut record = fleetform_core::task::JobRecord {
        job_id: "j-1".into(),
        spec,
        tasks: 1,
        total_rows: 1,
        queue_class: "default".into(),
        submitted_at: chrono::Utc::now(),
        code: vec![fleetform_core::task::ShippedCode {
            file: "lib/t.py".into(),
            key: key.clone(),
            sha256: sha.clone(),
        }],
        rows_estimated: false,
        input_schema: None,
    };
    let err = py::job_pool(&store, &record, &stages, &dir.join("spill"), "n1")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!("{key} has sha256 "))
            && err.contains(&format!("but job j-1 recorded {sha} for lib/t.py")),
        "{err}"
    );
    store
        .put_bytes(&key, b"def f(b):\n    return b\n".to_vec())
        .await
        .unwrap();
    assert!(
        py::job_pool(&store, &record, &stages, &dir.join("spill"), "n1")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        dir.join("spill/j-1/code").join(&sha).join("t.py").exists(),
        "kept under its base name for tracebacks"
    );
    record.code.clear();
    let err = py::job_pool(&store, &record, &stages, &dir.join("spill2"), "n1")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("lib/t.py was not shipped with job j-1"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A struct column the function never touches keeps its type: in calls where every
/// `user.age` is missing, pandas hands the column back as `struct<age: null>` (the
/// others: `struct<age: int64>`), which used to fail the task on two schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_the_function_does_not_touch_keeps_its_type_across_calls() {
    let agent = agent().await;
    let dir = agent.dir.join("structs/in");
    std::fs::create_dir_all(&dir).unwrap();
    let lines: String = (0..200)
        .map(|i| match i < 100 {
            true => format!("{{\"id\": {i}, \"text\": \"Row {i}\", \"user\": {{\"age\": {i}}}}}\n"),
            false => format!("{{\"id\": {i}, \"text\": \"Row {i}\", \"user\": {{}}}}\n"),
        })
        .collect();
    std::fs::write(dir.join("people.jsonl"), lines).unwrap();
    let lower = "def lower(batch):\n    batch['text'] = batch['text'].str.lower()\n    return batch\n";
    let p = run_job(
        &agent,
        "structs",
        "name: structs\ninput: {uri: IN}\noutput: {uri: OUT}\nsteps:\n  - python: {file: lower.py, function: lower, batch_format: pandas, batch_size: 50}\n",
        &[("lower.py", lower)],
    )
    .await;
    assert!(p.failed.is_empty(), "{:?}", p.failed);
    let out = agent.dir.join("structs/out");
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(out.join("_SUCCESS")).unwrap()).unwrap();
    assert_eq!(manifest.total_rows, 200);
    for f in &manifest.files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(out.join(&f.file)).unwrap()).unwrap();
        let user = reader.schema().field_with_name("user").unwrap().data_type().clone();
        assert_eq!(user.to_string(), "Struct(\"age\": Int64)", "{user:?}");
    }
    agent.stop().await;
}

/// Every attempt keeps its own output: the failed attempt's prints explain its failure,
/// and a retry does not overwrite them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_of_a_task_keeps_what_it_printed_in_the_store() {
    let agent = agent().await;
    let marker = agent.dir.join("retried/failed-once");
    let src = format!(
        "import os\ndef flaky(batch):\n    print('called on', len(batch), 'rows')\n    if not os.path.exists({m:?}):\n        open({m:?}, 'w').close()\n        print('failing the first attempt')\n        raise RuntimeError('first attempt')\n    return batch\n",
        m = marker.display().to_string()
    );
    let yaml = "name: retried\ninput: {generate: {rows: 100, seed: 1, text_length: 10}}\noutput: {uri: OUT}\nmax_failures: 3\nsteps:\n  - python: {file: f.py, function: flaky, batch_format: pyarrow}\n";
    let p = run_job(&agent, "retried", yaml, &[("f.py", &src)]).await;
    assert!(p.failed.is_empty(), "{:?}", p.failed);
    let store = &agent.shared.store;
    let mut keys = store.list(&fleetform_core::layout::task_logs_prefix(&p.record.job_id)).await.unwrap();
    keys.sort();
    assert_eq!(keys.len(), 2, "one segment per attempt: {keys:?}");
    let attempt = |k: &str| k.rsplit('/').nth(1).unwrap().to_string();
    assert_ne!(attempt(&keys[0]), attempt(&keys[1]), "{keys:?}");
    let text = |k: &String| {
        let store = store.clone();
        let k = k.clone();
        async move { String::from_utf8(store.get_bytes(&k).await.unwrap().unwrap().to_vec()).unwrap() }
    };
    assert_eq!(text(&keys[0]).await, "called on 100 rows\nfailing the first attempt\n");
    assert_eq!(text(&keys[1]).await, "called on 100 rows\n");
    agent.stop().await;
}
