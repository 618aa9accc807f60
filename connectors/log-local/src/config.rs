//! Options of the local change log.

use std::path::PathBuf;

use crate::error::{LogError, Result};
use crate::segment::{FRAME_HEADER_LEN, HEADER_LEN};

/// Default segment size cap: 64 MiB. Large enough that rotation (a file and a directory
/// fsync) is rare and a busy log keeps few files; small enough that retention frees disk in
/// useful steps and that recovery, which reads the last segment whole, reads little on open.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Smallest accepted segment size cap: a header and a few small records. Only tests want caps
/// this small; it keeps a typo like `segment_bytes = 64` from creating a file per record.
pub const MIN_SEGMENT_BYTES: u64 = 1024;

// A segment at the minimum cap still holds its header and a small record.
const _: () = assert!(MIN_SEGMENT_BYTES > (HEADER_LEN + FRAME_HEADER_LEN) as u64 * 4);

/// Where the log lives and how it cuts segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// The log directory; created when missing.
    pub dir: PathBuf,
    /// Size cap of a segment file in bytes. A record larger than the cap gets a segment of
    /// its own.
    pub segment_bytes: u64,
}

impl LogOptions {
    /// Options with the default segment size.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogOptions {
            dir: dir.into(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
        }
    }

    /// Sets the segment size cap.
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Checks the options without touching the file system.
    pub fn validate(&self) -> Result<()> {
        if self.dir.as_os_str().is_empty() {
            return Err(LogError::Config {
                field: "path",
                reason: "must not be empty".into(),
            });
        }
        if self.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(LogError::Config {
                field: "segment_bytes",
                reason: format!("must be at least {MIN_SEGMENT_BYTES} bytes"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates() {
        assert!(LogOptions::new("/tmp/x").validate().is_ok());
        let e = LogOptions::new("/tmp/x")
            .segment_bytes(10)
            .validate()
            .expect_err("too small");
        assert_eq!(
            e.to_string(),
            "log.segment_bytes: must be at least 1024 bytes"
        );
        assert!(LogOptions::new("").validate().is_err());
    }
}
