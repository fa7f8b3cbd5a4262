//! Job commands: submit, run (submit + wait with progress, starting a local cluster when
//! needed), and `job list|status|logs|cancel`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use fleetform_agent::ops::python;
use fleetform_agent::plan::{self, JobProblems};
use fleetform_runtime::jobs::{self, CheckedJob, CodeFile, JobProgress};
use fleetform_runtime::store::Store;
use fleetform_runtime::Connections;
use fleetform_core::data_access::WorkerAccess;
use fleetform_core::diag::{Problem, YamlPath};
use fleetform_core::job::sets_for;
use fleetform_core::layout;
use fleetform_core::spec::{ClusterSpec, ProviderKind};
use fleetform_core::task::{DoneRecord, Manifest, TaskMessage};
use fleetform_core::JobSpec;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cluster::{self, Handles};
use crate::observe::text::human;
use crate::task_logs;
use crate::local::{self, LocalCluster};
use crate::observe::observer::Connection;
use crate::observe::Observer;
use crate::waiting::StallWatch;

/// How often a waiting command polls the store for progress: a few cheap reads, often
/// enough that the reported time is within a quarter second of the job's.
const POLL_EVERY: Duration = Duration::from_millis(250);

pub struct Ctx {
    pub spec: ClusterSpec,
    pub handles: Handles,
    pub store: Store,
}

pub async fn ctx(file: &Path) -> Result<Ctx> {
    let spec = cluster::load(file)?;
    let handles = Handles::of(&spec).await?;
    let store = handles.store().await?;
    Ok(Ctx { spec, handles, store })
}

fn load_job(path: &Path, set: &[String]) -> Result<JobSpec> {
    JobSpec::load(path, &sets_for(path, set)).map_err(|d| anyhow!("{d}"))
}

/// A python step's problem (`steps[N] (python): ...`) at its step's line.
fn python_problem(message: &str) -> Problem {
    let step = message.strip_prefix("steps[").and_then(|r| r.split_once("] (python): "));
    match step.and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest))) {
        Some((i, rest)) => Problem::new(YamlPath::root().key("steps").index(i).key("python"), rest),
        None => Problem::new(YamlPath::root().key("steps"), message),
    }
}

/// What checking a job found.
pub enum JobCheck {
    /// Checked against its data, its python files read: ready to submit.
    Checked(Box<CheckedJob>, Vec<CodeFile>),
    /// Its input is the output of a job checked before it (validate of a whole run):
    /// everything but the data was checked.
    InputNotYetWritten { input_uri: String, output_uri: String },
}

/// Load a job file and check it as submit does: the spec's own rules, the cluster's node
/// types, the job's data (`plan::check`, reading the input through `conn`). Every problem
/// is reported at once, with file:line:column. `produced`: output URIs of jobs that run
/// before this one.
pub async fn check_job(conn: &Connections, cluster: &ClusterSpec, path: &Path, set: &[String], produced: &[String]) -> Result<JobCheck> {
    let (job, source) = JobSpec::load_with_source(path, &sets_for(path, set))?;
    let mut problems = Vec::new();
    if let Err(e) = cluster.feasible(&job.resources) {
        problems.push(Problem::new(YamlPath::root().key("resources"), e));
    }
    let code = match python::ship(path, &job) {
        Ok((code, warnings)) => {
            for w in warnings {
                eprintln!("{}: warning: {w}", path.display());
            }
            code
        }
        Err(found) => {
            problems.extend(found.iter().map(|m| python_problem(m)));
            Vec::new()
        }
    };
    let input = job.input.uri.as_deref().and_then(|u| fleetform_runtime::location::normalize_uri(u).ok());
    problems.extend(worker_reach(cluster, input.as_deref(), &job.output.uri));
    if let Some(input_uri) = input.filter(|u| produced.contains(u)) {
        let mut job = job;
        problems.extend(plan::check_without_data(&mut job));
        if problems.is_empty() {
            return Ok(JobCheck::InputNotYetWritten { input_uri, output_uri: job.output.uri });
        }
        return Err(source.diagnostics(&problems).into());
    }
    match plan::check(conn, job).await {
        Ok(checked) if problems.is_empty() => Ok(JobCheck::Checked(Box::new(checked), code)),
        Ok(_) => Err(source.diagnostics(&problems).into()),
        Err(JobProblems(more)) => {
            problems.extend(more);
            Err(source.diagnostics(&problems).into())
        }
    }
}

