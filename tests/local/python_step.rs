//! The `python` step through the CLI as a user runs it: the example job on generated
//! data, submit-time checks, and exactly-once under kill -9 and a spot notice. Needs
//! processes (agents with their Python workers) and python3 with pyarrow and pandas on
//! PATH (`.ci/run` puts `.ci/venv` first).

use std::collections::HashMap;
use std::time::Duration;

use arrow_array::{Array, Int64Array, RecordBatch};

use crate::harness::*;
use crate::resilience::{submit, task_in_progress, wait_for_success};

const EXAMPLE_JOB: &str = include_str!("../../examples/jobs/python-clean.yaml");
const EXAMPLE_PY: &str = include_str!("../../examples/jobs/preprocess.py");

/// Fails (never skips) when the python3 on PATH lacks pyarrow or pandas.
fn require_python() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import pyarrow, pandas"])
        .output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "python3 with pyarrow and pandas is needed on PATH (put .ci/venv/bin first, as bash .ci/run does, or pip install pyarrow pandas): {out:?}"
    );
}

fn cleaned_by_id(batches: &[RecordBatch]) -> HashMap<i64, String> {
    let mut out = HashMap::new();
    for b in batches {
        let ids = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let col = b.column_by_name("cleaned_text").unwrap();
        let text: Vec<String> = match col.as_any().downcast_ref::<arrow_array::LargeStringArray>() {
            Some(s) => s.iter().map(|v| v.unwrap().to_string()).collect(),
            None => col
                .as_any()
                .downcast_ref::<arrow_array::StringArray>()
                .unwrap()
                .iter()
                .map(|v| v.unwrap().to_string())
                .collect(),
        };
        for (i, t) in text.into_iter().enumerate() {
            out.insert(ids.value(i), t);
        }
    }
    out
}

#[test]
fn the_example_python_job_matches_the_native_cleaning_job_row_for_row() {
    require_python();
    let env = LocalEnv::new(2, 1);
    std::fs::create_dir_all(env.path("jobs")).unwrap();
    let job = env.path("jobs/python-clean.yaml");
    std::fs::write(&job, EXAMPLE_JOB).unwrap();
    std::fs::write(env.path("jobs/preprocess.py"), EXAMPLE_PY).unwrap();
    let generate = env.write_job(
        "generate.yaml",
        include_str!("../../examples/jobs/generate.yaml"),
    );
    let native = env.write_job(
        "clean-text.yaml",
        include_str!("../../examples/jobs/clean-text.yaml"),
    );
    let sets = [
        "--set",
        "generate:input.generate.rows=20000",
        "--set",
        "generate:input.generate.noise=0.1",
        "--set",
        "generate:input.generate.text_length=200",
        // The example reads its JSON Lines sample; here, the generated parquet, so that
        // it can be compared with the native job on the same rows.
        "--set",
        "python-clean:input.uri=.fleetform/data/raw",
    ];
    let mut args = vec![
        "run",
        generate.to_str().unwrap(),
        job.to_str().unwrap(),
        native.to_str().unwrap(),
    ];
    args.extend(sets);
    let out = env.run(&args);
    assert!(out.status.success());
    let (manifest, ids, python) = read_output(&env.path(".fleetform/data/python-clean"));
    assert!(manifest.failed_tasks.is_empty());
    assert_exactly_once(&ids, 20_000);
    let names: Vec<String> = python[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, ["id", "text", "label", "cleaned_text"]);
    let (_, _, native) = read_output(&env.path(".fleetform/data/clean"));
    assert_eq!(
        cleaned_by_id(&python),
        cleaned_by_id(&native),
        "pandas + re and the native steps agree on every row"
    );
}

