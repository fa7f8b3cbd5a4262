//! The agent's planning API: check a job against its input's schema and data, and fix
//! its tasks (the parquet footers, the record formats' byte ranges and schemas, the
//! generator's row ranges), then hand the planned job to the runtime's lifecycle
//! (`fleetform_runtime::jobs::submit_checked`). Planning reads the input as the agent
//! does (`input::`) and compiles the steps as it runs them (`ops::`): it lives here, the
//! job's life in the store below, in the runtime.

use std::fs::File;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use fleetform_core::diag::{Problem, YamlPath};
use fleetform_core::input::InputFormat;
use fleetform_core::job::{JobSpec, Step};
use fleetform_core::task::{JobRecord, TaskSource};
use fleetform_runtime::jobs::{submit_checked, CheckedJob, CodeFile};
use fleetform_runtime::location::{self, Location, Overlap};
use fleetform_runtime::queue::Queue;
use fleetform_runtime::store::Store;
use fleetform_runtime::Connections;
use futures::future::try_join_all;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};

use crate::input::remote::RemoteFile;
use crate::input;
use crate::ops::Pipeline;

/// What submit learned about one parquet input file.
struct ParquetFooter {
    uri: String,
    /// Rows per row group; None when the footer could not be read.
    row_groups: Option<Vec<u64>>,
    columns: Vec<String>,
    error: Option<String>,
    /// The footer's length, metadata and tail (see `TaskSource::Parquet`).
    footer_bytes: Option<u64>,
}

/// Every problem that keeps a job from running, each pointing at its field (the caller
/// holding the job's text turns them into file:line:column with `SpecSource`).
#[derive(Debug)]
pub struct JobProblems(pub Vec<Problem>);

impl std::fmt::Display for JobProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the job cannot run:")?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for JobProblems {}

/// Check a job as submit does, reporting every problem at once: each step compiles
/// (regexes), the URIs are usable, the input is readable and has the columns the steps
/// read, and the job does not read its own output. The input opens through `conn`.
pub async fn check(conn: &Connections, mut spec: JobSpec) -> Result<CheckedJob, JobProblems> {
    let mut problems = check_without_data(&mut spec);
    let input_uri = YamlPath::root().key("input").key("uri");
    if problems.iter().any(|p| p.path == input_uri) {
        return Err(JobProblems(problems)); // no input to read
    }
    let TaskPlan { sources, columns, input_schema, rows_estimated, warnings } = match plan_tasks(conn, &spec).await {
        Ok(planned) => planned,
        Err(e) => {
            let at = if spec.is_generator() { YamlPath::root().key("input").key("generate") } else { input_uri };
            problems.push(Problem::new(at, fleetform_core::error_chain::render(e.as_ref())));
            return Err(JobProblems(problems));
        }
    };
    problems.extend(spec.check_columns(&columns));
    if problems.is_empty() {
        Ok(CheckedJob { spec, sources, columns, input_schema, rows_estimated, warnings })
    } else {
        Err(JobProblems(problems))
    }
}

/// The checks that need no data: steps compile, URIs are usable (and normalized in
/// `spec`), input and output differ. For a job whose input an earlier job writes.
pub fn check_without_data(spec: &mut JobSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    let steps = YamlPath::root().key("steps");
    for (i, step) in spec.steps.iter().enumerate() {
        // Python steps are checked against their file (ops::python::check_step).
        if matches!(step, Step::Python(_)) {
            continue;
        }
        if let Err(e) = Pipeline::check_step(step) {
            let at = steps.index(i).key(step.name());
            let at = if matches!(step, Step::RegexReplace(_)) { at.key("pattern") } else { at };
            problems.push(Problem::new(at, e.to_string()));
        }
    }
    let output = YamlPath::root().key("output").key("uri");
    match location::normalize_uri(&spec.output.uri) {
        Ok(uri) => spec.output.uri = uri,
        Err(e) => problems.push(Problem::new(output.clone(), e.to_string())),
    }
    if let Some(uri) = &spec.input.uri {
        match location::normalize_uri(uri) {
            Ok(uri) => spec.input.uri = Some(uri),
            Err(e) => problems.push(Problem::new(YamlPath::root().key("input").key("uri"), e.to_string())),
        }
    }
    if let Some(input) = &spec.input.uri {
        let why = match location::overlap(&spec.output.uri, input) {
            Some(Overlap::Same) => Some(format!("is the input location too ({input}): the job would replace the data it reads")),
            Some(Overlap::Inside) => Some(format!("is inside the input location ({input}): the next read of the input would take this output as input")),
            Some(Overlap::Contains) => Some(format!("contains the input location ({input}): publishing the output could remove the input")),
            None => None,
        };
        if let Some(why) = why {
            problems.push(Problem::new(output, format!("{why}; choose an output location outside it, e.g. a sibling directory")));
        }
    }
    problems
}

