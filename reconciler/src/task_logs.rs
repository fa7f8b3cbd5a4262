//! What a job's python steps printed or logged, per task attempt, as the agents save it
//! with the job (`jobs/<job>/logs/<task>/<attempt>/<seq>.log`, node-agent
//! `exec::task_log`): printed whole by `job logs`, followed as it comes by `run`. Lines
//! are prefixed by their task, as Ray prefixes a worker's lines with its task.

use std::collections::{BTreeMap, HashSet};

use anyhow::Result;
use fleetform_runtime::store::Store;
use fleetform_core::layout;

/// `run` looks for new output every this many progress polls (2 s at 250 ms): one LIST
/// of the job's logs each time, and a GET per new segment.
const FOLLOW_EVERY_POLLS: u32 = 8;

/// One saved segment of an attempt's output.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Segment {
    task: String,
    attempt: String,
    seq: String,
    key: String,
}

/// The job's segments, in task, attempt (start time) and segment order.
async fn segments(store: &Store, job: &str) -> Result<Vec<Segment>> {
    let prefix = layout::task_logs_prefix(job);
    let mut found: Vec<Segment> = store
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|key| {
            let rest = key.strip_prefix(&prefix)?;
            let mut parts = rest.splitn(3, '/');
            let (task, attempt, seq) = (parts.next()?, parts.next()?, parts.next()?);
            let seq = seq.strip_suffix(".log")?;
            Some(Segment { task: task.into(), attempt: attempt.into(), seq: seq.into(), key: key.clone() })
        })
        .collect();
    found.sort();
    Ok(found)
}

async fn text(store: &Store, key: &str) -> Result<String> {
    let bytes = store.get_bytes(key).await?.unwrap_or_default();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// `20261207T195501123Z-node-1` → `node node-1, started 2026-12-07 19:55:01.123 UTC`.
fn describe_attempt(attempt: &str) -> String {
    let at = |r: std::ops::Range<usize>| attempt.get(r).unwrap_or("?");
    match attempt.split_once('-') {
        Some((start, node)) if start.len() == 19 => format!(
            "on {node}, started {}-{}-{} {}:{}:{}.{} UTC",
            at(0..4), at(4..6), at(6..8), at(9..11), at(11..13), at(13..15), at(15..18)
        ),
        _ => attempt.to_string(),
    }
}

/// For `job logs`: every attempt's output, under a heading per attempt. Returns the
/// lines to print (none when the python steps printed nothing).
pub async fn all(store: &Store, job: &str) -> Result<Vec<String>> {
    let mut attempts: BTreeMap<(String, String), String> = BTreeMap::new();
    for s in segments(store, job).await? {
        let t = text(store, &s.key).await?;
        attempts.entry((s.task, s.attempt)).or_default().push_str(&t);
    }
    let mut lines = Vec::new();
    if attempts.is_empty() {
        return Ok(lines);
    }
    lines.push(String::new());
    lines.push("output of the python steps (print, logging), by task attempt:".into());
    let mut previous_task = String::new();
    let mut n = 0;
    for ((task, attempt), out) in attempts {
        n = if task == previous_task { n + 1 } else { 1 };
        lines.push(format!("{task} attempt {n} ({}):", describe_attempt(&attempt)));
        lines.extend(out.lines().map(|l| format!("{task}| {l}")));
        previous_task = task;
    }
    Ok(lines)
}

/// For `run`: the output saved since the last look, line by line.
pub struct Follower {
    job: String,
    printed: HashSet<String>,
    polls: u32,
}

impl Follower {
    pub fn new(job: &str) -> Follower {
        Follower { job: job.to_string(), printed: HashSet::new(), polls: 0 }
    }

    /// New lines, every `FOLLOW_EVERY_POLLS` calls, or now with `now` (the job ended:
    /// its tasks saved their output before committing). A store error shows nothing new:
    /// the job's progress matters more than its prints, and `job logs` has them later.
    pub async fn poll(&mut self, store: &Store, now: bool) -> Vec<String> {
        self.polls += 1;
        if !now && self.polls % FOLLOW_EVERY_POLLS != 1 {
            return Vec::new();
        }
        let Ok(found) = segments(store, &self.job).await else { return Vec::new() };
        let new: Vec<Segment> = found.into_iter().filter(|s| !self.printed.contains(&s.key)).collect();
        let mut lines = Vec::new();
        for s in new {
            let Ok(t) = text(store, &s.key).await else { break };
            lines.extend(t.lines().map(|l| format!("{}| {l}", s.task)));
            self.printed.insert(s.key);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_attempt_is_described_by_its_node_and_start() {
        assert_eq!(super::describe_attempt("20261207T195501123Z-local-1"), "on local-1, started 2026-12-07 19:55:01.123 UTC");
        assert_eq!(super::describe_attempt("odd"), "odd");
    }
}
