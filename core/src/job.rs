//! The job spec (YAML): where data comes from, the steps applied to it, where it goes,
//! and how it is cut into tasks. Pure parsing and structural validation; checks that
//! need the data (input schema, regex compilation) run at submit time in the agent crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::{load_yaml, Collector, Diagnostic, Diagnostics, LocationIndex, Problem, SpecSource, YamlPath};
use crate::input::{CsvOptions, InputFormat, InputSchema, OnError};
use crate::resources::{Resources, CPU};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSpec {
    pub name: String,
    /// Where rows come from: parquet files, or the workshop's generator.
    pub input: InputSpec,
    pub output: OutputSpec,
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Rows per Arrow batch inside a row group (also the generator's row-group size).
    #[serde(default = "defaults::batch_size")]
    pub batch_size: usize,
    #[serde(default)]
    pub split: SplitSpec,
    #[serde(default = "defaults::resources")]
    pub resources: Resources,
    /// Failed attempts (not interruptions) before a task is dead-lettered.
    #[serde(default = "defaults::max_failures")]
    pub max_failures: u32,
}

mod defaults {
    use super::*;
    pub fn batch_size() -> usize {
        8192
    }
    pub fn resources() -> Resources {
        Resources::new().with(CPU, 1.0)
    }
    pub fn max_failures() -> u32 {
        3
    }
    pub fn rows_per_file() -> u64 {
        262_144
    }
    pub fn text_length() -> usize {
        1000
    }
    pub fn seed() -> u64 {
        42
    }
    /// 1 %: a few bad lines in a large file pass, a schema that does not fit does not.
    pub fn max_skipped_fraction() -> f64 {
        0.01
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputSpec {
    /// `file:///dir`, `s3://bucket/prefix` or a plain path: one file, or every input file
    /// below it (`*.parquet`, `*.jsonl`, `*.csv`..., optionally `.gz`/`.zst`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Instead of reading files, generate the workshop's synthetic text rows.
    #[serde(default)]
    pub generate: Option<GenerateSpec>,
    /// parquet, jsonl, json, csv or text; inferred from the file extensions when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<InputFormat>,
    /// Column types for jsonl/json/csv (instead of inferring them from the first lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<InputSchema>,
    /// What a malformed record does: `fail` the task (default) or `skip` it.
    #[serde(default)]
    pub on_error: OnError,
    /// With `on_error: skip`: the job fails (and publishes nothing) when more than this
    /// fraction of the records read were skipped. A schema that does not fit the data
    /// skips nearly everything; that must not pass as a success.
    #[serde(default = "defaults::max_skipped_fraction")]
    pub max_skipped_fraction: f64,
    /// With `on_error: skip`: at most this many skipped records (unset: no count limit,
    /// only the fraction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_skipped: Option<u64>,
    #[serde(default)]
    pub csv: CsvOptions,
}

/// The workshop's data generator: `id` int64, `text` of `text_length` characters drawn
/// from ASCII letters and space, `label` one of news/blog/forum/wiki.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateSpec {
    pub rows: u64,
    #[serde(default = "defaults::seed")]
    pub seed: u64,
    #[serde(default = "defaults::text_length")]
    pub text_length: usize,
    /// Fraction of characters replaced by punctuation, Hangul and emoji (0 = plain letters,
    /// as in the workshop). Makes the cleaning job do real work in benchmarks.
    #[serde(default)]
    pub noise: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutputSpec {
    pub uri: String,
    /// A new output file starts once this many rows were written (at a row-group
    /// boundary). A file never spans tasks: a task's rows cap it too (submit says so).
    /// Unset: 262144, or `min_rows_per_file` when that is larger (see `max_rows_per_file`).
    #[serde(default)]
    pub rows_per_file: Option<u64>,
    /// Ray's name: submit makes each task read at least this many rows, so that its
    /// files can hold that many (fewer tasks, bigger files). Filters can still make a
    /// file smaller.
    #[serde(default)]
    pub min_rows_per_file: Option<u64>,
    /// A new output file also starts once the current one holds this many bytes
    /// (compressed, checked at row-group boundaries), whichever limit comes first.
    #[serde(default)]
    pub target_file_bytes: Option<u64>,
    /// zstd level of the output parquet.
    #[serde(default = "OutputSpec::default_level")]
    pub zstd_level: i32,
    /// Copy columns the steps do not change as compressed column chunks (parquet input
    /// that is zstd already, no filter step) instead of decoding and encoding them again.
    #[serde(default = "OutputSpec::default_passthrough")]
    pub passthrough: bool,
}

impl OutputSpec {
    /// Rows at which a new file starts.
    pub fn max_rows_per_file(&self) -> u64 {
        self.rows_per_file.unwrap_or_else(|| defaults::rows_per_file().max(self.min_rows_per_file.unwrap_or(0)))
    }
    fn default_level() -> i32 {
        1
    }
    fn default_passthrough() -> bool {
        true
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Parquet input: input row groups per task.
    #[serde(default = "SplitSpec::default_row_groups")]
    pub row_groups_per_task: usize,
    /// Generator: rows per task.
    #[serde(default = "SplitSpec::default_rows")]
    pub rows_per_task: u64,
    /// Uncompressed jsonl/csv/text: bytes of a file per task, so one large file still
    /// spreads over every slot.
    #[serde(default = "SplitSpec::default_bytes_per_task")]
    pub bytes_per_task: u64,
    /// Uncompressed jsonl/csv/text: bytes per unit inside a task (the checkpoint step).
    #[serde(default = "SplitSpec::default_bytes_per_unit")]
    pub bytes_per_unit: u64,
}

impl SplitSpec {
    fn default_row_groups() -> usize {
        4
    }
    fn default_rows() -> u64 {
        131_072
    }
    /// 64 MiB: a few seconds of parsing per task, so a 5 GB file makes ~80 tasks.
    fn default_bytes_per_task() -> u64 {
        64 << 20
    }
    /// 8 MiB: a drained task loses under a second of work; small next to the task.
    fn default_bytes_per_unit() -> u64 {
        8 << 20
    }
}

impl Default for SplitSpec {
    fn default() -> Self {
        Self {
            row_groups_per_task: Self::default_row_groups(),
            rows_per_task: Self::default_rows(),
            bytes_per_task: Self::default_bytes_per_task(),
            bytes_per_unit: Self::default_bytes_per_unit(),
        }
    }
}

/// One step of the pipeline, written as a one-key mapping: `- lowercase: {column: text}`.
/// (Deserialized by hand: serde_norway reads externally tagged enums only from YAML
/// tags like `!lowercase`, which workshop users do not write.)
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    RegexReplace(RegexReplace),
    Lowercase(ColumnOp),
    Uppercase(ColumnOp),
    Strip(ColumnOp),
    CollapseWhitespace(ColumnOp),
    UnicodeNormalize(Normalize),
    Filter(Filter),
    DropColumns(DropColumns),
    Python(PythonStep),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexReplace {
    pub column: String,
    /// Python `re` syntax for str patterns; `\s` means what it means in Python.
    pub pattern: String,
    #[serde(default)]
    pub replacement: String,
    /// Write here instead of replacing `column`.
    #[serde(default)]
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnOp {
    pub column: String,
    #[serde(default)]
    pub output: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NormalForm {
    #[serde(rename = "NFC")]
    Nfc,
    #[serde(rename = "NFKC")]
    Nfkc,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    pub column: String,
    pub form: NormalForm,
    #[serde(default)]
    pub output: Option<String>,
}

/// Keep rows whose `column` length (in characters) is within [min_length, max_length].
/// Null values are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: String,
    #[serde(default)]
    pub min_length: Option<usize>,
    #[serde(default)]
    pub max_length: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropColumns {
    pub columns: Vec<String>,
}

/// A user's Python function, called on batches as Ray's `map_batches` calls it:
/// `fn(batch) -> batch`, the batch a `pandas.DataFrame`, a `pyarrow.Table` or a dict of
/// numpy arrays, the result any of these or a dict of columns. It runs in a
/// long-lived worker process per slot (node-agent `ops::python`) and may add, drop or
/// change columns and rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonStep {
    /// The Python source file, relative to the job file; shipped with the job.
    pub file: String,
    /// A function defined at the file's top level.
    pub function: String,
    #[serde(default)]
    pub batch_format: BatchFormat,
    /// Rows per call, as `map_batches(batch_size=...)`; a unit's last call may be shorter.
    #[serde(default = "PythonStep::default_batch_size")]
    pub batch_size: usize,
    /// The interpreter on the nodes (a name on PATH or a path); every python step of a
    /// job uses the same one (one worker per slot runs them all).
    #[serde(default = "PythonStep::default_interpreter")]
    pub interpreter: String,
    /// Fail the task when one call takes longer than this. None: no limit (a call still
    /// stops when the task loses its lease or the job is cancelled).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl PythonStep {
    /// Ray Data's default `batch_size` for `map_batches`.
    pub fn default_batch_size() -> usize {
        1024
    }
    fn default_interpreter() -> String {
        "python3".into()
    }
    /// `preprocess_text (preprocess.py)`: how messages name the step.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.function, self.file)
    }
}

/// What the function receives, as Ray's `batch_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchFormat {
    #[default]
    Pandas,
    Pyarrow,
    /// `{column: numpy.ndarray}`, built as Ray builds it (`to_numpy(zero_copy_only=False)`
    /// per column: strings and nested values as object arrays).
    Numpy,
}

impl BatchFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchFormat::Pandas => "pandas",
            BatchFormat::Pyarrow => "pyarrow",
            BatchFormat::Numpy => "numpy",
        }
    }
}

