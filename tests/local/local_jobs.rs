//! The data plane on the local provider, through the CLI as a user runs it. Needs more
//! than a unit test: agents are separate processes sharing a store and a queue.

use arrow_array::Array;

use crate::harness::*;

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

/// A task that fails fails the job: the job names the file and the error, publishes
/// nothing, writes no `_SUCCESS`, and the previous good output stays as it was (Hadoop's
/// and Spark's committers: `_SUCCESS` only after a job commit).
#[test]
fn a_corrupt_input_file_fails_the_job_and_keeps_the_previous_output() {
    let env = LocalEnv::new(1, 2);
    let g = generate_job(&env, 8_000, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    let c = clean_job(&env, "raw", "clean");
    assert!(env.run(&["run", c.to_str().unwrap()]).status.success());
    let (before, _, _) = read_output(&env.path("clean"));
    std::fs::write(env.path("raw/zz-corrupt.parquet"), b"this is not parquet").unwrap();
    let out = env.run(&["run", c.to_str().unwrap(), "--set", "max_failures=2"]);
    assert_eq!(out.status.code(), Some(1), "a job with failed tasks exits 1");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED     1 tasks"), "{stdout}");
    assert!(stdout.contains("zz-corrupt.parquet"), "the failure names the input file: {stdout}");
    assert!(stdout.contains("not a readable parquet file"), "and the error: {stdout}");
    assert!(stdout.contains("NOT PUBLISHED: 1 of "), "{stdout}");
    let (after, ids, _) = read_output(&env.path("clean"));
    assert_eq!(after, before, "the previous output and its _SUCCESS are untouched");
    assert_exactly_once(&ids, 8_000);
    let names: Vec<String> = std::fs::read_dir(env.path("clean")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), before.files.len() + 1, "nothing else was left in the output: {names:?}");
    let job = stdout.lines().find(|l| l.contains(" tasks done in ")).and_then(|l| l.split(':').next()).unwrap().trim().to_string();
    let status = env.run(&["job", "status", &job]);
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

/// An output that is the input, inside it or around it is refused however it is spelled
/// (`./raw`, `raw//`, `x/../raw`, a symlink), at validate and at submit, and the input is
/// untouched.
#[test]
fn an_output_overlapping_the_input_is_refused_in_every_spelling() {
    let env = LocalEnv::new(1, 1);
    let g = generate_job(&env, 2_000, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    std::os::unix::fs::symlink(env.path("raw"), env.path("alias")).unwrap();
    let before = std::fs::read_dir(env.path("raw")).unwrap().count();
    let c = clean_job(&env, "raw", "clean");
    let cases = [
        ("./raw", "is the input location too"),
        ("raw//", "is the input location too"),
        ("sub/../raw", "is the input location too"),
        ("alias", "is the input location too"),
        ("raw/sub", "is inside the input location"),
        (".", "contains the input location"),
    ];
    for (output, why) in cases {
        for command in ["validate", "submit"] {
            let set = format!("output.uri={output}");
            let out = env.run(&[command, c.to_str().unwrap(), "--set", &set]);
            let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert_eq!(out.status.code(), Some(1), "{command} {output}: {err}");
            assert!(err.contains("output.uri") && err.contains(why), "{command} {output}: {err}");
        }
    }
    assert_eq!(std::fs::read_dir(env.path("raw")).unwrap().count(), before, "the input is untouched");
    assert!(!env.path("raw/sub").exists() && !env.path("clean").exists(), "validate creates nothing");
    // Nor a missing input directory: it is named instead.
    let missing = clean_job(&env, "missing", "clean");
    let out = env.run(&["validate", missing.to_str().unwrap()]);
    let err = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("input.uri") && err.contains("does not exist"), "{err}");
    assert!(!env.path("missing").exists(), "validate created the input directory: {err}");
}

/// `on_error: skip` is bounded: a schema that does not fit the data skips nearly every
/// record, and the job fails (nothing published) with the count and the records quoted as
/// they are in the file; a few bad lines within `max_skipped_fraction` still pass.
#[test]
fn skipping_more_than_allowed_fails_the_job() {
    let env = LocalEnv::new(1, 1);
    let mut lines = String::new();
    for i in 0..200 {
        if i % 4 == 0 {
            lines.push_str(&format!("{{\"id\": \"x{i}\", \"text\": \"a, b, c\"}}\n"));
        } else {
            lines.push_str(&format!("{{\"id\": {i}, \"text\": \"row {i}\"}}\n"));
        }
    }
    std::fs::create_dir_all(env.path("in")).unwrap();
    std::fs::write(env.path("in/records.jsonl"), &lines).unwrap();
    let job = |name: &str, fraction: &str| {
        env.write_job(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ninput: {{uri: in, on_error: skip, schema: {{id: int64, text: string}}{fraction}}}\n\
                 output: {{uri: {name}-out}}\nsteps:\n  - lowercase: {{column: text}}\n"
            ),
        )
    };
    let strict = job("strict", "");
    let out = env.run(&["run", strict.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("NOT PUBLISHED: 50 of 200 records (25.0 %) were malformed and skipped (input.max_skipped_fraction is 0.01)"),
        "{stdout}"
    );
    assert!(stdout.contains("the record: `{\"id\": \"x0\", \"text\": \"a, b, c\"}`"), "quoted as in the file: {stdout}");
    assert!(!env.path("strict-out/_SUCCESS").exists(), "no _SUCCESS for a job that was not published");
    let lenient = job("lenient", ", max_skipped_fraction: 0.3");
    let out = env.run(&["run", lenient.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let (manifest, ids, _) = read_output(&env.path("lenient-out"));
    assert_eq!((manifest.total_rows, manifest.skipped_records, ids.len()), (150, 50, 150));
}

/// A re-run into an output that holds a good result publishes over it only when it
/// succeeds, with parts of its own names, and nothing of the old result is left.
#[test]
fn a_rerun_replaces_the_previous_output_only_as_a_whole() {
    let env = LocalEnv::new(1, 2);
    let g = generate_job(&env, 8_000, "raw");
    assert!(env.run(&["run", g.to_str().unwrap()]).status.success());
    let c = clean_job(&env, "raw", "clean");
    assert!(env.run(&["run", c.to_str().unwrap()]).status.success());
    let (first, _, _) = read_output(&env.path("clean"));
    assert!(env.run(&["run", c.to_str().unwrap()]).status.success());
    let (second, ids, _) = read_output(&env.path("clean"));
    assert_ne!(first.job_id, second.job_id);
    assert_exactly_once(&ids, 8_000);
    let first_names: Vec<&str> = first.files.iter().map(|f| f.file.as_str()).collect();
    assert!(second.files.iter().all(|f| !first_names.contains(&f.file.as_str())), "new parts never overwrite the old ones in place");
    let mut names: Vec<String> = std::fs::read_dir(env.path("clean")).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    let mut expected: Vec<String> = second.files.iter().map(|f| f.file.clone()).chain(["_SUCCESS".to_string()]).collect();
    expected.sort();
    assert_eq!(names, expected, "only the new output, no staging left");
}

/// Two jobs never publish into one output behind each other's back: a job submitted into
/// the output of an unfinished one supersedes it (cancelled, its tasks dropped; were it to
/// finish anyway it would publish nothing), and only the later job's output is published.
#[test]
fn a_later_job_into_the_same_output_supersedes_the_unfinished_one() {
    use crate::resilience::{submit, wait_for_success};
    let env = LocalEnv::new(1, 2);
    let job = |name: &str, column: &str| {
        env.write_job(
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\ninput: {{generate: {{rows: 4000, seed: 1, text_length: 50}}}}\noutput: {{uri: out}}\n\
                 split: {{rows_per_task: 1000}}\nsteps:\n  - {column}: {{column: text}}\n"
            ),
        )
    };
    // No agents yet: the first job stays queued, as after a `run` that died.
    let old = submit(&env, &job("old", "uppercase"));
    let new = submit(&env, &job("new", "lowercase"));
    let status = env.run(&["job", "status", &old]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("cancelled"), "{}", String::from_utf8_lossy(&status.stdout));
    let _cluster = env.up(10);
    wait_for_success(&env, &new);
    let (manifest, ids, batches) = read_output(&env.path("out"));
    assert_eq!(manifest.job_id, new);
    assert_exactly_once(&ids, 4000);
    for b in &batches {
        let text = b.column_by_name("text").unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap();
        assert!(text.iter().flatten().all(|t| t == t.to_lowercase()), "only the new job's rows are in the output");
    }
    assert!(!env.store().join(format!("jobs/{old}/_SUCCESS")).exists() || {
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(env.store().join(format!("jobs/{old}/_SUCCESS"))).unwrap()).unwrap();
        m["not_published"].is_string()
    });
}

/// `input.schema` takes nested types: `{field: type}` for a JSON object and `[type]` for an
/// array; a field missing from a record is null, and a nested type on csv is refused.
#[test]
fn input_schema_takes_objects_and_arrays() {
    let env = LocalEnv::new(1, 1);
    std::fs::create_dir_all(env.path("in")).unwrap();
    let lines: String = (0..100)
        .map(|i| match i % 2 {
            0 => format!("{{\"id\": {i}, \"user\": {{\"name\": \"U{i}\", \"age\": {i}}}, \"tags\": [\"a\", \"b\"]}}\n"),
            _ => format!("{{\"id\": {i}, \"user\": {{\"name\": \"U{i}\"}}, \"tags\": []}}\n"),
        })
        .collect();
    std::fs::write(env.path("in/people.jsonl"), lines).unwrap();
    let job = env.write_job(
        "nested.yaml",
        "name: nested\ninput:\n  uri: in\n  schema: {id: int64, user: {name: string, age: int64}, tags: [string]}\n\
         output: {uri: out}\nsteps:\n  - lowercase: {column: id_text}\n",
    );
    // (A step on a column that does not exist is refused: the schema's columns are checked.)
    let out = env.run(&["validate", job.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("available: id, user, tags"), "{}", String::from_utf8_lossy(&out.stderr));
    let job = env.write_job(
        "nested.yaml",
        "name: nested\ninput:\n  uri: in\n  schema: {id: int64, user: {name: string, age: int64}, tags: [string]}\noutput: {uri: out}\n",
    );
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let (manifest, ids, batches) = read_output(&env.path("out"));
    assert_eq!((manifest.total_rows, ids.len()), (100, 100));
    let schema = batches[0].schema();
    assert_eq!(schema.field_with_name("user").unwrap().data_type().to_string(), "Struct(\"name\": Utf8, \"age\": Int64)");
    assert!(schema.field_with_name("tags").unwrap().data_type().to_string().starts_with("List("), "{schema:?}");
    let user = batches[0].column_by_name("user").unwrap().as_any().downcast_ref::<arrow_array::StructArray>().unwrap();
    let age = user.column_by_name("age").unwrap();
    assert!(age.null_count() > 0 && age.null_count() < age.len(), "missing ages are null, the others are kept");
    // Nested types on csv are refused at the field.
    std::fs::write(env.path("in2.csv"), "id,user\n1,x\n").unwrap();
    let csv = env.write_job("csv.yaml", "name: csv\ninput:\n  uri: in2.csv\n  format: csv\n  schema: {user: {name: string}}\noutput: {uri: out2}\n");
    let out = env.run(&["validate", csv.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("input.schema.user: csv fields are flat"), "{err}");
}

/// Timestamps in a csv (`2026-01-01T00:00:00`: arrow-csv infers seconds) come out as
/// timestamps for other readers, not as bare integers: pyarrow reads the output's column
/// as a timestamp with the instants its own csv reader finds in the input.
#[test]
fn csv_timestamps_stay_timestamps_for_other_readers() {
    let env = LocalEnv::new(1, 1);
    let rows: String = (0..50).map(|i| format!("{i},2026-01-{:02}T10:00:{:02},x{i}\n", i % 28 + 1, i % 60)).collect();
    std::fs::write(env.path("in.csv"), format!("id,at,text\n{rows}")).unwrap();
    let job = env.write_job(
        "ts.yaml",
        "name: ts\ninput: {uri: in.csv}\noutput: {uri: out}\nsteps:\n  - lowercase: {column: text}\n",
    );
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = "import glob, sys, pyarrow.csv as c, pyarrow.parquet as pq, pyarrow as pa\n\
        d = sys.argv[1]\n\
        t = pa.concat_tables([pq.read_table(f) for f in sorted(glob.glob(d + '/out/*.parquet'))]).sort_by('id')\n\
        want = c.read_csv(d + '/in.csv').sort_by('id')\n\
        print(t.schema.field('at').type)\n\
        assert pa.types.is_timestamp(t.schema.field('at').type), t.schema\n\
        assert t.column('at').cast('timestamp[us]').to_pylist() == want.column('at').cast('timestamp[us]').to_pylist()\n";
    let py = std::process::Command::new("python3").args(["-c", check, env.path("").to_str().unwrap()]).output().unwrap();
    assert!(py.status.success(), "pyarrow reads the output's `at` as a timestamp equal to its own csv read: {}", String::from_utf8_lossy(&py.stderr));
}
