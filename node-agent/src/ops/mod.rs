//! The job's steps, compiled once per job and applied to each Arrow batch. Steps are
//! stateless per-batch functions (as Vector's FunctionTransform), so a task can stop at
//! any row-group boundary and another node can resume it.

pub mod pyre;
pub mod python;
mod stages;
pub(crate) mod steps;
pub mod strings;
pub(crate) mod unify;

pub use stages::{PythonStage, Stage, Stages};

use std::sync::Arc;

use anyhow::{anyhow, Result};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::{Field, Schema};
use fleetform_core::job::{NormalForm, Step};
use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use strings::map_strings;

/// A compiled step.
enum Op {
    /// `lower` set: a following `lowercase` of the output was fused in (one pass).
    Replace { column: String, output: String, replace: Replacer, lower: bool },
    Map { column: String, output: String, kind: MapKind },
    Filter { column: String, min: Option<usize>, max: Option<usize> },
    Drop { columns: Vec<String> },
}

#[derive(Clone, Copy)]
enum MapKind {
    Lower,
    Upper,
    Strip,
    Collapse,
    Nfc,
    Nfkc,
}

/// How a regex_replace runs: a pattern that is one character class (the workshop's
/// `[^가-힣a-zA-Z0-9\s]`) is a per-character table lookup; anything else uses the regex.
enum Replacer {
    Class { set: Box<CharSet>, replacement: String },
    Regex { re: Regex, replacement: String },
}

/// A set of characters: a table for ASCII, sorted ranges for the rest.
#[derive(Debug)]
struct CharSet {
    /// `stop[b]`: byte `b` needs a look (an ASCII member, or any non-ASCII byte).
    stop: [bool; 256],
    ranges: Vec<(char, char)>,
    /// Every non-ASCII character *not* in the set has no case.
    kept_beyond_ascii_caseless: bool,
}

impl CharSet {
    fn from_class(cls: &regex_syntax::hir::ClassUnicode) -> CharSet {
        let mut stop = [false; 256];
        stop[0x80..].fill(true);
        let mut ranges = Vec::new();
        for r in cls.ranges() {
            for c in r.start()..=r.end().min('\u{7f}') {
                stop[c as usize] = true;
            }
            if r.end() > '\u{7f}' {
                ranges.push((r.start().max('\u{80}'), r.end()));
            }
        }
        let kept_beyond_ascii_caseless = Self::compute_kept_caseless(&ranges);
        CharSet { stop, ranges, kept_beyond_ascii_caseless }
    }