const STEP_NAMES: &[&str] = &[
    "regex_replace",
    "lowercase",
    "uppercase",
    "strip",
    "collapse_whitespace",
    "unicode_normalize",
    "filter",
    "drop_columns",
    "python",
];

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "a step such as `lowercase: {{column: text}}`")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Step, A::Error> {
                use serde::de::Error;
                let Some(name) = map.next_key::<String>()? else {
                    return Err(A::Error::custom("empty step: expected one of ".to_string() + &STEP_NAMES.join(", ")));
                };
                let step = match name.as_str() {
                    "regex_replace" => Step::RegexReplace(map.next_value()?),
                    "lowercase" => Step::Lowercase(map.next_value()?),
                    "uppercase" => Step::Uppercase(map.next_value()?),
                    "strip" => Step::Strip(map.next_value()?),
                    "collapse_whitespace" => Step::CollapseWhitespace(map.next_value()?),
                    "unicode_normalize" => Step::UnicodeNormalize(map.next_value()?),
                    "filter" => Step::Filter(map.next_value()?),
                    "drop_columns" => Step::DropColumns(map.next_value()?),
                    "python" => Step::Python(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, STEP_NAMES)),
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "one step per list item: `{extra}` must start its own item (`- {extra}: ...`)"
                    )));
                }
                Ok(step)
            }
        }
        d.deserialize_map(V)
    }
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::RegexReplace(_) => "regex_replace",
            Step::Lowercase(_) => "lowercase",
            Step::Uppercase(_) => "uppercase",
            Step::Strip(_) => "strip",
            Step::CollapseWhitespace(_) => "collapse_whitespace",
            Step::UnicodeNormalize(_) => "unicode_normalize",
            Step::Filter(_) => "filter",
            Step::DropColumns(_) => "drop_columns",
            Step::Python(_) => "python",
        }
    }
    /// Columns this step reads (none known for a python step: it may read any).
    pub fn reads(&self) -> Vec<&str> {
        match self {
            Step::RegexReplace(r) => vec![&r.column],
            Step::Lowercase(c) | Step::Uppercase(c) | Step::Strip(c) | Step::CollapseWhitespace(c) => vec![&c.column],
            Step::UnicodeNormalize(n) => vec![&n.column],
            Step::Filter(f) => vec![&f.column],
            Step::DropColumns(d) => d.columns.iter().map(|s| s.as_str()).collect(),
            Step::Python(_) => Vec::new(),
        }
    }
    /// The column this step writes, if any (new or replaced).
    pub fn writes(&self) -> Option<&str> {
        match self {
            Step::RegexReplace(r) => Some(r.output.as_deref().unwrap_or(&r.column)),
            Step::Lowercase(c) | Step::Uppercase(c) | Step::Strip(c) | Step::CollapseWhitespace(c) => {
                Some(c.output.as_deref().unwrap_or(&c.column))
            }
            Step::UnicodeNormalize(n) => Some(n.output.as_deref().unwrap_or(&n.column)),
            Step::Filter(_) | Step::DropColumns(_) | Step::Python(_) => None,
        }
    }
}

