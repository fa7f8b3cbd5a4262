//! JSON Lines benchmark (docs/benchmarks.md, "JSON Lines and a Python function"): the
//! workshop's cleaning on 1 M workshop rows as JSON Lines, plain and gzip'd, in one run:
//!   - fleetform with native steps (regex_replace + lowercase),
//!   - fleetform running the seed's pandas function as a `python` step,
//!   - Ray Data: read_json -> map_batches(preprocess_text, pandas, 1024) -> write_parquet,
//!   - Polars: scan_ndjson -> the same expression -> sink_parquet,
//!   - pyarrow: a JSON read + a parquet write (the floor for reading this JSON).
//!
//! Each with its peak memory (the largest process, and the whole process tree); then the
//! agents' peak memory at 1 M and 4 M rows (it must not grow with the input). Prints
//! figures; asserts nothing.
//!
//!   cargo bench -p fleetform --no-default-features --bench jsonl -- [--rows N] [--big N] [--skip-big] [--skip-others]
//!
//! The competitors and the python step run in a virtual environment the benchmark makes
//! with pip ($FLEETFORM_BENCH_VENV, default /tmp/bench-venv: ray[data], polars, duckdb,
//! pyarrow, pandas). Data lives in $FLEETFORM_BENCH_DIR and is reused between runs.

mod local_cluster;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use local_cluster::*;

struct Figures {
    seconds: f64,
    /// The largest single process's peak RSS, MiB.
    peak_process_mib: f64,
    /// The peak of the whole process tree's RSS, MiB (Ray's raylet, workers and object
    /// store processes; fleetform's agents and their python workers).
    peak_tree_mib: f64,
}

