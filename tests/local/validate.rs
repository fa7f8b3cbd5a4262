//! `fleetform validate` checks job files exactly as `submit` does: every problem at once,
//! each at file:line:column; and both say what the output files will be.

use crate::harness::*;

const GEN: &str = "name: gen\ninput: {generate: {rows: 2000, seed: 1, text_length: 20}}\noutput: {uri: raw, rows_per_file: 500}\nsplit: {rows_per_task: 500}\n";

#[test]
fn validate_reports_what_submit_would_every_problem_with_its_line() {
    let env = LocalEnv::new(1, 1);
    let bad = env.write_job(
        "bad.yaml",
        "name: bad\ninput: {uri: raw}\noutput: {uri: out}\nsteps:\n  - regex_replace: {column: text, pattern: '[unclosed'}\n  - lowercase: {column: body}\nresources: {CPU: 64, GPU: 1}\n",
    );
    let gen = env.write_job("gen.yaml", GEN);
    // Before any data exists: gen then bad in one validate, as `run gen bad` would go.
    // bad reads gen's output, so its data is left to submit (said, not an error), but
    // its regex and resources are checked.
    let out = env.run(&["validate", gen.to_str().unwrap(), bad.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad.yaml:7:1: resources: no node type provides"), "{err}");
    assert!(err.contains("bad.yaml:5:") && err.contains("steps[0].regex_replace.pattern"), "{err}");
    assert!(!err.contains("input.uri") && !err.contains("column `body`"), "data not checked before it is written: {err}");
    assert!(err.contains("2 problems in"), "{err}");

    let run = env.run(&["run", gen.to_str().unwrap()]);
    assert!(run.status.success());
    let fixed_resources = env.write_job("bad.yaml", &std::fs::read_to_string(&bad).unwrap().replace("{CPU: 64, GPU: 1}", "{CPU: 1}"));
    for cmd in ["validate", "submit"] {
        let out = env.run(&[cmd, fixed_resources.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        // Both problems, each at its own line, from the same check.
        assert!(err.contains("bad.yaml:5:") && err.contains("steps[0].regex_replace.pattern"), "{cmd}: {err}");
        assert!(err.contains("bad.yaml:6:") && err.contains("steps[1].lowercase.column: column `body` does not exist"), "{cmd}: {err}");
        assert!(err.contains("2 problems in"), "{cmd}: {err}");
    }
}

#[test]
fn the_files_a_job_will_write_are_said_and_min_rows_per_file_makes_them() {
    let env = LocalEnv::new(1, 1);
    // 2 input files of 1000 rows, each in 4 row groups of 250.
    let gen = GEN.replace("rows_per_file: 500}", "rows_per_file: 1000}").replace("rows_per_task: 500", "rows_per_task: 1000");
    let gen = env.write_job("gen.yaml", &(gen + "batch_size: 250\n"));
    assert!(env.run(&["run", gen.to_str().unwrap()]).status.success());
    let clean = "name: clean\ninput: {uri: raw}\noutput: {uri: clean, rows_per_file: 1000}\nsplit: {row_groups_per_task: 1}\nbatch_size: 250\n";
    let job = env.write_job("clean.yaml", clean);
    let out = env.run(&["validate", job.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("8 tasks, each writes files of at most 250 rows: rows_per_file (1000) is more than a task reads"), "{err}");
    assert!(err.contains("set output.min_rows_per_file: 1000"), "{err}");

    // min_rows_per_file groups a file's row groups into tasks of 1000 rows.
    let sized = env.write_job("clean.yaml", &clean.replace("rows_per_file: 1000}", "rows_per_file: 1000, min_rows_per_file: 1000}"));
    let out = env.run(&["run", sized.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("note:"), "tasks now read 1000 rows: nothing to say: {err}");
    let (manifest, ids, _) = read_output(&env.path("clean"));
    assert_exactly_once(&ids, 2000);
    assert_eq!(manifest.files.iter().map(|f| f.rows).collect::<Vec<_>>(), vec![1000, 1000]);
}

#[test]
fn target_file_bytes_cuts_files_by_size() {
    let env = LocalEnv::new(1, 1);
    // Noisy text compresses little: 8000 rows of 1000 characters are several MiB.
    let gen = env.write_job(
        "gen.yaml",
        "name: gen\ninput: {generate: {rows: 8000, seed: 3, text_length: 1000, noise: 1.0}}\noutput: {uri: raw}\nbatch_size: 500\nsplit: {rows_per_task: 8000}\n",
    );
    let sized = env.write_job(
        "sized.yaml",
        "name: sized\ninput: {uri: raw}\noutput: {uri: sized, target_file_bytes: 1048576}\nbatch_size: 500\nsplit: {row_groups_per_task: 16}\n",
    );
    assert!(env.run(&["run", gen.to_str().unwrap(), sized.to_str().unwrap()]).status.success());
    let (manifest, ids, _) = read_output(&env.path("sized"));
    assert_exactly_once(&ids, 8000);
    assert!(manifest.files.len() >= 3, "one task, cut by size: {:?}", manifest.files);
    let sizes: Vec<u64> = manifest.files.iter().map(|f| std::fs::metadata(env.path("sized").join(&f.file)).unwrap().len()).collect();
    // Each file stops at the first row group that reaches the target: at most one row
    // group (500 rows, well under 1 MiB here) past it.
    let (last, full) = sizes.split_last().unwrap();
    assert!(full.iter().all(|&s| (1 << 20..2 << 20).contains(&s)), "{sizes:?}");
    assert!(*last < 2 << 20, "{sizes:?}");
}
