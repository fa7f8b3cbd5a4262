//! Shared helpers: a local cluster in a temp dir, the `fleetform` binary, parquet reading.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow_array::{Array, Int64Array, RecordBatch};
use fleetform_core::task::{DoneRecord, Manifest, NodeHeartbeat};

pub fn fleetform() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleetform"));
    c.env_remove("FLEETFORM_CLUSTER");
    c
}

pub struct LocalEnv {
    pub dir: tempfile::TempDir,
    pub cluster: PathBuf,
}

impl LocalEnv {
    /// A local cluster of `nodes` agents with `cpu` slots each.
    pub fn new(nodes: u32, cpu: u32) -> LocalEnv {
        let dir = tempfile::tempdir().expect("tempdir");
        let cluster = dir.path().join("cluster.yaml");
        std::fs::write(
            &cluster,
            format!(
                "cluster_name: t\nprovider: {{type: local}}\nstorage: {{path: {}}}\nhead_node_type: head\n\
                 available_node_types:\n  head: {{resources: {{CPU: 0}}}}\n  worker:\n    resources: {{CPU: {cpu}}}\n    min_workers: {nodes}\n    max_workers: {nodes}\n",
                dir.path().join("state/store").display()
            ),
        )
        .unwrap();
        LocalEnv { dir, cluster }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn store(&self) -> PathBuf {
        self.path("state/store")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = fleetform();
        c.current_dir(self.dir.path()).arg(args[0]).arg("-f").arg(&self.cluster).args(&args[1..]);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run fleetform");
        eprintln!("$ fleetform {}\n{}{}", args.join(" "), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        out
    }

    /// `fleetform up` in the background, with a short lease so crash tests stay short.
    pub fn up(&self, lease_seconds: u64) -> Supervisor {
        let child = self
            .cmd(&["up"])
            .env("FLEETFORM_LEASE_SECONDS", lease_seconds.to_string())
            // Notices are seen within 0.2 s instead of 2 s, so they land mid-task.
            .env("FLEETFORM_IMDS_POLL_MS", "200")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fleetform up");
        let sup = Supervisor { child, file: self.path("state/supervisor.json") };
        wait_until(Duration::from_secs(30), "supervisor file", || sup.file.exists());
        sup
    }

    pub fn write_job(&self, name: &str, yaml: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, yaml).unwrap();
        p
    }

    pub fn heartbeats(&self) -> Vec<NodeHeartbeat> {
        let dir = self.store().join("nodes");
        let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
        rd.flatten().filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()).collect()
    }

    pub fn done_records(&self, job: &str) -> Vec<DoneRecord> {
        let dir = self.store().join("jobs").join(job).join("done");
        let Ok(rd) = std::fs::read_dir(dir) else { return vec![] };
        rd.flatten().map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap()).collect()
    }

    pub fn checkpoints(&self, job: &str) -> Vec<PathBuf> {
        let dir = self.store().join("jobs").join(job).join("checkpoints");
        std::fs::read_dir(dir).map(|rd| rd.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    }
}

pub struct Supervisor {
    pub child: Child,
    pub file: PathBuf,
}

impl Supervisor {
    /// (node id, pid, notice file) of the running agents.
    pub fn nodes(&self) -> Vec<(String, u32, PathBuf)> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&self.file).unwrap()).unwrap();
        v["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| (n["node_id"].as_str().unwrap().to_string(), n["pid"].as_u64().unwrap() as u32, n["notice_file"].as_str().unwrap().into()))
            .collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// Read every file the manifest lists; return the id of every row, with its count.
pub fn read_output(dir: &Path) -> (Manifest, HashMap<i64, u32>, Vec<RecordBatch>) {
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(dir.join("_SUCCESS")).expect("_SUCCESS")).unwrap();
    let mut ids = HashMap::new();
    let mut batches = Vec::new();
    for f in &manifest.files {
        let file = std::fs::File::open(dir.join(&f.file)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        let mut rows = 0;
        for b in reader {
            let b = b.unwrap();
            rows += b.num_rows() as u64;
            let col = b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..col.len() {
                *ids.entry(col.value(i)).or_insert(0) += 1;
            }
            batches.push(b);
        }
        assert_eq!(rows, f.rows, "the manifest's row count of {} is right", f.file);
    }
    (manifest, ids, batches)
}

/// Every id in 0..n appears exactly once.
pub fn assert_exactly_once(ids: &HashMap<i64, u32>, n: i64) {
    let dup: Vec<_> = ids.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dup.is_empty(), "rows appear twice: {dup:?}");
    let missing: Vec<i64> = (0..n).filter(|i| !ids.contains_key(i)).take(5).collect();
    assert!(missing.is_empty(), "rows lost: {missing:?}");
    assert_eq!(ids.len() as i64, n);
}


/// Every row as text, sorted by id, for comparing two outputs whatever their file layout.
pub fn sorted_rows(batches: &[arrow_array::RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        let names: Vec<String> = b.schema().fields().iter().map(|f| f.name().clone()).collect();
        for i in 0..b.num_rows() {
            let mut row = Vec::new();
            for (c, name) in names.iter().enumerate() {
                let col = b.column(c);
                let v = if let Some(s) = col.as_any().downcast_ref::<arrow_array::StringArray>() {
                    s.value(i).to_string()
                } else if let Some(n) = col.as_any().downcast_ref::<arrow_array::Int64Array>() {
                    format!("{:020}", n.value(i))
                } else {
                    panic!("unexpected column type for {name}")
                };
                row.push(format!("{name}={v}"));
            }
            rows.push(row.join("|"));
        }
    }
    rows.sort();
    rows
}

/// The generator job of the workshop, small: `rows` rows into `out`.
pub fn generate_job(env: &LocalEnv, rows: u64, out: &str) -> std::path::PathBuf {
    env.write_job(
        "generate.yaml",
        &format!(
            "name: generate\ninput: {{generate: {{rows: {rows}, seed: 7, text_length: 200, noise: 0.05}}}}\n\
             output: {{uri: {out}, rows_per_file: 2000}}\nbatch_size: 1000\nsplit: {{rows_per_task: 4000}}\n"
        ),
    )
}

/// The workshop's cleaning job (examples/jobs/clean-text.yaml) from `input` into `out`.
pub fn clean_job(env: &LocalEnv, input: &str, out: &str) -> std::path::PathBuf {
    let seed = include_str!("../../examples/jobs/clean-text.yaml");
    let yaml = seed
        .replace(".fleetform/data/raw        # relative paths are taken from the current directory", input)
        .replace(".fleetform/data/clean", out)
        .replace("row_groups_per_task: 4", "row_groups_per_task: 3");
    env.write_job("clean.yaml", &yaml)
}
