//! Running a job's stages over a task's batches, unit by unit. Native stages apply to
//! each batch as it comes; a python stage gathers rows until it has its `batch_size` and
//! calls its function on exactly that many (Ray's `map_batches`). Rows never wait across
//! a unit boundary: at the end of a unit each python stage calls with what it holds, so a
//! unit's output is complete when the unit is, and the checkpoint after it stays true.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, Result};

use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};

use super::unify;
use crate::ops::python::{Checkout, TaskLog, WorkerPool};
use crate::ops::{PythonStage, Stage, Stages};

pub type Sink<'s> = dyn FnMut(RecordBatch) -> Result<()> + 's;

pub struct StageRun<'a> {
    stages: &'a [Stage],
    pool: Option<&'a WorkerPool>,
    worker: Option<Checkout<'a>>,
    task_id: &'a str,
    /// What the python steps print, for the task's log.
    log: &'a TaskLog,
    stop: &'a AtomicBool,
    /// Rows waiting at each stage (only python stages hold any).
    pending: Vec<Pending>,
    /// "unit 3 of t000001 (…)", for messages.
    unit: String,
}

#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    rows: usize,
    /// Rows of this unit already passed to the function (where the next call starts).
    called: usize,
}

impl<'a> StageRun<'a> {
    pub fn new(
        stages: &'a Stages,
        pool: Option<&'a WorkerPool>,
        task_id: &'a str,
        log: &'a TaskLog,
        stop: &'a AtomicBool,
    ) -> StageRun<'a> {
        let stages = stages.list();
        StageRun {
            stages,
            pool,
            worker: None,
            task_id,
            log,
            stop,
            pending: stages.iter().map(|_| Pending::default()).collect(),
            unit: String::new(),
        }
    }

    pub fn start_unit(&mut self, unit: String) {
        self.unit = unit;
        for p in &mut self.pending {
            debug_assert_eq!(p.rows, 0, "a unit's rows were all called at its end");
            p.called = 0;
        }
    }

    /// One batch from the source, through every stage; results go to `sink`.
    pub fn push(&mut self, batch: RecordBatch, sink: &mut Sink<'_>) -> Result<()> {
        self.push_at(0, batch, sink)
    }

    /// The unit's last rows: every python stage calls with what it holds, in order.
    pub fn finish_unit(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        for i in 0..self.stages.len() {
            let rows = self.pending[i].rows;
            if rows > 0 {
                let batches = self.take(i, rows);
                self.call(i, batches, sink)?;
            }
        }
        Ok(())
    }

    fn push_at(&mut self, i: usize, batch: RecordBatch, sink: &mut Sink<'_>) -> Result<()> {
        let stages = self.stages;
        let Some(stage) = stages.get(i) else {
            return sink(batch);
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        match stage {
            Stage::Native(p) => self.push_at(i + 1, p.apply(batch)?, sink),
            Stage::Python(py) => {
                let p = &mut self.pending[i];
                p.rows += batch.num_rows();
                p.batches.push(batch);
                while self.pending[i].rows >= py.step.batch_size {
                    let batches = self.take(i, py.step.batch_size);
                    self.call(i, batches, sink)?;
                }
                Ok(())
            }
        }
    }

    /// The first `n` rows waiting at stage `i`, as slices (no copy).
    fn take(&mut self, i: usize, n: usize) -> Vec<RecordBatch> {
        let p = &mut self.pending[i];
        let mut out = Vec::new();
        let mut need = n;
        while need > 0 {
            let b = p.batches.remove(0);
            if b.num_rows() <= need {
                need -= b.num_rows();
                out.push(b);
            } else {
                out.push(b.slice(0, need));
                p.batches.insert(0, b.slice(need, b.num_rows() - need));
                need = 0;
            }
        }
        p.rows -= n;
        out
    }

    fn call(&mut self, i: usize, batches: Vec<RecordBatch>, sink: &mut Sink<'_>) -> Result<()> {
        let stages = self.stages;
        let Stage::Python(stage) = &stages[i] else {
            unreachable!("only python stages hold rows")
        };
        let n: usize = batches.iter().map(|b| b.num_rows()).sum();
        let start = self.pending[i].called;
        self.pending[i].called += n;
        let rows = format!(
            "rows {start}..{} of {} (counted at the step's input)",
            start + n,
            self.unit
        );
        let (schema, batches) = one_schema(stage, batches, &rows)?;
        let (pool, task_id) = (
            self.pool
                .ok_or_else(|| anyhow!("a python step without a worker pool"))?,
            self.task_id,
        );
        let log = self.log;
        let worker = self
            .worker
            .get_or_insert_with(|| pool.checkout(task_id, log));
        let (_, out) = worker.call(stage, &schema, &batches, self.stop, &rows)?;
        for b in keep_untouched_types(&schema, &batches, out)? {
            self.push_at(i + 1, b, sink)?;
        }
        Ok(())
    }
}

/// Columns a python function handed back unchanged keep their input's type. pandas
/// retypes what it round-trips (a struct field that is null in every row of a call comes
/// back `null` or `double`), which must not fail a job on a column the function never
/// touched. Only for calls that kept their rows (else rows cannot be matched), and only
/// where the returned values, cast back, equal the input's.
fn keep_untouched_types(schema: &SchemaRef, input: &[RecordBatch], out: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let retyped = |b: &RecordBatch| {
        b.schema().fields().iter().any(|f| schema.field_with_name(f.name()).is_ok_and(|i| i.data_type() != f.data_type()))
    };
    let rows = |bs: &[RecordBatch]| bs.iter().map(|b| b.num_rows()).sum::<usize>();
    let Some(first) = out.first() else { return Ok(out) };
    let out_schema = first.schema();
    if !out.iter().any(retyped) || rows(input) != rows(&out) || out.iter().any(|b| b.schema() != out_schema) {
        return Ok(out);
    }
    let input = arrow_select::concat::concat_batches(schema, input)?;
    let returned = arrow_select::concat::concat_batches(&out_schema, &out)?;
    let mut fields = Vec::with_capacity(returned.num_columns());
    let mut columns = Vec::with_capacity(returned.num_columns());
    for (f, col) in out_schema.fields().iter().zip(returned.columns()) {
        let original = schema.field_with_name(f.name()).ok().zip(input.column_by_name(f.name()));
        let untouched = original.filter(|(field, values)| {
            field.data_type() != col.data_type()
                && arrow_cast::cast(col, field.data_type()).is_ok_and(|back| back.as_ref() == values.as_ref())
        });
        match untouched {
            Some((field, values)) => {
                fields.push(field.as_ref().clone());
                columns.push(values.clone());
            }
            None => {
                fields.push(f.as_ref().clone());
                columns.push(col.clone());
            }
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(fields, out_schema.metadata().clone()));
    Ok(vec![RecordBatch::try_new(schema, columns)?])
}

/// The slices of one call under one schema (an earlier python step may have typed a
/// column `null` in some of them).
fn one_schema(
    stage: &PythonStage,
    batches: Vec<RecordBatch>,
    rows: &str,
) -> Result<(arrow_schema::SchemaRef, Vec<RecordBatch>)> {
    let mut schema = batches[0].schema();
    for b in &batches[1..] {
        schema = unify::unify(&schema, &b.schema()).map_err(|e| {
            anyhow!(
                "steps[{}] (python): its input on {rows} has two schemas: {e}",
                stage.step_index
            )
        })?;
    }
    let batches = batches
        .into_iter()
        .map(|b| unify::conform(b, &schema))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!(e))?;
    Ok((schema, batches))
}