impl JobSpec {
    pub fn from_yaml(file: &str, src: &str) -> Result<JobSpec, Diagnostics> {
        let index = LocationIndex::build(src);
        let (spec, mut c): (JobSpec, Collector<'_>) = load_yaml(file, src, &index)?;
        spec.validate(&mut c);
        c.finish()?;
        Ok(spec)
    }

    /// Load a job file and apply `--set key=value` overrides (dotted paths into the YAML,
    /// e.g. `input.uri=file:///data`), before parsing so overrides are validated too.
    pub fn load(path: &std::path::Path, overrides: &[String]) -> Result<JobSpec, Diagnostics> {
        Self::load_with_source(path, overrides).map(|(spec, _)| spec)
    }

    /// [`JobSpec::load`], also returning the text it parsed, so that checks made later
    /// (against the data, the cluster) can point at file:line:column.
    pub fn load_with_source(path: &std::path::Path, overrides: &[String]) -> Result<(JobSpec, SpecSource), Diagnostics> {
        let file = path.display().to_string();
        let fail = |message: String| Diagnostics {
            file: file.clone(),
            items: vec![Diagnostic { path: YamlPath::root(), location: None, message }],
        };
        let src = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the job spec: {e}")))?;
        if overrides.is_empty() {
            return Self::from_yaml(&file, &src).map(|spec| (spec, SpecSource { file, src }));
        }
        crate::diag::refuse_deep_nesting(&file, &src)?;
        let mut value: serde_norway::Value = serde_norway::from_str(&src).map_err(|e| fail(format!("invalid YAML: {e}")))?;
        for o in overrides {
            apply_override(&mut value, o).map_err(fail)?;
        }
        let src = serde_norway::to_string(&value).map_err(|e| fail(e.to_string()))?;
        let file = format!("{file} (with --set)");
        Self::from_yaml(&file, &src).map(|spec| (spec, SpecSource { file, src }))
    }

    fn validate(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        if let Err(e) = check_job_name(&self.name) {
            c.error(root.key("name"), e);
        }
        self.validate_input(c);
        self.validate_sizes(c);
        if self.resources.cpu() <= 0.0 {
            c.error(root.key("resources"), "a task needs `CPU` greater than 0 (it occupies a slot)");
        }
        if self.max_failures == 0 {
            c.error(root.key("max_failures"), "must be at least 1");
        }
        self.validate_python(c);
        self.validate_filters(c);
    }

    fn validate_input(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        let fraction = self.input.max_skipped_fraction;
        if !(0.0..=1.0).contains(&fraction) {
            c.error(root.key("input").key("max_skipped_fraction"), format!("{fraction} is not a fraction: use a number from 0 to 1 (0.01 = 1 %)"));
        }
        match (&self.input.uri, &self.input.generate) {
            (None, None) => c.error(root.key("input"), "give `uri` (parquet files to read) or `generate`"),
            (Some(_), Some(_)) => c.error(root.key("input"), "give either `uri` or `generate`, not both"),
            (None, Some(g)) => {
                if g.rows == 0 {
                    c.error(root.key("input").key("generate").key("rows"), "must be at least 1");
                }
                if !(0.0..=1.0).contains(&g.noise) {
                    c.error(root.key("input").key("generate").key("noise"), "must be between 0 and 1");
                }
            }
            (Some(_), None) => {
                let i = &self.input;
                crate::input::validate_options(i.format, i.schema.as_ref(), i.on_error, &i.csv, c);
            }
        }
        if self.input.generate.is_some() && (self.input.format.is_some() || self.input.schema.is_some()) {
            let field = if self.input.format.is_some() { "format" } else { "schema" };
            c.error(root.key("input").key(field), "`format` and `schema` describe files read from `uri`, not `generate`");
        }
    }

    /// Batch, split and output sizes.
    fn validate_sizes(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        if self.batch_size == 0 {
            c.error(root.key("batch_size"), "must be at least 1");
        }
        if self.split.row_groups_per_task == 0 {
            c.error(root.key("split").key("row_groups_per_task"), "must be at least 1");
        }
        if self.split.rows_per_task == 0 {
            c.error(root.key("split").key("rows_per_task"), "must be at least 1");
        }
        if self.split.bytes_per_task == 0 {
            c.error(root.key("split").key("bytes_per_task"), "must be at least 1");
        }
        if self.split.bytes_per_unit == 0 {
            c.error(root.key("split").key("bytes_per_unit"), "must be at least 1");
        }
        if self.output.rows_per_file == Some(0) {
            c.error(root.key("output").key("rows_per_file"), "must be at least 1");
        }
        match (self.output.min_rows_per_file, self.output.rows_per_file) {
            (Some(0), _) => c.error(root.key("output").key("min_rows_per_file"), "must be at least 1"),
            (Some(min), Some(max)) if min > max => c.error(
                root.key("output").key("min_rows_per_file"),
                format!("is more than rows_per_file ({max}): files are cut at rows_per_file; raise it too"),
            ),
            _ => {}
        }
        if self.output.target_file_bytes.is_some_and(|b| b < 1 << 20) {
            c.error(root.key("output").key("target_file_bytes"), "must be at least 1048576 (1 MiB); parquet files smaller than that cost more to list and open than to read");
        }
        if !(1..=22).contains(&self.output.zstd_level) {
            c.error(root.key("output").key("zstd_level"), "must be between 1 and 22");
        }
    }

    fn validate_filters(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        for (i, step) in self.steps.iter().enumerate() {
            if let Step::Filter(f) = step {
                if f.min_length.is_none() && f.max_length.is_none() {
                    c.error(root.key("steps").index(i), "filter: give `min_length`, `max_length` or both");
                }
                if let (Some(a), Some(b)) = (f.min_length, f.max_length) {
                    if a > b {
                        c.error(root.key("steps").index(i), format!("filter: min_length ({a}) is greater than max_length ({b})"));
                    }
                }
            }
        }
    }

    fn validate_python(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
        let mut interpreter: Option<&str> = None;
        for (i, step) in self.steps.iter().enumerate() {
            let Step::Python(p) = step else { continue };
            let at = root.key("steps").index(i).key("python");
            if p.file.trim().is_empty() {
                c.error(at.key("file"), "give the Python file (relative to the job file)");
            }
            if !is_python_identifier(&p.function) {
                c.error(at.key("function"), format!("`{}` is not a Python function name", p.function));
            }
            if p.batch_size == 0 {
                c.error(at.key("batch_size"), "must be at least 1");
            }
            if p.timeout_seconds == Some(0) {
                c.error(at.key("timeout_seconds"), "must be at least 1 (leave it out for no limit)");
            }
            match interpreter {
                None => interpreter = Some(&p.interpreter),
                Some(first) if first != p.interpreter => c.error(
                    at.key("interpreter"),
                    format!("`{}` differs from an earlier python step's `{first}`: one worker per slot runs every python step of a job, so they share one interpreter", p.interpreter),
                ),
                Some(_) => {}
            }
        }
    }

    /// Does any step run in a Python worker?
    pub fn has_python(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Python(_)))
    }

    /// Check column names against an input schema, in step order (steps add and drop
    /// columns). Each problem points at the step's column field. A python step may make
    /// any columns, so the steps after the first one are not checked here: a missing
    /// column fails their task at run time with the columns the data has.
    pub fn check_columns(&self, input_columns: &[String]) -> Vec<Problem> {
        let mut cols: Vec<String> = input_columns.to_vec();
        let mut problems = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            if matches!(step, Step::Python(_)) {
                break;
            }
            let at = YamlPath::root().key("steps").index(i).key(step.name());
            for (j, col) in step.reads().into_iter().enumerate() {
                if !cols.iter().any(|c| c == col) {
                    let path = match step {
                        Step::DropColumns(_) => at.key("columns").index(j),
                        _ => at.key("column"),
                    };
                    problems.push(Problem::new(path, format!("column `{col}` does not exist; available: {}", cols.join(", "))));
                }
            }
            if let Some(w) = step.writes() {
                if !cols.iter().any(|c| c == w) {
                    cols.push(w.to_string());
                }
            }
            if let Step::DropColumns(d) = step {
                cols.retain(|c| !d.columns.contains(c));
            }
        }
        problems
    }

    pub fn is_generator(&self) -> bool {
        self.input.generate.is_some()
    }
}