    fn contains_non_ascii(&self, c: char) -> bool {
        self.ranges
            .binary_search_by(|(lo, hi)| {
                if *hi < c {
                    std::cmp::Ordering::Less
                } else if *lo > c {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    /// Copy `s` to `out`, putting `replacement` in place of every character in the set;
    /// with `lower`, the kept text is lowercased on the way (Python's `str.lower()`).
    fn replace_into(&self, s: &str, replacement: &str, lower: bool, out: &mut String) {
        // When every character that can survive outside ASCII has no case (the seed's
        // Hangul and whitespace), lowercasing is one ASCII pass over the finished value.
        let ascii_only = lower && self.kept_beyond_ascii_caseless && replacement.chars().all(strings::has_no_case);
        let start = out.len();
        let keep = |out: &mut String, piece: &str| {
            if lower && !ascii_only {
                strings::lower_into(piece, out)
            } else {
                out.push_str(piece)
            }
        };
        let bytes = s.as_bytes();
        let mut run = 0; // start of the pending run of kept characters
        let mut i = 0;
        loop {
            // Skip kept ASCII quickly: one table load per byte.
            while i < bytes.len() && !self.stop[bytes[i] as usize] {
                i += 1;
            }
            if i == bytes.len() {
                break;
            }
            let (hit, len) = if bytes[i] < 0x80 {
                (true, 1)
            } else {
                let c = s[i..].chars().next().expect("i is at a char boundary");
                (self.contains_non_ascii(c), c.len_utf8())
            };
            if hit {
                keep(out, &s[run..i]);
                keep(out, replacement);
                run = i + len;
            }
            i += len;
        }
        keep(out, &s[run..]);
        if ascii_only {
            out[start..].make_ascii_lowercase();
        }
    }

    /// Do all non-ASCII characters outside the set (the ones a replacement keeps) lack
    /// case? Checked once per job by walking the kept ranges, stopping at the first cased
    /// character.
    fn compute_kept_caseless(ranges: &[(char, char)]) -> bool {
        let mut next: u32 = 0x80;
        let mut gaps: Vec<(u32, u32)> = Vec::new();
        for (lo, hi) in ranges {
            if (*lo as u32) > next {
                gaps.push((next, *lo as u32 - 1));
            }
            next = next.max(*hi as u32 + 1);
        }
        if next <= 0x10FFFF {
            gaps.push((next, 0x10FFFF));
        }
        gaps.into_iter().all(|(a, b)| (a..=b).filter_map(char::from_u32).all(strings::has_no_case))
    }
}

impl Replacer {
    fn compile(pattern: &str, replacement: &str) -> Result<Replacer> {
        let translated = pyre::translate_pattern(pattern);
        let re = Regex::new(&translated).map_err(|e| anyhow!("pattern `{pattern}` does not compile: {e}"))?;
        let literal = !replacement.contains('\\');
        if literal {
            if let Ok(hir) = regex_syntax::parse(&translated) {
                if let regex_syntax::hir::HirKind::Class(regex_syntax::hir::Class::Unicode(cls)) = hir.kind() {
                    return Ok(Replacer::Class { set: Box::new(CharSet::from_class(cls)), replacement: replacement.to_string() });
                }
            }
        }
        let replacement = pyre::translate_replacement(replacement).map_err(|e| anyhow!(e))?;
        Ok(Replacer::Regex { re, replacement })
    }

    fn apply(&self, s: &str, lower: bool, out: &mut String) {
        match self {
            Replacer::Class { set, replacement } => set.replace_into(s, replacement, lower, out),
            Replacer::Regex { re, replacement } if lower => strings::lower_into(&re.replace_all(s, replacement.as_str()), out),
            Replacer::Regex { re, replacement } => out.push_str(&re.replace_all(s, replacement.as_str())),
        }
    }

    /// Can a following lowercase be applied piece by piece to what this replacer keeps?
    /// Not when Σ may survive: its lowercase depends on the letters around it.
    fn fusable_with_lower(&self) -> bool {
        match self {
            Replacer::Class { set, replacement } => !replacement.contains('\u{3a3}') && set.contains_non_ascii('\u{3a3}'),
            Replacer::Regex { .. } => false,
        }
    }
}

/// The compiled steps of a job.
pub struct Pipeline {
    ops: Vec<Op>,
}

impl Pipeline {
    /// Compile native steps; errors name the step (`steps[0] (regex_replace): ...`). A
    /// job with python steps is compiled by `Stages::compile`.
    pub fn compile(steps: &[Step]) -> Result<Pipeline> {
        Self::compile_numbered(0, steps)
    }

    /// Compile `steps`, the job's steps from index `first` on (for the messages).
    fn compile_numbered(first: usize, steps: &[Step]) -> Result<Pipeline> {
        let mut ops: Vec<Op> = Vec::with_capacity(steps.len());
        for (k, step) in steps.iter().enumerate() {
            let i = first + k;
            let op = Self::compile_step(step).map_err(|e| anyhow!("steps[{i}] ({}): {e}", step.name()))?;
            // `regex_replace` then `lowercase` of its output, in place: one pass (the
            // workshop's `lower(re.sub(...))`). The unlowered column is never visible.
            if let (Some(Op::Replace { output, replace, lower, .. }), Op::Map { column, output: out2, kind: MapKind::Lower }) = (ops.last_mut(), &op) {
                if !*lower && column == output && out2 == output && replace.fusable_with_lower() {
                    *lower = true;
                    continue;
                }
            }
            ops.push(op);
        }
        Ok(Pipeline { ops })
    }

    /// Does this step compile on its own (its regex, say)? For checks that report every
    /// step's problem, not the first.
    pub fn check_step(step: &Step) -> Result<()> {
        Self::compile_step(step).map(drop)
    }

    fn compile_step(step: &Step) -> Result<Op> {
        let map = |c: &fleetform_core::job::ColumnOp, kind| Op::Map {
            column: c.column.clone(),
            output: c.output.clone().unwrap_or_else(|| c.column.clone()),
            kind,
        };
        Ok(match step {
            Step::RegexReplace(r) => Op::Replace {
                column: r.column.clone(),
                output: r.output.clone().unwrap_or_else(|| r.column.clone()),
                replace: Replacer::compile(&r.pattern, &r.replacement)?,
                lower: false,
            },
            Step::Lowercase(c) => map(c, MapKind::Lower),
            Step::Uppercase(c) => map(c, MapKind::Upper),
            Step::Strip(c) => map(c, MapKind::Strip),
            Step::CollapseWhitespace(c) => map(c, MapKind::Collapse),
            Step::UnicodeNormalize(n) => Op::Map {
                column: n.column.clone(),
                output: n.output.clone().unwrap_or_else(|| n.column.clone()),
                kind: match n.form {
                    NormalForm::Nfc => MapKind::Nfc,
                    NormalForm::Nfkc => MapKind::Nfkc,
                },
            },
            Step::Filter(f) => Op::Filter { column: f.column.clone(), min: f.min_length, max: f.max_length },
            Step::DropColumns(d) => Op::Drop { columns: d.columns.clone() },
            Step::Python(_) => anyhow::bail!("a python step runs in a worker process: compile the job with `Stages::compile`"),
        })
    }

    /// Columns the steps read or write: long free text, where a parquet dictionary only
    /// costs time before it falls back to plain encoding.
    pub fn text_columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        for op in &self.ops {
            match op {
                Op::Replace { column, output, .. } | Op::Map { column, output, .. } => {
                    out.push(column.clone());
                    out.push(output.clone());
                }
                Op::Filter { column, .. } => out.push(column.clone()),
                Op::Drop { .. } => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Does any step drop or add rows? (Then output row groups differ from input ones.)
    pub fn changes_rows(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, Op::Filter { .. }))
    }

    /// Columns the steps write (new or replaced).
    pub fn written_columns(&self) -> Vec<String> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::Replace { output, .. } | Op::Map { output, .. } => Some(output.clone()),
                _ => None,
            })
            .collect()
    }

    /// Apply every step to a batch.
    pub fn apply(&self, mut batch: RecordBatch) -> Result<RecordBatch> {
        for op in &self.ops {
            batch = match op {
                Op::Replace { column, output, replace, lower } => {
                    let col = column_of(&batch, column)?;
                    let out = map_strings(&col, &mut |s, buf| replace.apply(s, *lower, buf))?;
                    set_column(&batch, output, out)?
                }
                Op::Map { column, output, kind } => {
                    let col = column_of(&batch, column)?;
                    let kind = *kind;
                    let out = map_strings(&col, &mut |s, buf| map_one(kind, s, buf))?;
                    set_column(&batch, output, out)?
                }
                Op::Filter { column, min, max } => {
                    let col = column_of(&batch, column)?;
                    let keep = length_mask(&col, *min, *max)?;
                    arrow_select::filter::filter_record_batch(&batch, &keep)?
                }
                Op::Drop { columns } => {
                    let keep: Vec<usize> = batch
                        .schema()
                        .fields()
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| !columns.contains(f.name()))
                        .map(|(i, _)| i)
                        .collect();
                    batch.project(&keep)?
                }
            };
        }
        Ok(batch)
    }
}

