//! "Is the process that wrote this record still running?" A pid alone cannot say: after
//! the writer died its pid can be given to any new process, and a stopped run would look
//! alive for good (its job never resumed, its supervisor's agents listed). So records
//! carry the pid with the process's start time (`/proc/<pid>/stat`, field 22, in clock
//! ticks since boot), and a process counts only when both match.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    /// None in records written before the start time was kept: the pid alone decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
}

impl ProcessId {
    pub fn current() -> ProcessId {
        let pid = std::process::id();
        ProcessId { pid, start_ticks: start_ticks(pid) }
    }

    pub fn is_current(&self) -> bool {
        self.pid == std::process::id()
    }

    /// The process is running, and is the one the record was written by.
    pub fn is_running(&self) -> bool {
        let exists = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None).is_ok();
        exists && (self.start_ticks.is_none() || start_ticks(self.pid) == self.start_ticks)
    }
}

/// Field 22 of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// hold spaces and parentheses itself: the fields are counted after its last `)`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::ProcessId;

    #[test]
    fn a_pid_given_to_another_process_does_not_count_as_the_writer() {
        let me = ProcessId::current();
        assert!(me.start_ticks.is_some() && me.is_running());
        let reused = ProcessId { start_ticks: me.start_ticks.map(|t| t + 1), ..me };
        assert!(!reused.is_running(), "same pid, another start time: another process");
        let old_record = ProcessId { start_ticks: None, ..me };
        assert!(old_record.is_running());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let child_id = ProcessId { pid: child.id(), start_ticks: None };
        child.wait().unwrap();
        assert!(!child_id.is_running(), "a reaped process is gone");
    }
}