/// On AWS the job runs under the worker role: its input and output must be where that
/// role may read and write (`fleetform_core::data_access`), or every task would fail with
/// 403 on the nodes. Each problem names the spec field that grants the access.
fn worker_reach(cluster: &ClusterSpec, input: Option<&str>, output: &str) -> Vec<Problem> {
    let Some(access) = WorkerAccess::of(cluster).filter(|_| cluster.provider.kind == ProviderKind::Aws) else {
        return Vec::new();
    };
    let output = fleetform_runtime::location::normalize_uri(output).ok();
    let input_problem = input.and_then(|u| access.input_problem(u));
    let output_problem = output.and_then(|u| access.output_problem(&u));
    let at = |field: &str| YamlPath::root().key(field).key("uri");
    input_problem.map(|m| Problem::new(at("input"), m)).into_iter().chain(output_problem.map(|m| Problem::new(at("output"), m))).collect()
}

/// The job's python files, checked (defined functions, no syntax errors) and read for
/// shipping; warnings go to stderr.
fn python_code(path: &Path, job: &JobSpec) -> Result<Vec<CodeFile>> {
    let (code, warnings) = python::ship(path, job)
        .map_err(|problems| anyhow!("{}: python steps:\n  {}", path.display(), problems.join("\n  ")))?;
    for w in warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    Ok(code)
}

async fn submit_one(c: &Ctx, path: &Path, set: &[String]) -> Result<String> {
    let (checked, code) = match check_job(&c.store.conn, &c.spec, path, set, &[]).await? {
        JobCheck::Checked(checked, code) => (checked, code),
        JobCheck::InputNotYetWritten { input_uri, .. } => return Err(anyhow!("{input_uri} has not been written yet")),
    };
    if let Some(notice) = checked.file_size_notice() {
        eprintln!("note: {notice}");
    }
    let queue = c.handles.queue().await?;
    let record = jobs::submit_checked(&c.store, &queue, *checked, &code).await?;
    Ok(record.job_id)
}

pub async fn submit_command(file: &Path, job: &Path, set: &[String], wait: bool) -> Result<i32> {
    let c = ctx(file).await?;
    let id = submit_one(&c, job, set).await?;
    println!("{id}");
    if !wait {
        return Ok(0);
    }
    if c.spec.provider.kind == ProviderKind::Local && local::published::running_supervisor(&c.handles).is_none() {
        eprintln!("note: no local cluster is running: the job waits until one starts (`fleetform up -f {}`)", file.display());
    }
    let outcome = wait_for(&c, &id).await?;
    report(&c.store, &id, &outcome).await
}

/// Submit each job in turn and wait for it. On the local provider a local cluster runs
/// for the duration, unless `fleetform up` already runs one. SIGINT/SIGTERM stop it in
/// order (`stopped`); the same command run again resumes (`local::runs`), `restart`
/// cancels what a stopped run of it left and starts over.
pub async fn run_command(file: &Path, job_files: &[PathBuf], set: &[String], restart: bool) -> Result<i32> {
    use tokio::signal::unix::{signal, SignalKind};
    // Installed first: from here a Ctrl-C is ours to handle, never a silent exit.
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    let c = ctx(file).await?;
    for j in job_files {
        python_code(j, &load_job(j, set)?)?; // every job is valid before anything starts
    }
    crate::cluster::remember(file);
    let local = c.spec.provider.kind == ProviderKind::Local;
    let identity = local::runs::RunIdentity::of(file, job_files, set)?;
    let local_cluster = if local { own_cluster(&c, &identity).await? } else { None };
    let mut run = if local { Some(local::runs::Run::begin(&c.handles, &c.store, identity, restart).await?) } else { None };
    // The autoscaler runs for the duration too: agents follow the work (and a spec with
    // `min_workers: 0` still gets agents).
    let local_cluster = local_cluster.map(std::sync::Arc::new);
    let autoscaler = local_cluster.clone().map(|cl| tokio::spawn(crate::local::autoscale(cl)));
    let current = std::sync::Mutex::new(None);
    let signalled = tokio::select! {
        r = run_jobs(&c, job_files, set, run.as_mut(), &current) => Err(r),
        _ = int.recv() => Ok(("SIGINT", 130)),
        _ = term.recv() => Ok(("SIGTERM", 143)),
    };
    if let Some(a) = autoscaler {
        a.abort();
        let _ = a.await;
    }
    let cluster = local_cluster.map(|cl| std::sync::Arc::try_unwrap(cl).map_err(|_| anyhow!("the autoscaler still holds the local cluster"))).transpose()?;
    match signalled {
        Ok((name, code)) => {
            let current = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
            stopped(&c, name, cluster, run, current, (&mut int, &mut term)).await?;
            Ok(code)
        }
        Err(result) => {
            if let Some(cl) = cluster {
                tokio::task::spawn_blocking(move || cl.stop()).await??;
            }
            if let Some(run) = run {
                // Ended by an error with a job still going: keep it resumable.
                if result.is_ok() || run.unfinished(&c.store).await.is_empty() {
                    run.end();
                }
            }
            result
        }
    }
}

