//! Streamed blocks (protocol 2): the changes of transactions the server streams before their
//! commit wait in spill files ([`crate::spill`]), one per top-level xid, until the Stream Commit
//! (appended as parts, then the transaction's record) or the Stream Abort (deleted, or cut back
//! for a subtransaction).

use std::collections::HashMap;
use std::path::PathBuf;

use sluice_core::Change;
use sluice_pgoutput::{StreamAbort, StreamStart};

use crate::capture::TXN_PART_BYTES;
use crate::error::{Error, Result};
use crate::spill;

/// A transaction the server streams before its commit.
pub(super) struct Streamed {
    pub(super) file: spill::SpillFile,
    /// Changes not yet written to the file.
    changes: Vec<Change>,
    bytes: usize,
    /// The (sub)transaction the last change belonged to.
    current: u32,
}

impl Streamed {
    /// Writes the changes held in memory to the spill file.
    pub(super) async fn spill(&mut self) -> Result<()> {
        self.bytes = 0;
        self.file.write(std::mem::take(&mut self.changes)).await
    }
}

/// The streamed transactions not yet committed or aborted.
pub(super) struct Streams {
    /// The spill directory; `None` when the server was not asked to stream (protocol 1).
    dir: Option<PathBuf>,
    /// By top-level xid.
    open: HashMap<u32, Streamed>,
    /// The transaction of the streamed block being received.
    receiving: Option<u32>,
}

impl Streams {
    pub(super) fn new(dir: Option<PathBuf>) -> Streams {
        Streams {
            dir,
            open: HashMap::new(),
            receiving: None,
        }
    }

    /// Whether a streamed transaction is open (its changes are not in the change log).
    pub(super) fn any_open(&self) -> bool {
        !self.open.is_empty()
    }

    /// Whether a streamed block is being received: changes belong to it.
    pub(super) fn receiving(&self) -> bool {
        self.receiving.is_some()
    }

    /// Stream Start: a block of `start.xid` follows (its first one creates the spill file).
    pub(super) async fn start(&mut self, start: &StreamStart) -> Result<()> {
        let dir = self.dir.as_ref().ok_or_else(|| {
            Error::protocol("Stream Start in a stream that was not asked to stream".into())
        })?;
        if start.first_segment || !self.open.contains_key(&start.xid) {
            let file = spill::SpillFile::create(dir, start.xid).await?;
            self.open.insert(
                start.xid,
                Streamed {
                    file,
                    changes: Vec::new(),
                    bytes: 0,
                    current: start.xid,
                },
            );
        }
        self.receiving = Some(start.xid);
        Ok(())
    }

    /// Stream Stop: the block ended; what it held goes to the spill file.
    pub(super) async fn stop(&mut self) -> Result<()> {
        if let Some(streamed) = self.receiving.take().and_then(|x| self.open.get_mut(&x)) {
            streamed.spill().await?;
        }
        Ok(())
    }

    /// Stream Abort of a transaction (its file is deleted) or of a subtransaction (the file is
    /// cut back to where its changes started).
    pub(super) async fn abort(&mut self, abort: &StreamAbort) -> Result<()> {
        if abort.xid == abort.subxid {
            if let Some(streamed) = self.open.remove(&abort.xid) {
                streamed.file.remove().await?;
            }
        } else if let Some(streamed) = self.open.get_mut(&abort.xid) {
            streamed.spill().await?;
            streamed.file.abort_subxact(abort.subxid).await?;
            streamed.current = abort.xid;
        }
        Ok(())
    }

    /// Stream Commit: the transaction leaves the open ones; its spill file is the caller's.
    pub(super) fn commit(&mut self, xid: u32) -> Result<Streamed> {
        self.open.remove(&xid).ok_or_else(|| {
            Error::protocol(format!(
                "Stream Commit of transaction {xid} that was not streamed"
            ))
        })
    }

    /// Adds a change of (sub)transaction `xid` to the block being received.
    pub(super) async fn push(&mut self, change: Change, xid: Option<u32>) -> Result<()> {
        let Some(top) = self.receiving else {
            return Err(Error::protocol(
                "change outside a streamed block".to_owned(),
            ));
        };
        let sub = xid.unwrap_or(top);
        let streamed = self.open.get_mut(&top).ok_or_else(|| {
            Error::protocol(format!("change of transaction {top} outside its stream"))
        })?;
        if sub != streamed.current {
            // Where a subtransaction's changes start must be exact: an abort cuts there.
            streamed.spill().await?;
            if sub != top {
                streamed.file.subxact_starts(sub);
            }
            streamed.current = sub;
        }
        streamed.bytes += change.size();
        streamed.changes.push(change);
        if streamed.bytes >= TXN_PART_BYTES {
            streamed.spill().await?;
        }
        Ok(())
    }
}