/// The example as shipped: the seed's function on the JSON Lines sample, from the
/// repository's root as the README runs it, equals the native steps (which equal Python's
/// `re` and `str.lower`, tests/e2e/python_compat.rs) on every row.
#[test]
fn the_example_runs_the_seed_function_on_its_json_lines_sample() {
    require_python();
    let env = LocalEnv::new(1, 2);
    // The shipped files in their repository layout, copied so that the run's
    // `.fleetform/` state lands in the temporary directory and not in the checkout.
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = env.path("checkout");
    for f in ["examples/jobs/python-clean.yaml", "examples/jobs/preprocess.py", "examples/jobs/clean-text.yaml", "examples/data/workshop-sample.jsonl"] {
        std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
        std::fs::copy(repo.join(f), root.join(f)).unwrap();
    }
    let run = |job: &str, out: &std::path::Path| {
        let o = fleetform()
            .current_dir(&root)
            .args(["run", "-f"])
            .arg(&env.cluster)
            .arg(job)
            .arg("--set")
            .arg(format!("output.uri={}", out.display()))
            .arg("--set")
            .arg("input.uri=examples/data/workshop-sample.jsonl")
            .output()
            .unwrap();
        assert!(o.status.success(), "{job}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run("examples/jobs/python-clean.yaml", &env.path("python"));
    run("examples/jobs/clean-text.yaml", &env.path("native"));
    let (manifest, ids, python) = read_output(&env.path("python"));
    assert_exactly_once(&ids, 1000);
    assert_eq!(manifest.total_rows, 1000);
    let (_, _, native) = read_output(&env.path("native"));
    assert_eq!(cleaned_by_id(&python), cleaned_by_id(&native), "pandas + re and the native steps agree on every row");
}

#[test]
fn submit_rejects_a_missing_function_and_a_syntax_error_naming_file_and_line() {
    require_python();
    let env = LocalEnv::new(1, 1);
    let job = |name: &str, function: &str| {
        env.write_job(&format!("{name}.yaml"), &format!("name: {name}\ninput: {{generate: {{rows: 10}}}}\noutput: {{uri: out}}\nsteps:\n  - python: {{file: {name}.py, function: {function}}}\n"))
    };
    std::fs::write(env.path("missing.py"), "import torch  # not installed here: never imported by the check\ndef other(batch):\n    return batch\n").unwrap();
    let out = env.run(&[
        "submit",
        job("missing", "preprocess_text").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.yaml:5:5: steps[0].python: missing.py defines no top-level `preprocess_text`; its functions: other"), "{err}");
    std::fs::write(
        env.path("syntax.py"),
        "def f(batch):\n    return batch\n\ndef g(batch)\n    return batch\n",
    )
    .unwrap();
    let out = env.run(&["submit", job("syntax", "f").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("syntax.yaml:5:5: steps[0].python: syntax.py:4:13: syntax error: expected ':'"),
        "{err}"
    );
    let out = env.run(&["submit", job("absent", "f").to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("absent.yaml:5:5: steps[0].python: cannot read absent.py"),
        "a missing file is named"
    );
}

#[test]
fn an_exception_is_reported_by_run_with_the_traceback_after_max_failures() {
    require_python();
    let env = LocalEnv::new(1, 1);
    std::fs::write(
        env.path("boom.py"),
        "def explode(batch):\n    raise ValueError(f'no good: {len(batch)} rows')\n",
    )
    .unwrap();
    let job = env.write_job(
        "boom.yaml",
        "name: boom\ninput: {generate: {rows: 300, seed: 1, text_length: 10}}\noutput: {uri: out}\nbatch_size: 100\nmax_failures: 2\nsteps:\n  - python: {file: boom.py, function: explode, batch_size: 64}\n",
    );
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FAILED     1 tasks (dead-lettered after 2 attempts)"),
        "{stdout}"
    );
    assert!(stdout.contains("steps[0] (python): explode (boom.py:1) raised ValueError: no good: 64 rows, on rows 0..64 of unit 0 of task t000000"), "{stdout}");
    assert!(
        stdout.contains("File \"boom.py\", line 2, in explode"),
        "{stdout}"
    );
}

/// Two long tasks of the seed function: 150 units each, so an interruption lands mid-task.
fn long_python_job(env: &LocalEnv) -> std::path::PathBuf {
    std::fs::write(env.path("preprocess.py"), EXAMPLE_PY).unwrap();
    env.write_job(
        "long-python.yaml",
        "name: long-python\ninput: {generate: {rows: 150000, seed: 3, text_length: 300, noise: 0.1}}\n\
         output: {uri: out, rows_per_file: 1000}\nbatch_size: 500\nsplit: {rows_per_task: 75000}\n\
         steps:\n  - python: {file: preprocess.py, function: preprocess_text, batch_size: 200}\n",
    )
}

#[test]
fn kill_9_of_an_agent_running_a_python_step_loses_and_duplicates_nothing() {
    require_python();
    let env = LocalEnv::new(2, 1);
    let sup = env.up(3);
    let job = submit(&env, &long_python_job(&env));
    let (node, task) = task_in_progress(&env, &job);
    let (_, pid, _) = sup
        .nodes()
        .into_iter()
        .find(|(id, _, _)| *id == node)
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for_success(&env, &job);
    let (manifest, ids, _) = read_output(&env.path("out"));
    assert_exactly_once(&ids, 150_000);
    assert!(
        manifest.failed_tasks.is_empty(),
        "a crash is not a task failure"
    );
    let done = env
        .done_records(&job)
        .into_iter()
        .find(|d| d.task_id == task)
        .unwrap();
    assert_ne!(done.node_id, node);
    assert!(
        done.units_from_checkpoint >= 2,
        "resumed from the last checkpoint: {done:?}"
    );
}

#[test]
fn a_spot_notice_during_a_python_step_drains_at_a_unit_boundary_and_another_node_resumes() {
    require_python();
    let env = LocalEnv::new(2, 1);
    let sup = env.up(5);
    let job = submit(&env, &long_python_job(&env));
    let (node, task) = task_in_progress(&env, &job);
    assert!(env
        .run(&["chaos", "interrupt", "--node", &node])
        .status
        .success());
    wait_until(
        Duration::from_secs(90),
        "the interrupted node's final heartbeat",
        || {
            env.heartbeats().iter().any(|h| {
                h.node_id == node && h.stopped && h.draining.as_deref() == Some("spot-interruption")
            })
        },
    );
    wait_for_success(&env, &job);
    let (manifest, ids, _) = read_output(&env.path("out"));
    assert_exactly_once(&ids, 150_000);
    assert!(manifest.failed_tasks.is_empty());
    let done = env
        .done_records(&job)
        .into_iter()
        .find(|d| d.task_id == task)
        .unwrap();
    assert_ne!(done.node_id, node, "another node finished the task");
    assert_eq!(
        done.units_processed + done.units_from_checkpoint,
        150,
        "no unit in the checkpoint was processed again: {done:?}"
    );
    drop(sup);
}

/// A Ray user's function as written for `batch_format="numpy"`: a dict of arrays in, a
/// dict of columns out, with a print and a logging call per batch.
const RAY_STYLE_PY: &str = r#"
import logging
import numpy as np

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
log = logging.getLogger("lengths")

def add_length(batch):
    print(f"numpy batch of {len(batch['id'])} rows, first id {batch['id'][0]}")
    log.info("text is %s", batch["text"].dtype)
    return {"id": batch["id"], "length": np.array([len(t) for t in batch["text"]])}
"#;

/// Print and logging reach the terminal during `run` and `job logs` after it, kept with
/// the job: a second `run` (which restarts the local agents and their logs) loses none.
#[test]
fn prints_and_logging_of_a_numpy_step_reach_run_and_job_logs_and_survive_a_later_run() {
    require_python();
    let env = LocalEnv::new(1, 2);
    std::fs::write(env.path("lengths.py"), RAY_STYLE_PY).unwrap();
    let job = env.write_job(
        "lengths.yaml",
        "name: lengths\ninput: {generate: {rows: 400, seed: 1, text_length: 20}}\noutput: {uri: out}\n\
         batch_size: 100\nsplit: {rows_per_task: 200}\n\
         steps:\n  - python: {file: lengths.py, function: add_length, batch_format: numpy, batch_size: 100}\n",
    );
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let id = stderr
        .lines()
        .find_map(|l| l.strip_prefix("submitted ")?.split_whitespace().next())
        .unwrap_or_else(|| panic!("the run names its job: {stderr}"))
        .to_string();
    for line in ["t000000| numpy batch of 100 rows, first id 0", "t000000| INFO lengths: text is object", "t000001| numpy batch of 100 rows, first id 300"] {
        assert!(stderr.contains(line), "run shows {line:?}: {stderr}");
    }
    let (_, ids, batches) = read_output(&env.path("out"));
    assert_exactly_once(&ids, 400);
    let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "length"], "the dict's columns");

    let other = env.write_job("other.yaml", "name: other\ninput: {generate: {rows: 10}}\noutput: {uri: out2}\n");
    assert!(env.run(&["run", other.to_str().unwrap()]).status.success());
    let logs = env.run(&["job", "logs", &id]);
    assert!(logs.status.success());
    let stdout = String::from_utf8_lossy(&logs.stdout);
    assert!(stdout.contains("output of the python steps (print, logging), by task attempt:"), "{stdout}");
    for task in ["t000000", "t000001"] {
        assert!(stdout.contains(&format!("{task} attempt 1 (on ")), "{stdout}");
        assert_eq!(stdout.matches(&format!("{task}| numpy batch of 100 rows")).count(), 2, "each call's print once: {stdout}");
        assert_eq!(stdout.matches(&format!("{task}| INFO lengths: text is object")).count(), 2, "{stdout}");
    }
}
