//! Resilience benchmark (C5, C8): the clean job on ~1 M rows, undisturbed, then with a
//! kill -9 and with a spot notice on one of two agents mid-job. Prints the time from the
//! event to job completion against the undisturbed run, and how much work ran twice.
//!
//!   cargo bench -p fleetform --bench resilience -- [--rows N] [--lease S]

mod local_cluster;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fleetform_core::task::{Checkpoint, DoneRecord};
use local_cluster::*;

/// Row groups per task and per output chunk: a checkpoint every 2 row groups.
const SPLIT: usize = 16;
const ROWS_PER_FILE: u64 = 16_384;

enum Event {
    None,
    Kill,
    SpotNotice,
}

struct Outcome {
    total: f64,
    event_to_done: f64,
    /// Row groups processed by more than one attempt (from the done records).
    units_twice: usize,
    resumed_from_checkpoint: usize,
}

fn main() {
    let mut rows = 1_000_000u64;
    let mut lease = 10u64;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rows" => rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--lease" => lease = it.next().and_then(|v| v.parse().ok()).expect("--lease SECONDS"),
            _ => {}
        }
    }
    let dir = work_dir();
    let input = generate(&dir, rows, 0.0);
    println!("resilience: clean job on {rows} rows, 2 agents × 1 slot, {SPLIT} row groups per task, lease {lease}s");
    let base = run(&dir, &input, lease, Event::None);
    let kill = run(&dir, &input, lease, Event::Kill);
    let spot = run(&dir, &input, lease, Event::SpotNotice);
    println!("| run | job seconds | extra vs undisturbed | event → done | row groups processed twice | resumed from checkpoint (row groups) |");
    println!("|---|---|---|---|---|---|");
    for (name, o) in [("undisturbed", &base), ("kill -9 one agent", &kill), ("spot notice on one agent", &spot)] {
        println!(
            "| {name} | {:.2} | {:+.2} s | {:.2} s | {} | {} |",
            o.total,
            o.total - base.total,
            o.event_to_done,
            o.units_twice,
            o.resumed_from_checkpoint
        );
    }
}

fn run(dir: &Path, input: &Path, lease: u64, event: Event) -> Outcome {
    let cluster = write_cluster(dir, 2, 1);
    let _ = std::fs::remove_dir_all(dir.join("state"));
    let job = clean_job(dir, input, &dir.join("out-resilience"), SPLIT, 8192, ROWS_PER_FILE);
    let up = Up::start(&cluster, dir, lease);
    let t = Instant::now();
    let mut submit = fleetform(&cluster, &["submit", job.to_str().unwrap(), "--wait"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let store = dir.join("state/store");
    let mut event_at = None;
    let mut victim: Option<(String, String)> = None; // (node, task)
    if !matches!(event, Event::None) {
        // Strike when a task has its first checkpoint (work in progress on that node).
        let deadline = Instant::now() + Duration::from_secs(300);
        'wait: while Instant::now() < deadline {
            for job_dir in std::fs::read_dir(store.join("jobs")).into_iter().flatten().flatten() {
                for cp in std::fs::read_dir(job_dir.path().join("checkpoints")).into_iter().flatten().flatten() {
                    let Ok(cp) = serde_json::from_slice::<Checkpoint>(&std::fs::read(cp.path()).unwrap_or_default()) else { continue };
                    let Some((_, pid, notice_file)) = up.nodes().into_iter().find(|(id, _, _)| *id == cp.node_id) else { continue };
                    match event {
                        Event::Kill => {
                            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
                        }
                        Event::SpotNotice => {
                            // What `fleetform chaos interrupt` writes, without its process start.
                            use fleetform_agent::imds::{notice_file, notice_time, SpotAction, SPOT_NOTICE_LEAD};
                            let spot = SpotAction { action: "terminate".into(), time: notice_time(chrono::Utc::now(), SPOT_NOTICE_LEAD) };
                            notice_file::update(&notice_file, |n| n.spot = Some(spot)).unwrap();
                        }
                        Event::None => {}
                    }
                    event_at = Some(Instant::now());
                    victim = Some((cp.node_id.clone(), cp.task_id.clone()));
                    break 'wait;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let status = submit.wait().unwrap();
    let done_at = Instant::now();
    let total = t.elapsed().as_secs_f64();
    assert!(status.success(), "the job failed");
    drop(up);
    let mut units_twice = 0;
    let mut resumed = 0;
    for job_dir in std::fs::read_dir(store.join("jobs")).unwrap().flatten() {
        for d in std::fs::read_dir(job_dir.path().join("done")).into_iter().flatten().flatten() {
            let d: DoneRecord = serde_json::from_slice(&std::fs::read(d.path()).unwrap()).unwrap();
            let units = d.chunks.last().map(|c| c.end_unit).unwrap_or(0);
            units_twice += (d.units_processed + d.units_from_checkpoint).saturating_sub(units);
            resumed += d.units_from_checkpoint;
            // A killed attempt leaves no record: its agent log says how far it got.
            if let Some((node, task)) = &victim {
                if *task == d.task_id && matches!(event, Event::Kill) {
                    let log = std::fs::read_to_string(dir.join("state/nodes").join(node).join("agent.log")).unwrap_or_default();
                    let needle = format!("task={task} unit=");
                    let reached = log
                        .lines()
                        .filter(|l| l.contains("unit done"))
                        .filter_map(|l| l.split(&needle).nth(1).and_then(|u| u.split_whitespace().next()).and_then(|u| u.parse::<usize>().ok()))
                        .max();
                    if let Some(k) = reached {
                        units_twice += (k + 1).saturating_sub(d.units_from_checkpoint);
                    }
                }
            }
        }
    }
    let event_to_done = event_at.map(|e| done_at.duration_since(e).as_secs_f64()).unwrap_or(0.0);
    Outcome { total, event_to_done, units_twice, resumed_from_checkpoint: resumed }
}
