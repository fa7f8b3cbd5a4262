//! Data-plane benchmark (issue C9): the workshop's cleaning job on the local provider,
//! against Polars, DuckDB and a pyarrow read-and-write copy (the I/O floor) on the same
//! files. Prints figures; asserts nothing.
//!
//!   cargo bench -p fleetform --bench dataplane -- [--rows N] [--sweep] [--skip-others]
//!       [--engines fleetform,pyarrow,pyarrow-input,polars,duckdb] [--repeat N] [--plain-only]
//!       (engine `fleetform-before`: the build at $FLEETFORM_BENCH_BEFORE, a copy of an
//!       earlier target/release/fleetform, for before/after figures in one run)
//!   cargo bench -p fleetform --bench dataplane -- --s3 [--rows N] [--delays 0,20] [--repeat N]
//!       (engine `fleetform-narrow`: a job that drops `text`, to show the bytes a job
//!       that needs only some columns reads; `fleetform-local`: the job on the same files
//!       on the local disk, for the CPU comparison in the same run)
//!
//! Data lives in $FLEETFORM_BENCH_DIR (default /tmp/fleetform-bench) and is reused
//! between runs with the same row count. The competitors run in $FLEETFORM_BENCH_VENV
//! (default /tmp/bench-venv: polars, duckdb, pyarrow, pandas), made with pip when missing.
//! Every engine's CPU seconds are its whole process tree's (the supervisor, agents and
//! CLI for fleetform; the interpreter, start-up included, for the others), from the
//! kernel's accounting of waited-for children.
//!
//! `--s3` runs the job with input and output on a local S3 server (`s3s-fs`, installed
//! with cargo when missing) behind a proxy that counts requests and bytes and adds a
//! first-byte delay per request (each of `--delays`, milliseconds). DuckDB there is 1.5.5
//! in $FLEETFORM_BENCH_VENV-duckdb-httpfs: its httpfs extension cannot be downloaded
//! offline, and the one PyPI ships (duckdb-extension-httpfs) is built for 1.5.5.

mod local_cluster;
mod s3_endpoint;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use local_cluster::*;
use s3_endpoint::{client_env, S3Server, Traffic, BUCKET};

struct Args {
    rows: u64,
    sweep: bool,
    s3: bool,
    engines: Vec<String>,
    repeat: Option<usize>,
    plain_only: bool,
    delays: Vec<u64>,
}

fn args() -> Args {
    let mut a = Args {
        rows: 1_000_000,
        sweep: false,
        s3: false,
        engines: ["fleetform", "pyarrow", "pyarrow-input", "polars", "duckdb"]
            .map(String::from)
            .to_vec(),
        repeat: None,
        plain_only: false,
        delays: vec![0, 20],
    };
    let list = |v: Option<String>, what: &str| {
        v.unwrap_or_else(|| panic!("{what}"))
            .split(',')
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rows" => a.rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--sweep" => a.sweep = true,
            "--s3" => a.s3 = true,
            "--skip-others" => a.engines = vec!["fleetform".into()],
            "--engines" => a.engines = list(it.next(), "--engines fleetform,pyarrow,pyarrow-input,polars,duckdb"),
            "--repeat" => {
                a.repeat = Some(it.next().and_then(|v| v.parse().ok()).expect("--repeat N"))
            }
            "--plain-only" => a.plain_only = true,
            "--delays" => {
                a.delays = list(it.next(), "--delays 0,20")
                    .iter()
                    .map(|d| d.parse().expect("--delays: milliseconds"))
                    .collect()
            }
            _ => {} // cargo passes --bench
        }
    }
    a
}

/// One engine's run.
#[derive(Clone, Default)]
struct Run {
    /// fleetform: the compute span, first task start to last task end (from the done
    /// records); the others: their in-process timing of the job.
    seconds: f64,
    /// fleetform: submit to completion as the CLI saw it (adds planning, queue pickup,
    /// polling).
    wall: f64,
    peak_rss_mib: f64,
    /// The engine's whole process tree.
    cpu: Cpu,
    /// S3 runs: what went through the proxy, and the server's and proxy's own CPU.
    traffic: Traffic,
    server_cpu: Cpu,
    proxy_cpu: Cpu,
}

