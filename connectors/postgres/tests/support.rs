//! Helpers shared by the integration tests.

use std::future::Future;
use std::time::Duration;

use sluice_postgres::SourceConfig;

/// Upper bound for anything a test waits for; generous for a loaded CI machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn source(url: &str) -> SourceConfig {
    SourceConfig::parse(url).expect("test url parses")
}

/// `f`, or a panic naming `what` after [`PATIENCE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A replication slot name unique to this test database (slots are cluster-wide).
pub fn slot_name(db: &sluice_testkit::TestDatabase, suffix: &str) -> String {
    format!("s_{}_{suffix}", db.name())
}
