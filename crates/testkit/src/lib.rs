//! Test kit: throwaway PostgreSQL clusters and helpers shared by Sluice's tests.
//!
//! [`PgCluster`] starts a real PostgreSQL 15 from the local binaries (`/usr/lib/postgresql/15/bin`,
//! or `$SLUICE_PG_BIN`) on a free port of 127.0.0.1, with `wal_level = logical` and a short
//! `wal_sender_timeout`. `initdb` runs once per machine into a cached template directory that
//! each cluster copies. When the tests run as root, `initdb` and `postgres` run as the
//! `postgres` OS user.
//!
//! Cleanup: dropping a cluster stops the server (by the PID in `postmaster.pid`) and removes its
//! directory, also while a panicking test unwinds. A watchdog process (`sh`) does the same when
//! the test process dies without unwinding (abort, SIGKILL, or the never-dropped
//! [`PgCluster::shared`] cluster at exit): it waits for end-of-file on a pipe whose write end
//! only the test process holds.
//!
//! ```no_run
//! # async fn demo() {
//! let db = sluice_testkit::PgCluster::shared().fresh_database().await.expect("database");
//! db.execute("CREATE TABLE t (id int PRIMARY KEY)").await.expect("create");
//! # }
//! ```

mod certificate;
mod cluster;
mod database;
mod error;
mod template;

pub mod conformance;
pub mod fakesnow;
pub mod fixtures;
pub mod log_conformance;
pub mod proxy;
pub mod records;

pub use certificate::{CertificateAuthority, ServerCertificate};
pub use cluster::{AuthMethod, FAST_STOP_TIMEOUT, PgCluster, PgClusterBuilder, ShutdownMode};
pub use database::{TestDatabase, percent_encode};
pub use error::{Error, Result};
pub use proxy::FaultProxy;
