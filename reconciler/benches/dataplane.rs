//! Data-plane benchmark (issue C9): the workshop's cleaning job on the local provider,
//! against Polars, DuckDB and a pyarrow read-and-write copy (the I/O floor) on the same
//! files. Prints figures; asserts nothing.
//!
//!   cargo bench -p fleetform --bench dataplane -- [--rows N] [--sweep] [--skip-others]
//!
//! Data lives in $FLEETFORM_BENCH_DIR (default /tmp/fleetform-bench) and is reused
//! between runs with the same row count. The competitors need polars, duckdb and pyarrow
//! from PyPI; they are installed with pip when missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    rows: u64,
    sweep: bool,
    skip_others: bool,
}

fn args() -> Args {
    let mut a = Args { rows: 1_000_000, sweep: false, skip_others: false };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "--rows" => a.rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--sweep" => a.sweep = true,
            "--skip-others" => a.skip_others = true,
            _ => {} // cargo passes --bench
        }
    }
    a
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn work_dir() -> PathBuf {
    PathBuf::from(std::env::var("FLEETFORM_BENCH_DIR").unwrap_or_else(|_| "/tmp/fleetform-bench".into()))
}

fn write_cluster(dir: &Path, agents: usize, slots: usize) -> PathBuf {
    let p = dir.join(format!("cluster-{agents}x{slots}.yaml"));
    std::fs::write(
        &p,
        format!(
            "cluster_name: bench\nprovider: {{type: local}}\nstorage: {{path: {}}}\nhead_node_type: head\n\
             available_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  worker:\n    resources: {{CPU: {slots}}}\n    min_workers: {agents}\n    max_workers: {agents}\n",
            dir.join("state/store").display()
        ),
    )
    .unwrap();
    p
}

fn fleetform(cluster: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetform"));
    c.arg(args[0]).arg("-f").arg(cluster).args(&args[1..]);
    c
}

/// Generate `rows` rows with `noise` into dir/raw-<rows>-<noise> unless already there.
fn generate(dir: &Path, rows: u64, noise: f64) -> PathBuf {
    let out = dir.join(format!("raw-{rows}-{noise}"));
    if out.join("_SUCCESS").exists() {
        return out;
    }
    let job = dir.join("generate.yaml");
    std::fs::write(
        &job,
        format!(
            "name: generate\ninput: {{generate: {{rows: {rows}, seed: 42, text_length: 1000, noise: {noise}}}}}\n\
             output: {{uri: {}, rows_per_file: 131072}}\nbatch_size: 8192\nsplit: {{rows_per_task: 131072}}\n",
            out.display()
        ),
    )
    .unwrap();
    let cluster = write_cluster(dir, 1, cores());
    let t = Instant::now();
    let status = fleetform(&cluster, &["run", job.to_str().unwrap()]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "generating data failed");
    eprintln!("generated {rows} rows (noise {noise}) in {:.1}s", t.elapsed().as_secs_f64());
    out
}

struct Run {
    seconds: f64,
    peak_rss_mib: f64,
}

/// Peak resident memory (VmHWM) of the agents the supervisor lists, sampled until stop.
fn watch_rss(state: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let peak = AtomicU64::new(0);
        while !stop.load(Ordering::SeqCst) {
            if let Ok(bytes) = std::fs::read(state.join("supervisor.json")) {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    for n in v["nodes"].as_array().into_iter().flatten() {
                        let pid = n["pid"].as_u64().unwrap_or(0);
                        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                            if let Some(kb) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok()) {
                                peak.fetch_max(kb, Ordering::SeqCst);
                            }
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        peak.load(Ordering::SeqCst)
    })
}