/// Repetitions per engine on local files; the median is reported (page cache and
/// writeback make single runs vary by ±15 % on this kind of machine).
const REPEAT: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The run with the median time (its CPU and traffic figures belong to it).
fn median_run(mut runs: Vec<Run>) -> Option<Run> {
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let i = runs.len() / 2;
    runs.into_iter().nth(i)
}

/// Where an engine reads and writes, and the environment it needs for that.
struct Place<'a> {
    input: String,
    output: String,
    env: &'a [(&'static str, String)],
    /// fleetform runs `narrow_job` instead of the cleaning job.
    narrow: bool,
}

/// A job that needs only the small columns: it drops `text`, so a reader that fetches
/// only the column chunks a task needs reads a few per cent of the input.
fn narrow_job(dir: &Path, input: &str, output: &str, split: usize, batch: usize) -> PathBuf {
    let job = dir.join("narrow.yaml");
    let yaml = format!(
        "name: narrow\ninput: {{uri: {input}}}\noutput: {{uri: {output}, zstd_level: 1}}\nsteps:\n  - drop_columns: {{columns: [text]}}\nbatch_size: {batch}\nsplit: {{row_groups_per_task: {split}}}\nresources: {{CPU: 1}}\n"
    );
    std::fs::write(&job, yaml).unwrap();
    job
}

/// The CLI build an engine name stands for: this build, or `fleetform-before`'s.
fn fleetform_binary(engine: &str) -> PathBuf {
    match engine {
        "fleetform-before" => PathBuf::from(std::env::var("FLEETFORM_BENCH_BEFORE").expect("fleetform-before needs $FLEETFORM_BENCH_BEFORE: a copy of an earlier target/release/fleetform")),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_fleetform")),
    }
}

