//! Jobs in the cluster store: submit (fix the task splits, validate against the data,
//! enqueue), progress, cancel, and finalization (the `_SUCCESS` manifest). Used by the
//! `fleetform` CLI and by agents (whoever commits the last task finalizes).

use std::fs::File;

use anyhow::{anyhow, bail, Context, Result};
use chrono::Utc;
use fleetform_core::input::InputFormat;
use fleetform_core::job::JobSpec;
use fleetform_core::layout;
use fleetform_core::queue::TaskQueue;
use fleetform_core::task::{DoneRecord, FailureRecord, JobRecord, Manifest, ManifestFile, TaskMessage, TaskSource};
use futures::future::try_join_all;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
// Deprecated in parquet 60 in favour of a hand-written AsyncFileReader (arrow-rs#10308);
// it still works and is the least code until the replacement settles.
#[allow(deprecated)]
use parquet::arrow::async_reader::ParquetObjectReader;

use crate::input;
use crate::ops::Pipeline;
use crate::queue::Queue;
use crate::storage::{self, Location};
use crate::store::{self as objects, Store};

/// What submit learned about one parquet input file.
struct ParquetFooter {
    uri: String,
    /// Rows per row group; None when the footer could not be read.
    row_groups: Option<Vec<u64>>,
    columns: Vec<String>,
    error: Option<String>,
}