/// On the local provider: take the cluster's lock and start agents, after checking that
/// no job of a stopped run would run behind its user's back. None when `fleetform up`
/// runs the cluster: its agents do the work.
async fn own_cluster(c: &Ctx, identity: &local::runs::RunIdentity) -> Result<Option<LocalCluster>> {
    let lock = match local::lock::acquire(&c.handles, &c.spec.cluster_name, "run") {
        Ok(lock) => lock,
        Err(e) => match e.downcast::<local::lock::Taken>() {
            Ok(taken) if taken.holder.as_ref().is_some_and(|h| h.kind == "up") && local::published::running_supervisor(&c.handles).is_some() => {
                return Ok(None);
            }
            Ok(taken) => return Err(taken.into()),
            Err(e) => return Err(e),
        },
    };
    local::runs::refuse_interrupted(&c.handles, Some(identity)).await?;
    let (spec, handles) = (c.spec.clone(), c.handles.clone());
    let cl = tokio::task::spawn_blocking(move || LocalCluster::start_locked(&spec, &handles, lock)).await??;
    eprintln!("started local cluster `{}` with {} agents", c.spec.cluster_name, cl.nodes().len());
    Ok(Some(cl))
}

/// Each job in turn: resumed or skipped when a stopped run of this command left it,
/// submitted otherwise; waited for. The exit code of the first that fails, else 0.
async fn run_jobs(
    c: &Ctx,
    job_files: &[PathBuf],
    set: &[String],
    mut run: Option<&mut local::runs::Run>,
    current: &std::sync::Mutex<Option<String>>,
) -> Result<i32> {
    use local::runs::Reuse;
    let mut code = 0;
    for (i, j) in job_files.iter().enumerate() {
        let reuse = match &run {
            Some(r) => r.reuse(&c.store, i).await?,
            None => Reuse::Submit,
        };
        let id = match reuse {
            Reuse::Done(id) => {
                eprintln!("{}: done by {id} before the run was stopped; not run again (--restart runs every job anew)", j.display());
                continue;
            }
            Reuse::Resume(id) => {
                let p = jobs::progress(&c.store, &id).await?;
                eprintln!("resuming {id} ({}): {} of {} tasks done, the others continue from their checkpoints", j.display(), p.done.len(), p.record.tasks);
                id
            }
            Reuse::Submit => {
                let id = submit_one(c, j, set).await?;
                if let Some(r) = run.as_mut() {
                    r.set_job(i, &id)?;
                }
                eprintln!("submitted {id} ({})", j.display());
                id
            }
        };
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(id.clone());
        let outcome = wait_for(c, &id).await?;
        code = report(&c.store, &id, &outcome).await?;
        if code != 0 {
            break;
        }
    }
    Ok(code)
}

type Signals<'a> = (&'a mut tokio::signal::unix::Signal, &'a mut tokio::signal::unix::Signal);

