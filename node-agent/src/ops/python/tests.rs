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
    pool.checkout("t-test").call(
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
    assert_eq!(err, "steps[0] (python): listify (bad.py:1) returned builtins.list; a python step must return a pandas.DataFrame or a pyarrow.Table, on rows 0..n of the test");
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
    let err = pool
        .checkout("t")
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
        .checkout("t")
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