/// Run the clean job on a local cluster of `agents` × `slots`; time submit → _SUCCESS.
fn fleetform_clean(
    binary: &Path,
    dir: &Path,
    place: &Place,
    agents: usize,
    slots: usize,
    split: usize,
    batch: usize,
) -> Run {
    let cluster = write_cluster(dir, agents, slots);
    if !place.output.starts_with("s3://") {
        let _ = std::fs::remove_dir_all(&place.output);
    }
    let job = match place.narrow {
        false => clean_job_uris(dir, &place.input, &place.output, split, batch, 131_072),
        true => narrow_job(dir, &place.input, &place.output, split, batch),
    };
    let before = Cpu::children();
    let up = Up::start_with(binary, &cluster, dir, 60, place.env);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = up.watch_rss(stop.clone());
    let t = std::time::Instant::now();
    let mut submit = fleetform_at(
        binary,
        &cluster,
        &["submit", job.to_str().unwrap(), "--wait"],
    );
    submit.envs(place.env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = submit.stderr(Stdio::null()).output().unwrap();
    let wall = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let peak = rss.join().unwrap();
    drop(up); // waits for the supervisor, which waited for its agents
    let cpu = Cpu::children().since(&before);
    assert!(out.status.success(), "the clean job failed");
    let job_id = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let seconds = job_span(&dir.join("state/store"), &job_id);
    Run {
        seconds,
        wall,
        peak_rss_mib: peak as f64 / (1024.0 * 1024.0),
        cpu,
        ..Run::default()
    }
}

fn competitor(python: &Path, engine: &str, place: &Place) -> Option<Run> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/competitors.py");
    let before = Cpu::children();
    let out = Command::new(python)
        .arg(script)
        .arg(engine)
        .arg(&place.input)
        .arg(&place.output)
        .envs(place.env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .ok()?;
    let cpu = Cpu::children().since(&before);
    if !out.status.success() {
        eprintln!("{engine} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(Run {
        seconds: v["seconds"].as_f64()?,
        cpu,
        ..Run::default()
    })
}

fn label(engine: &str, slots: usize) -> String {
    match engine {
        "fleetform" => format!("fleetform (1 agent, {slots} slots)"),
        "fleetform-before" => format!("fleetform before (1 agent, {slots} slots)"),
        "fleetform-narrow" => format!("fleetform, a job that drops `text` (1 agent, {slots} slots)"),
        "fleetform-local" => format!("fleetform on local files, for reference (1 agent, {slots} slots)"),
        "pyarrow" => "pyarrow copy, same bytes out (I/O floor)".into(),
        "pyarrow-input" => "pyarrow copy of the input only (half the bytes out)".into(),
        e => e.into(),
    }
}

fn main() {
    let a = args();
    let dir = work_dir();
    let n = cores();
    println!(
        "fleetform data-plane benchmark: {} rows of 1000 characters, {n} cores",
        a.rows
    );
    if a.sweep {
        sweep(&dir, a.rows);
        return;
    }
    let python = venv_python(
        &bench_venv(),
        "polars, duckdb, pyarrow, pandas",
        &["polars", "duckdb", "pyarrow", "pandas"],
    );
    if a.s3 {
        s3_bench(&a, &dir, &python);
        return;
    }
    let repeat = a.repeat.unwrap_or(REPEAT);
    let datasets: &[(&str, f64)] = if a.plain_only {
        &[("plain letters", 0.0)]
    } else {
        &[
            ("plain letters", 0.0),
            ("5% punctuation, Hangul and emoji", 0.05),
        ]
    };
    for &(title, noise) in datasets {
        let input = generate(&dir, a.rows, noise);
        println!("\n## {title} (median of {repeat}; CPU and faults: the whole process tree)");
        println!("| engine | seconds | rows/s | rows/s per core | fleetform speed-up | user s | sys s | minor faults | major faults |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let mut ours = None;
        let mut notes = Vec::new();
        for engine in &a.engines {
            let place = Place {
                input: input.display().to_string(),
                output: dir.join(format!("out-{engine}")).display().to_string(),
                env: &[],
                narrow: false,
            };
            let runs: Vec<Run> = (0..repeat)
                .filter_map(|_| {
                    let r = if engine.starts_with("fleetform") {
                        Some(fleetform_clean(
                            &fleetform_binary(engine),
                            &dir,
                            &place,
                            1,
                            n,
                            4,
                            8192,
                        ))
                    } else {
                        competitor(&python, engine, &place)
                    };
                    let _ = std::fs::remove_dir_all(&place.output); // 13 GB at 10 M rows
                    r
                })
                .collect();
            let rss = runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
            let walls: Vec<f64> = runs.iter().map(|r| r.wall).collect();
            let Some(r) = median_run(runs) else { continue };
            if engine == "fleetform" {
                ours = Some(r.seconds);
            }
            if engine.starts_with("fleetform") {
                notes.push(format!("{engine} submit → done as the CLI sees it: {:.2} s; peak RSS per agent: {rss:.0} MiB", median(walls)));
            }
            let speedup = ours.map_or("".into(), |o| format!("{:.2}x", r.seconds / o));
            let rows = a.rows as f64;
            println!(
                "| {} | {:.2} | {:.0} | {:.0} | {speedup} | {:.2} | {:.2} | {} | {} |",
                label(engine, n),
                r.seconds,
                rows / r.seconds,
                rows / r.seconds / n as f64,
                r.cpu.user,
                r.cpu.sys,
                r.cpu.minor_faults,
                r.cpu.major_faults
            );
        }
        for n in notes {
            println!("{n}");
        }
    }
    if a.plain_only || !a.engines.iter().any(|e| e == "fleetform") {
        return;
    }
    // Memory must not grow with the dataset: same job on a quarter of the rows.
    let rss_at = |rows: u64| {
        let place = Place {
            input: generate(&dir, rows, 0.0).display().to_string(),
            output: dir.join("out-fleetform").display().to_string(),
            env: &[],
            narrow: false,
        };
        fleetform_clean(&fleetform_binary("fleetform"), &dir, &place, 1, n, 4, 8192).peak_rss_mib
    };
    let (small, full) = (rss_at(a.rows / 4), rss_at(a.rows));
    println!(
        "\npeak RSS per agent: {small:.0} MiB at {} rows, {full:.0} MiB at {} rows",
        a.rows / 4,
        a.rows
    );
}

/// The clean job with input and output on a local S3 endpoint, for each first-byte delay.
fn s3_bench(a: &Args, dir: &Path, python: &Path) {
    let input = generate(dir, a.rows, 0.0);
    let server = S3Server::start(&dir.join("s3"));
    let key_in = format!("raw-{}", a.rows);
    server.link_in(&input, &key_in);
    let proxy = s3_endpoint::Proxy::start(server.addr);
    let env = client_env(proxy.addr);
    let duckdb_python = a.engines.iter().any(|e| e == "duckdb").then(|| {
        let venv = PathBuf::from(format!("{}-duckdb-httpfs", bench_venv().display()));
        venv_python(
            &venv,
            "duckdb, duckdb_extension_httpfs",
            &["duckdb==1.5.5", "duckdb-extension-httpfs==1.5.5"],
        )
    });
    let repeat = a.repeat.unwrap_or(1);
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "S3 endpoint: s3s-fs at {} behind the counting proxy at {}; input s3://{BUCKET}/{key_in}: {:.0} MB in 16 files; {} run(s) each (the median's figures)",
        server.addr,
        proxy.addr,
        mb(server.size(&key_in)),
        repeat
    );
    for &delay in &a.delays {
        proxy.set_delay(Duration::from_millis(delay));
        println!("\n## S3, {delay} ms first-byte delay per request (plain letters)");
        println!("| engine | seconds | user s | sys s | CPU s | MB read | MB written | GET | PUT | POST | HEAD | other | server CPU s | proxy CPU s |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut notes = Vec::new();
        for engine in &a.engines {
            let out_key = format!("out-{engine}");
            // `fleetform-local`: the same job on the same files on the local disk, in the
            // same run, for the CPU comparison (its traffic columns stay zero).
            let local = engine == "fleetform-local";
            let place = Place {
                input: if local { input.display().to_string() } else { format!("s3://{BUCKET}/{key_in}") },
                output: if local { dir.join("out-fleetform-local").display().to_string() } else { format!("s3://{BUCKET}/{out_key}") },
                env: &env,
                narrow: engine == "fleetform-narrow",
            };
            let py = if engine == "duckdb" {
                duckdb_python.as_deref().unwrap_or(python)
            } else {
                python
            };
            let runs: Vec<Run> = (0..repeat)
                .filter_map(|_| {
                    server.remove(&out_key);
                    proxy.reset();
                    let (server_before, proxy_before) =
                        (Cpu::of(&server.pid().to_string()), Cpu::of("self"));
                    let run = if engine.starts_with("fleetform") {
                        Some(fleetform_clean(
                            &fleetform_binary(engine),
                            dir,
                            &place,
                            1,
                            cores(),
                            4,
                            8192,
                        ))
                    } else {
                        competitor(py, engine, &place)
                    };
                    let mut run = run?;
                    run.traffic = proxy.traffic();
                    run.server_cpu = Cpu::of(&server.pid().to_string()).since(&server_before);
                    run.proxy_cpu = Cpu::of("self").since(&proxy_before);
                    let written = if local { PathBuf::from(&place.output) } else { server.object_dir(&out_key) };
                    let rows = output_rows(&written);
                    if local {
                        let _ = std::fs::remove_dir_all(&written);
                    }
                    if rows != a.rows {
                        eprintln!("{engine} wrote {rows} rows, not {}", a.rows);
                    }
                    server.remove(&out_key);
                    Some(run)
                })
                .collect();
            let walls: Vec<f64> = runs.iter().map(|r| r.wall).collect();
            let Some(r) = median_run(runs) else { continue };
            if engine.starts_with("fleetform") {
                notes.push(format!(
                    "{engine} submit → done as the CLI sees it: {:.2} s",
                    median(walls)
                ));
            }
            let t = &r.traffic;
            let other: u64 = t
                .requests
                .iter()
                .filter(|(m, _)| !["GET", "PUT", "POST", "HEAD"].contains(&m.as_str()))
                .map(|(_, n)| n)
                .sum();
            println!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} | {} | {} | {} | {other} | {:.2} | {:.2} |",
                label(engine, cores()),
                r.seconds,
                r.cpu.user,
                r.cpu.sys,
                r.cpu.total(),
                mb(t.bytes_down),
                mb(t.bytes_up),
                t.count("GET"),
                t.count("PUT"),
                t.count("POST"),
                t.count("HEAD"),
                r.server_cpu.total(),
                r.proxy_cpu.total()
            );
        }
        for n in notes {
            println!("{n}");
        }
    }
}