/// A Python identifier, near enough (Python 3 allows letters of any script, `_`, digits
/// after the first character); the submit-time check parses the file for the exact rule.
/// The longest job name: the job id adds `-YYYYMMDD-HHMMSS-xxxx` and is one file name on
/// the nodes (255 bytes on Linux; a Hangul syllable takes 3).
pub const MAX_JOB_NAME_CHARS: usize = 64;

/// A job's name becomes its id's first part: a key in the store, a directory on each node,
/// a word in `job list`. Letters and digits of any script (`텍스트-정제`, `données`) and
/// `-`, `_`, `.` inside: nothing that a path, a URL or a shell line reads as syntax.
pub fn check_job_name(name: &str) -> Result<(), String> {
    let allowed = "letters and digits of any script, and `-`, `_`, `.` after the first character";
    if name.is_empty() {
        return Err(format!("is empty: give the job a name ({allowed})"));
    }
    if name.chars().count() > MAX_JOB_NAME_CHARS {
        return Err(format!("is {} characters long: at most {MAX_JOB_NAME_CHARS}", name.chars().count()));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        let composed = if ('\u{300}'..='\u{36f}').contains(&bad) { " (a combining accent: type the letter composed, NFC)" } else { "" };
        return Err(format!("`{}` has the character {bad:?}{composed}; a job name may have {allowed}", name.escape_debug()));
    }
    if !name.starts_with(char::is_alphanumeric) {
        return Err(format!("`{name}` must start with a letter or digit; a job name may have {allowed}"));
    }
    Ok(())
}

