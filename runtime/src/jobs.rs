//! A job's lifecycle in the cluster store, for a job already planned (its tasks fixed by
//! the agent's planning API, `fleetform_agent::plan`): enqueue it (its record, its task
//! messages, its python files), progress, cancel, list, and finalization (the `_SUCCESS`
//! manifest and the commit protocol). Used by the `fleetform` CLI and by agents (whoever
//! commits the last task finalizes).

use std::collections::HashMap;

use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use fleetform_core::job::{JobSpec, Step};
use fleetform_core::layout;
use fleetform_core::queue::TaskQueue;
use fleetform_core::task::{DoneRecord, FailureRecord, JobRecord, Manifest, ManifestFile, ShippedCode, TaskMessage, TaskSource};
use futures::future::try_join_all;
use object_store::ObjectStoreExt;
use sha2::{Digest, Sha256};

use crate::location::Location;
use crate::queue::Queue;
use crate::store::{self as objects, Store};

/// A job checked against its data: URIs normalized, task splits fixed, the input's
/// columns known. What [`submit_checked`] enqueues and what `fleetform validate` reports on.
pub struct CheckedJob {
    pub spec: JobSpec,
    pub sources: Vec<TaskSource>,
    pub columns: Vec<String>,
    /// The schema every task of jsonl/json/csv/text input parses with (Arrow, serde form).
    pub input_schema: Option<serde_json::Value>,
    pub rows_estimated: bool,
    pub warnings: Vec<String>,
}

impl CheckedJob {
    /// What the output files will be, said before the job runs when the `rows_per_file`
    /// the user set asks for more rows than a task reads from an input it splits (a file
    /// never spans tasks; an input smaller than rows_per_file is not worth a word).
    pub fn file_size_notice(&self) -> Option<String> {
        let out = &self.spec.output;
        let wanted = out.rows_per_file?;
        let mut tasks_per_input: HashMap<Option<&str>, usize> = HashMap::new();
        for s in &self.sources {
            *tasks_per_input.entry(s.input_file()).or_default() += 1;
        }
        let largest_cut = self.sources.iter().filter(|s| tasks_per_input[&s.input_file()] > 1).map(|s| s.rows()).max()?;
        if wanted <= largest_cut {
            return None;
        }
        let advice = if self.spec.is_generator() { "split.rows_per_task" } else { "output.min_rows_per_file" };
        Some(format!(
            "{}: {} tasks, each writes files of at most {largest_cut} rows: rows_per_file ({wanted}) is more than a task \
             reads, and a file never spans tasks; for files of {wanted} rows set {advice}: {wanted} (fewer, larger tasks)",
            self.spec.name,
            self.sources.len(),
        ))
    }
}

/// Enqueue a job the planning API checked (`fleetform_agent::plan::check`), its python
/// files stored before its record, so no node ever sees a record whose code is missing.
pub async fn submit_checked(store: &Store, queue: &Queue, checked: CheckedJob, code: &[CodeFile]) -> Result<JobRecord> {
    let CheckedJob { spec, sources, input_schema, rows_estimated, warnings, .. } = checked;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let job_id = format!("{}-{}-{:04x}", spec.name, Utc::now().format("%Y%m%d-%H%M%S"), rand_u16());
    claim_output(store, &spec.output.uri, &job_id).await?;
    let code = store_code(store, &job_id, &spec, code).await?;
    let class = spec.resources.class().slug();
    let total_rows = sources.iter().map(|s| s.rows()).sum();
    let record = JobRecord {
        job_id: job_id.clone(),
        spec: spec.clone(),
        tasks: sources.len(),
        total_rows,
        queue_class: class.clone(),
        submitted_at: Utc::now(),
        code,
        rows_estimated,
        input_schema,
    };
    let messages: Vec<TaskMessage> = sources
        .into_iter()
        .enumerate()
        .map(|(i, source)| TaskMessage {
            job_id: job_id.clone(),
            task_id: layout::task_id(i),
            source,
            resources: spec.resources.clone(),
            failures: 0,
        })
        .collect();
    store.put_json(&layout::tasks(&job_id), &messages).await?;
    store.put_json(&layout::job(&job_id), &record).await?;
    queue.ensure(&class).await.map_err(|e| anyhow!("cannot prepare the `{class}` queue: {e}"))?;
    let bodies: Vec<String> = messages.iter().map(serde_json::to_string).collect::<Result<_, _>>()?;
    queue.send(&class, &bodies).await.map_err(|e| anyhow!("cannot enqueue the tasks of {job_id}: {e}"))?;
    Ok(record)
}

