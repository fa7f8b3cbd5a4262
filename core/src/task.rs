//! What travels through the queue and what is written to the cluster store about a task.
//! Task splits are fixed at submit time, so every retry does exactly the same work and
//! writes objects with the same names (docs/DESIGN.md, decision 7).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::input::{Compression, InputFormat};
use crate::resources::Resources;

/// A task's lease (the queue's visibility timeout) unless `FLEETFORM_LEASE_SECONDS` says
/// otherwise: renewed every third of it while the task runs, so a dead agent's tasks
/// come back within this time even when nobody notices the death.
pub const DEFAULT_LEASE_SECONDS: u64 = 60;

/// The unit of work: a range of *units* of one source. For parquet input a unit is an
/// input row group; for the generator it is one block of `batch_size` rows; for a byte
/// range a sub-range of `unit_bytes`; for a stream a block of `batch_size` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskSource {
    Parquet {
        uri: String,
        first_row_group: usize,
        end_row_group: usize,
        rows: u64,
        /// The file's footer length (metadata and its 8-byte tail), read at submit: a task
        /// on an object store GETs exactly those last bytes, once, and nothing it does not
        /// read. Absent in records of older submits (then a guess of 64 KiB is fetched).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        footer_bytes: Option<u64>,
    },
    Generate { first_row: u64, rows: u64 },
    /// Bytes [start, end) of an uncompressed jsonl/csv/text file. A record belongs to the
    /// unit (and so the task) that holds its first byte (Hadoop's rule): every record is
    /// read exactly once whatever the split sizes. `est_rows` is estimated from the bytes.
    ByteRange { uri: String, format: InputFormat, start: u64, end: u64, unit_bytes: u64, est_rows: u64 },
    /// A whole file read from its start: compressed, or a JSON array. Its number of units
    /// is known only at its end. `est_rows` is estimated from the file's size.
    Stream { uri: String, format: InputFormat, compression: Compression, bytes: u64, est_rows: u64 },
    /// Several small jsonl/json/csv/text files read whole, one unit per file (Spark's
    /// `maxPartitionBytes` packing): 10,000 one-row files are a few tasks, not 10,000.
    Files { format: InputFormat, files: Vec<WholeFile>, est_rows: u64 },
}

/// One file of a [`TaskSource::Files`] task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WholeFile {
    pub uri: String,
    pub compression: Compression,
    pub bytes: u64,
}

impl TaskSource {
    /// A short description for logs and failure reports ("file.parquet row groups 4..8").
    pub fn describe(&self) -> String {
        match self {
            TaskSource::Parquet { uri, first_row_group, end_row_group, .. } => {
                format!("{uri} row groups {first_row_group}..{end_row_group}")
            }
            TaskSource::Generate { first_row, rows } => format!("generated rows {first_row}..{}", first_row + rows),
            TaskSource::ByteRange { uri, start, end, .. } => format!("{uri} bytes {start}..{end}"),
            TaskSource::Stream { uri, .. } => format!("{uri} (whole file)"),
            TaskSource::Files { files, .. } => match (files.first(), files.last()) {
                (Some(first), Some(last)) if files.len() > 1 => format!("{} files, {} … {}", files.len(), first.uri, last.uri),
                (Some(only), _) => format!("{} (whole file)", only.uri),
                _ => "no files".into(),
            },
        }
    }
    /// The input file this task reads part of (None for generated rows and for a task
    /// of several whole files).
    pub fn input_file(&self) -> Option<&str> {
        match self {
            TaskSource::Parquet { uri, .. } | TaskSource::ByteRange { uri, .. } | TaskSource::Stream { uri, .. } => Some(uri),
            TaskSource::Generate { .. } | TaskSource::Files { .. } => None,
        }
    }
    /// The rows this task reads: exact for parquet and the generator, an estimate for
    /// the text formats (`rows_are_estimated`).
    pub fn rows(&self) -> u64 {
        match self {
            TaskSource::Parquet { rows, .. } | TaskSource::Generate { rows, .. } => *rows,
            TaskSource::ByteRange { est_rows, .. } | TaskSource::Stream { est_rows, .. } | TaskSource::Files { est_rows, .. } => {
                *est_rows
            }
        }
    }
    pub fn rows_are_estimated(&self) -> bool {
        matches!(self, TaskSource::ByteRange { .. } | TaskSource::Stream { .. } | TaskSource::Files { .. })
    }
}

/// The message body in the task queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    pub job_id: String,
    pub task_id: String,
    pub source: TaskSource,
    pub resources: Resources,
    /// Failed attempts so far. Interruptions (spot notice, SIGTERM drain) do not count:
    /// the task is re-sent with the same number.
    #[serde(default)]
    pub failures: u32,
}

/// One finished output object of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Object key relative to the job's output location.
    pub file: String,
    pub rows: u64,
    /// The task-relative units [first_unit, end_unit) this chunk holds.
    pub first_unit: usize,
    pub end_unit: usize,
}

