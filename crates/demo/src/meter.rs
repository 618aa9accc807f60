//! A [`Destination`] that counts what the loader applies through it, for the dashboard's
//! throughput figures: every call goes to the wrapped destination unchanged, and a batch is
//! counted once its `apply` returned Ok (committed).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_core::{Batch, Capabilities, Checkpoint, Destination};

/// Counters of committed batches; relaxed atomics, read as a snapshot that may be a moment old.
#[derive(Debug, Default)]
pub struct Meter {
    batches: AtomicU64,
    changes: AtomicU64,
    rows: AtomicU64,
    bytes: AtomicU64,
    /// Commit time at the source of the last transaction applied, microseconds since the epoch.
    applied_commit_us: AtomicI64,
    /// When that batch committed in the warehouse, microseconds since the epoch.
    applied_at_us: AtomicI64,
}

/// What the meter has counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reading {
    pub batches: u64,
    pub changes: u64,
    pub rows: u64,
    pub bytes: u64,
    pub applied_commit_us: i64,
    pub applied_at_us: i64,
}

impl Reading {
    /// From the source commit of the last transaction applied to its warehouse commit.
    pub fn latency_us(&self) -> Option<i64> {
        (self.applied_commit_us > 0).then(|| self.applied_at_us - self.applied_commit_us)
    }
}

impl Meter {
    pub fn read(&self) -> Reading {
        Reading {
            batches: self.batches.load(Ordering::Relaxed),
            changes: self.changes.load(Ordering::Relaxed),
            rows: self.rows.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            applied_commit_us: self.applied_commit_us.load(Ordering::Relaxed),
            applied_at_us: self.applied_at_us.load(Ordering::Relaxed),
        }
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A destination whose committed batches are counted in a [`Meter`].
pub struct Metered<D> {
    inner: D,
    meter: Arc<Meter>,
}

impl<D> Metered<D> {
    pub fn new(inner: D, meter: Arc<Meter>) -> Self {
        Metered { inner, meter }
    }
}

impl<D: Destination> Destination for Metered<D> {
    type Error = D::Error;

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn open(&mut self, pipeline: &str) -> Result<Option<Checkpoint>, Self::Error> {
        self.inner.open(pipeline).await
    }

    async fn apply(&mut self, batch: Batch, checkpoint: &Checkpoint) -> Result<(), Self::Error> {
        let (changes, rows, bytes) = (batch.changes, batch.rows(), batch.bytes);
        self.inner.apply(batch, checkpoint).await?;
        let m = &self.meter;
        m.batches.fetch_add(1, Ordering::Relaxed);
        m.changes.fetch_add(changes as u64, Ordering::Relaxed);
        m.rows.fetch_add(rows as u64, Ordering::Relaxed);
        m.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        m.applied_commit_us
            .store(checkpoint.applied_commit_ts, Ordering::Relaxed);
        m.applied_at_us.store(now_us(), Ordering::Relaxed);
        Ok(())
    }

    async fn apply_part(&mut self, batch: Batch) -> Result<(), Self::Error> {
        self.inner.apply_part(batch).await
    }

    async fn discard(&mut self) -> Result<(), Self::Error> {
        self.inner.discard().await
    }

    async fn ping(&mut self) -> Result<(), Self::Error> {
        self.inner.ping().await
    }
}
