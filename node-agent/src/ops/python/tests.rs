//! Real workers: `python3` from PATH with pyarrow and pandas (`.ci/run` puts `.ci/venv`
//! first on PATH). Each test names what it needs installed when it is missing.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::SchemaRef;
use fleetform_core::job::{BatchFormat, PythonStep};

use super::*;
use crate::ops::PythonStage;

/// Fails (never skips) when python3 on PATH cannot import pyarrow and pandas.
pub(crate) fn require_python() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import pyarrow, pandas"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "python3 on PATH lacks pyarrow/pandas ({}): put .ci/venv/bin first on PATH (bash .ci/run does) or `pip install pyarrow pandas`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("no python3 on PATH ({e}): install Python 3 with pyarrow and pandas, or put .ci/venv/bin first on PATH"),
    }
}

pub(crate) fn temp_dir(what: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fleetform-py-{what}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One python step over `source` (written to `dir/display`), and a pool for it.
fn pool(
    dir: &Path,
    display: &str,
    source: &str,
    function: &str,
    format: BatchFormat,
) -> (WorkerPool, PythonStage) {
    std::fs::write(dir.join(display), source).unwrap();
    let step = PythonStep {
        file: display.into(),
        function: function.into(),
        batch_format: format,
        batch_size: 1024,
        interpreter: "python3".into(),
        timeout_seconds: None,
    };
    let cfg = WorkerConfig {
        interpreter: "python3".into(),
        runner: install_runner(dir).unwrap(),
        functions: vec![FunctionSpec {
            path: dir.join(display).display().to_string(),
            display: display.into(),
            function: function.into(),
            batch_format: format.as_str(),
        }],
        node_id: "test-node".into(),
    };
    (
        WorkerPool::new(cfg),
        PythonStage {
            step_index: 0,
            function_index: 0,
            step,
        },
    )
}

fn texts(rows: &[Option<&str>]) -> RecordBatch {
    let ids: ArrayRef = Arc::new(arrow_array::Int64Array::from_iter_values(
        0..rows.len() as i64,
    ));
    let text: ArrayRef = Arc::new(StringArray::from(rows.to_vec()));
    RecordBatch::try_from_iter(vec![("id", ids), ("text", text)]).unwrap()
}

fn call(
    pool: &WorkerPool,
    stage: &PythonStage,
    batch: &RecordBatch,
) -> anyhow::Result<(SchemaRef, Vec<RecordBatch>)> {
    let stop = AtomicBool::new(false);
    pool.checkout("t-test", &TaskLog::new()).call(
        stage,
        &batch.schema(),
        std::slice::from_ref(batch),
        &stop,
        "rows 0..n of the test",
    )
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = arrow_cast_free_strings(
            b.column_by_name(column)
                .unwrap_or_else(|| panic!("no column {column}")),
        );
        out.extend(col);
    }
    out
}

fn arrow_cast_free_strings(a: &ArrayRef) -> Vec<Option<String>> {
    let mut v = Vec::new();
    crate::ops::strings::visit_strings(a, &mut |s| v.push(s.map(str::to_string))).unwrap();
    v
}

const SEED: &str = include_str!("../../../../examples/jobs/preprocess.py");