/// A python step's file as read for shipping with its job (the planning API reads and
/// checks them: `fleetform_agent::ops::python::ship`).
#[derive(Debug, Clone, PartialEq)]
pub struct CodeFile {
    /// The step's `file` as written in the job spec.
    pub file: String,
    pub bytes: Vec<u8>,
}

/// The hex SHA-256 of bytes: a shipped file's key in the store (checked again on the
/// node); the control plane names user data and artifacts by it too.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The base name a shipped file keeps in the store and on the node.
pub fn code_file_name(file: &str) -> &str {
    file.rsplit(['/', '\\']).next().filter(|n| !n.is_empty()).unwrap_or("code.py")
}

/// Put each python step's file in the store under `layout::code`; one entry per file.
async fn store_code(store: &Store, job_id: &str, spec: &JobSpec, code: &[CodeFile]) -> Result<Vec<ShippedCode>> {
    let mut shipped: Vec<ShippedCode> = Vec::new();
    for (i, step) in spec.steps.iter().enumerate() {
        let Step::Python(p) = step else { continue };
        if shipped.iter().any(|s| s.file == p.file) {
            continue;
        }
        let file = code.iter().find(|c| c.file == p.file).ok_or_else(|| {
            anyhow!("steps[{i}] (python): {} was not read for shipping: submit the job from its file (`fleetform submit -f CLUSTER JOB.yaml`)", p.file)
        })?;
        let sha256 = sha256_hex(&file.bytes);
        let key = layout::code(job_id, &sha256, code_file_name(&p.file));
        store.put_bytes(&key, file.bytes.clone()).await?;
        shipped.push(ShippedCode { file: p.file.clone(), key, sha256 });
    }
    Ok(shipped)
}

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() & 0xffff) as u16
}

/// Which job may publish into an output location: the one submitted last.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OutputClaim {
    job_id: String,
    output: String,
}

fn claim_key(output_uri: &str) -> String {
    layout::output_claim(&short_hash(output_uri))
}

/// A short, stable hash of a text (hex): names of claims and of published parts.
fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..6])
}

/// Claim `output_uri` for `job_id`. An unfinished job that held it is superseded: it is
/// cancelled (its queued tasks are dropped) and, should it finish anyway, it publishes
/// nothing; two jobs never publish into one output behind each other's back.
async fn claim_output(store: &Store, output_uri: &str, job_id: &str) -> Result<()> {
    let key = claim_key(output_uri);
    if let Some(old) = store.get_json::<OutputClaim>(&key).await? {
        let finished = store.exists(&layout::success(&old.job_id)).await? || store.exists(&layout::cancel(&old.job_id)).await?;
        if !finished && store.exists(&layout::job(&old.job_id)).await? {
            tracing::warn!(
                "job {} was still writing to {output_uri}: it is superseded by {job_id} (cancelled; it will publish nothing)",
                old.job_id
            );
            store.put_json(&layout::cancel(&old.job_id), &serde_json::json!({"cancelled_at": Utc::now(), "superseded_by": job_id})).await?;
        }
    }
    store.put_json(&key, &OutputClaim { job_id: job_id.to_string(), output: output_uri.to_string() }).await
}

/// Where a job stands, read from the store.
#[derive(Debug, Clone)]
pub struct JobProgress {
    pub record: JobRecord,
    pub done: Vec<String>,
    pub failed: Vec<FailureRecord>,
    pub cancelled: bool,
    pub manifest: Option<Manifest>,
}

impl JobProgress {
    pub fn finished(&self) -> bool {
        self.manifest.is_some() || self.done.len() + self.failed.len() >= self.record.tasks
    }
}

pub async fn progress(store: &Store, job_id: &str) -> Result<JobProgress> {
    let record: JobRecord = store
        .get_json(&layout::job(job_id))
        .await?
        .ok_or_else(|| anyhow!("no job `{job_id}` in {}; `fleetform job list` shows the jobs", store.uri()))?;
    let done = task_ids(&store.list(&layout::done_prefix(job_id)).await?);
    let failed_keys = store.list(&layout::failed_prefix(job_id)).await?;
    let failed = try_join_all(failed_keys.iter().map(|k| store.get_json::<FailureRecord>(k))).await?.into_iter().flatten().collect();
    let cancelled = store.exists(&layout::cancel(job_id)).await?;
    let manifest = store.get_json(&layout::success(job_id)).await?;
    Ok(JobProgress { record, done, failed, cancelled, manifest })
}

fn task_ids(keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter_map(|k| k.rsplit('/').next().and_then(|n| n.strip_suffix(".json")).map(|s| s.to_string()))
        .collect()
}

