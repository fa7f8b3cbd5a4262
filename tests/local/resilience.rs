//! Spot notices, crashes and rebalance recommendations on the local provider (C5, C8),
//! and a spot notice through IMDS to the agent binary (the AWS path).
//! Needs processes: agents are killed and drained for real; local notices go through the
//! nodes' notice files, IMDS is the test-support emulator.

use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use fleetform_agent::imds::{format_scheduled_time, notice_file, notice_time, Rebalance, ScheduledEvent};
use fleetform_core::task::{Checkpoint, NodeHeartbeat};
use fleetform_testkit::imds::{ImdsEmulator, SPOT_NOTICE_LEAD};

use crate::harness::*;

const UNITS_PER_TASK: usize = 150;

/// Two long tasks (150 row groups each) so an interruption lands mid-task.
fn long_job(env: &LocalEnv) -> std::path::PathBuf {
    env.write_job(
        "long.yaml",
        "name: long\ninput: {generate: {rows: 150000, seed: 3, text_length: 1000}}\n\
         output: {uri: out, rows_per_file: 1000}\nbatch_size: 500\nsplit: {rows_per_task: 75000}\n",
    )
}

pub(crate) fn submit(env: &LocalEnv, job: &std::path::Path) -> String {
    let out = env.run(&["submit", job.to_str().unwrap()]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Wait until some node runs a task whose checkpoint is early (so plenty of work remains
/// when the interruption lands). Returns (node, task).
pub(crate) fn task_in_progress(env: &LocalEnv, job: &str) -> (String, String) {
    let mut found = None;
    wait_until(Duration::from_secs(120), "a task with an early checkpoint", || {
        for path in env.checkpoints(job) {
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let Ok(cp) = serde_json::from_slice::<Checkpoint>(&bytes) else { continue };
            if cp.next_unit >= 2 && cp.next_unit < 30 {
                found = Some((cp.node_id.clone(), cp.task_id.clone()));
                return true;
            }
        }
        false
    });
    found.unwrap()
}

/// Until the job is finished and, when it publishes, its output's `_SUCCESS` names it (the
/// store's manifest is the commit point; the output is published right after it).
pub(crate) fn wait_for_success(env: &LocalEnv, job: &str) {
    let read = |path: std::path::PathBuf| -> Option<serde_json::Value> { serde_json::from_slice(&std::fs::read(path).ok()?).ok() };
    wait_until(Duration::from_secs(300), "the job's _SUCCESS", || {
        let Some(manifest) = read(env.store().join(format!("jobs/{job}/_SUCCESS"))) else { return false };
        if manifest.get("not_published").is_some() {
            return true;
        }
        let record = read(env.store().join(format!("jobs/{job}/job.json"))).unwrap_or_default();
        let output = record["spec"]["output"]["uri"].as_str().unwrap_or_default().trim_start_matches("file://").to_string();
        read(std::path::Path::new(&output).join("_SUCCESS")).is_some_and(|m| m["job_id"] == job)
    });
}

#[test]
fn spot_notice_drains_and_another_node_resumes_from_the_checkpoint() {
    let env = LocalEnv::new(2, 1);
    let sup = env.up(5);
    let job = submit(&env, &long_job(&env));
    let (node, task) = task_in_progress(&env, &job);
    let (_, _, notices) = sup.nodes().into_iter().find(|(id, _, _)| *id == node).unwrap();
    let noticed = Instant::now();
    let out = env.run(&["chaos", "interrupt", "--node", &node]);
    assert!(out.status.success());
    let spot = notice_file::read_blocking(&notices).unwrap().spot.expect("the notice is in the node's notice file");
    assert_eq!(spot.action, "terminate");

    // The node drains within the budget and says why.
    wait_until(Duration::from_secs(90), "the interrupted node's final heartbeat", || {
        env.heartbeats().iter().any(|h| h.node_id == node && h.stopped && h.draining.as_deref() == Some("spot-interruption"))
    });
    let drained_in = noticed.elapsed();
    assert!(drained_in < Duration::from_secs(90), "drained in {drained_in:?}");

    wait_for_success(&env, &job);
    let (manifest, ids, _) = read_output(&env.path("out"));
    assert_exactly_once(&ids, 150_000);
    assert!(manifest.failed_tasks.is_empty());
    let done = env.done_records(&job).into_iter().find(|d| d.task_id == task).unwrap();
    assert_ne!(done.node_id, node, "another node finished the task");
    assert!(done.units_from_checkpoint >= 2, "resumed from the checkpoint: {done:?}");
    assert_eq!(
        done.units_processed + done.units_from_checkpoint,
        UNITS_PER_TASK,
        "no row group in the checkpoint was processed again"
    );
    // A replacement agent was started for the drained one: the cluster's 2 agents again,
    // the drained one not among them.
    wait_until(Duration::from_secs(10), "a replacement node", || {
        let nodes = sup.nodes();
        nodes.len() == 2 && nodes.iter().all(|(id, _, _)| *id != node)
    });
}

#[test]
fn sigterm_drains_like_a_spot_notice() {
    let env = LocalEnv::new(2, 1);
    let sup = env.up(5);
    let job = submit(&env, &long_job(&env));
    let (node, task) = task_in_progress(&env, &job);
    let (_, pid, _) = sup.nodes().into_iter().find(|(id, _, _)| *id == node).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_until(Duration::from_secs(90), "the final heartbeat after SIGTERM", || {
        env.heartbeats().iter().any(|h| h.node_id == node && h.stopped && h.draining.as_deref() == Some("sigterm"))
    });
    wait_for_success(&env, &job);
    let (_, ids, _) = read_output(&env.path("out"));
    assert_exactly_once(&ids, 150_000);
    let done = env.done_records(&job).into_iter().find(|d| d.task_id == task).unwrap();
    assert_ne!(done.node_id, node);
    assert_eq!(done.units_processed + done.units_from_checkpoint, UNITS_PER_TASK, "no row group processed twice");
}

#[test]
fn kill_9_mid_job_loses_and_duplicates_nothing() {
    let env = LocalEnv::new(2, 1);
    // A lease far longer than the job may wait (wait_for_success gives up at 300 s): the
    // killed agent's task can only finish because the supervisor, seeing the process
    // exit, gives its lease back at once.
    let sup = env.up(3600);
    let job = submit(&env, &long_job(&env));
    let (node, task) = task_in_progress(&env, &job);
    let (_, pid, _) = sup.nodes().into_iter().find(|(id, _, _)| *id == node).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();

    wait_for_success(&env, &job);
    let (manifest, ids, _) = read_output(&env.path("out"));
    assert_exactly_once(&ids, 150_000);
    assert!(manifest.failed_tasks.is_empty(), "a crash is not a task failure");
    let done = env.done_records(&job).into_iter().find(|d| d.task_id == task).unwrap();
    assert_ne!(done.node_id, node);
    assert!(done.units_from_checkpoint >= 2, "resumed from the last checkpoint: {done:?}");
    // No partial object is visible: every part file in the output is in the manifest.
    let parts: Vec<String> = std::fs::read_dir(env.path("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("part-"))
        .collect();
    assert!(parts.iter().all(|p| manifest.files.iter().any(|f| &f.file == p)), "stray output files: {parts:?}");
}

#[test]
fn after_a_rebalance_recommendation_the_node_takes_no_new_tasks() {
    let env = LocalEnv::new(2, 1);
    let sup = env.up(5);
    let (node, _, notices) = sup.nodes().remove(0);
    let now = Utc::now();
    notice_file::update(&notices, |n| {
        n.rebalance = Some(Rebalance { notice_time: notice_time(now, Duration::ZERO) });
        n.scheduled.push(ScheduledEvent {
            code: "system-reboot".into(),
            not_before: format_scheduled_time(notice_time(now, Duration::from_secs(3600))),
            state: "active".into(),
            ..Default::default()
        });
    })
    .unwrap();
    wait_until(Duration::from_secs(30), "the rebalance to show in the heartbeat", || {
        env.heartbeats().iter().any(|h| h.node_id == node && h.draining.as_deref() == Some("rebalance"))
    });
    // Said while it shows: once idle, a draining node may be stopped at any time.
    let status = env.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("draining (rebalance)"), "{text}");
    assert!(text.contains("scheduled: system-reboot"), "a scheduled event shows in status: {text}");
    let job = env.write_job(
        "small.yaml",
        "name: small\ninput: {generate: {rows: 8000, seed: 1, text_length: 100}}\noutput: {uri: out}\nbatch_size: 1000\nsplit: {rows_per_task: 1000}\n",
    );
    let id = submit(&env, &job);
    wait_for_success(&env, &id);
    let done = env.done_records(&id);
    assert_eq!(done.len(), 8);
    assert!(done.iter().all(|d| d.node_id != node), "the node under a rebalance recommendation took a task");
}

/// The AWS path in the binary: an agent given `--imds-endpoint` (on EC2 the real IMDS,
/// here the test-support emulator) drains on a spot notice and says why.
#[test]
fn an_agent_on_imds_drains_on_a_spot_notice() {
    let dir = tempfile::tempdir().unwrap();
    let imds = ImdsEmulator::start("i-0e2e", "c7i.large", "us-east-1a").unwrap();
    let store = dir.path().join("store");
    let mut agent = KillOnDrop(fleetform()
        .args(["agent", "--node-id", "i-0e2e", "--resources", r#"{"CPU":1}"#])
        .args(["--store", &format!("file://{}", store.display())])
        .args(["--queue", &format!("sqlite://{}", dir.path().join("queue.sqlite").display())])
        .arg("--spill-dir")
        .arg(dir.path().join("spill"))
        .args(["--imds-endpoint", &imds.endpoint(), "--imds-poll-ms", "200"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap());
    let heartbeat = store.join("nodes/i-0e2e.json");
    let read = || serde_json::from_slice::<NodeHeartbeat>(&std::fs::read(&heartbeat).ok()?).ok();
    wait_until(Duration::from_secs(30), "the agent's first heartbeat", || read().is_some());
    let before = imds.requests();
    wait_until(Duration::from_secs(10), "the agent to poll IMDS", || imds.requests() > before);

    imds.raise_spot_interruption(SPOT_NOTICE_LEAD);
    wait_until(Duration::from_secs(30), "the agent to exit", || agent.0.try_wait().unwrap().is_some());
    assert!(agent.0.wait().unwrap().success());
    let last = read().unwrap();
    assert!(last.stopped && last.draining.as_deref() == Some("spot-interruption"), "{last:?}");
}

/// A child process that does not outlive a failed test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
