//! Spill files: where the changes of a transaction the server streams before its commit
//! (protocol 2, `streaming 'on'`) wait until the commit or abort arrives.
//!
//! One file per top-level transaction, in the spill directory. The file is a sequence of
//! frames, each `u32` little-endian length then a change-log record
//! ([`LogRecord::TransactionPart`]) holding a run of changes. Nothing here needs to survive
//! a crash: the server streams a transaction again from its start until its commit is
//! acknowledged, so the directory is emptied when capture starts and the files are never
//! fsynced.
//!
//! A subtransaction's changes start where the file ended when its first change arrived; an
//! aborted subtransaction cuts the file back there (its own changes, and those of the
//! subtransactions nested in it, follow that point: they run one at a time).

use std::path::{Path, PathBuf};

use sluice_core::{Change, LogRecord, Lsn, Transaction, TxnKind, decode_record, encode_record};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use crate::error::{Error, Result};

/// The changes of one streamed transaction, on disk.
#[derive(Debug)]
pub(crate) struct SpillFile {
    path: PathBuf,
    file: tokio::fs::File,
    len: u64,
    /// Subtransactions seen, with where their changes start, in order.
    subxacts: Vec<(u32, u64)>,
}

impl SpillFile {
    /// Creates (or empties) the file of transaction `xid` in `dir`.
    pub(crate) async fn create(dir: &Path, xid: u32) -> Result<SpillFile> {
        let path = dir.join(format!("xid-{xid}.spill"));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        Ok(SpillFile {
            path,
            file,
            len: 0,
            subxacts: Vec::new(),
        })
    }

    /// Notes that the changes of subtransaction `subxid` start here, if they did not before.
    pub(crate) fn subxact_starts(&mut self, subxid: u32) {
        if !self.subxacts.iter().any(|(x, _)| *x == subxid) {
            self.subxacts.push((subxid, self.len));
        }
    }

    /// Appends a run of changes.
    pub(crate) async fn write(&mut self, changes: Vec<Change>) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut buf = vec![0; 4];
        encode_record(&part(changes), &mut buf);
        let len = u32::try_from(buf.len() - 4)
            .map_err(|_| io_error(&self.path, std::io::Error::other("spill frame over 4 GiB")))?;
        buf[..4].copy_from_slice(&len.to_le_bytes());
        self.file
            .write_all(&buf)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Drops the changes of subtransaction `subxid` (and of those after it). Returns whether
    /// the subtransaction had any.
    pub(crate) async fn abort_subxact(&mut self, subxid: u32) -> Result<bool> {
        let Some(i) = self.subxacts.iter().position(|(x, _)| *x == subxid) else {
            return Ok(false);
        };
        let at = self.subxacts[i].1;
        self.subxacts.truncate(i);
        self.file
            .flush()
            .await
            .map_err(|e| io_error(&self.path, e))?;
        self.file
            .set_len(at)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        self.file
            .seek(std::io::SeekFrom::Start(at))
            .await
            .map_err(|e| io_error(&self.path, e))?;
        self.len = at;
        Ok(true)
    }

    /// Reads the changes back, one run at a time.
    pub(crate) async fn into_reader(mut self) -> Result<SpillReader> {
        self.file
            .flush()
            .await
            .map_err(|e| io_error(&self.path, e))?;
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        Ok(SpillReader {
            reader: BufReader::new(file),
            remaining: self.len,
            buf: Vec::new(),
            spill: self,
        })
    }

    /// Removes the file.
    pub(crate) async fn remove(self) -> Result<()> {
        drop(self.file);
        tokio::fs::remove_file(&self.path)
            .await
            .map_err(|e| io_error(&self.path, e))
    }
}

/// Reads a spill file back.
pub(crate) struct SpillReader {
    spill: SpillFile,
    reader: BufReader<tokio::fs::File>,
    remaining: u64,
    buf: Vec<u8>,
}

impl SpillReader {
    /// The next run of changes, in the order written.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<Change>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let path = &self.spill.path;
        let len = self
            .reader
            .read_u32_le()
            .await
            .map_err(|e| io_error(path, e))? as usize;
        self.buf.resize(len, 0);
        self.reader
            .read_exact(&mut self.buf)
            .await
            .map_err(|e| io_error(path, e))?;
        self.remaining = self.remaining.saturating_sub(4 + len as u64);
        match decode_record(&self.buf) {
            Ok(LogRecord::TransactionPart { txn, .. }) => Ok(Some(txn.changes)),
            Ok(_) => Err(corrupt(path, "not a run of changes")),
            Err(e) => Err(corrupt(path, &e.to_string())),
        }
    }

    /// Removes the file.
    pub(crate) async fn remove(self) -> Result<()> {
        drop(self.reader);
        self.spill.remove().await
    }
}

/// Empties (creating it when missing) the spill directory: files left by an earlier run
/// belong to transactions the server streams again.
pub(crate) async fn reset(dir: &Path) -> Result<()> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(dir, e)),
    }
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io_error(dir, e))
}

fn part(changes: Vec<Change>) -> LogRecord {
    LogRecord::TransactionPart {
        part: 0,
        txn: Transaction {
            kind: TxnKind::Stream,
            xid: 0,
            commit_lsn: Lsn::ZERO,
            end_lsn: Lsn::ZERO,
            commit_ts: 0,
            changes,
        },
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Spill {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, what: &str) -> Error {
    io_error(
        path,
        std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned()),
    )
}