#[test]
fn the_seed_function_runs_unchanged_and_prints_do_not_disturb_the_protocol() {
    require_python();
    let dir = temp_dir("seed");
    let noisy = format!("{SEED}\nimport sys\n_seed = preprocess_text\ndef loud(batch):\n    print('hello from the user', len(batch))\n    sys.stdout.write('x' * 100000)\n    return _seed(batch)\n");
    let (pool, stage) = pool(&dir, "preprocess.py", &noisy, "loud", BatchFormat::Pandas);
    let batch = texts(&[
        Some("Hello, World!!! 2026 @Ray_Data#"),
        Some("한국어 텍스트 😀 ABC"),
    ]);
    let (schema, out) = call(&pool, &stage, &batch).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "text", "cleaned_text"]);
    assert_eq!(
        strings(&out, "cleaned_text"),
        [
            Some("hello world 2026 raydata".to_string()),
            Some("한국어 텍스트  abc".to_string())
        ]
    );
    assert_eq!(pool.idle_workers(), 1, "the worker went back to the pool");
    // The same worker serves the next call.
    let (_, again) = call(&pool, &stage, &batch).unwrap();
    assert_eq!(strings(&again, "text"), strings(&out, "text"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_exception_comes_back_with_the_users_traceback_and_the_worker_keeps_serving() {
    require_python();
    let dir = temp_dir("raise");
    let (pool, stage) = pool(
        &dir,
        "preprocess.py",
        SEED,
        "preprocess_text",
        BatchFormat::Pandas,
    );
    let err = call(&pool, &stage, &texts(&[Some("ok"), None]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("steps[0] (python): preprocess_text (preprocess.py:6) raised TypeError: expected string or bytes-like object, got 'float', on rows 0..n of the test"), "{err}");
    assert!(err.contains("Traceback (most recent call last):"), "{err}");
    assert!(
        err.contains("File \"preprocess.py\", line 28, in preprocess_text")
            && err.contains("batch[\"cleaned_text\"] = batch[\"text\"].apply(clean)"),
        "the user's file, line and source: {err}"
    );
    assert!(
        err.contains("File \"preprocess.py\", line 24, in clean"),
        "{err}"
    );
    assert!(!err.contains("runner"), "no frame of the runner: {err}");
    assert_eq!(
        pool.idle_workers(),
        1,
        "an exception does not cost the worker"
    );
    assert!(call(&pool, &stage, &texts(&[Some("fine")])).is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_wrong_return_type_names_the_function_and_what_it_returned() {
    require_python();
    let dir = temp_dir("type");
    let src = "def listify(batch):\n    return batch['text'].tolist()\n\ndef tables(table):\n    return table.select(['text'])\n";
    let (pool, stage) = pool(&dir, "bad.py", src, "listify", BatchFormat::Pandas);
    let err = call(&pool, &stage, &texts(&[Some("a")]))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "steps[0] (python): listify (bad.py:1) returned builtins.list; a python step must return a pandas.DataFrame, a pyarrow.Table or a dict of columns ({name: list, numpy array, pandas Series or pyarrow Array}), on rows 0..n of the test");
    let (pool, stage) = super::tests::pool(&dir, "bad.py", src, "tables", BatchFormat::Pyarrow);
    let (schema, _) = call(&pool, &stage, &texts(&[Some("a")])).unwrap();
    assert_eq!(
        schema.fields().len(),
        1,
        "a pyarrow function gets and returns a Table"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_missing_function_or_interpreter_fails_the_call_with_a_clear_message() {
    require_python();
    let dir = temp_dir("missing");
    let (pool, stage) = pool(
        &dir,
        "p.py",
        "def other(b):\n    return b\n",
        "preprocess_text",
        BatchFormat::Pandas,
    );
    let err = call(&pool, &stage, &texts(&[Some("a")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot load the python step: LookupError: p.py defines no `preprocess_text` at its top level"), "{err}");
    let (mut pool, stage) = super::tests::pool(
        &dir,
        "p.py",
        "def f(b):\n    return b\n",
        "f",
        BatchFormat::Pandas,
    );
    pool.cfg.interpreter = "python3-not-installed-here".into();
    let err = call(&pool, &stage, &texts(&[Some("a")])).unwrap_err();
    assert!(format!("{err:#}").contains("python3-not-installed-here not found on node test-node; set python.interpreter or add it in setup_commands"), "{err:#}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_worker_that_dies_is_restarted_once_and_a_second_death_fails_with_the_signal() {
    require_python();
    let dir = temp_dir("kill");
    let marker = dir.join("died-once");
    let src = format!(
        "import os, signal, sys\ndef once(batch):\n    if not os.path.exists({m:?}):\n        open({m:?}, 'w').close()\n        print('about to die', file=sys.stderr, flush=True)\n        os.kill(os.getpid(), signal.SIGKILL)\n    return batch\n\ndef always(batch):\n    print('dying again', file=sys.stderr, flush=True)\n    os.kill(os.getpid(), signal.SIGKILL)\n",
        m = marker.display().to_string()
    );
    let (pool, stage) = pool(&dir, "k.py", &src, "once", BatchFormat::Pandas);
    let (_, out) = call(&pool, &stage, &texts(&[Some("a"), Some("b")])).unwrap();
    assert_eq!(
        strings(&out, "text"),
        [Some("a".to_string()), Some("b".to_string())],
        "the batch was retried on a new worker"
    );
    assert!(marker.exists());
    let (pool, stage) = super::tests::pool(&dir, "k.py", &src, "always", BatchFormat::Pandas);
    let err = call(&pool, &stage, &texts(&[Some("a")]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("steps[0] (python): the worker running always (k.py) died twice on rows 0..n of the test."), "{err}");
    assert!(
        err.contains("was killed by signal 9 (SIGKILL)") && err.contains("dying again"),
        "exit signal and stderr tail: {err}"
    );
    assert_eq!(pool.idle_workers(), 0, "a dead worker is not pooled");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_stopped_task_kills_a_long_call() {
    require_python();
    let dir = temp_dir("stop");
    let (pool, stage) = pool(
        &dir,
        "s.py",
        "import time\ndef slow(b):\n    time.sleep(600)\n    return b\n",
        "slow",
        BatchFormat::Pandas,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let batch = texts(&[Some("a")]);
    let log = TaskLog::new();
    let err = pool
        .checkout("t", &log)
        .call(
            &stage,
            &batch.schema(),
            std::slice::from_ref(&batch),
            &stop,
            "rows 0..1",
        )
        .unwrap_err()
        .to_string();
    setter.join().unwrap();
    assert!(
        err.contains("stopped while slow (s.py) ran on rows 0..1"),
        "{err}"
    );
    assert_eq!(
        pool.idle_workers(),
        0,
        "the interrupted worker was killed, not pooled"
    );
    let mut timed = stage;
    timed.step.timeout_seconds = Some(1);
    let err = pool
        .checkout("t", &log)
        .call(
            &timed,
            &batch.schema(),
            &[batch],
            &AtomicBool::new(false),
            "rows 0..1",
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("slow (s.py) took longer than timeout_seconds (1) on rows 0..1"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `call`, and what the call printed (the task log's pending segment).
fn call_logged(
    pool: &WorkerPool,
    stage: &PythonStage,
    batch: &RecordBatch,
) -> (anyhow::Result<(SchemaRef, Vec<RecordBatch>)>, String) {
    let log = TaskLog::new();
    let out = pool.checkout("t-test", &log).call(
        stage,
        &batch.schema(),
        std::slice::from_ref(batch),
        &AtomicBool::new(false),
        "rows 0..n of the test",
    );
    let printed = log.take_segment(true).map(|(_, t)| t).unwrap_or_default();
    (out, printed)
}

/// id (int64), text (string, one null), tags (list<string>), score (float64, one null).
fn mixed_types() -> RecordBatch {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    let mut tags = ListBuilder::new(StringBuilder::new());
    for row in [vec!["a", "b"], vec![], vec!["c"]] {
        for t in row {
            tags.values().append_value(t);
        }
        tags.append(true);
    }
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3]))),
        ("text", Arc::new(StringArray::from(vec![Some("Hello"), None, Some("한국어")]))),
        ("tags", Arc::new(tags.finish())),
        ("score", Arc::new(arrow_array::Float64Array::from(vec![Some(0.5), None, Some(2.0)]))),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// What the function saw, in its own words, returned as a column of one repeated value.
const DESCRIBE_NUMPY: &str = r#"
import numpy as np

def describe(batch):
    assert isinstance(batch, dict), type(batch)
    seen = "|".join(f"{k}:{type(v).__name__}:{v.dtype}:{type(v[0]).__name__}" for k, v in batch.items())
    n = len(batch["id"])
    return {
        "id": batch["id"],
        "seen": [seen] * n,
        "upper": np.array([None if t is None else t.upper() for t in batch["text"]], dtype=object),
        "tag_count": np.array([len(t) for t in batch["tags"]]),
        "score_is_nan": np.isnan(batch["score"]),
        "embedding": np.arange(n * 4, dtype=np.float32).reshape(n, 2, 2),
    }
"#;

#[test]
fn numpy_batches_are_dicts_of_arrays_as_ray_builds_them_and_dicts_come_back() {
    require_python();
    let dir = temp_dir("numpy");
    let (pool, stage) = pool(&dir, "np_step.py", DESCRIBE_NUMPY, "describe", BatchFormat::Numpy);
    let (schema, out) = call(&pool, &stage, &mixed_types()).unwrap();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "seen", "upper", "tag_count", "score_is_nan", "embedding"]);
    // Ray's ArrowBlockAccessor.to_numpy: to_numpy(zero_copy_only=False) per column.
    assert_eq!(
        strings(&out, "seen")[0].as_deref(),
        Some("id:ndarray:int64:int64|text:ndarray:object:str|tags:ndarray:object:ndarray|score:ndarray:float64:float64")
    );
    assert_eq!(
        strings(&out, "upper"),
        [Some("HELLO".to_string()), None, Some("한국어".to_string())],
        "a null string is None in an object array, and comes back null"
    );
    let col = |name: &str| out[0].column_by_name(name).unwrap().clone();
    assert_eq!(col("tag_count").as_ref(), &arrow_array::Int64Array::from(vec![2, 0, 1]) as &dyn arrow_array::Array);
    assert_eq!(col("score_is_nan").as_ref(), &arrow_array::BooleanArray::from(vec![false, true, false]) as &dyn arrow_array::Array, "a null float is NaN");
    let inner = arrow_schema::DataType::FixedSizeList(Arc::new(arrow_schema::Field::new("item", arrow_schema::DataType::Float32, true)), 2);
    assert_eq!(
        col("embedding").data_type(),
        &arrow_schema::DataType::FixedSizeList(Arc::new(arrow_schema::Field::new("item", inner, true)), 2),
        "an (n, 2, 2) array is a fixed-size list per extra dimension"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The same dict of columns returned from each batch format, one kind of value per column.
const DICT_RETURNS: &str = r#"
import numpy as np
import pandas as pd
import pyarrow as pa

def columns(n, ids):
    return {
        "id": ids,
        "from_list": [f"row {i}" for i in range(n)],
        "from_ndarray": np.arange(n, dtype=np.int64) * 10,
        "from_series": pd.Series([1.5] * n),
        "from_arrow": pa.array([True] * n),
    }

def from_pandas(df):
    return columns(len(df), df["id"])

def from_arrow(table):
    return columns(table.num_rows, table["id"])

def from_numpy(batch):
    return columns(len(batch["id"]), batch["id"])
"#;

#[test]
fn a_dict_of_columns_comes_back_from_every_batch_format() {
    require_python();
    let dir = temp_dir("dicts");
    for (function, format) in [
        ("from_pandas", BatchFormat::Pandas),
        ("from_arrow", BatchFormat::Pyarrow),
        ("from_numpy", BatchFormat::Numpy),
    ] {
        let (pool, stage) = pool(&dir, "dicts.py", DICT_RETURNS, function, format);
        let (schema, out) = call(&pool, &stage, &texts(&[Some("a"), Some("b")]))
            .unwrap_or_else(|e| panic!("{function}: {e:#}"));
        let types: Vec<String> = schema.fields().iter().map(|f| format!("{}:{}", f.name(), f.data_type())).collect();
        assert_eq!(
            types,
            ["id:Int64", "from_list:Utf8", "from_ndarray:Int64", "from_series:Float64", "from_arrow:Boolean"],
            "{function}"
        );
        assert_eq!(strings(&out, "from_list"), [Some("row 0".to_string()), Some("row 1".to_string())], "{function}");
        let tens = out[0].column_by_name("from_ndarray").unwrap();
        assert_eq!(tens.as_ref(), &arrow_array::Int64Array::from(vec![0, 10]) as &dyn arrow_array::Array, "{function}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn columns_of_unequal_lengths_or_not_columns_are_refused_naming_function_and_lengths() {
    require_python();
    let dir = temp_dir("unequal");
    let src = "def short(batch):\n    return {'id': batch['id'], 'text': list(batch['text'])[:1]}\n\ndef scalar(batch):\n    return {'id': batch['id'], 'label': 'news'}\n\ndef mixed(batch):\n    return {'x': [1, 'one']}\n";
    let (pool, stage) = pool(&dir, "bad.py", src, "short", BatchFormat::Numpy);
    let err = call(&pool, &stage, &texts(&[Some("a"), Some("b"), Some("c")])).unwrap_err().to_string();
    assert_eq!(err, "steps[0] (python): short (bad.py:1) returned columns of unequal lengths (id 3, text 1); every column needs one value per row, on rows 0..n of the test");
    let (pool, stage) = super::tests::pool(&dir, "bad.py", src, "scalar", BatchFormat::Pandas);
    let err = call(&pool, &stage, &texts(&[Some("a")])).unwrap_err().to_string();
    assert_eq!(err, "steps[0] (python): scalar (bad.py:4) returned builtins.str for column `label`; each column is a list, a numpy array, a pandas Series or a pyarrow Array with one value per row, on rows 0..n of the test");
    let (pool, stage) = super::tests::pool(&dir, "bad.py", src, "mixed", BatchFormat::Pyarrow);
    let err = call(&pool, &stage, &texts(&[Some("a"), Some("b")])).unwrap_err().to_string();
    assert!(err.starts_with("steps[0] (python): mixed (bad.py:7) returned column `x` that Arrow cannot convert (list): "), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// Prints at load and in the call, `logging` configured by the module and not, a warning,
/// writes to sys.stderr, and the prints before an exception.
const NOISY: &str = r#"
import logging, sys, warnings
print("loading noisy.py")
log = logging.getLogger("noisy")

def chatty(batch):
    print("rows in this batch:", len(batch))
    log.warning("a warning through logging's last resort")
    sys.stderr.write("straight to stderr\n")
    sys.stdout.buffer.write("bytes to stdout 한\n".encode())
    warnings.warn("a python warning")
    return batch

def configured(batch):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    log.info("info, once the step configured logging")
    return batch

def fails(batch):
    print("about to fail on", len(batch), "rows")
    raise ValueError("no")
"#;

#[test]
fn what_a_function_prints_or_logs_comes_back_for_the_tasks_log() {
    require_python();
    let dir = temp_dir("prints");
    let (pool, stage) = pool(&dir, "noisy.py", NOISY, "chatty", BatchFormat::Pandas);
    let (out, printed) = call_logged(&pool, &stage, &texts(&[Some("a"), Some("b")]));
    out.unwrap();
    let expected = ["loading noisy.py\n", "rows in this batch: 2\n", "a warning through logging's last resort\n", "straight to stderr\n", "bytes to stdout 한\n"];
    let mut at = 0;
    for e in expected {
        let found = printed[at..].find(e).unwrap_or_else(|| panic!("{e:?} in order in {printed:?}"));
        at += found + e.len();
    }
    assert!(printed.contains("UserWarning: a python warning"), "{printed}");
    let (_, again) = call_logged(&pool, &stage, &texts(&[Some("a")]));
    assert!(!again.contains("loading"), "the module loads once per worker: {again}");
    assert!(again.starts_with("rows in this batch: 1\n"), "each call's output once: {again}");

    let (pool, stage) = super::tests::pool(&dir, "noisy.py", NOISY, "configured", BatchFormat::Pandas);
    let (_, printed) = call_logged(&pool, &stage, &texts(&[Some("a")]));
    assert!(printed.contains("INFO noisy: info, once the step configured logging\n"), "{printed}");

    let (pool, stage) = super::tests::pool(&dir, "noisy.py", NOISY, "fails", BatchFormat::Pandas);
    let (out, printed) = call_logged(&pool, &stage, &texts(&[Some("a")]));
    assert!(out.is_err());
    assert!(printed.contains("about to fail on 1 rows\n"), "a failing call's prints are kept: {printed}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_flood_of_prints_is_cut_at_the_cap_and_says_so() {
    require_python();
    let dir = temp_dir("flood");
    let src = "def flood(batch):\n    for i in range(30000):\n        print('x' * 99)\n    return batch\n";
    let (pool, stage) = pool(&dir, "flood.py", src, "flood", BatchFormat::Pyarrow);
    let (out, printed) = call_logged(&pool, &stage, &texts(&[Some("a")]));
    out.unwrap();
    assert!(printed.len() < TASK_LOG_CAP + 500, "{}", printed.len());
    assert!(printed.contains("[fleetform] output cut here"), "marked where it is cut");
    let cut = 30000 * 100 - TASK_LOG_CAP;
    assert!(printed.ends_with(&format!("[fleetform] {cut} bytes of output were cut\n")), "{}", printed.lines().last().unwrap_or_default());
    std::fs::remove_dir_all(dir).unwrap();
}
