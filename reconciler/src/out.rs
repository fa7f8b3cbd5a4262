//! Writing to stdout when the reader may go away: `fleetform status | head -1` closes the
//! pipe after one line, and that is the reader's choice, not an error (Rust ignores
//! SIGPIPE, so `println!` would panic with "failed printing to stdout: Broken pipe").

use std::io::{ErrorKind, Write};

/// Write `text` and flush. Ok(false) when stdout's reader has closed it: stop writing
/// and exit cleanly.
pub fn stdout(text: &str) -> std::io::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e),
    }
}
