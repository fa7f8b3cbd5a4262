//! How a task's units become output rows, chosen once per task from its steps and its
//! input: unchanged parquet columns copied (passthrough), native steps batch by batch,
//! or python steps unit by unit.

use anyhow::{bail, Result};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::file::properties::WriterProperties;
use tokio::runtime::Handle;

use super::{JobContext, TaskFlags};
use crate::exec::task_log::AttemptLog;
use crate::input::source::{needed_columns, UnitSource};
use crate::input::units::UnitRead;
use crate::ops::steps::StageRun;
use crate::ops::{unify, Pipeline};
use crate::output::passthrough::PassthroughPlan;
use crate::output::writer::OpenChunk;

pub enum UnitPath<'a> {
    /// Native steps on parquet input, with columns the steps neither read nor change
    /// copied as compressed chunks.
    Passthrough { plan: PassthroughPlan, pipeline: &'a Pipeline },
    /// Steps with python: each unit gathered, its schema unified, then written.
    Python(Box<PythonUnits<'a>>),
    /// Native steps only: each batch through the pipeline into the Arrow writer.
    Native(&'a Pipeline),
}

impl<'a> UnitPath<'a> {
    /// The task's path; also limits the source to the columns that path needs.
    pub fn choose(job: &'a JobContext, source: &mut UnitSource, props: &WriterProperties, task_id: &'a str, log: &'a AttemptLog, flags: &'a TaskFlags) -> Result<UnitPath<'a>> {
        let native = job.stages.native_only();
        // A python step may change any column: passthrough only for native steps.
        let passthrough = match (&*source, native) {
            (UnitSource::Parquet(p), Some(pipeline)) if job.record.spec.output.passthrough => PassthroughPlan::new(&p.meta, pipeline, props),
            _ => None,
        };
        read_only_needed_columns(source, native, passthrough.as_ref())?;
        Ok(match (passthrough, native) {
            (Some(plan), Some(pipeline)) => UnitPath::Passthrough { plan, pipeline },
            _ if job.stages.has_python() => UnitPath::Python(Box::new(PythonUnits {
                run: StageRun::new(&job.stages, job.python.as_ref(), task_id, &log.output, &flags.stop),
                schema: None,
                job,
            })),
            (_, Some(pipeline)) => UnitPath::Native(pipeline),
            (_, None) => bail!("a job without python steps is one native pipeline"),
        })
    }

    /// Run unit `u` into the chunk; `unit` names it for the python steps' errors and log.
    pub fn run_unit(&mut self, source: &mut UnitSource, u: usize, unit: impl FnOnce() -> String, chunk: &mut OpenChunk, props: &WriterProperties, h: &Handle) -> Result<UnitRead> {
        match self {
            UnitPath::Passthrough { plan, pipeline } => {
                let last = source.units().is_some_and(|n| u + 1 >= n);
                let UnitSource::Parquet(p) = source else { bail!("passthrough reads parquet input only") };
                let w = chunk.passthrough(plan, props)?;
                let input = p.row_group(u, h)?;
                let rows = w.write_row_group(input, &p.meta, p.first + u, p.batch, pipeline)?;
                chunk.rows += rows;
                Ok(UnitRead { rows, skipped: Vec::new(), last })
            }
            UnitPath::Python(py) => py.run_unit(source, u, unit(), chunk, props, h),
            UnitPath::Native(pipeline) => {
                let read = source.read_unit(u, h, &mut |batch: RecordBatch| {
                    let out = pipeline.apply(batch)?;
                    if out.num_rows() == 0 {
                        return Ok(());
                    }
                    chunk.write_arrow(&out, props)
                })?;
                chunk.end_unit()?; // row-group boundary = unit boundary
                Ok(read)
            }
        }
    }
}

/// Fetch and decode only the input columns the task needs (see `row_groups`): for a
/// native pipeline, what its steps read and what it hands on; with passthrough, what it
/// decodes and what it copies; python steps may use any column, so they get all.
fn read_only_needed_columns(source: &mut UnitSource, native: Option<&Pipeline>, plan: Option<&PassthroughPlan>) -> Result<()> {
    let (UnitSource::Parquet(p), Some(pipeline)) = (source, native) else { return Ok(()) };
    let (fetch_roots, decode) = match plan {
        Some(plan) => {
            let mut fetch: Vec<usize> = plan.decoded().iter().copied().chain(plan.copied()).collect();
            fetch.sort_unstable();
            fetch.dedup();
            (fetch, plan.decoded().to_vec())
        }
        None => {
            let needed = needed_columns(&p.meta, pipeline)?;
            (needed.clone(), needed)
        }
    };
    let fetch = p.leaves_of(&fetch_roots);
    p.read_only(fetch, &decode);
    Ok(())
}

/// A task of a job with python steps: its stages, and the schema its output has had so
/// far (a task's output parquet has one schema).
pub struct PythonUnits<'a> {
    run: StageRun<'a>,
    schema: Option<SchemaRef>,
    job: &'a JobContext,
}

impl PythonUnits<'_> {
    /// Run unit `u` through the stages into the chunk. The unit's output is gathered
    /// first, so a column a python step typed `null` in one batch and `string` in another
    /// is written as `string`. Returns what the source read.
    fn run_unit(&mut self, source: &mut UnitSource, u: usize, unit: String, chunk: &mut OpenChunk, props: &WriterProperties, h: &Handle) -> Result<UnitRead> {
        let mut outs: Vec<RecordBatch> = Vec::new();
        self.run.start_unit(unit);
        let run = &mut self.run;
        let mut gather = |b| {
            outs.push(b);
            Ok(())
        };
        let read = source.read_unit(u, h, &mut |batch| run.push(batch, &mut gather))?;
        run.finish_unit(&mut gather)?;
        outs.retain(|b| b.num_rows() > 0);
        let Some(first) = outs.first() else { return Ok(read) };
        let job = self.job;
        let mut target = self.schema.clone().unwrap_or_else(|| first.schema());
        for b in &outs {
            target = unify::unify(&target, &b.schema()).map_err(|e| schema_error(job, &e))?;
        }
        if let Some(before) = &self.schema {
            if *before != target {
                let e = format!("earlier units wrote [{}], this one needs [{}]", unify::describe(before), unify::describe(&target));
                return Err(schema_error(job, &e));
            }
        }
        self.schema = Some(target.clone());
        for b in outs {
            chunk.write_arrow(&unify::conform(b, &target).map_err(|e| schema_error(job, &e))?, props)?;
        }
        chunk.end_unit()?; // row-group boundary = unit boundary
        Ok(read)
    }
}

/// The task's output would need two schemas: name the python steps and the fix.
fn schema_error(job: &JobContext, detail: &str) -> anyhow::Error {
    let steps: Vec<String> = job.stages.python_stages().map(|s| format!("steps[{}] {}", s.step_index, s.step.describe())).collect();
    anyhow::anyhow!(
        "the output of the python step(s) {} changes schema within the task: {detail}; a task's output has one schema: \
         give such columns one type in the function (e.g. `batch[\"x\"] = batch[\"x\"].astype(\"string\")`)",
        steps.join(", ")
    )
}
