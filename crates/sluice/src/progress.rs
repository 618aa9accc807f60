//! The terminal's progress display and the log lines written around it.
//!
//! Progress bars and log lines share stderr: log lines go through [`LogWriter`], which hides
//! the bars while a line is written, so neither tears the other.

use std::io::Write;
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressDrawTarget};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// The process's progress display on stderr (hidden when stderr is not a terminal).
pub fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A `tracing` writer that prints whole lines to stderr with the progress display suspended.
#[derive(Default)]
pub struct LogWriter {
    buf: Vec<u8>,
}

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        match MULTI.get() {
            Some(m) => m.suspend(|| std::io::stderr().write_all(&buf)),
            None => std::io::stderr().write_all(&buf),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // A log line that cannot be written has nowhere else to go.
        let _ = self.flush();
    }
}
