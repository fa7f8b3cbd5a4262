//! Writing to stdout when the reader may go away: `fleetform job list | head -0` closes
//! the pipe before the first line, and that is the reader's choice, not an error (Rust
//! ignores SIGPIPE, so std's `println!` would panic with "failed printing to stdout:
//! Broken pipe" and exit 101).
//!
//! Every `println!`/`print!` in this crate goes through [`line`]/[`text`] (lib.rs
//! shadows the std macros), so no print site can panic. Once the reader has gone, the
//! rest of the output is dropped and the command finishes its work and exits with its
//! usual code (0 when it succeeds), as `status` does: a `fleetform run … | head -3` still
//! completes its jobs and stops its agents in order. Any other write error (a full disk
//! behind `> file`) is said on stderr and makes the exit code 1 ([`failed`]).

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// The reader closed stdout: drop everything written from now on.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// A write failed for another reason than a closed pipe.
static FAILED: AtomicBool = AtomicBool::new(false);

/// Write `text` and flush. Ok(false) when stdout's reader has closed it: stop writing
/// and exit cleanly.
pub fn stdout(text: &str) -> std::io::Result<bool> {
    if CLOSED.load(Ordering::SeqCst) {
        return Ok(false);
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::SeqCst);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// What `println!` does in this crate: `args` and a newline.
pub fn line(args: std::fmt::Arguments<'_>) {
    write(args, true)
}

/// What `print!` does in this crate.
pub fn text(args: std::fmt::Arguments<'_>) {
    write(args, false)
}

fn write(args: std::fmt::Arguments<'_>, newline: bool) {
    if CLOSED.load(Ordering::SeqCst) || FAILED.load(Ordering::SeqCst) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out.write_fmt(args).and_then(|_| if newline { out.write_all(b"\n") } else { Ok(()) });
    match written.and_then(|_| if newline { Ok(()) } else { out.flush() }) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::BrokenPipe => CLOSED.store(true, Ordering::SeqCst),
        Err(e) => {
            FAILED.store(true, Ordering::SeqCst);
            eprintln!("error: cannot write to stdout: {e}");
        }
    }
}

/// A write to stdout failed (not a closed pipe): the command's output is incomplete.
pub fn failed() -> bool {
    FAILED.load(Ordering::SeqCst)
}
