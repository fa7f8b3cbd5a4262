//! What a user's hands do to a local run (docs/DESIGN.md, decision 24): Ctrl-C and
//! `kill -9` of `run`, two commands in one directory, `job cancel` of a finished job, pipes
//! closed by `head`, job names in any script. Needs the real binary: signals, process
//! trees, flock and pipes are the subject.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::harness::*;

/// A generate job long enough to be stopped mid-way (200 tasks, ~6 s on one slot).
fn long_job(env: &LocalEnv, name: &str, out: &str) -> std::path::PathBuf {
    env.write_job(
        &format!("{name}.yaml"),
        &format!("name: {name}\ninput: {{generate: {{rows: 1000000, seed: 7, text_length: 100}}}}\noutput: {{uri: {out}, rows_per_file: 5000}}\nbatch_size: 1000\nsplit: {{rows_per_task: 5000}}\n"),
    )
}

fn small_job(env: &LocalEnv, name: &str) -> std::path::PathBuf {
    env.write_job(
        &format!("{name}.yaml"),
        &format!("name: {name}\ninput: {{generate: {{rows: 2000, seed: 7, text_length: 20}}}}\noutput: {{uri: out-{name}}}\nsplit: {{rows_per_task: 1000}}\n"),
    )
}

fn spawn(env: &LocalEnv, args: &[&str]) -> Child {
    env.cmd(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn fleetform")
}

/// Wait for `child` (at most `limit`), returning its exit code and stderr.
fn finish(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fleetform did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let code = child.wait().unwrap().code();
    eprintln!("exit {code:?}\n{err}");
    (code, err)
}

fn alive(pid: u32) -> bool {
    // A zombie still answers kill(0): only a process that is gone or a zombie counts as dead.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    kill(Pid::from_raw(pid as i32), None).is_ok() && !stat.contains(") Z ")
}

/// The agents of the running supervisor, once it has published them.
fn agent_pids(env: &LocalEnv) -> Vec<u32> {
    let file = env.path("state/supervisor.json");
    wait_until(Duration::from_secs(30), "the supervisor's agents", || file.exists());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    v["nodes"].as_array().unwrap().iter().map(|n| n["pid"].as_u64().unwrap() as u32).collect()
}

fn the_job_id(env: &LocalEnv) -> String {
    let jobs: Vec<String> = std::fs::read_dir(env.store().join("jobs")).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    jobs[0].clone()
}

fn wait_for_some_done(env: &LocalEnv) {
    wait_until(Duration::from_secs(60), "a task done", || {
        std::fs::read_dir(env.store().join("jobs")).ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).is_some_and(|e| std::fs::read_dir(e.path().join("done")).is_ok_and(|mut d| d.next().is_some()))
    });
}

#[test]
fn local_ctrl_c_drains_the_agents_and_the_same_command_resumes_the_job() {
    let env = LocalEnv::new(1, 1);
    let job = long_job(&env, "long", "raw");
    let run = spawn(&env, &["run", job.to_str().unwrap()]);
    let agents = agent_pids(&env);
    wait_for_some_done(&env);
    let beat = env.heartbeats().into_iter().find(|h| !h.stopped).expect("a running agent's heartbeat");
    kill(Pid::from_raw(run.id() as i32), Signal::SIGINT).unwrap();
    let (code, err) = finish(run, Duration::from_secs(100));
    assert_eq!(code, Some(130), "{err}");
    let id = the_job_id(&env);
    assert!(err.contains("SIGINT: stopping 1 agents"), "{err}");
    assert!(err.contains(&format!("drained; run the same command again to resume job {id}")), "{err}");
    for pid in agents {
        assert!(!alive(pid), "agent {pid} outlived the run");
    }
    // A node that still says it is up with no supervisor (an orphan, as before the fix)
    // is marked by `status`.
    let orphan = fleetform_core::task::NodeHeartbeat { updated_at: chrono::Utc::now(), ..beat };
    std::fs::write(env.store().join("nodes").join(format!("{}.json", orphan.node_id)), serde_json::to_vec(&orphan).unwrap()).unwrap();
    let status = String::from_utf8_lossy(&env.run(&["status"]).stdout).into_owned();
    assert!(status.contains("SUPERVISOR GONE"), "{status}");
    let done_before = env.done_records(&id).len();
    assert!(done_before < 200, "the job was stopped before its end");
    // The same command resumes the job: no second job, every row exactly once.
    let out = env.run(&["run", job.to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("resuming {id}")), "{stderr}");
    assert!(!stderr.contains("submitted"), "{stderr}");
    assert_eq!(the_job_id(&env), id);
    let (manifest, ids, _) = read_output(&env.path("raw"));
    assert_eq!(manifest.total_rows, 1_000_000);
    assert_exactly_once(&ids, 1_000_000);
}

