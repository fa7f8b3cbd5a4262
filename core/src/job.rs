//! The job spec (YAML): where data comes from, the steps applied to it, where it goes,
//! and how it is cut into tasks. Pure parsing and structural validation; checks that
//! need the data (input schema, regex compilation) run at submit time in the agent crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::diag::{load_yaml, Collector, Diagnostic, Diagnostics, LocationIndex, YamlPath};
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
    /// A new output file starts once this many rows were written (at a row-group boundary).
    #[serde(default = "defaults::rows_per_file")]
    pub rows_per_file: u64,
    /// zstd level of the output parquet.
    #[serde(default = "OutputSpec::default_level")]
    pub zstd_level: i32,
    /// Copy columns the steps do not change as compressed column chunks (parquet input
    /// that is zstd already, no filter step) instead of decoding and encoding them again.
    #[serde(default = "OutputSpec::default_passthrough")]
    pub passthrough: bool,
}

impl OutputSpec {
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

const STEP_NAMES: &[&str] = &[
    "regex_replace",
    "lowercase",
    "uppercase",
    "strip",
    "collapse_whitespace",
    "unicode_normalize",
    "filter",
    "drop_columns",
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
        }
    }
    /// Columns this step reads.
    pub fn reads(&self) -> Vec<&str> {
        match self {
            Step::RegexReplace(r) => vec![&r.column],
            Step::Lowercase(c) | Step::Uppercase(c) | Step::Strip(c) | Step::CollapseWhitespace(c) => vec![&c.column],
            Step::UnicodeNormalize(n) => vec![&n.column],
            Step::Filter(f) => vec![&f.column],
            Step::DropColumns(d) => d.columns.iter().map(|s| s.as_str()).collect(),
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
            Step::Filter(_) | Step::DropColumns(_) => None,
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
        let file = path.display().to_string();
        let fail = |message: String| Diagnostics {
            file: file.clone(),
            items: vec![Diagnostic { path: YamlPath::root(), location: None, message }],
        };
        let src = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the job spec: {e}")))?;
        if overrides.is_empty() {
            return Self::from_yaml(&file, &src);
        }
        let mut value: serde_norway::Value = serde_norway::from_str(&src).map_err(|e| fail(format!("invalid YAML: {e}")))?;
        for o in overrides {
            apply_override(&mut value, o).map_err(fail)?;
        }
        let src = serde_norway::to_string(&value).map_err(|e| fail(e.to_string()))?;
        Self::from_yaml(&format!("{file} (with --set)"), &src)
    }

    fn validate(&self, c: &mut Collector<'_>) {
        let root = YamlPath::root();
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
        if self.output.rows_per_file == 0 {
            c.error(root.key("output").key("rows_per_file"), "must be at least 1");
        }
        if !(1..=22).contains(&self.output.zstd_level) {
            c.error(root.key("output").key("zstd_level"), "must be between 1 and 22");
        }
        if self.resources.cpu() <= 0.0 {
            c.error(root.key("resources"), "a task needs `CPU` greater than 0 (it occupies a slot)");
        }
        if self.max_failures == 0 {
            c.error(root.key("max_failures"), "must be at least 1");
        }
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

    /// Check column names against an input schema, in step order (steps add and drop
    /// columns). Each message names the step.
    pub fn check_columns(&self, input_columns: &[String]) -> Vec<String> {
        let mut cols: Vec<String> = input_columns.to_vec();
        let mut errors = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            for col in step.reads() {
                if !cols.iter().any(|c| c == col) {
                    errors.push(format!(
                        "steps[{i}] ({}): column `{col}` does not exist; available: {}",
                        step.name(),
                        cols.join(", ")
                    ));
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
        errors
    }

    pub fn is_generator(&self) -> bool {
        self.input.generate.is_some()
    }
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
        assert_eq!(
            clean.check_columns(&["id".into(), "body".into()]),
            vec!["steps[0] (regex_replace): column `text` does not exist; available: id, body"]
        );
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
        assert!(e[0].starts_with("j.yaml:4:") && e[0].contains("input.schema") && e[0].contains("unknown variant `integer`"), "{e:?}");
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