fn is_python_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// Set a dotted path (`output.uri`, `input.generate.rows`) in a YAML value; the value is
/// parsed as YAML so numbers stay numbers.
pub fn apply_override(root: &mut serde_norway::Value, assignment: &str) -> Result<(), String> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected key=value, e.g. output.uri=file:///tmp/out"))?;
    let value: serde_norway::Value =
        serde_norway::from_str(raw).unwrap_or_else(|_| serde_norway::Value::String(raw.to_string()));
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_mapping() {
            if cur.is_null() {
                *cur = serde_norway::Value::Mapping(Default::default());
            } else {
                return Err(format!("--set `{path}`: `{}` is not a mapping", parts[..i].join(".")));
            }
        }
        let m = cur.as_mapping_mut().expect("checked above");
        let key = serde_norway::Value::String(part.to_string());
        if i == parts.len() - 1 {
            m.insert(key, value);
            return Ok(());
        }
        cur = m.entry(key).or_insert(serde_norway::Value::Null);
    }
    Err(format!("--set `{assignment}`: empty key"))
}

/// The `--set` overrides that apply to one job file: unscoped ones (`key=value`) apply to
/// every job; `STEM:key=value` only to the job file named STEM(.yaml), so one `run`
/// can set the generator's row count without touching the cleaning job.
pub fn sets_for(path: &std::path::Path, set: &[String]) -> Vec<String> {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    set.iter()
        .filter_map(|s| {
            let eq = s.find('=').unwrap_or(s.len());
            match s[..eq].split_once(':') {
                Some((scope, rest)) => (scope == stem).then(|| format!("{rest}{}", &s[eq..])),
                None => Some(s.clone()),
            }
        })
        .collect()
}