/// A signal stopped the run: drain and stop the agents this command started (each
/// checkpoints its task and hands it back; a second signal kills them at once), and say
/// what was left and how to go on. `current` is the job the run was waiting for.
async fn stopped(c: &Ctx, signal: &str, cluster: Option<LocalCluster>, run: Option<local::runs::Run>, current: Option<String>, signals: Signals<'_>) -> Result<()> {
    let left = match &run {
        Some(r) => r.unfinished(&c.store).await,
        None => Vec::new(),
    };
    let again = "run the same command again to resume";
    let Some(cl) = cluster else {
        let on = if run.is_some() { "the cluster of `fleetform up`" } else { "the cluster" };
        match left.first().or(current.as_ref()) {
            Some(id) => eprintln!(
                "\n{signal}: stopped waiting; {id} keeps running on {on}: `fleetform job status {id}` follows it, \
                 `fleetform job cancel {id}` stops it"
            ),
            None => eprintln!("\n{signal}: stopped"),
        }
        return Ok(());
    };
    let n = cl.nodes().len();
    eprintln!(
        "\n{signal}: stopping {n} agents (each checkpoints its task and hands it back; up to {}s; Ctrl-C again kills them now)...",
        local::STOP_GRACE.as_secs()
    );
    let pids = cl.agent_pids();
    let mut stopping = tokio::task::spawn_blocking(move || cl.stop());
    let forced = tokio::select! {
        r = &mut stopping => { r??; false }
        _ = signals.0.recv() => true,
        _ = signals.1.recv() => true,
    };
    if forced {
        for pid in &pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::Signal::SIGKILL);
        }
        stopping.await??;
        let lease = fleetform_core::task::DEFAULT_LEASE_SECONDS;
        match left.first() {
            Some(id) => eprintln!(
                "killed {n} agents without draining: their tasks resume from their last checkpoints (work since then is redone, \
                 after a lease of up to {lease}s); {again} job {id}"
            ),
            None => eprintln!("killed {n} agents without draining; no job was left unfinished"),
        }
        return Ok(());
    }
    match left.first() {
        Some(id) => eprintln!("stopped {n} agents: drained; {again} job {id} from its checkpoints (`--restart` starts over, `fleetform job cancel {id}` drops it)"),
        None => eprintln!("stopped {n} agents: drained; no job was left unfinished"),
    }
    if left.is_empty() {
        if let Some(r) = run.filter(|r| r.record.jobs.iter().all(Option::is_none)) {
            r.end(); // nothing was submitted: nothing to resume
        }
    }
    Ok(())
}

pub struct WaitOutcome {
    pub progress: JobProgress,
    pub manifest: Option<Manifest>,
    pub elapsed: Duration,
}