#[test]
fn local_agents_never_outlive_a_killed_run_and_its_job_never_runs_behind_another_command() {
    let env = LocalEnv::new(2, 1);
    let job = long_job(&env, "long", "raw");
    let mut run = spawn(&env, &["run", job.to_str().unwrap()]);
    let agents = agent_pids(&env);
    wait_for_some_done(&env);
    run.kill().unwrap(); // kill -9: no handler runs
    run.wait().unwrap();
    wait_until(Duration::from_secs(60), "the agents of the killed run to exit", || agents.iter().all(|p| !alive(*p)));
    let id = the_job_id(&env);
    // Another command would run the killed run's job: refused, with the ways out.
    let other = small_job(&env, "other");
    let out = env.run(&["run", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("job `{id}` of a `fleetform run` that was stopped")), "{stderr}");
    assert!(stderr.contains(&format!("`fleetform job cancel {id}`")), "{stderr}");
    let (code, err) = finish(spawn(&env, &["up", "--no-dashboard"]), Duration::from_secs(30));
    assert_eq!(code, Some(1), "`up` would run it too: {err}");
    assert!(env.run(&["job", "cancel", &id]).status.success());
    assert!(env.run(&["run", other.to_str().unwrap()]).status.success());
}

#[test]
fn local_one_cluster_per_directory_and_the_refusal_names_the_holder() {
    let env = LocalEnv::new(1, 1);
    let job = long_job(&env, "long", "raw");
    let first = spawn(&env, &["run", job.to_str().unwrap()]);
    agent_pids(&env);
    let other = small_job(&env, "other");
    let out = env.run(&["run", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("another `fleetform run` (pid {}, started", first.id())), "{stderr}");
    assert!(stderr.contains("is using the local cluster `t` in this directory; wait for it or stop it"), "{stderr}");
    wait_for_some_done(&env);
    kill(Pid::from_raw(first.id() as i32), Signal::SIGTERM).unwrap();
    let (code, _) = finish(first, Duration::from_secs(100));
    assert_eq!(code, Some(143));
    assert!(env.run(&["job", "cancel", &the_job_id(&env)]).status.success(), "the stopped run's job is dropped");
    // Two `up`s started at the same moment: one runs, the other is refused.
    let ups: Vec<Child> = (0..2).map(|_| env.cmd(&["up", "--no-dashboard"]).env("FLEETFORM_LEASE_SECONDS", "5").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()).collect();
    std::thread::sleep(Duration::from_secs(3));
    let mut ups = ups;
    let exited: Vec<usize> = (0..2).filter(|i| ups[*i].try_wait().unwrap().is_some()).collect();
    assert_eq!(exited.len(), 1, "exactly one of two simultaneous `up`s runs");
    for mut u in ups {
        let _ = kill(Pid::from_raw(u.id() as i32), Signal::SIGTERM);
        let _ = u.wait();
    }
}

#[test]
fn local_cancel_of_a_finished_job_is_refused_and_closed_pipes_end_commands_quietly() {
    let env = LocalEnv::new(1, 1);
    let job = small_job(&env, "small");
    assert!(env.run(&["run", job.to_str().unwrap()]).status.success());
    let id = the_job_id(&env);
    let out = env.run(&["job", "cancel", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("job `{id}` has already finished (succeeded): there is nothing to cancel")));
    let list = env.run(&["job", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("succeeded"));
    // `| head -0`: the reader is gone before the first line.
    let completions = || fleetform().args(["completions", "bash"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    for args in [vec!["job", "list"], vec!["job", "logs", &id], vec!["job", "status", &id], vec!["status"], vec!["completions"]] {
        let mut child = if args[0] == "completions" { completions() } else { spawn(&env, &args) };
        drop(child.stdout.take());
        let (code, err) = finish(child, Duration::from_secs(30));
        assert_eq!(code, Some(0), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn local_job_names_in_any_script_work_end_to_end_and_path_syntax_is_refused() {
    let env = LocalEnv::new(1, 1);
    let job = small_job(&env, "small");
    let out = env.run(&["run", job.to_str().unwrap(), "--set", "name=텍스트-정제"]);
    assert!(out.status.success());
    let list = String::from_utf8_lossy(&env.run(&["job", "list"]).stdout).into_owned();
    assert!(list.contains("텍스트-정제-") && list.contains("succeeded"), "{list}");
    let (manifest, ids, _) = read_output(&env.path("out-small"));
    assert_eq!(manifest.total_rows, 2000);
    assert_exactly_once(&ids, 2000);
    assert!(!env.path("out-small/_staging").exists(), "the job's staging directory is gone");
    let status = String::from_utf8_lossy(&env.run(&["status", "--json"]).stdout).into_owned();
    assert!(status.contains("\"텍스트-정제-"), "{status}");
    // Paths a name must not reach, as they are before (another process may own /tmp/x).
    let escapes = [env.path("x"), env.dir.path().parent().unwrap().join("x"), std::path::PathBuf::from("/srv/x")];
    let state = |p: &std::path::Path| std::fs::symlink_metadata(p).ok().map(|m| m.modified().ok());
    let before: Vec<_> = escapes.iter().map(|p| state(p)).collect();
    for bad in ["../../../../x", "/srv/x", "a<b#c", "a\"b", "line\nbreak"] {
        let set = format!("name={bad}");
        let out = env.run(&["run", job.to_str().unwrap(), "--set", &set]);
        assert_eq!(out.status.code(), Some(1), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("a job name may have letters and digits of any script"), "{bad:?}: {stderr}");
    }
    let after: Vec<_> = escapes.iter().map(|p| state(p)).collect();
    assert_eq!(before, after, "no name reached a path outside the store: {escapes:?}");
    let jobs = std::fs::read_dir(env.store().join("jobs")).unwrap().count();
    assert_eq!(jobs, 1, "the refused names submitted nothing");
}
