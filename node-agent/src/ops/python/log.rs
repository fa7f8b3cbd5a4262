//! What a task attempt's python steps printed or logged (the worker's `L` frames), kept
//! for `fleetform job logs`: at most `TASK_LOG_CAP` bytes per attempt, the rest counted
//! and said to be cut. The task saves it to the store in segments (`take_segment`), at
//! each checkpoint and at its end, so a retried or drained attempt keeps what it printed.

use std::sync::Mutex;

/// Output kept per task attempt. A print in a per-row loop writes a line per row; a task
/// of 100k rows would make megabytes that nobody reads, stored for every attempt.
pub const TASK_LOG_CAP: usize = 1 << 20;

#[derive(Default)]
pub struct TaskLog {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Kept, not yet saved.
    pending: String,
    /// Bytes kept so far (saved or pending).
    kept: usize,
    /// Bytes dropped beyond the cap, here or by the worker (characters, there).
    cut: u64,
    /// Segments taken so far: the next one's number.
    segments: u32,
    /// The closing note on the cut output was written.
    closed: bool,
}

impl TaskLog {
    pub fn new() -> TaskLog {
        TaskLog::default()
    }

    /// Output from the worker: `text`, and how much of it the worker already cut.
    pub fn append(&self, text: &str, cut_by_worker: u64) {
        let mut s = self.lock();
        // Once anything is cut, nothing after it is kept: the log is a prefix of the output.
        let room = if s.cut > 0 { 0 } else { TASK_LOG_CAP.saturating_sub(s.kept) };
        let keep = floor_char_boundary(text, room);
        let was_full = s.cut > 0;
        s.pending.push_str(&text[..keep]);
        s.kept += keep;
        s.cut += (text.len() - keep) as u64 + cut_by_worker;
        if !was_full && s.cut > 0 {
            // Said where it happens, so a reader knows the lines after it are missing.
            if !s.pending.is_empty() && !s.pending.ends_with('\n') {
                s.pending.push('\n');
            }
            s.pending.push_str(&format!(
                "[fleetform] output cut here: a task attempt keeps the first {} MiB of what its python steps print (all of it also goes to the node's agent log)\n",
                TASK_LOG_CAP >> 20
            ));
        }
    }

    /// The output not saved yet, with its segment number; `last` adds how much was cut
    /// (once). None when there is nothing new.
    pub fn take_segment(&self, last: bool) -> Option<(u32, String)> {
        let mut s = self.lock();
        if last && s.cut > 0 && !s.closed {
            s.closed = true;
            let cut = s.cut;
            if !s.pending.is_empty() && !s.pending.ends_with('\n') {
                s.pending.push('\n');
            }
            s.pending.push_str(&format!("[fleetform] {cut} bytes of output were cut\n"));
        }
        if s.pending.is_empty() {
            return None;
        }
        let seq = s.segments;
        s.segments += 1;
        Some((seq, std::mem::take(&mut s.pending)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The largest `n <= max` that ends a whole character of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_kept_up_to_the_cap_and_the_cut_is_said_where_and_how_much() {
        let log = TaskLog::new();
        assert!(log.take_segment(false).is_none(), "nothing printed, nothing saved");
        log.append("hello\n", 0);
        assert_eq!(log.take_segment(false), Some((0, "hello\n".to_string())));
        log.append(&"한".repeat(TASK_LOG_CAP / 3), 0); // 3 bytes each: fills to the cap, nearly
        log.append("x".repeat(100).as_str(), 7);
        let (seq, text) = log.take_segment(true).unwrap();
        assert_eq!(seq, 1);
        assert!(text.len() <= TASK_LOG_CAP + 300, "{}", text.len());
        assert!(text.contains("[fleetform] output cut here"), "the place of the cut is marked");
        let kept = 6 + text.split('\n').next().unwrap().len();
        let cut = (6 + 3 * (TASK_LOG_CAP / 3) + 100 + 7) - kept;
        assert!(text.ends_with(&format!("[fleetform] {cut} bytes of output were cut\n")), "{:?}", text.lines().last());
        assert!(log.take_segment(true).is_none(), "the note is written once");
    }
}