fn map_one(kind: MapKind, s: &str, out: &mut String) {
    match kind {
        MapKind::Lower => strings::lower_into(s, out),
        MapKind::Upper => strings::upper_into(s, out),
        MapKind::Strip => strings::strip_into(s, out),
        MapKind::Collapse => strings::collapse_whitespace_into(s, out),
        MapKind::Nfc | MapKind::Nfkc => {
            if s.is_ascii() {
                out.push_str(s); // ASCII is already in every normal form
            } else if matches!(kind, MapKind::Nfc) {
                out.extend(s.nfc());
            } else {
                out.extend(s.nfkc());
            }
        }
    }
}

fn column_of(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch
        .column_by_name(name)
        .cloned()
        .ok_or_else(|| anyhow!("column `{name}` is not in the data (columns: {})", column_names(batch).join(", ")))
}

fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch.schema().fields().iter().map(|f| f.name().clone()).collect()
}

/// Replace column `name`, or append it when new.
fn set_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> Result<RecordBatch> {
    let schema = batch.schema();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let field = Arc::new(Field::new(name, array.data_type().clone(), true));
    match fields.iter().position(|f| f.name() == name) {
        Some(i) => {
            fields[i] = field;
            columns[i] = array;
        }
        None => {
            fields.push(field);
            columns.push(array);
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())), columns)?)
}

/// Keep rows whose value length in characters (Python's `len`) is within bounds; nulls go.
fn length_mask(col: &ArrayRef, min: Option<usize>, max: Option<usize>) -> Result<BooleanArray> {
    let ok = |s: &str| {
        let n = if s.is_ascii() { s.len() } else { s.chars().count() };
        min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
    };
    let mut keep = Vec::with_capacity(col.len());
    strings::visit_strings(col, &mut |v| keep.push(v.is_some_and(ok)))
        .map_err(|_| anyhow!("filter needs a string column, found {}", col.data_type()))?;
    Ok(BooleanArray::from(keep))
}

#[cfg(test)]
mod tests;