/// Follow a job to its end with a progress bar (tasks, rows/s, ETA), saying why when it
/// stops moving (`waiting`).
pub async fn wait_for(c: &Ctx, job_id: &str) -> Result<WaitOutcome> {
    let store = &c.store;
    let started = Instant::now();
    let mut stall = StallWatch::new(Observer::new(&c.spec, &c.handles), Connection::new(&c.handles));
    let tasks: Vec<TaskMessage> = store.get_json(&layout::tasks(job_id)).await?.unwrap_or_default();
    let rows_of: HashMap<String, u64> = tasks.iter().map(|t| (t.task_id.clone(), t.source.rows())).collect();
    let total_rows: u64 = rows_of.values().sum();
    // jsonl/json/csv/text tasks know their rows only as an estimate from bytes: say so.
    let approx = if tasks.iter().any(|t| t.source.rows_are_estimated()) { "~" } else { "" };
    let bar = ProgressBar::new(tasks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} tasks  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut output = task_logs::Follower::new(job_id);
    loop {
        let p = jobs::progress(store, job_id).await?;
        let ended = p.cancelled || p.finished();
        for line in output.poll(store, ended).await {
            // suspend, not println: a hidden bar (stderr not a terminal) drops println.
            bar.suspend(|| eprintln!("{line}"));
        }
        let rows: u64 = p.done.iter().filter_map(|t| rows_of.get(t)).sum();
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rate = rows as f64 / secs;
        let eta = if rate > 0.0 { format!("ETA {:.0}s", (total_rows.saturating_sub(rows)) as f64 / rate) } else { "ETA -".into() };
        bar.set_position((p.done.len() + p.failed.len()) as u64);
        let failed = if p.failed.is_empty() { String::new() } else { format!("  {} failed", p.failed.len()) };
        bar.set_message(format!("{approx}{} rows/s  {approx}{eta}{failed}", human(rate)));
        if p.cancelled {
            bar.abandon_with_message("cancelled");
            return Ok(WaitOutcome { progress: p, manifest: None, elapsed: started.elapsed() });
        }
        if p.finished() {
            let manifest = jobs::finalize(store, job_id).await?;
            bar.finish_and_clear();
            return Ok(WaitOutcome { progress: p, manifest, elapsed: started.elapsed() });
        }
        if let Some(line) = stall.check(job_id, (p.done.len() + p.failed.len()) as u64).await {
            // suspend, not println: a hidden bar (stderr not a terminal) drops println.
            bar.suspend(|| eprintln!("waiting: {line}"));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Print where the result is, the throughput and any failures. Exit code 1 when the
/// output was not published (a task failed, the job was cancelled or superseded, too many
/// records were skipped).
async fn report(store: &Store, job_id: &str, w: &WaitOutcome) -> Result<i32> {
    let spec = &w.progress.record.spec;
    if w.progress.cancelled {
        println!("{job_id}: cancelled");
        return Ok(1);
    }
    let secs = w.elapsed.as_secs_f64().max(0.001);
    let keys: Vec<String> = w.progress.done.iter().map(|t| layout::done(job_id, t)).collect();
    let done: Vec<DoneRecord> = futures::future::try_join_all(keys.iter().map(|k| store.get_json::<DoneRecord>(k)))
    .await?
    .into_iter()
    .flatten()
    .collect();
    let rows_in: u64 = done.iter().map(|d| d.rows_in).sum();
    let rows_out = w.manifest.as_ref().map(|m| m.total_rows).unwrap_or(0);
    let files = w.manifest.as_ref().map(|m| m.files.len()).unwrap_or(0);
    println!("{job_id}: {} of {} tasks done in {secs:.2}s", w.progress.done.len(), w.progress.record.tasks);
    let not_published = w.manifest.as_ref().and_then(|m| m.not_published.clone());
    match &not_published {
        None => println!("  output     {} ({files} files, {rows_out} rows, manifest _SUCCESS)", spec.output.uri),
        Some(why) => println!(
            "  output     NOT PUBLISHED: {why}\n             {} is as it was before this job (no _SUCCESS written)",
            spec.output.uri
        ),
    }
    println!("  throughput {} rows/s ({rows_in} rows in)", human(rows_in as f64 / secs));
    print_skipped(w.manifest.as_ref(), &done);
    if !w.progress.failed.is_empty() {
        println!("  FAILED     {} tasks (dead-lettered after {} attempts):", w.progress.failed.len(), spec.max_failures);
        for f in &w.progress.failed {
            println!("    {} {}: {}", f.task_id, f.input, f.error);
        }
    }
    Ok(if not_published.is_none() && w.progress.failed.is_empty() { 0 } else { 1 })
}

/// Malformed records skipped (`input.on_error: skip`): the count and a few examples.
fn print_skipped(manifest: Option<&Manifest>, done: &[DoneRecord]) {
    let Some(m) = manifest.filter(|m| m.skipped_records > 0) else { return };
    println!("  skipped    {} malformed input records (input.on_error: skip), e.g.:", m.skipped_records);
    for example in done.iter().flat_map(|d| d.skipped.examples.iter()).take(3) {
        println!("    {example}");
    }
}

/// `fleetform job list`: every job with its progress.
pub async fn job_list(file: &Path) -> Result<i32> {
    let c = ctx(file).await?;
    let list = jobs::list(&c.store).await?;
    if list.is_empty() {
        println!("no jobs in {}", c.store.uri());
    }
    for j in list {
        let p = jobs::progress(&c.store, &j.job_id).await?;
        println!("{:<40} {:>5}/{:<5} tasks  {}  {}", j.job_id, p.done.len(), j.tasks, state(&p), j.submitted_at.format("%Y-%m-%d %H:%M:%S"));
    }
    Ok(0)
}

/// `fleetform job status JOB`: tasks done, failed and pending; exit code 1 when any failed.
pub async fn job_status(file: &Path, job: &str) -> Result<i32> {
    let c = ctx(file).await?;
    let p = jobs::progress(&c.store, job).await?;
    println!("job      {}", p.record.job_id);
    println!("state    {}", state(&p));
    println!("tasks    {} done, {} failed, {} pending of {}", p.done.len(), p.failed.len(), p.record.tasks - p.done.len() - p.failed.len(), p.record.tasks);
    println!("input    {}", p.record.spec.input.uri.clone().unwrap_or_else(|| "generate".into()));
    println!("output   {}", p.record.spec.output.uri);
    match (&p.manifest, p.record.rows_estimated) {
        (Some(m), _) => println!("rows     {} written", m.total_rows),
        (None, true) => println!("rows     ~{} to read (estimated from the input's bytes)", p.record.total_rows),
        (None, false) => println!("rows     {} to read", p.record.total_rows),
    }
    if let Some(m) = p.manifest.as_ref().filter(|m| m.skipped_records > 0) {
        println!("skipped  {} malformed input records (input.on_error: skip; `fleetform job logs` has examples)", m.skipped_records);
    }
    for f in &p.failed {
        println!("failed   {} {}: {}", f.task_id, f.input, f.error);
    }
    Ok(if p.failed.is_empty() { 0 } else { 1 })
}

/// `fleetform job logs JOB`: the job's task events, oldest first, then what its python
/// steps printed or logged, per task attempt.
pub async fn job_logs(file: &Path, job: &str) -> Result<i32> {
    let c = ctx(file).await?;
    let p = jobs::progress(&c.store, job).await?;
    let mut lines: Vec<(chrono::DateTime<chrono::Utc>, String)> = Vec::new();
    let approx = if p.record.rows_estimated { "~" } else { "" };
    lines.push((p.record.submitted_at, format!("submitted {} tasks, {approx}{} rows", p.record.tasks, p.record.total_rows)));
    for t in &p.done {
        if let Some(d) = c.store.get_json::<DoneRecord>(&layout::done(job, t)).await? {
            lines.push((d.finished_at, format!(
                "{} done on {}: {} rows in, {} out, {} files, {:.2}s ({} units processed, {} from checkpoint)",
                d.task_id, d.node_id, d.rows_in, d.rows_out, d.chunks.len(), d.seconds, d.units_processed, d.units_from_checkpoint
            )));
            for example in &d.skipped.examples {
                lines.push((d.finished_at, format!("{} skipped a malformed record: {example}", d.task_id)));
            }
        }
    }
    for f in &p.failed {
        lines.push((f.at, format!("{} FAILED on {} after {} attempts: {} ({})", f.task_id, f.node_id, f.failures, f.error, f.input)));
    }
    if let Some(m) = &p.manifest {
        lines.push((m.finished_at, format!("finished: {} files, {} rows", m.files.len(), m.total_rows)));
    }
    lines.sort_by_key(|l| l.0);
    for (at, l) in lines {
        println!("{}  {l}", at.format("%H:%M:%S%.3f"));
    }
    for l in task_logs::all(&c.store, job).await? {
        println!("{l}");
    }
    Ok(0)
}

/// `fleetform job cancel JOB`: queued tasks are dropped, running ones stop at their next
/// row group.
pub async fn job_cancel(file: &Path, job: &str) -> Result<i32> {
    let c = ctx(file).await?;
    // A finished job's state is what it did: cancelling it now would relabel a success.
    let p = jobs::progress(&c.store, job).await?;
    if p.cancelled || p.finished() {
        bail!("job `{job}` has already finished ({}): there is nothing to cancel", state(&p));
    }
    jobs::cancel(&c.store, job).await?;
    println!("{job}: cancel requested; queued tasks are dropped, running ones stop at their next row group");
    Ok(0)
}

fn state(p: &JobProgress) -> &'static str {
    if p.cancelled {
        "cancelled"
    } else if p.manifest.as_ref().is_some_and(|m| !m.failed_tasks.is_empty()) {
        "failed (not published)"
    } else if p.manifest.as_ref().is_some_and(|m| !m.published()) {
        "not published"
    } else if p.manifest.is_some() {
        "succeeded"
    } else if p.done.is_empty() && p.failed.is_empty() {
        "queued"
    } else {
        "running"
    }
}
