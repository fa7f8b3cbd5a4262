//! What a `fleetform run` leaves for the next command: a record per run in
//! `<state dir>/runs/`, naming its command (cluster file, job files with their text, the
//! `--set`s) and the job it submitted for each job file. A run that ends removes it; a
//! run stopped by a signal (or killed) leaves it, so that:
//! - the same command, run again, resumes: a job that succeeded is not run again, an
//!   unfinished one is followed (its done tasks kept, the rest continue from their
//!   checkpoints) instead of being submitted a second time;
//! - any other command that would start agents (`up`, another `run`) refuses while such a
//!   job is unfinished, naming it and the two ways out, rather than let its tasks run
//!   behind the back of the user who stopped it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use fleetform_runtime::jobs;
use fleetform_runtime::store::Store;
use serde::{Deserialize, Serialize};

use super::process::ProcessId;
use crate::cluster::Handles;

/// What makes two `run`s the same command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunIdentity {
    pub cluster_file: PathBuf,
    /// Each job file with its text: an edited job is another job.
    pub jobs: Vec<(PathBuf, String)>,
    pub set: Vec<String>,
}

impl RunIdentity {
    pub fn of(cluster_file: &Path, job_files: &[PathBuf], set: &[String]) -> Result<RunIdentity> {
        let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| format!("cannot read {}", p.display()));
        let jobs = job_files.iter().map(|j| Ok((abs(j)?, std::fs::read_to_string(j).with_context(|| format!("cannot read {}", j.display()))?))).collect::<Result<_>>()?;
        Ok(RunIdentity { cluster_file: abs(cluster_file)?, jobs, set: set.to_vec() })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// The `run` (`pid` and `start_ticks` in the file).
    #[serde(flatten)]
    pub writer: ProcessId,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The command line, for messages.
    pub command: String,
    pub identity: RunIdentity,
    /// The job submitted for each job file, in order (None: not yet submitted).
    pub jobs: Vec<Option<String>>,
}

impl RunRecord {
    fn alive(&self) -> bool {
        !self.writer.is_current() && self.writer.is_running()
    }

    fn describe(&self) -> String {
        format!("pid {}, started {}: {}", self.writer.pid, self.started_at.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S"), self.command)
    }

    /// Its submitted jobs that are neither finished nor cancelled.
    pub async fn unfinished(&self, store: &Store) -> Result<Vec<String>> {
        let mut left = Vec::new();
        for id in self.jobs.iter().flatten() {
            if is_unfinished(store, id).await? {
                left.push(id.clone());
            }
        }
        Ok(left)
    }
}

async fn is_unfinished(store: &Store, job_id: &str) -> Result<bool> {
    match jobs::progress(store, job_id).await {
        Ok(p) => Ok(!p.cancelled && !p.finished()),
        // The store was emptied since: nothing of that job can run.
        Err(_) if !store.exists(&fleetform_core::layout::job(job_id)).await? => Ok(false),
        Err(e) => Err(e),
    }
}

fn runs_dir(handles: &Handles) -> PathBuf {
    handles.state_dir.join("runs")
}

fn records(handles: &Handles) -> Vec<(PathBuf, RunRecord)> {
    let Ok(dir) = std::fs::read_dir(runs_dir(handles)) else { return Vec::new() };
    let mut found: Vec<(PathBuf, RunRecord)> = dir
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| Some((e.path(), serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?)))
        .collect();
    found.sort_by_key(|(_, r)| r.started_at);
    found
}

/// Refuse to start agents while a stopped run's job is unfinished, unless it is `mine`'s
/// (that command resumes it).
pub async fn refuse_interrupted(handles: &Handles, mine: Option<&RunIdentity>) -> Result<()> {
    let store = handles.store().await?;
    for (_, r) in records(handles) {
        if r.alive() || Some(&r.identity) == mine {
            continue;
        }
        let left = r.unfinished(&store).await?;
        if let Some(first) = left.first() {
            bail!(
                "job `{first}` of a `fleetform run` that was stopped ({}) is unfinished, and this command would run its \
                 tasks. Resume it with that same command, or drop it with `fleetform job cancel {first}`{}",
                r.describe(),
                if left.len() > 1 { format!(" (and {})", left[1..].join(", ")) } else { String::new() }
            );
        }
    }
    Ok(())
}

/// This run's record, kept up to date in its file.
pub struct Run {
    path: PathBuf,
    pub record: RunRecord,
    /// Job ids of a stopped run of the same command, by job file (what to resume).
    pub previous: Vec<Option<String>>,
}

/// What to do for one job file.
pub enum Reuse {
    /// Submit it.
    Submit,
    /// A stopped run of this command finished it: not again.
    Done(String),
    /// A stopped run of this command submitted it: follow that job.
    Resume(String),
}

impl Run {
    /// Start this run's record. A stopped run of the same command is taken over (its job
    /// ids are reused) or, with `restart`, its unfinished jobs are cancelled. A live run of
    /// the same command is refused: the two would run every task twice.
    pub async fn begin(handles: &Handles, store: &Store, identity: RunIdentity, restart: bool) -> Result<Run> {
        std::fs::create_dir_all(runs_dir(handles))?;
        let mut previous = vec![None; identity.jobs.len()];
        for (path, r) in records(handles).into_iter().filter(|(_, r)| r.identity == identity) {
            if r.alive() {
                bail!("the same command is already running ({}): wait for it, or stop it first", r.describe());
            }
            if restart {
                for id in r.unfinished(store).await? {
                    jobs::cancel(store, &id).await?;
                    eprintln!("cancelled {id} of the stopped run (--restart)");
                }
            } else {
                previous = r.jobs.clone();
            }
            let _ = std::fs::remove_file(path);
        }
        let command = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ");
        let record = RunRecord { writer: ProcessId::current(), started_at: chrono::Utc::now(), command, jobs: previous.clone(), identity };
        let path = runs_dir(handles).join(format!("{}-{}.json", record.started_at.format("%Y%m%d-%H%M%S%.3f"), record.writer.pid));
        let run = Run { path, record, previous };
        run.save()?;
        Ok(run)
    }

    fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.record)?).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).with_context(|| format!("cannot write {}", self.path.display()))
    }

    /// What a stopped run of this command left for job file `i`.
    pub async fn reuse(&self, store: &Store, i: usize) -> Result<Reuse> {
        let Some(id) = self.previous.get(i).cloned().flatten() else { return Ok(Reuse::Submit) };
        let Ok(p) = jobs::progress(store, &id).await else { return Ok(Reuse::Submit) };
        let published = p.failed.is_empty() && p.manifest.as_ref().is_some_and(|m| m.published());
        Ok(if p.cancelled {
            Reuse::Submit
        } else if !p.finished() {
            Reuse::Resume(id)
        } else if published {
            Reuse::Done(id)
        } else {
            Reuse::Submit // it failed: run it again, as a new job
        })
    }

    pub fn set_job(&mut self, i: usize, job_id: &str) -> Result<()> {
        self.record.jobs[i] = Some(job_id.to_string());
        self.save()
    }

    /// The jobs of this run that a stopped agent left unfinished.
    pub async fn unfinished(&self, store: &Store) -> Vec<String> {
        self.record.unfinished(store).await.unwrap_or_default()
    }

    /// The run is over: nothing to resume.
    pub fn end(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
