//! Shared by the data-plane benchmarks: a local cluster in a work directory, generated
//! data reused between runs, the `fleetform` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// $FLEETFORM_BENCH_DIR, default /tmp/fleetform-bench (a few GB for 1 M rows).
pub fn work_dir() -> PathBuf {
    let d = PathBuf::from(
        std::env::var("FLEETFORM_BENCH_DIR").unwrap_or_else(|_| "/tmp/fleetform-bench".into()),
    );
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn write_cluster(dir: &Path, agents: usize, slots: usize) -> PathBuf {
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

pub fn fleetform(cluster: &Path, args: &[&str]) -> Command {
    fleetform_at(Path::new(env!("CARGO_BIN_EXE_fleetform")), cluster, args)
}

/// The same with another build of the CLI (a before/after comparison in one run).
pub fn fleetform_at(binary: &Path, cluster: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(binary);
    c.arg(args[0]).arg("-f").arg(cluster).args(&args[1..]);
    c
}

/// Generate `rows` rows with `noise` into dir/raw-<rows>-<noise> unless already there.
pub fn generate(dir: &Path, rows: u64, noise: f64) -> PathBuf {
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
    let status = fleetform(&cluster, &["run", job.to_str().unwrap()])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "generating data failed");
    eprintln!(
        "generated {rows} rows (noise {noise}) in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    out
}

/// The workshop's clean job with the given split, batch and file sizing.
pub fn clean_job(
    dir: &Path,
    input: &Path,
    out: &Path,
    split: usize,
    batch: usize,
    rows_per_file: u64,
) -> PathBuf {
    let _ = std::fs::remove_dir_all(out);
    clean_job_uris(
        dir,
        &input.display().to_string(),
        &out.display().to_string(),
        split,
        batch,
        rows_per_file,
    )
}

/// The same job between any two locations (directories or `s3://` URIs).
pub fn clean_job_uris(
    dir: &Path,
    input: &str,
    out: &str,
    split: usize,
    batch: usize,
    rows_per_file: u64,
) -> PathBuf {
    let job = dir.join("clean.yaml");
    let seed = include_str!("../../../examples/jobs/clean-text.yaml");
    let yaml = seed
        .replace(
            ".fleetform/data/raw        # relative paths are taken from the current directory",
            input,
        )
        .replace(".fleetform/data/clean", out)
        .replace(
            "row_groups_per_task: 4",
            &format!("row_groups_per_task: {split}"),
        )
        .replace("batch_size: 8192", &format!("batch_size: {batch}"))
        .replace(
            "  zstd_level: 1",
            &format!("  rows_per_file: {rows_per_file}\n  zstd_level: 1"),
        );
    assert!(
        yaml.contains(&format!("rows_per_file: {rows_per_file}")) && yaml.contains(input),
        "the example job changed shape:\n{yaml}"
    );
    std::fs::write(&job, yaml).unwrap();
    job
}

/// `fleetform up` in the background; SIGTERM (drain) on drop.
pub struct Up {
    child: Child,
    pub state: PathBuf,
}

impl Up {
    pub fn start(cluster: &Path, dir: &Path, lease_seconds: u64) -> Up {
        Up::start_with(
            Path::new(env!("CARGO_BIN_EXE_fleetform")),
            cluster,
            dir,
            lease_seconds,
            &[],
        )
    }

    /// With a given build of the CLI and extra environment for the supervisor and its
    /// agents (an S3 endpoint).
    pub fn start_with(
        binary: &Path,
        cluster: &Path,
        dir: &Path,
        lease_seconds: u64,
        env: &[(&str, String)],
    ) -> Up {
        let state = dir.join("state");
        let _ = std::fs::remove_file(state.join("supervisor.json"));
        let child = fleetform_at(binary, cluster, &["up"])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("FLEETFORM_LEASE_SECONDS", lease_seconds.to_string())
            // Per-row-group progress lines in each agent's log (state/nodes/<id>/agent.log).
            .env("FLEETFORM_LOG", "info,fleetform_agent::exec::task=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !state.join("supervisor.json").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300)); // agents up and polling
        Up { child, state }
    }

    /// The supervisor (`fleetform up`): its descendants are the agents and their workers.
    pub fn supervisor_pid(&self) -> u32 {
        self.child.id()
    }

    /// (node id, pid, notice file) of the running agents.
    pub fn nodes(&self) -> Vec<(String, u32, PathBuf)> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.state.join("supervisor.json")).unwrap())
                .unwrap();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                (
                    n["node_id"].as_str().unwrap().into(),
                    n["pid"].as_u64().unwrap() as u32,
                    n["notice_file"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    /// Peak resident memory (VmHWM, bytes) of the agents, sampled until `stop`.
    pub fn watch_rss(&self, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
        let state = self.state.clone();
        std::thread::spawn(move || {
            let peak = AtomicU64::new(0);
            while !stop.load(Ordering::SeqCst) {
                if let Ok(bytes) = std::fs::read(state.join("supervisor.json")) {
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                        for n in v["nodes"].as_array().into_iter().flatten() {
                            let pid = n["pid"].as_u64().unwrap_or(0);
                            if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
                                let kb = s
                                    .lines()
                                    .find(|l| l.starts_with("VmHWM:"))
                                    .and_then(|l| l.split_whitespace().nth(1))
                                    .and_then(|k| k.parse::<u64>().ok());
                                if let Some(kb) = kb {
                                    peak.fetch_max(kb * 1024, Ordering::SeqCst);
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
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The job's compute span from its done records: first task start to last task end.
/// Excludes start-up and the CLI's polling, as the competitors' in-process timings do.
pub fn job_span(store: &Path, job_id: &str) -> f64 {
    let mut first: Option<f64> = None;
    let mut last: Option<f64> = None;
    for e in std::fs::read_dir(store.join("jobs").join(job_id).join("done"))
        .unwrap()
        .flatten()
    {
        let d: fleetform_core::task::DoneRecord =
            serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
        let end = d.finished_at.timestamp_micros() as f64 / 1e6;
        let start = end - d.seconds;
        first = Some(first.map_or(start, |f: f64| f.min(start)));
        last = Some(last.map_or(end, |l: f64| l.max(end)));
    }
    last.unwrap_or(0.0) - first.unwrap_or(0.0)
}

/// CPU time and page faults of a process, or of the waited-for descendants of this one.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu {
    pub user: f64,
    pub sys: f64,
    pub minor_faults: u64,
    pub major_faults: u64,
}

impl Cpu {
    /// What this process's children (and theirs, once each was waited for) used: the
    /// kernel's RUSAGE_CHILDREN, from /proc/self/stat. Take it before and after an engine
    /// runs as child processes and `since` gives the whole process tree's usage.
    pub fn children() -> Cpu {
        let f = stat_fields("self");
        Cpu {
            user: ticks(&f, 13),
            sys: ticks(&f, 14),
            minor_faults: field(&f, 8),
            major_faults: field(&f, 10),
        }
    }

    /// What process `pid` itself used so far (threads included, children not).
    pub fn of(pid: &str) -> Cpu {
        let f = stat_fields(pid);
        Cpu {
            user: ticks(&f, 11),
            sys: ticks(&f, 12),
            minor_faults: field(&f, 7),
            major_faults: field(&f, 9),
        }
    }

    pub fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            user: self.user - before.user,
            sys: self.sys - before.sys,
            minor_faults: self.minor_faults - before.minor_faults,
            major_faults: self.major_faults - before.major_faults,
        }
    }

    pub fn total(&self) -> f64 {
        self.user + self.sys
    }
}

/// /proc/PID/stat's fields after the command name (field 3, `state`, is index 0).
fn stat_fields(pid: &str) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn field(f: &[String], i: usize) -> u64 {
    f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// Clock ticks to seconds (USER_HZ is 100 on Linux).
fn ticks(f: &[String], i: usize) -> f64 {
    field(f, i) as f64 / 100.0
}

/// The benchmarks' virtual environment: $FLEETFORM_BENCH_VENV, default /tmp/bench-venv.
pub fn bench_venv() -> PathBuf {
    PathBuf::from(
        std::env::var("FLEETFORM_BENCH_VENV").unwrap_or_else(|_| "/tmp/bench-venv".into()),
    )
}

/// Python in the virtual environment `venv`, made (or completed) with pip and `packages`
/// when it cannot import `modules`.
pub fn venv_python(venv: &Path, modules: &str, packages: &[&str]) -> PathBuf {
    let python = venv.join("bin/python");
    let ready = Command::new(&python)
        .args(["-c", &format!("import {modules}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        eprintln!(
            "making {} with {} (pip)",
            venv.display(),
            packages.join(", ")
        );
        if !python.exists() {
            assert!(
                Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(venv)
                    .status()
                    .unwrap()
                    .success(),
                "cannot make a venv at {}",
                venv.display()
            );
        }
        let pip = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages)
            .status()
            .unwrap();
        assert!(
            pip.success(),
            "pip install {} into {} failed",
            packages.join(" "),
            venv.display()
        );
    }
    python
}