/// `checkpoints/<task>.json`: the chunks a task has uploaded and where to resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub task_id: String,
    pub next_unit: usize,
    pub chunks: Vec<Chunk>,
    pub node_id: String,
    pub written_at: DateTime<Utc>,
    /// Rows read by the units before `next_unit` (None in checkpoints of older agents).
    #[serde(default)]
    pub rows_in: Option<u64>,
    /// Malformed records skipped before `next_unit` (`input.on_error: skip`).
    #[serde(default)]
    pub skipped: SkippedRecords,
}

/// Malformed records a task skipped (`input.on_error: skip`): how many, and the first
/// few messages (`FILE:LINE: error`) for the job's report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRecords {
    pub count: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

impl SkippedRecords {
    /// Examples kept per task: enough to see what is wrong, few enough for a small record.
    pub const EXAMPLES: usize = 3;

    pub fn add(&mut self, message: String) {
        self.count += 1;
        if self.examples.len() < Self::EXAMPLES {
            self.examples.push(message);
        }
    }
}

/// `done/<task>.json`, created with create-if-absent: the first writer wins and its
/// chunk list is the truth for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneRecord {
    pub task_id: String,
    pub node_id: String,
    pub chunks: Vec<Chunk>,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Units this attempt processed itself (the rest came from a checkpoint).
    pub units_processed: usize,
    pub units_from_checkpoint: usize,
    pub seconds: f64,
    pub finished_at: DateTime<Utc>,
    #[serde(default)]
    pub skipped: SkippedRecords,
}

/// `failed/<task>.json`: a dead-lettered task and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub task_id: String,
    pub input: String,
    pub error: String,
    pub failures: u32,
    pub node_id: String,
    pub at: DateTime<Utc>,
}

/// The `_SUCCESS` manifest: every output file and its row count. Readers trust it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub job_id: String,
    pub files: Vec<ManifestFile>,
    pub total_rows: u64,
    pub tasks: usize,
    pub failed_tasks: Vec<String>,
    pub finished_at: DateTime<Utc>,
    /// Malformed input records skipped (`input.on_error: skip`), over every task.
    #[serde(default)]
    pub skipped_records: u64,
    /// Why the job's output was not published (failed tasks, cancelled, superseded, too
    /// many skipped records); None when it was. A job that was not published leaves its
    /// output location as it was and writes no `_SUCCESS` there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_published: Option<String>,
}

impl Manifest {
    pub fn published(&self) -> bool {
        self.not_published.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub file: String,
    pub rows: u64,
}

/// A lease an agent holds, as its heartbeat lists it: when the agent is known dead (the
/// local supervisor saw its process exit; the reconciler saw its instance terminated),
/// whoever knows gives the message back at once instead of waiting out the lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldLease {
    /// `<job>/<task>`.
    pub task: String,
    /// The queue class the message came from.
    pub class: String,
    pub handle: String,
}

/// `nodes/<node>.json`: the heartbeat of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeHeartbeat {
    pub node_id: String,
    pub node_type: String,
    /// EC2 instance id, or `local-<pid>` on the local provider.
    pub instance: String,
    pub resources: Resources,
    pub slots: usize,
    pub busy_slots: usize,
    pub tasks_in_flight: Vec<String>,
    /// The leases behind `tasks_in_flight` (written as soon as a task starts).
    #[serde(default)]
    pub leases: Vec<HeldLease>,
    /// Why the node takes no new work: `spot-interruption`, `rebalance`, `sigterm`.
    pub draining: Option<String>,
    /// Scheduled maintenance events seen in IMDS (code and not-before time).
    #[serde(default)]
    pub scheduled_events: Vec<String>,
    pub last_work_at: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub tasks_done: u64,
    pub rows_done: u64,
    /// The agent has exited after draining (final heartbeat).
    #[serde(default)]
    pub stopped: bool,
    /// The node's `setup_commands` failed at boot: exit code and command (AWS nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_failed: Option<String>,
}

/// `jobs/<job>/job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    pub job_id: String,
    pub spec: crate::job::JobSpec,
    pub tasks: usize,
    pub total_rows: u64,
    pub queue_class: String,
    pub submitted_at: DateTime<Utc>,
    /// `total_rows` is estimated from input bytes (jsonl/json/csv/text input).
    #[serde(default)]
    pub rows_estimated: bool,
    /// The Arrow schema every task parses jsonl/json/csv input with (arrow-schema's serde
    /// form), fixed at submit from `input.schema` or inferred from the first lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<serde_json::Value>,
    /// The source files of the job's python steps, stored beside the record.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code: Vec<ShippedCode>,
}

/// A python step's file as submit stored it: nodes fetch `key` and check `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShippedCode {
    /// The step's `file`, as written in the job spec.
    pub file: String,
    /// Store key (`fleetform_core::layout::code`).
    pub key: String,
    /// Hex sha256 of the bytes.
    pub sha256: String,
}
