//! One Python worker process: `runner.py` under the job's interpreter, fed batches on its
//! stdin, answering on its stdout; its stderr (the user's prints, warnings) goes to the
//! agent's log, each line prefixed with the task it is running for, and what the user's
//! code printed during a call also comes back as a frame ahead of the reply, for the
//! task's log (`TaskLog`). A reader thread turns
//! stdout into frames, so a call can wait for its reply while watching the task's stop
//! flag and the step's timeout.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, BufWriter};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::Serialize;

use super::log::TaskLog;
use super::protocol::{self, Frame};

/// How often a waiting call looks at the stop flag and the clock: a lost lease or a
/// cancel stops the worker within this, at the cost of a wake-up per interval.
const POLL: Duration = Duration::from_millis(100);
/// Pipe buffers on the agent's side: a batch of 1024 rows of 1 KB text is 1 MB.
const PIPE_BUFFER: usize = 1 << 20;
/// Lines of the worker's stderr kept for the message when it dies.
const STDERR_TAIL_LINES: usize = 20;
/// After the worker's stdout closes, how long to wait for its exit status before
/// killing it (a dying interpreter flushes and exits within milliseconds).
const EXIT_WAIT: Duration = Duration::from_secs(2);

/// What a worker is started with: the interpreter and the job's functions.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub interpreter: String,
    /// `runner.py`, written once per node to its spill directory.
    pub runner: std::path::PathBuf,
    pub functions: Vec<FunctionSpec>,
    /// For messages: "python3 not found on node X".
    pub node_id: String,
}

/// One python step as the worker loads it.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSpec {
    /// The shipped file on this node.
    pub path: String,
    /// The file as the job names it: tracebacks show this name.
    pub display: String,
    pub function: String,
    pub batch_format: &'static str,
}

#[derive(Debug)]
pub enum CallError {
    /// The process died (exit status and stderr tail): a new worker may retry the batch.
    Died(String),
    /// The function raised or returned something unusable: its message and traceback.
    Python { message: String, traceback: String },
    /// The call ran past the step's `timeout_seconds`; the worker was killed.
    TimedOut(Duration),
    /// The task was told to stop (lease lost, job cancelled); the worker was killed.
    Stopped,
    /// Anything else (the worker could not start, a reply that is not Arrow).
    Other(anyhow::Error),
}

pub struct PythonWorker {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    replies: Receiver<io::Result<Frame>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_done: Receiver<()>,
    task: Arc<Mutex<String>>,
    /// "python 3.11.7, pyarrow 26.0.1, pandas 3.1.1", from the ready frame.
    pub versions: String,
}

impl PythonWorker {
    /// Start a worker and wait until it has loaded every function.
    pub fn start(
        cfg: &WorkerConfig,
        task: &str,
        log: &TaskLog,
        stop: &AtomicBool,
        limit: Option<Duration>,
    ) -> Result<PythonWorker, CallError> {
        let mut child = Command::new(&cfg.interpreter)
            .arg(&cfg.runner)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CallError::Other(spawn_error(cfg, e)))?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (Some(stdin), Some(stdout), Some(stderr)) = (stdin, stdout, stderr) else {
            unreachable!("all three are piped above")
        };
        let task = Arc::new(Mutex::new(task.to_string()));
        let (stderr_tail, stderr_done) = log_stderr(stderr, child.id(), task.clone());
        let replies = read_replies(stdout);
        let mut w = PythonWorker {
            child,
            stdin: BufWriter::with_capacity(PIPE_BUFFER, stdin),
            replies,
            stderr_tail,
            stderr_done,
            task,
            versions: String::new(),
        };
        let init = serde_json::json!({ "functions": cfg.functions });
        w.send(protocol::INIT, &[init.to_string().as_bytes()])?;
        let ready = w.reply(log, stop, limit)?;
        if ready.kind != protocol::READY {
            return Err(CallError::Other(anyhow!(
                "the python worker sent frame {:?} instead of ready",
                ready.kind as char
            )));
        }
        let v: serde_json::Value = serde_json::from_slice(&ready.payload).unwrap_or_default();
        w.versions = format!(
            "python {}, pyarrow {}, pandas {}",
            v["python"], v["pyarrow"], v["pandas"]
        )
        .replace('"', "");
        Ok(w)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Name the task in the worker's log lines from now on.
    pub fn set_task(&self, task: &str) {
        *self.task.lock().unwrap_or_else(|p| p.into_inner()) = task.to_string();
    }

    /// Run function `index` on these rows (slices of one schema, sent as one IPC stream).
    pub fn call(
        &mut self,
        index: u32,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        log: &TaskLog,
        stop: &AtomicBool,
        limit: Option<Duration>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), CallError> {
        let payload = protocol::encode_batch(index, schema, batches).map_err(CallError::Other)?;
        self.send(protocol::BATCH, &[&payload])?;
        let frame = self.reply(log, stop, limit)?;
        match frame.kind {
            protocol::BATCH => protocol::decode_stream(frame.payload).map_err(CallError::Other),
            other => Err(CallError::Other(anyhow!(
                "the python worker sent frame {:?} instead of a batch",
                other as char
            ))),
        }
    }