/// A summary of per-label or per-key counts, used by the job report.
pub type Counts = BTreeMap<String, u64>;

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = include_str!("../../examples/jobs/clean-text.yaml");
    const GENERATE: &str = include_str!("../../examples/jobs/generate.yaml");

    #[test]
    fn examples_parse() {
        let clean = JobSpec::from_yaml("clean-text.yaml", CLEAN).unwrap();
        assert_eq!(clean.steps.len(), 2);
        assert!(matches!(&clean.steps[0], Step::RegexReplace(r) if r.output.as_deref() == Some("cleaned_text")));
        let generate = JobSpec::from_yaml("generate.yaml", GENERATE).unwrap();
        assert!(generate.is_generator());
        assert!(clean.check_columns(&["id".into(), "text".into(), "label".into()]).is_empty());
    }

    #[test]
    fn column_errors_name_the_step() {
        let clean = JobSpec::from_yaml("clean-text.yaml", CLEAN).unwrap();
        let problems: Vec<String> = clean.check_columns(&["id".into(), "body".into()]).iter().map(|p| p.to_string()).collect();
        assert_eq!(problems, vec!["steps[0].regex_replace.column: column `text` does not exist; available: id, body"]);
    }

    #[test]
    fn step_errors() {
        let src = "name: j\ninput: {uri: /x}\noutput: {uri: /y}\nsteps:\n  - lowercase: {colum: text}\n  - shout: {column: text}\n";
        let err = JobSpec::from_yaml("j.yaml", src).unwrap_err();
        let msgs = err.messages();
        assert_eq!(msgs.len(), 2, "{err}");
        assert!(msgs[0].starts_with("steps[0].lowercase.colum: unknown field `colum`, expected `column` or `output`"), "{err}");
        assert!(msgs[1].starts_with("steps[1]: unknown variant `shout`"), "{err}");
    }

    const PYTHON_CLEAN: &str = include_str!("../../examples/jobs/python-clean.yaml");

    #[test]
    fn python_steps_parse_and_hide_later_columns_from_the_submit_check() {
        let job = JobSpec::from_yaml("python-clean.yaml", PYTHON_CLEAN).unwrap();
        let Step::Python(p) = &job.steps[0] else { panic!("{:?}", job.steps) };
        assert_eq!((p.file.as_str(), p.function.as_str(), p.batch_format, p.batch_size), ("preprocess.py", "preprocess_text", BatchFormat::Pandas, 1024));
        assert_eq!((p.interpreter.as_str(), p.timeout_seconds), ("python3", None));
        assert!(job.has_python());
        // A native step after a python step may read what the function wrote.
        let src = "name: j\ninput: {uri: /x}\noutput: {uri: /y}\nsteps:\n  - lowercase: {column: text}\n  - python: {file: p.py, function: f}\n  - lowercase: {column: made_by_f}\n";
        let job = JobSpec::from_yaml("j.yaml", src).unwrap();
        assert!(job.check_columns(&["text".into()]).is_empty());
        assert_eq!(job.check_columns(&["body".into()]).len(), 1, "steps before it are still checked");
    }

    #[test]
    fn python_step_errors() {
        let src = "name: j\ninput: {uri: /x}\noutput: {uri: /y}\nsteps:\n  - python: {file: p.py, function: 'not a name', batch_size: 0}\n  - python: {file: p.py, function: g, interpreter: /opt/py/bin/python, batch_format: polars}\n";
        let msgs = JobSpec::from_yaml("j.yaml", src).unwrap_err().messages();
        assert_eq!(msgs.len(), 4, "{msgs:?}");
        assert!(msgs[0].starts_with("steps[0].python.function: `not a name` is not a Python function name"), "{msgs:?}");
        assert!(msgs[1].starts_with("steps[0].python.batch_size: must be at least 1"), "{msgs:?}");
        assert!(msgs[2].starts_with("steps[1].python.interpreter: `/opt/py/bin/python` differs from an earlier python step's `python3`"), "{msgs:?}");
        assert!(msgs[3].starts_with("steps[1].python.batch_format: unknown variant `polars`, expected one of `pandas`, `pyarrow`, `numpy`"), "{msgs:?}");
    }

    #[test]
    fn output_sizing_is_checked() {
        let src = "name: j\ninput: {uri: /x}\noutput:\n  uri: /y\n  rows_per_file: 1000\n  min_rows_per_file: 5000\n  target_file_bytes: 1000\n";
        let err = JobSpec::from_yaml("j.yaml", src).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("j.yaml:6:3: output.min_rows_per_file: is more than rows_per_file (1000)"), "{text}");
        assert!(text.contains("j.yaml:7:3: output.target_file_bytes: must be at least 1048576"), "{text}");
    }

    #[test]
    fn later_problems_point_at_their_lines() {
        let source = SpecSource { file: "clean-text.yaml".into(), src: CLEAN.into() };
        let clean = JobSpec::from_yaml(&source.file, &source.src).unwrap();
        let text = source.diagnostics(&clean.check_columns(&["id".into(), "body".into()])).to_string();
        let line = CLEAN.lines().position(|l| l.trim_start().starts_with("column: text")).unwrap() + 1;
        assert!(text.starts_with(&format!("clean-text.yaml:{line}:")), "{text}");
        assert!(text.ends_with("1 problem in clean-text.yaml"), "{text}");
    }

    #[test]
    fn job_names_of_any_script_pass_and_path_syntax_is_refused() {
        for ok in ["generate", "텍스트-정제", "données_v2.1", "x"] {
            assert_eq!(check_job_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "/srv/x", "../../../../x", "a<b", "a#b", "a{b", "a?b", "a\"b", "a\nb", "a b", ".hidden", "-x", "e\u{301}"] {
            let e = check_job_name(bad).unwrap_err();
            assert!(e.contains("letters and digits of any script") || e.contains("empty"), "{bad:?}: {e}");
        }
        assert!(check_job_name(&"가".repeat(65)).unwrap_err().contains("at most 64"));
        let src = "name: 'a/b'\ninput: {uri: /x}\noutput: {uri: /y}\n";
        let e = JobSpec::from_yaml("j.yaml", src).unwrap_err().to_string();
        assert!(e.contains("j.yaml:1:") && e.contains("name: `a/b` has the character '/'"), "{e}");
    }

    #[test]
    fn overrides() {
        let mut v: serde_norway::Value = serde_norway::from_str(GENERATE).unwrap();
        apply_override(&mut v, "output.uri=file:///tmp/x").unwrap();
        apply_override(&mut v, "input.generate.rows=10").unwrap();
        let spec: JobSpec = serde_norway::from_value(v).unwrap();
        assert_eq!(spec.output.uri, "file:///tmp/x");
        assert_eq!(spec.input.generate.unwrap().rows, 10);
        let mut v: serde_norway::Value = serde_norway::from_str(GENERATE).unwrap();
        assert!(apply_override(&mut v, "novalue").is_err());
    }

    #[test]
    fn a_scoped_override_applies_to_its_job_file_only() {
        let set = ["batch_size=10".to_string(), "generate:input.generate.rows=5".to_string(), "clean:x=1".to_string()];
        let path = std::path::Path::new("examples/jobs/generate.yaml");
        assert_eq!(sets_for(path, &set), ["batch_size=10", "input.generate.rows=5"]);
        assert_eq!(sets_for(std::path::Path::new("other.yaml"), &set), ["batch_size=10"]);
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;
    use crate::input::{ColumnType, InputFormat, OnError};

    fn errors(input: &str) -> Vec<String> {
        let src = format!("name: j\ninput:\n{input}\noutput: {{uri: /y}}\n");
        match JobSpec::from_yaml("j.yaml", &src) {
            Ok(_) => vec![],
            Err(e) => e.to_string().lines().map(|l| l.to_string()).collect(),
        }
    }

    #[test]
    fn input_options_parse_in_order() {
        let src = "name: j\ninput:\n  uri: s3://b/logs\n  format: jsonl\n  on_error: skip\n  schema: {text: string, id: int64, at: timestamp}\noutput: {uri: /y}\n";
        let spec = JobSpec::from_yaml("j.yaml", src).unwrap();
        assert_eq!(spec.input.format, Some(InputFormat::Jsonl));
        assert_eq!(spec.input.on_error, OnError::Skip);
        let schema = spec.input.schema.unwrap();
        assert_eq!(
            schema.0,
            vec![("text".into(), ColumnType::String), ("id".into(), ColumnType::Int64), ("at".into(), ColumnType::Timestamp)]
        );
        assert_eq!(spec.split.bytes_per_task, 64 << 20);
    }

    #[test]
    fn input_option_errors_point_at_the_field() {
        let e = errors("  uri: /x\n  format: xml");
        assert!(e[0].starts_with("j.yaml:4:3: input.format: unknown variant `xml`, expected one of `parquet`, `jsonl`, `json`, `csv`, `text`"), "{e:?}");
        let e = errors("  uri: /x\n  on_error: ignore");
        assert!(e[0].starts_with("j.yaml:4:3: input.on_error: unknown variant `ignore`, expected `fail` or `skip`"), "{e:?}");
        let e = errors("  uri: /x\n  schema: {id: integer}");
        assert!(
            e[0].starts_with("j.yaml:4:12: input.schema.id: invalid value: string \"integer\", expected a type (string, int64, int32"),
            "{e:?}"
        );
        let e = errors("  uri: /x\n  format: csv\n  csv: {delimiter: ';;', header: false}");
        assert!(e[0].starts_with("j.yaml:5:9: input.csv.delimiter: `;;` is not one ASCII character"), "{e:?}");
        let e = errors("  uri: /x\n  csv: {header: maybe}");
        assert!(e[0].starts_with("j.yaml:4:") && e[0].contains("input.csv.header"), "{e:?}");
        let e = errors("  uri: /x\n  format: text\n  schema: {text: string}");
        assert!(e[0].starts_with("j.yaml:5:3: input.schema: text input has one column"), "{e:?}");
        let e = errors("  uri: /x\n  format: parquet\n  on_error: skip");
        assert!(e[0].starts_with("j.yaml:5:3: input.on_error: applies to jsonl, json, csv and text input"), "{e:?}");
        let e = errors("  uri: /x\n  format: jsonl\n  csv: {delimiter: ';'}");
        assert!(e[0].starts_with("j.yaml:5:3: input.csv: applies to csv input"), "{e:?}");
        let e = errors("  generate: {rows: 10}\n  format: jsonl");
        assert!(e[0].starts_with("j.yaml:4:3: input.format: `format` and `schema` describe files"), "{e:?}");
        assert!(errors("  uri: /x\n  format: csv\n  csv: {delimiter: \"\\t\", header: false}").is_empty());
    }
}