/// Rows in the parquet files under `dir` (read from their footers on disk).
fn output_rows(dir: &Path) -> u64 {
    use parquet::file::reader::FileReader;
    let mut rows = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rows += output_rows(&p);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            let file = std::fs::File::open(&p).unwrap();
            let reader = parquet::file::reader::SerializedFileReader::new(file)
                .unwrap_or_else(|e| panic!("{} is not parquet: {e}", p.display()));
            rows += reader.metadata().file_metadata().num_rows() as u64;
        }
    }
    rows
}

/// Split size × batch size × slots: a table and an SVG heatmap per slot count.
fn sweep(dir: &Path, rows: u64) {
    let input = generate(dir, rows, 0.0);
    let splits = [1usize, 4, 16];
    let batches = [2048usize, 8192, 32768];
    let slots_list = [1usize, cores()];
    println!("| slots | row groups per task | batch_size | seconds | rows/s |");
    println!("|---|---|---|---|---|");
    let mut results = Vec::new();
    for &slots in &slots_list {
        for &split in &splits {
            for &batch in &batches {
                let place = Place {
                    input: input.display().to_string(),
                    output: dir.join("out-fleetform").display().to_string(),
                    env: &[],
                    narrow: false,
                };
                let r = fleetform_clean(
                    &fleetform_binary("fleetform"),
                    dir,
                    &place,
                    1,
                    slots,
                    split,
                    batch,
                );
                println!(
                    "| {slots} | {split} | {batch} | {:.2} | {:.0} |",
                    r.seconds,
                    rows as f64 / r.seconds
                );
                results.push((slots, split, batch, rows as f64 / r.seconds));
            }
        }
    }
    let svg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sweep.svg");
    draw_heatmap(&svg, &results, &splits, &batches, &slots_list);
    println!("heatmap: {}", svg.display());
}

