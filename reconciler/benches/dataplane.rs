//! Data-plane benchmark (issue C9): the workshop's cleaning job on the local provider,
//! against Polars, DuckDB and a pyarrow read-and-write copy (the I/O floor) on the same
//! files. Prints figures; asserts nothing.
//!
//!   cargo bench -p fleetform --bench dataplane -- [--rows N] [--sweep] [--skip-others]
//!
//! Data lives in $FLEETFORM_BENCH_DIR (default /tmp/fleetform-bench) and is reused
//! between runs with the same row count. The competitors need polars, duckdb and pyarrow
//! from PyPI; they are installed with pip when missing.

mod local_cluster;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use local_cluster::*;

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

struct Run {
    /// Compute span: first task start to last task end (from the done records).
    seconds: f64,
    /// Submit to completion as the CLI saw it (adds planning, queue pickup, polling).
    wall: f64,
    peak_rss_mib: f64,
}

/// Repetitions per engine; the median is reported (page cache and writeback make single
/// runs vary by ±15 % on this kind of machine).
const REPEAT: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Run the clean job on a local cluster of `agents` × `slots`; time submit → _SUCCESS.
fn fleetform_clean(dir: &Path, input: &Path, agents: usize, slots: usize, split: usize, batch: usize) -> Run {
    let cluster = write_cluster(dir, agents, slots);
    let job = clean_job(dir, input, &dir.join("out-fleetform"), split, batch, 131_072);
    let up = Up::start(&cluster, dir, 60);
    let stop = Arc::new(AtomicBool::new(false));
    let rss = up.watch_rss(stop.clone());
    let t = std::time::Instant::now();
    let out = fleetform(&cluster, &["submit", job.to_str().unwrap(), "--wait"]).stderr(Stdio::null()).output().unwrap();
    let wall = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let peak = rss.join().unwrap();
    drop(up);
    assert!(out.status.success(), "the clean job failed");
    let job_id = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    let seconds = job_span(&dir.join("state/store"), &job_id);
    Run { seconds, wall, peak_rss_mib: peak as f64 / (1024.0 * 1024.0) }
}

fn competitor(engine: &str, input: &Path, dir: &Path) -> Option<f64> {
    let module = engine; // each engine's Python module has its name
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
    let n = cores();
    println!("fleetform data-plane benchmark: {} rows of 1000 characters, {n} cores", a.rows);
    if a.sweep {
        sweep(&dir, a.rows);
        return;
    }
    for (label, noise) in [("plain letters", 0.0), ("5% punctuation, Hangul and emoji", 0.05)] {
        let input = generate(&dir, a.rows, noise);
        let runs: Vec<Run> = (0..REPEAT).map(|_| fleetform_clean(&dir, &input, 1, n, 4, 8192)).collect();
        let ours = median(runs.iter().map(|r| r.seconds).collect());
        let wall = median(runs.iter().map(|r| r.wall).collect());
        let rss = runs.iter().map(|r| r.peak_rss_mib).fold(0.0, f64::max);
        println!("\n## {label} (median of {REPEAT})");
        println!("| engine | seconds | rows/s | rows/s per core | fleetform speed-up |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, s: f64| {
            println!("| {name} | {s:.2} | {:.0} | {:.0} | {:.2}x |", a.rows as f64 / s, a.rows as f64 / s / n as f64, s / ours);
        };
        row(&format!("fleetform (1 agent, {n} slots)"), ours);
        if !a.skip_others {
            for engine in ["pyarrow", "polars", "duckdb"] {
                let times: Vec<f64> = (0..REPEAT).filter_map(|_| competitor(engine, &input, &dir)).collect();
                if !times.is_empty() {
                    row(if engine == "pyarrow" { "pyarrow copy (I/O floor)" } else { engine }, median(times));
                }
            }
        }
        println!("fleetform submit → done as the CLI sees it: {wall:.2} s; peak RSS per agent: {rss:.0} MiB");
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