/// Validate a job against its data (read through the store's connections) and enqueue its
/// tasks. Returns the job record. A job with python steps goes through `submit_with_code`.
pub async fn submit(store: &Store, queue: &Queue, spec: JobSpec) -> Result<JobRecord> {
    submit_with_code(store, queue, spec, &[]).await
}

/// `submit`, storing the python steps' files (`ops::python::ship` reads them) with the job.
pub async fn submit_with_code(store: &Store, queue: &Queue, spec: JobSpec, code: &[CodeFile]) -> Result<JobRecord> {
    let checked = check(&store.conn, spec).await?;
    submit_checked(store, queue, checked, code).await
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
pub async fn plan_tasks(conn: &Connections, spec: &JobSpec) -> Result<TaskPlan> {
    if let Some(g) = &spec.input.generate {
        let per = spec.split.rows_per_task.max(spec.output.min_rows_per_file.unwrap_or(0));
        let sources = (0..g.rows.div_ceil(per))
            .map(|i| TaskSource::Generate { first_row: i * per, rows: per.min(g.rows - i * per) })
            .collect();
        let columns = crate::input::generate::schema().fields().iter().map(|f| f.name().clone()).collect();
        return Ok(TaskPlan { sources, columns, input_schema: None, rows_estimated: false, warnings: vec![] });
    }
    let uri = spec.input.uri.as_deref().ok_or_else(|| anyhow!("the job has no input"))?;
    let (loc, files, format) = input::plan::list_files(conn, uri, spec.input.format).await?;
    if format != InputFormat::Parquet {
        let plan = input::plan::plan(conn, spec, format, files).await?;
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
    let min_rows = spec.output.min_rows_per_file.unwrap_or(0);
    let mut sources = Vec::new();
    for f in files {
        match f.row_groups {
            // An unreadable file still becomes a task: it fails on its own, is reported
            // with its error, and does not sink the rest of the job.
            None => sources.push(TaskSource::Parquet { uri: f.uri, first_row_group: 0, end_row_group: 1, rows: 0, footer_bytes: None }),
            Some(rgs) => {
                let mut first = 0;
                while first < rgs.len() {
                    let mut end = (first + per).min(rgs.len());
                    // min_rows_per_file: whole row groups until the task reads that many.
                    while end < rgs.len() && rgs[first..end].iter().sum::<u64>() < min_rows {
                        end += 1;
                    }
                    sources.push(TaskSource::Parquet {
                        uri: f.uri.clone(),
                        first_row_group: first,
                        end_row_group: end,
                        rows: rgs[first..end].iter().sum(),
                        footer_bytes: f.footer_bytes,
                    });
                    first = end;
                }
            }
        }
    }
    Ok((sources, columns))
}

async fn read_footer(loc: &Location, name: &str) -> ParquetFooter {
    let uri = format!("{}/{}", loc.uri, name);
    let meta = match &loc.local_dir {
        Some(dir) => {
            let path = dir.join(name);
            File::open(&path).map_err(|e| format!("{e:#}")).and_then(|f| {
                let meta = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).map_err(|e| e.to_string())?;
                Ok((meta, local_footer_bytes(&f).ok()))
            })
        }
        None => match RemoteFile::open(loc.store.clone(), loc.input_key(name), &uri, None).await {
            Ok((file, meta)) => ArrowReaderMetadata::try_new(Arc::new(meta), ArrowReaderOptions::new())
                .map(|m| (m, Some(file.footer_bytes())))
                .map_err(|e| e.to_string()),
            Err(e) => Err(fleetform_core::error_chain::render(e.as_ref())),
        },
    };
    match meta {
        Ok((m, footer_bytes)) => ParquetFooter {
            uri,
            row_groups: Some(m.metadata().row_groups().iter().map(|rg| rg.num_rows() as u64).collect()),
            columns: m.schema().fields().iter().map(|f| f.name().clone()).collect(),
            error: None,
            footer_bytes,
        },
        Err(e) => ParquetFooter { uri, row_groups: None, columns: Vec::new(), error: Some(e), footer_bytes: None },
    }
}

/// A local parquet file's footer length, from its last 8 bytes.
fn local_footer_bytes(f: &File) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    let mut last8 = [0u8; 8];
    f.read_exact_at(&mut last8, len.saturating_sub(8))?;
    let tail = parquet::file::metadata::FooterTail::try_new(&last8).map_err(std::io::Error::other)?;
    Ok(tail.metadata_length() as u64 + 8)
}
