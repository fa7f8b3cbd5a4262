//! One local cluster per state directory at a time: `fleetform up` and `fleetform run`
//! hold an exclusive `flock` on `<state dir>/cluster.lock` for as long as their agents
//! run. Two commands started at the same moment cannot both get it (the kernel decides),
//! and a command that dies, even by `kill -9`, gives it back with its file descriptor.
//! The file says who holds it (pid, start time, command line), for the refusal message.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::cluster::Handles;

/// Who holds the lock, as its holder wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// `up` or `run`.
    pub kind: String,
    pub command: String,
}

impl Holder {
    fn of_this_process(kind: &str) -> Holder {
        let command = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" ");
        Holder { pid: std::process::id(), started_at: chrono::Utc::now(), kind: kind.to_string(), command }
    }
}

/// The held lock; dropping it releases it.
pub struct ClusterLock {
    _lock: Flock<File>,
}

/// The lock is held by another command.
#[derive(Debug)]
pub struct Taken {
    pub holder: Option<Holder>,
    pub cluster: String,
    pub path: PathBuf,
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(h) => write!(
                f,
                "another `fleetform {}` (pid {}, started {}: {}) is using the local cluster `{}` in this directory; \
                 wait for it or stop it (Ctrl-C in its terminal, or `kill {}`)",
                h.kind,
                h.pid,
                h.started_at.with_timezone(&chrono::Local).format("%H:%M:%S"),
                h.command,
                self.cluster,
                h.pid
            ),
            None => write!(f, "another fleetform command is using the local cluster `{}` in this directory (it holds {}); wait for it or stop it", self.cluster, self.path.display()),
        }
    }
}

impl std::error::Error for Taken {}

pub fn lock_file(handles: &Handles) -> PathBuf {
    handles.state_dir.join("cluster.lock")
}

/// Take the cluster's lock for this process (`kind`: `up` or `run`), without waiting.
/// Err(Taken) names the holder; other errors are the file's.
pub fn acquire(handles: &Handles, cluster: &str, kind: &str) -> Result<ClusterLock> {
    std::fs::create_dir_all(&handles.state_dir).with_context(|| format!("cannot create {}", handles.state_dir.display()))?;
    let path = lock_file(handles);
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, Errno::EWOULDBLOCK)) => return Err(Taken { holder: holder(handles), cluster: cluster.to_string(), path }.into()),
        Err((_, e)) => return Err(anyhow!("cannot lock {}: {e}", path.display())),
    };
    let me = serde_json::to_vec(&Holder::of_this_process(kind))?;
    lock.set_len(0).and_then(|_| lock.rewind()).and_then(|_| lock.write_all(&me)).and_then(|_| lock.flush()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(ClusterLock { _lock: lock })
}

/// Who holds the lock now, if it is held (the file of a holder that exited stays, unlocked).
pub fn holder(handles: &Handles) -> Option<Holder> {
    // The holder writes right after locking: a reader racing it may find the file empty.
    for _ in 0..20 {
        if let Some(h) = std::fs::read(lock_file(handles)).ok().and_then(|b| serde_json::from_slice(&b).ok()) {
            return Some(h);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}
