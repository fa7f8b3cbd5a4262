//! The data plane on the local provider, through the CLI as a user runs it. Needs more
//! than a unit test: agents are separate processes sharing a store and a queue.

use arrow_array::Array;

use crate::harness::*;

pub fn generate_job(env: &LocalEnv, rows: u64, out: &str) -> std::path::PathBuf {
    env.write_job(
        "generate.yaml",
        &format!(
            "name: generate\ninput: {{generate: {{rows: {rows}, seed: 7, text_length: 200, noise: 0.05}}}}\n\
             output: {{uri: {out}, rows_per_file: 2000}}\nbatch_size: 1000\nsplit: {{rows_per_task: 4000}}\n"
        ),
    )
}

pub fn clean_job(env: &LocalEnv, input: &str, out: &str) -> std::path::PathBuf {
    let seed = include_str!("../../examples/jobs/clean-text.yaml");
    let yaml = seed
        .replace(".fleetform/data/raw        # relative paths are taken from the current directory", input)
        .replace(".fleetform/data/clean", out)
        .replace("row_groups_per_task: 4", "row_groups_per_task: 3");
    env.write_job("clean.yaml", &yaml)
}

#[test]
fn generate_then_clean_every_row_exactly_once() {
    let env = LocalEnv::new(2, 2);
    let g = generate_job(&env, 20_000, "raw");
    let c = clean_job(&env, "raw", "clean");
    let out = env.run(&["run", g.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("5 of 5 tasks done"), "{stdout}");
    assert!(stdout.contains("throughput"), "{stdout}");
    let (manifest, ids, batches) = read_output(&env.path("clean"));
    assert_eq!(manifest.total_rows, 20_000);
    assert!(manifest.failed_tasks.is_empty());
    assert_exactly_once(&ids, 20_000);
    // The seed pattern leaves only Hangul syllables, ASCII letters/digits and whitespace.
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ('가'..='힣').contains(&c) || c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c);
    for b in &batches {
        let col = b.column_by_name("cleaned_text").unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        for i in 0..col.len() {
            assert!(col.value(i).chars().all(allowed), "unexpected character in {:?}", col.value(i));
        }
    }
    // Passthrough (unchanged columns copied as compressed chunks) gives the same data as
    // decoding and encoding every column.
    let c2 = clean_job(&env, "raw", "clean-reencoded");
    let out = env.run(&["run", c2.to_str().unwrap(), "--set", "output.passthrough=false"]);
    assert!(out.status.success());
    let (_, _, reencoded) = read_output(&env.path("clean-reencoded"));
    assert_eq!(sorted_rows(&batches), sorted_rows(&reencoded), "passthrough changes no value");
    // Running the same jobs again replaces the output (no stale parts left behind).
    let out = env.run(&["run", g.to_str().unwrap(), c.to_str().unwrap()]);
    assert!(out.status.success());
    let (_, ids, _) = read_output(&env.path("clean"));
    assert_exactly_once(&ids, 20_000);
    let parts = std::fs::read_dir(env.path("clean")).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("part-")).count();
    assert_eq!(parts, manifest.files.len());
}

#[test]
fn a_corrupt_input_file_fails_alone_and_is_reported() {
    let env = LocalEnv::new(1, 2);
    let g = generate_job(&env, 8_000, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    std::fs::write(env.path("raw/zz-corrupt.parquet"), b"this is not parquet").unwrap();
    let c = clean_job(&env, "raw", "clean");
    let out = env.run(&["run", c.to_str().unwrap(), "--set", "max_failures=2"]);
    assert_eq!(out.status.code(), Some(1), "a job with failed tasks exits 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED     1 tasks"), "{stdout}");
    assert!(stdout.contains("zz-corrupt.parquet"), "the failure names the input file: {stdout}");
    assert!(stdout.contains("not a readable parquet file"), "and the error: {stdout}");
    let (manifest, ids, _) = read_output(&env.path("clean"));
    assert_eq!(manifest.failed_tasks.len(), 1);
    assert_exactly_once(&ids, 8_000);
    let status = env.run(&["job", "status", &manifest.job_id]);
    assert_eq!(status.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&status.stdout).contains("zz-corrupt.parquet"));
}

#[test]
fn submit_checks_columns_and_resources_naming_the_step() {
    let env = LocalEnv::new(1, 1);
    let g = generate_job(&env, 1_000, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    let bad = env.write_job(
        "bad.yaml",
        "name: bad\ninput: {uri: raw}\noutput: {uri: out}\nsteps:\n  - lowercase: {column: body}\n",
    );
    let out = env.run(&["submit", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:5:17: steps[0].lowercase.column: column `body` does not exist; available: id, text, label"), "{err}");
    let gpu = env.write_job("gpu.yaml", "name: gpu\ninput: {uri: raw}\noutput: {uri: out}\nresources: {CPU: 1, GPU: 1}\n");
    let out = env.run(&["submit", gpu.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no node type provides {CPU: 1, GPU: 1}"));
    let bad_re = env.write_job(
        "re.yaml",
        "name: re\ninput: {uri: raw}\noutput: {uri: out}\nsteps:\n  - regex_replace: {column: text, pattern: '(', replacement: ''}\n",
    );
    let out = env.run(&["submit", bad_re.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("re.yaml:5:35: steps[0].regex_replace.pattern: pattern `(` does not compile"));
}


/// A malformed JSON Lines line through the CLI: the report names file and line and the
/// job exits 1; with `on_error: skip` the run succeeds and reports the skipped count.
#[test]
fn a_malformed_input_line_is_reported_by_file_and_line_or_skipped_and_counted() {
    let env = LocalEnv::new(1, 2);
    std::fs::create_dir_all(env.path("logs")).unwrap();
    let lines: String = (0..100).map(|i| if i == 41 { "{\"id\": 41, \"text\": oops}\n".to_string() } else { format!("{{\"id\": {i}, \"text\": \"t{i}\"}}\n") }).collect();
    std::fs::write(env.path("logs/a.jsonl"), lines).unwrap();
    let job = env.write_job("j.yaml", "name: logs\ninput: {uri: logs}\noutput: {uri: out}\nmax_failures: 1\n");
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("{}:42: ", env.path("logs/a.jsonl").display())), "{stdout}");

    let out = env.run(&["run", job.to_str().unwrap(), "--set", "input.on_error=skip"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("skipped    1 malformed input records (input.on_error: skip)"), "{stdout}");
    let (manifest, ids, _) = read_output(&env.path("out"));
    assert_eq!((manifest.skipped_records, ids.len()), (1, 99));
    let status = env.run(&["job", "status", &manifest.job_id]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("rows     99 written") && text.contains("skipped  1 malformed input records"), "{text}");
}