fn venv() -> PathBuf {
    let v = PathBuf::from(std::env::var("FLEETFORM_BENCH_VENV").unwrap_or_else(|_| "/tmp/bench-venv".into()));
    let python = v.join("bin/python");
    let ready = Command::new(&python).args(["-c", "import ray, polars, duckdb, pyarrow, pandas"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ready {
        eprintln!("making {} with ray[data], polars, duckdb, pyarrow and pandas (pip)", v.display());
        assert!(Command::new("python3").arg("-m").arg("venv").arg(&v).status().unwrap().success());
        let pip = Command::new(&python).args(["-m", "pip", "install", "--quiet", "ray[data]", "polars", "duckdb", "pyarrow", "pandas"]).status().unwrap();
        assert!(pip.success(), "pip install failed");
    }
    v
}

/// `rows` workshop rows as JSON Lines (16 files), plain or gzip'd, written once by pyarrow
/// and pandas from the generator's parquet.
fn jsonl_input(dir: &Path, python: &Path, rows: u64, gzip: bool) -> PathBuf {
    let out = dir.join(format!("jsonl-{rows}{}", if gzip { "-gz" } else { "" }));
    if out.join("DONE").exists() {
        return out;
    }
    let raw = generate(dir, rows, 0.05);
    let script = r#"
import glob, gzip, os, sys
import pyarrow.parquet as pq
raw, out, gz = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
os.makedirs(out, exist_ok=True)
files = sorted(glob.glob(os.path.join(raw, "part-*.parquet")))
for i, f in enumerate(files):
    df = pq.read_table(f).to_pandas()
    text = df.to_json(orient="records", lines=True, force_ascii=False)
    path = os.path.join(out, f"part-{i:05}.jsonl" + (".gz" if gz else ""))
    with (gzip.open(path, "wt", encoding="utf-8", compresslevel=6) if gz else open(path, "w", encoding="utf-8")) as w:
        w.write(text)
open(os.path.join(out, "DONE"), "w").close()
"#;
    let t = Instant::now();
    let ok = Command::new(python).arg("-c").arg(script).arg(&raw).arg(&out).arg(if gzip { "1" } else { "0" }).status().unwrap();
    assert!(ok.success(), "writing JSON Lines failed");
    eprintln!("wrote {} in {:.1}s", out.display(), t.elapsed().as_secs_f64());
    out
}

/// Peak RSS of `root` and its descendants, sampled every 50 ms until `stop`.
fn watch_tree(root: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    std::thread::spawn(move || {
        let (largest, tree) = (AtomicU64::new(0), AtomicU64::new(0));
        while !stop.load(Ordering::SeqCst) {
            let procs = processes();
            let mut family = vec![root];
            let mut i = 0;
            while i < family.len() {
                let parent = family[i];
                family.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
                i += 1;
            }
            let rss: Vec<u64> = procs.iter().filter(|p| family.contains(&p.0)).map(|p| p.2).collect();
            largest.fetch_max(rss.iter().copied().max().unwrap_or(0), Ordering::SeqCst);
            tree.fetch_max(rss.iter().sum(), Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        }
        (largest.load(Ordering::SeqCst), tree.load(Ordering::SeqCst))
    })
}

/// (pid, parent pid, RSS bytes) of every process.
fn processes() -> Vec<(u32, u32, u64)> {
    let page = 4096u64;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name (which may hold spaces) in parentheses.
        let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (Some(ppid), Some(rss)) = (f.get(1).and_then(|v| v.parse().ok()), f.get(21).and_then(|v| v.parse::<u64>().ok())) else { continue };
        out.push((pid, ppid, rss * page));
    }
    out
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

const NATIVE: &str = "steps:\n  - regex_replace: {column: text, pattern: '[^가-힣a-zA-Z0-9\\s]', replacement: '', output: cleaned_text}\n  - lowercase: {column: cleaned_text}\n";

/// One fleetform job on a local cluster of one agent with a slot per core.
fn fleetform_job(dir: &Path, input: &Path, steps: &str) -> Figures {
    let cluster = write_cluster(dir, 1, cores());
    let out = dir.join("out-fleetform-jsonl");
    let _ = std::fs::remove_dir_all(&out);
    let job = dir.join("jsonl-job.yaml");
    std::fs::write(&job, format!("name: jsonl\ninput: {{uri: {}}}\noutput: {{uri: {}}}\n{steps}batch_size: 8192\n", input.display(), out.display())).unwrap();
    let up = Up::start(&cluster, dir, 60);
    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = up.supervisor_pid();
    let tree = watch_tree(supervisor, stop.clone());
    let submit = fleetform(&cluster, &["submit", job.to_str().unwrap(), "--wait"]).stderr(Stdio::inherit()).output().unwrap();
    stop.store(true, Ordering::SeqCst);
    let (largest, whole) = tree.join().unwrap();
    drop(up);
    assert!(submit.status.success(), "the fleetform job failed");
    let id = String::from_utf8_lossy(&submit.stdout).lines().next().unwrap_or_default().to_string();
    Figures { seconds: job_span(&dir.join("state/store"), &id), peak_process_mib: mib(largest), peak_tree_mib: mib(whole) }
}

fn competitor(python: &Path, engine: &str, input: &Path, dir: &Path) -> Option<Figures> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/competitors_jsonl.py");
    let child = Command::new(python)
        .arg(script)
        .arg(engine)
        .arg(input)
        .arg(dir.join(format!("out-{engine}-jsonl")))
        .arg(cores().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stop = Arc::new(AtomicBool::new(false));
    let tree = watch_tree(child.id(), stop.clone());
    let out = child.wait_with_output().ok()?;
    stop.store(true, Ordering::SeqCst);
    let (largest, whole) = tree.join().unwrap();
    if !out.status.success() {
        eprintln!("{engine} failed");
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(out.stdout.split(|b| *b == b'\n').rfind(|l| !l.is_empty())?).ok()?;
    Some(Figures { seconds: v["seconds"].as_f64()?, peak_process_mib: mib(largest), peak_tree_mib: mib(whole) })
}

fn main() {
    let mut rows = 1_000_000u64;
    let mut big = 4_000_000u64;
    let mut skip_others = false;
    let mut skip_big = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--big" => big = it.next().and_then(|v| v.parse().ok()).expect("--big N"),
            "--skip-others" => skip_others = true,
            "--skip-big" => skip_big = true,
            _ => {}
        }
    }
    let dir = work_dir();
    let venv = venv();
    let python = venv.join("bin/python");
    let code = dir.join("preprocess.py");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/preprocess.py"), &code).unwrap();
    let python_step = format!(
        "steps:\n  - python: {{file: {}, function: preprocess_text, batch_format: pandas, batch_size: 1024, interpreter: {}}}\n",
        code.display(),
        python.display()
    );
    let n = cores();
    println!("JSON Lines benchmark: {rows} workshop rows (1000 characters, 5% punctuation/Hangul/emoji), {n} cores, one run each");
    for gzip in [false, true] {
        let input = jsonl_input(&dir, &python, rows, gzip);
        println!("\n## {} (16 files)", if gzip { "jsonl.gz" } else { "jsonl" });
        println!("| engine | seconds | rows/s | peak RSS, largest process (MiB) | peak RSS, process tree (MiB) |");
        println!("|---|---|---|---|---|");
        let row = |name: &str, f: &Figures| {
            println!("| {name} | {:.2} | {:.0} | {:.0} | {:.0} |", f.seconds, rows as f64 / f.seconds, f.peak_process_mib, f.peak_tree_mib);
        };
        row(&format!("fleetform native steps (1 agent, {n} slots)"), &fleetform_job(&dir, &input, NATIVE));
        row("fleetform, seed's function as a python step", &fleetform_job(&dir, &input, &python_step));
        if !skip_others {
            for (engine, name) in [("ray", "Ray Data map_batches(preprocess_text)"), ("polars", "Polars scan_ndjson"), ("pyarrow", "pyarrow JSON read + parquet write (floor)"), ("duckdb", "DuckDB read_json")] {
                if let Some(f) = competitor(&python, engine, &input, &dir) {
                    row(name, &f);
                }
            }
        }
    }
    if skip_big {
        return;
    }
    // Memory must not grow with the input: the native and python jobs on `big` rows.
    let input = jsonl_input(&dir, &python, big, false);
    println!("\n## peak memory at {big} rows (jsonl)");
    println!("| job | seconds | peak RSS, largest process (MiB) | peak RSS, process tree (MiB) |");
    println!("|---|---|---|---|");
    for (name, steps) in [("native", NATIVE), ("python step", python_step.as_str())] {
        let f = fleetform_job(&dir, &input, steps);
        println!("| {name} | {:.2} | {:.0} | {:.0} |", f.seconds, f.peak_process_mib, f.peak_tree_mib);
    }
}
