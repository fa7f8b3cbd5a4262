//! A job's steps as stages: each run of native steps is one compiled `Pipeline`, each
//! python step a stage of its own that runs in the slot's worker process and sees
//! `batch_size` rows per call. Native and python steps mix in any order.

use anyhow::Result;
use fleetform_core::job::{PythonStep, Step};

use super::Pipeline;

pub enum Stage {
    Native(Pipeline),
    Python(PythonStage),
}

/// A python step and where it stands among the job's steps.
pub struct PythonStage {
    /// Index in the job's `steps` (for messages: `steps[2] (python)`).
    pub step_index: usize,
    /// Index among the job's python steps: the worker's function table.
    pub function_index: usize,
    pub step: PythonStep,
}

pub struct Stages {
    list: Vec<Stage>,
}

impl Stages {
    /// Compile every step; errors name the step.
    pub fn compile(steps: &[Step]) -> Result<Stages> {
        let mut list = Vec::new();
        let mut run_start = 0;
        let mut python = 0;
        for (i, step) in steps.iter().enumerate() {
            let Step::Python(p) = step else { continue };
            if run_start < i {
                list.push(Stage::Native(Pipeline::compile_numbered(
                    run_start,
                    &steps[run_start..i],
                )?));
            }
            list.push(Stage::Python(PythonStage {
                step_index: i,
                function_index: python,
                step: p.clone(),
            }));
            python += 1;
            run_start = i + 1;
        }
        if run_start < steps.len() || list.is_empty() {
            list.push(Stage::Native(Pipeline::compile_numbered(
                run_start,
                &steps[run_start..],
            )?));
        }
        Ok(Stages { list })
    }

    pub fn list(&self) -> &[Stage] {
        &self.list
    }

    /// The pipeline, when every step is native (then a batch is one `apply` away from
    /// the output, and passthrough may copy unchanged columns).
    pub fn native_only(&self) -> Option<&Pipeline> {
        match self.list.as_slice() {
            [Stage::Native(p)] => Some(p),
            _ => None,
        }
    }

    pub fn python_stages(&self) -> impl Iterator<Item = &PythonStage> {
        self.list.iter().filter_map(|s| match s {
            Stage::Python(p) => Some(p),
            Stage::Native(_) => None,
        })
    }

    pub fn has_python(&self) -> bool {
        self.python_stages().next().is_some()
    }

    /// Long free-text columns the native steps read or write (no parquet dictionary).
    pub fn text_columns(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .list
            .iter()
            .flat_map(|s| match s {
                Stage::Native(p) => p.text_columns(),
                Stage::Python(_) => Vec::new(),
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}