    fn send(&mut self, kind: u8, parts: &[&[u8]]) -> Result<(), CallError> {
        // A write fails (EPIPE) only when the worker is gone: report how it ended.
        protocol::write_frame(&mut self.stdin, kind, parts)
            .map_err(|_| CallError::Died(self.death()))
    }

    /// The next reply that is not an error frame, or why there is none; the output
    /// frames ahead of it go to `log`.
    fn reply(
        &mut self,
        log: &TaskLog,
        stop: &AtomicBool,
        limit: Option<Duration>,
    ) -> Result<Frame, CallError> {
        let started = Instant::now();
        loop {
            match self.replies.recv_timeout(POLL) {
                Ok(Ok(frame)) if frame.kind == protocol::OUTPUT => {
                    append_output(log, &frame.payload);
                    continue;
                }
                Ok(Ok(frame)) if frame.kind == protocol::ERROR => {
                    return Err(python_error(&frame.payload))
                }
                Ok(Ok(frame)) => return Ok(frame),
                Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => {
                    return Err(CallError::Died(self.death()))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if stop.load(Ordering::SeqCst) {
                self.kill();
                return Err(CallError::Stopped);
            }
            if let Some(limit) = limit.filter(|l| started.elapsed() > *l) {
                self.kill();
                return Err(CallError::TimedOut(limit));
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// How the process ended and the last lines it wrote to stderr.
    fn death(&mut self) -> String {
        let status = wait_briefly(&mut self.child);
        // Its stderr closes when it exits; the logging thread then has every line.
        let _ = self.stderr_done.recv_timeout(EXIT_WAIT);
        let tail: Vec<String> = self
            .stderr_tail
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        let how = describe_exit(self.child.id(), status);
        if tail.is_empty() {
            format!("{how}; it wrote nothing to stderr")
        } else {
            format!("{how}; its last stderr lines:\n{}", tail.join("\n"))
        }
    }
}

impl Drop for PythonWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_error(cfg: &WorkerConfig, e: io::Error) -> anyhow::Error {
    if e.kind() == io::ErrorKind::NotFound {
        anyhow!(
            "{} not found on node {}; set python.interpreter or add it in setup_commands",
            cfg.interpreter,
            cfg.node_id
        )
    } else {
        anyhow!(
            "cannot start {} on node {}: {e}",
            cfg.interpreter,
            cfg.node_id
        )
    }
}

fn python_error(payload: &[u8]) -> CallError {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
    CallError::Python {
        message: v["message"]
            .as_str()
            .unwrap_or("the python worker reported an error it could not describe")
            .to_string(),
        traceback: v["traceback"].as_str().unwrap_or_default().to_string(),
    }
}

fn append_output(log: &TaskLog, payload: &[u8]) {
    #[derive(serde::Deserialize)]
    struct Output {
        text: String,
        cut: u64,
    }
    match serde_json::from_slice::<Output>(payload) {
        Ok(o) => log.append(&o.text, o.cut),
        Err(e) => log.append(
            &format!("[fleetform] unreadable output frame from the python worker: {e}\n"),
            0,
        ),
    }
}

/// The exit status, waiting up to `EXIT_WAIT` for it, killing the process after that.
fn wait_briefly(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + EXIT_WAIT;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return None,
        }
    }
    let _ = child.kill();
    child.wait().ok()
}

fn describe_exit(pid: u32, status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) if s.signal().is_some() => {
            let sig = s.signal().expect("checked");
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.to_string())
                .unwrap_or_else(|_| "?".into());
            format!("the python worker (pid {pid}) was killed by signal {sig} ({name})")
        }
        Some(s) => format!(
            "the python worker (pid {pid}) exited with status {}",
            s.code().unwrap_or(-1)
        ),
        None => format!("the python worker (pid {pid}) stopped answering"),
    }
}

/// Frames from the worker's stdout, in a thread of their own; ends at end of stream.
fn read_replies(stdout: std::process::ChildStdout) -> Receiver<io::Result<Frame>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(PIPE_BUFFER, stdout);
        loop {
            match protocol::read_frame(&mut r) {
                Ok(Some(f)) => {
                    if tx.send(Ok(f)).is_err() {
                        return;
                    }
                }
                Ok(None) => return, // dropping tx tells the waiter the worker is gone
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// Log every stderr line of the worker (prefixed with its task) and keep the last few.
fn log_stderr(
    stderr: std::process::ChildStderr,
    pid: u32,
    task: Arc<Mutex<String>>,
) -> (Arc<Mutex<VecDeque<String>>>, Receiver<()>) {
    let tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
    let (done_tx, done_rx) = mpsc::channel();
    let kept = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let t = task.lock().unwrap_or_else(|p| p.into_inner()).clone();
            tracing::info!(target: "fleetform::python", task = %t, pid, "{line}");
            let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
            if k.len() == STDERR_TAIL_LINES {
                k.pop_front();
            }
            k.push_back(line);
        }
        let _ = done_tx.send(());
    });
    (tail, done_rx)
}