/// Validate a job against its data and enqueue its tasks. Returns the job record.
pub async fn submit(store: &Store, queue: &Queue, mut spec: JobSpec) -> Result<JobRecord> {
    Pipeline::compile(&spec.steps)?; // regexes compile; errors name the step
    spec.output.uri = storage::normalize_uri(&spec.output.uri)?;
    if let Some(uri) = &spec.input.uri {
        spec.input.uri = Some(storage::normalize_uri(uri)?);
    }
    let TaskPlan { sources, columns, input_schema, rows_estimated, warnings } = plan_tasks(&spec).await?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let problems = spec.check_columns(&columns);
    if !problems.is_empty() {
        bail!("job `{}` does not fit its input:\n  {}", spec.name, problems.join("\n  "));
    }
    let output = storage::open(&spec.output.uri).await?;
    if spec.input.uri.as_deref() == Some(output.uri.as_str()) {
        bail!("input and output are the same location ({}): the job would read its own output", output.uri);
    }
    clear_previous_output(&output).await?;

    let job_id = format!("{}-{}-{:04x}", spec.name, Utc::now().format("%Y%m%d-%H%M%S"), rand_u16());
    let class = spec.resources.class().slug();
    let total_rows = sources.iter().map(|s| s.rows()).sum();
    let record = JobRecord {
        job_id: job_id.clone(),
        spec: spec.clone(),
        tasks: sources.len(),
        total_rows,
        queue_class: class.clone(),
        submitted_at: Utc::now(),
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

fn rand_u16() -> u16 {
    (uuid::Uuid::new_v4().as_u128() & 0xffff) as u16
}

/// Remove what an earlier job left in this output location: its manifest and parts.
/// Only fleetform's own file names directly in the location are touched (never files in
/// subdirectories, which may be other jobs' outputs).
async fn clear_previous_output(output: &Location) -> Result<()> {
    for key in objects::list(output, "").await? {
        if key == "_SUCCESS" || (key.starts_with("part-") && key.ends_with(".parquet") && !key.contains('/')) {
            objects::delete(output, &key).await?;
        }
    }
    Ok(())
}

/// What submit fixed about a job's input: its tasks, its columns (for validation) and,
/// for jsonl/json/csv/text, the schema every task parses with.
pub struct TaskPlan {
    pub sources: Vec<TaskSource>,
    pub columns: Vec<String>,
    /// Arrow schema (serde form) for record formats; None for parquet and the generator.
    pub input_schema: Option<serde_json::Value>,
    /// The sources' row counts are estimates (from bytes), not exact.
    pub rows_estimated: bool,
    /// Worth telling the user, not worth failing for (fields the schema drops).
    pub warnings: Vec<String>,
}

/// Fix the task splits: parquet row-group ranges per file, byte ranges or whole files of
/// jsonl/json/csv/text, or generator row ranges.
pub async fn plan_tasks(spec: &JobSpec) -> Result<TaskPlan> {
    if let Some(g) = &spec.input.generate {
        let per = spec.split.rows_per_task;
        let sources = (0..g.rows.div_ceil(per))
            .map(|i| TaskSource::Generate { first_row: i * per, rows: per.min(g.rows - i * per) })
            .collect();
        let columns = crate::generate::schema().fields().iter().map(|f| f.name().clone()).collect();
        return Ok(TaskPlan { sources, columns, input_schema: None, rows_estimated: false, warnings: vec![] });
    }
    let uri = spec.input.uri.as_deref().ok_or_else(|| anyhow!("the job has no input"))?;
    let (loc, files, format) = input::plan::list_files(uri, spec.input.format).await?;
    if format != InputFormat::Parquet {
        let plan = input::plan::plan(spec, format, files).await?;
        let columns = plan.schema.fields().iter().map(|f| f.name().clone()).collect();
        let input_schema = Some(input::schema::to_record(&plan.schema)?);
        return Ok(TaskPlan { sources: plan.sources, columns, input_schema, rows_estimated: true, warnings: plan.warnings });
    }
    let (sources, columns) = plan_parquet(spec, uri, &loc, files).await?;
    Ok(TaskPlan { sources, columns, input_schema: None, rows_estimated: false, warnings: vec![] })
}

/// Parquet: row-group ranges of `split.row_groups_per_task`, from every file's footer.
async fn plan_parquet(spec: &JobSpec, uri: &str, loc: &Location, files: Vec<input::plan::InputFile>) -> Result<(Vec<TaskSource>, Vec<String>)> {
    let files = try_join_all(files.into_iter().map(|f| {
        let loc = loc.clone();
        async move { Ok::<_, anyhow::Error>(read_footer(&loc, &f.name).await) }
    }))
    .await?;
    let columns = files
        .iter()
        .find(|f| f.row_groups.is_some())
        .map(|f| f.columns.clone())
        .ok_or_else(|| anyhow!("none of the {} input files under {uri} is readable parquet: {}", files.len(), files[0].error.clone().unwrap_or_default()))?;
    let per = spec.split.row_groups_per_task;
    let mut sources = Vec::new();
    for f in files {
        match f.row_groups {
            // An unreadable file still becomes a task: it fails on its own, is reported
            // with its error, and does not sink the rest of the job.
            None => sources.push(TaskSource::Parquet { uri: f.uri, first_row_group: 0, end_row_group: 1, rows: 0 }),
            Some(rgs) => {
                let mut first = 0;
                while first < rgs.len() {
                    let end = (first + per).min(rgs.len());
                    sources.push(TaskSource::Parquet {
                        uri: f.uri.clone(),
                        first_row_group: first,
                        end_row_group: end,
                        rows: rgs[first..end].iter().sum(),
                    });
                    first = end;
                }
            }
        }
    }
    Ok((sources, columns))
}

#[allow(deprecated)]
async fn read_footer(loc: &Location, name: &str) -> ParquetFooter {
    let uri = format!("{}/{}", loc.uri, name);
    let meta = match &loc.local_dir {
        Some(dir) => {
            let path = dir.join(name);
            File::open(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).map_err(|e| e.to_string()))
        }
        None => {
            let mut reader = ParquetObjectReader::new(loc.store.clone(), loc.key(name));
            ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await.map_err(|e| e.to_string())
        }
    };
    match meta {
        Ok(m) => ParquetFooter {
            uri,
            row_groups: Some(m.metadata().row_groups().iter().map(|rg| rg.num_rows() as u64).collect()),
            columns: m.schema().fields().iter().map(|f| f.name().clone()).collect(),
            error: None,
        },
        Err(e) => ParquetFooter { uri, row_groups: None, columns: Vec::new(), error: Some(e) },
    }
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

/// Write the manifest once every task is done or failed. Idempotent: the first writer
/// wins (create-if-absent) and removes output files no manifest entry names (parts of
/// attempts that lost their lease). Returns the manifest when the job is finished.
pub async fn finalize(store: &Store, job_id: &str) -> Result<Option<Manifest>> {
    let p = progress(store, job_id).await?;
    if let Some(m) = p.manifest {
        return Ok(Some(m));
    }
    if p.done.len() + p.failed.len() < p.record.tasks {
        return Ok(None);
    }
    let keys: Vec<String> = p.done.iter().map(|t| layout::done(job_id, t)).collect();
    let records: Vec<DoneRecord> = try_join_all(keys.iter().map(|k| store.get_json::<DoneRecord>(k)))
        .await?
        .into_iter()
        .flatten()
        .collect();
    let mut files: Vec<ManifestFile> = records
        .iter()
        .flat_map(|r| r.chunks.iter().map(|c| ManifestFile { file: c.file.clone(), rows: c.rows }))
        .collect();
    files.sort_by(|a, b| a.file.cmp(&b.file));
    let mut failed_tasks: Vec<String> = p.failed.iter().map(|f| f.task_id.clone()).collect();
    failed_tasks.sort();
    let manifest = Manifest {
        job_id: job_id.to_string(),
        total_rows: files.iter().map(|f| f.rows).sum(),
        files,
        tasks: p.record.tasks,
        failed_tasks,
        finished_at: Utc::now(),
        skipped_records: records.iter().map(|r| r.skipped.count).sum(),
    };
    // Order matters: the store's manifest is what "finished" means to everyone, so the
    // output is complete (orphans gone, _SUCCESS written) before it appears. Finalizers
    // racing here compute the same file list from the same done records.
    let output = storage::open(&p.record.spec.output.uri).await?;
    let keep: std::collections::HashSet<&str> = manifest.files.iter().map(|f| f.file.as_str()).collect();
    for key in objects::list(&output, "").await? {
        if key.starts_with("part-") && !keep.contains(key.as_str()) {
            objects::delete(&output, &key).await?;
        }
    }
    objects::put_json(&output, "_SUCCESS", &manifest).await.context("cannot write the _SUCCESS manifest")?;
    if !store.create_json(&layout::success(job_id), &manifest).await? {
        return store.get_json(&layout::success(job_id)).await;
    }
    Ok(Some(manifest))
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