/// Write the job's manifest once every task is done or failed, then settle its output
/// (the commit protocol): a job whose every task succeeded, that was neither cancelled nor
/// superseded and skipped no more records than allowed publishes its staged parts into
/// the output location and writes `_SUCCESS` there last; any other job publishes nothing
/// and leaves the output as it was. The commit point is the decision in the store
/// (`layout::decision`, create-if-absent: the first finalizer's decision is the
/// decision); the store's `_SUCCESS` follows once the output is settled, so whoever reads
/// it ("finished") finds the output published. A later call finishes what a crash
/// between the two interrupted (idempotent).
pub async fn finalize(store: &Store, job_id: &str) -> Result<Option<Manifest>> {
    let p = progress(store, job_id).await?;
    if let Some(m) = p.manifest {
        return Ok(Some(m));
    }
    if p.done.len() + p.failed.len() < p.record.tasks {
        return Ok(None);
    }
    let manifest = match store.get_json::<Manifest>(&layout::decision(job_id)).await? {
        Some(decided) => decided,
        None => decide(store, &p).await?,
    };
    settle(store, &p.record, &manifest).await?;
    store.create_json(&layout::success(job_id), &manifest).await?;
    Ok(Some(manifest))
}

/// The job's manifest and whether it may publish, recorded once (create-if-absent): a
/// finalizer that loses the race takes the recorded decision.
async fn decide(store: &Store, p: &JobProgress) -> Result<Manifest> {
    let job_id = p.record.job_id.as_str();
    let keys: Vec<String> = p.done.iter().map(|t| layout::done(job_id, t)).collect();
    let records: Vec<DoneRecord> = try_join_all(keys.iter().map(|k| store.get_json::<DoneRecord>(k)))
        .await?
        .into_iter()
        .flatten()
        .collect();
    let tag = short_hash(job_id);
    let mut files: Vec<ManifestFile> = records
        .iter()
        .flat_map(|r| r.chunks.iter().map(|c| ManifestFile { file: layout::published_part(&tag, &c.file), rows: c.rows }))
        .collect();
    files.sort_by(|a, b| a.file.cmp(&b.file));
    let mut failed_tasks: Vec<String> = p.failed.iter().map(|f| f.task_id.clone()).collect();
    failed_tasks.sort();
    let mut manifest = Manifest {
        job_id: job_id.to_string(),
        total_rows: files.iter().map(|f| f.rows).sum(),
        files,
        tasks: p.record.tasks,
        failed_tasks,
        finished_at: Utc::now(),
        skipped_records: records.iter().map(|r| r.skipped.count).sum(),
        not_published: None,
    };
    manifest.not_published = why_not_published(store, p, &records, &manifest).await?;
    if !store.create_json(&layout::decision(job_id), &manifest).await? {
        manifest = store.get_json(&layout::decision(job_id)).await?.context("the job's decision vanished")?;
    }
    Ok(manifest)
}

/// Why a finished job may not publish its output, if it may not.
async fn why_not_published(store: &Store, p: &JobProgress, records: &[DoneRecord], m: &Manifest) -> Result<Option<String>> {
    let job_id = &p.record.job_id;
    if !m.failed_tasks.is_empty() {
        return Ok(Some(format!(
            "{} of {} tasks failed (dead-lettered after {} attempts)",
            m.failed_tasks.len(),
            m.tasks,
            p.record.spec.max_failures
        )));
    }
    if let Some(cancel) = store.get_json::<serde_json::Value>(&layout::cancel(job_id)).await? {
        return Ok(Some(match cancel["superseded_by"].as_str() {
            Some(by) => format!("superseded by job {by}, which writes to the same output"),
            None => "the job was cancelled".to_string(),
        }));
    }
    if let Some(claim) = store.get_json::<OutputClaim>(&claim_key(&p.record.spec.output.uri)).await? {
        if claim.job_id != *job_id {
            return Ok(Some(format!("superseded by job {}, which writes to the same output", claim.job_id)));
        }
    }
    Ok(too_many_skipped(&p.record.spec.input, records))
}