/// Run the clean job on a local cluster of `agents` × `slots`; time submit → _SUCCESS.
fn fleetform_clean(dir: &Path, input: &Path, agents: usize, slots: usize, split: usize, batch: usize) -> Run {
    let cluster = write_cluster(dir, agents, slots);
    let out = dir.join("out-fleetform");
    let _ = std::fs::remove_dir_all(&out);
    let job = dir.join("clean.yaml");
    let seed = include_str!("../../examples/jobs/clean-text.yaml");
    let yaml = seed
        .replace(".fleetform/data/raw        # relative paths are taken from the current directory", &input.display().to_string())
        .replace(".fleetform/data/clean", &out.display().to_string())
        .replace("row_groups_per_task: 4", &format!("row_groups_per_task: {split}"))
        .replace("batch_size: 8192", &format!("batch_size: {batch}"));
    std::fs::write(&job, yaml).unwrap();
    let state = dir.join("state");
    let mut up: Child = fleetform(&cluster, &["up"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !state.join("supervisor.json").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // agents up and polling
    let stop = Arc::new(AtomicBool::new(false));
    let rss = watch_rss(state.clone(), stop.clone());
    let t = Instant::now();
    let status = fleetform(&cluster, &["submit", job.to_str().unwrap(), "--wait"]).stdout(Stdio::null()).status().unwrap();
    let seconds = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let peak = rss.join().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(up.id() as i32), nix::sys::signal::Signal::SIGTERM);
    let _ = up.wait();
    assert!(status.success(), "the clean job failed");
    Run { seconds, peak_rss_mib: peak as f64 / 1024.0 }
}

fn competitor(engine: &str, input: &Path, dir: &Path) -> Option<f64> {
    let module = match engine {
        "pyarrow" => "pyarrow",
        other => other,
    };
    let have = Command::new("python3").args(["-c", &format!("import {module}")]).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
    if !have {
        eprintln!("installing {module} from PyPI for the comparison");
        let ok = Command::new("python3").args(["-m", "pip", "install", "--quiet", module, "pyarrow"]).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            eprintln!("cannot install {module}: skipping it");
            return None;
        }
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/competitors.py");
    let out = Command::new("python3").arg(script).arg(engine).arg(input).arg(dir.join(format!("out-{engine}"))).output().ok()?;
    if !out.status.success() {
        eprintln!("{engine} failed: {}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["seconds"].as_f64()
}

fn main() {
    let a = args();
    let dir = work_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let n = cores();
    println!("fleetform data-plane benchmark: {} rows of 1000 characters, {n} cores", a.rows);
    if a.sweep {
        sweep(&dir, a.rows);
        return;
    }
    for (label, noise) in [("plain letters", 0.0), ("5% punctuation, Hangul and emoji", 0.05)] {
        let input = generate(&dir, a.rows, noise);
        let ours = fleetform_clean(&dir, &input, 1, n, 4, 8192);
        println!("\n## {label}");
        println!("| engine | seconds | rows/s | rows/s per core | fleetform speed-up |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, s: f64| {
            println!("| {name} | {s:.2} | {:.0} | {:.0} | {:.2}x |", a.rows as f64 / s, a.rows as f64 / s / n as f64, s / ours.seconds);
        };
        row(&format!("fleetform (1 agent, {n} slots)"), ours.seconds);
        if !a.skip_others {
            for engine in ["pyarrow", "polars", "duckdb"] {
                if let Some(s) = competitor(engine, &input, &dir) {
                    row(if engine == "pyarrow" { "pyarrow copy (I/O floor)" } else { engine }, s);
                }
            }
        }
        println!("fleetform peak RSS per agent: {:.0} MiB", ours.peak_rss_mib);
    }
    // Memory must not grow with the dataset: same job on a quarter of the rows.
    let quarter = generate(&dir, a.rows / 4, 0.0);
    let small = fleetform_clean(&dir, &quarter, 1, n, 4, 8192);
    let full = fleetform_clean(&dir, &generate(&dir, a.rows, 0.0), 1, n, 4, 8192);
    println!("\npeak RSS per agent: {:.0} MiB at {} rows, {:.0} MiB at {} rows", small.peak_rss_mib, a.rows / 4, full.peak_rss_mib, a.rows);
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
                let r = fleetform_clean(dir, &input, 1, slots, split, batch);
                println!("| {slots} | {split} | {batch} | {:.2} | {:.0} |", r.seconds, rows as f64 / r.seconds);
                results.push((slots, split, batch, rows as f64 / r.seconds));
            }
        }
    }
    let svg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sweep.svg");
    draw_heatmap(&svg, &results, &splits, &batches, &slots_list);
    println!("heatmap: {}", svg.display());
}

fn draw_heatmap(path: &Path, results: &[(usize, usize, usize, f64)], splits: &[usize], batches: &[usize], slots: &[usize]) {
    use plotters::prelude::*;
    let cell = 90i32;
    let width = 160 + (batches.len() as i32 * cell + 60) * slots.len() as i32;
    let height = 120 + splits.len() as i32 * cell;
    let root = SVGBackend::new(path, (width as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let max = results.iter().map(|r| r.3).fold(0.0, f64::max).max(1.0);
    let style = ("sans-serif", 14).into_font();
    root.draw(&Text::new("rows/s by row groups per task (rows) × batch_size (columns)", (10, 10), style.clone())).unwrap();
    for (si, s) in slots.iter().enumerate() {
        let x0 = 120 + si as i32 * (batches.len() as i32 * cell + 60);
        root.draw(&Text::new(format!("{s} slot(s)"), (x0, 35), style.clone())).unwrap();
        for (bi, b) in batches.iter().enumerate() {
            root.draw(&Text::new(format!("{b}"), (x0 + bi as i32 * cell + 10, 60), style.clone())).unwrap();
        }
        for (pi, p) in splits.iter().enumerate() {
            let y0 = 80 + pi as i32 * cell;
            if si == 0 {
                root.draw(&Text::new(format!("{p} rg/task"), (10, y0 + cell / 2), style.clone())).unwrap();
            }
            for (bi, b) in batches.iter().enumerate() {
                let v = results.iter().find(|r| r.0 == *s && r.1 == *p && r.2 == *b).map(|r| r.3).unwrap_or(0.0);
                let t = v / max;
                let color = RGBColor((255.0 * (1.0 - t)) as u8, (120.0 + 100.0 * t) as u8, (255.0 * (1.0 - t) * 0.6) as u8);
                let x = x0 + bi as i32 * cell;
                root.draw(&Rectangle::new([(x, y0), (x + cell - 4, y0 + cell - 4)], color.filled())).unwrap();
                root.draw(&Text::new(format!("{:.0}k", v / 1000.0), (x + 12, y0 + cell / 2 - 6), style.clone())).unwrap();
            }
        }
    }
    root.present().unwrap();
}