fn draw_heatmap(
    path: &Path,
    results: &[(usize, usize, usize, f64)],
    splits: &[usize],
    batches: &[usize],
    slots: &[usize],
) {
    use plotters::prelude::*;
    let cell = 90i32;
    let width = 160 + (batches.len() as i32 * cell + 60) * slots.len() as i32;
    let height = 120 + splits.len() as i32 * cell;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let max = results.iter().map(|r| r.3).fold(0.0, f64::max).max(1.0);
    let style = ("sans-serif", 14).into_font();
    root.draw(&Text::new(
        "rows/s by row groups per task (rows) × batch_size (columns)",
        (10, 10),
        style.clone(),
    ))
    .unwrap();
    for (si, s) in slots.iter().enumerate() {
        let x0 = 120 + si as i32 * (batches.len() as i32 * cell + 60);
        root.draw(&Text::new(format!("{s} slot(s)"), (x0, 35), style.clone()))
            .unwrap();
        for (bi, b) in batches.iter().enumerate() {
            root.draw(&Text::new(
                format!("{b}"),
                (x0 + bi as i32 * cell + 10, 60),
                style.clone(),
            ))
            .unwrap();
        }
        for (pi, p) in splits.iter().enumerate() {
            let y0 = 80 + pi as i32 * cell;
            if si == 0 {
                root.draw(&Text::new(
                    format!("{p} rg/task"),
                    (10, y0 + cell / 2),
                    style.clone(),
                ))
                .unwrap();
            }
            for (bi, b) in batches.iter().enumerate() {
                let v = results
                    .iter()
                    .find(|r| r.0 == *s && r.1 == *p && r.2 == *b)
                    .map(|r| r.3)
                    .unwrap_or(0.0);
                let t = v / max;
                let color = RGBColor(
                    (255.0 * (1.0 - t)) as u8,
                    (120.0 + 100.0 * t) as u8,
                    (255.0 * (1.0 - t) * 0.6) as u8,
                );
                let x = x0 + bi as i32 * cell;
                root.draw(&Rectangle::new(
                    [(x, y0), (x + cell - 4, y0 + cell - 4)],
                    color.filled(),
                ))
                .unwrap();
                root.draw(&Text::new(
                    format!("{:.0}k", v / 1000.0),
                    (x + 12, y0 + cell / 2 - 6),
                    style.clone(),
                ))
                .unwrap();
            }
        }
    }
    root.present().unwrap();
}