/// `input.on_error: skip` beyond `max_skipped_fraction` / `max_skipped`: the count, the
/// share and the first examples, quoted as the records are in the file.
fn too_many_skipped(input: &fleetform_core::job::InputSpec, records: &[DoneRecord]) -> Option<String> {
    let skipped: u64 = records.iter().map(|r| r.skipped.count).sum();
    if skipped == 0 {
        return None;
    }
    let read = skipped + records.iter().map(|r| r.rows_in).sum::<u64>();
    let share = skipped as f64 / read as f64;
    let over_count = input.max_skipped.is_some_and(|max| skipped > max);
    if share <= input.max_skipped_fraction && !over_count {
        return None;
    }
    let limit = match input.max_skipped {
        Some(max) if over_count => format!("input.max_skipped is {max}"),
        _ => format!("input.max_skipped_fraction is {}", input.max_skipped_fraction),
    };
    let examples: Vec<&str> = records.iter().flat_map(|r| r.skipped.examples.iter().map(String::as_str)).take(3).collect();
    Some(format!(
        "{skipped} of {read} records ({:.1} %) were malformed and skipped ({limit}); check input.schema and the format. \
         First ones: {}",
        share * 100.0,
        examples.join(" | ")
    ))
}

/// Finish what the manifest decided, idempotently: publish, or leave the output alone;
/// either way the job's staging directory goes.
async fn settle(store: &Store, record: &JobRecord, manifest: &Manifest) -> Result<()> {
    let output = Location::open(&store.conn, &record.spec.output.uri).await?;
    settle_into(&output, manifest).await
}

async fn settle_into(output: &Location, manifest: &Manifest) -> Result<()> {
    let staging = layout::staging_dir(&manifest.job_id);
    if manifest.published() {
        publish(output, &staging, manifest).await?;
    }
    for key in objects::list(output, &format!("{staging}/")).await? {
        objects::delete(output, &key).await?;
    }
    if let (Some(job_dir), Some(all)) = (output.local_path(&staging), output.local_path("_staging")) {
        // A directory store leaves the emptied directories behind; S3 has none.
        let _ = std::fs::remove_dir(job_dir);
        let _ = std::fs::remove_dir(all);
    }
    Ok(())
}

/// Move the staged parts into place, write `_SUCCESS` (the commit for readers of the
/// location), then remove the parts the new `_SUCCESS` does not name (the previous
/// output's, strays). A reader that trusts `_SUCCESS` sees the old complete output or the
/// new one, never a mix: the new parts have names of their own, and the old ones go only
/// after the new `_SUCCESS` is in place.
async fn publish(output: &Location, staging: &str, manifest: &Manifest) -> Result<()> {
    let current: Option<Manifest> = objects::get_json(output, "_SUCCESS").await.ok().flatten();
    if current.as_ref().is_some_and(|m| m.job_id != manifest.job_id && m.finished_at > manifest.finished_at) {
        // A later job's result is published there: a late or repeated finalize of this
        // one must never put an older result back over it.
        return Ok(());
    }
    let tag = short_hash(&manifest.job_id);
    for f in &manifest.files {
        let staged = layout::staged_part(&tag, &f.file);
        let from = output.key(&format!("{staging}/{staged}"));
        let to = output.key(&f.file);
        match output.store.rename(&from, &to).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) if output.store.head(&to).await.is_ok() => {} // moved before
            Err(e) => return Err(anyhow!("cannot publish {} into {}: {e}", f.file, output.uri)),
        }
    }
    if current.as_ref().is_none_or(|m| m.job_id != manifest.job_id) {
        objects::put_json(output, "_SUCCESS", manifest).await.context("cannot write the _SUCCESS manifest")?;
    }
    let keep: std::collections::HashSet<&str> = manifest.files.iter().map(|f| f.file.as_str()).collect();
    for key in objects::list(output, "").await? {
        if !key.contains('/') && key.starts_with("part-") && key.ends_with(".parquet") && !keep.contains(key.as_str()) {
            objects::delete(output, &key).await?;
        }
    }
    Ok(())
}

/// Mark a job cancelled: agents drop its queued tasks and stop running ones.
pub async fn cancel(store: &Store, job_id: &str) -> Result<()> {
    progress(store, job_id).await?; // the job must exist
    store.put_json(&layout::cancel(job_id), &serde_json::json!({"cancelled_at": Utc::now()})).await
}

/// Every job in the store, newest first.
pub async fn list(store: &Store) -> Result<Vec<JobRecord>> {
    let keys = store.list(layout::jobs_prefix()).await?;
    let job_keys: Vec<&String> = keys.iter().filter(|k| k.ends_with("/job.json")).collect();
    let mut jobs: Vec<JobRecord> =
        try_join_all(job_keys.iter().map(|k| store.get_json::<JobRecord>(k))).await?.into_iter().flatten().collect();
    jobs.sort_by_key(|j| std::cmp::Reverse(j.submitted_at));
    Ok(jobs)
}

#[cfg(test)]
#[path = "jobs_publish_tests.rs"]
mod publish_tests;
