//! The logical replication slot: what the server keeps for Sluice.

use sluice_core::Lsn;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use sluice_postgres_client::quote_ident;

/// A slot as `pg_replication_slots` shows it, with how much WAL it holds back at the moment
/// it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active_pid: Option<i32>,
    pub confirmed_flush_lsn: Option<Lsn>,
    pub restart_lsn: Option<Lsn>,
    pub wal_status: Option<String>,
    /// Bytes of WAL the server may still write before the slot loses what it needs
    /// (`max_slot_wal_keep_size`); `None` when that is unlimited.
    pub safe_wal_size: Option<i64>,
    /// The server's current WAL position when the slot was read.
    pub current_lsn: Option<Lsn>,
    /// WAL the slot keeps on the server: current position minus `restart_lsn`, in bytes.
    pub retained_wal_bytes: Option<i64>,
    /// WAL not yet confirmed by the consumer: current position minus `confirmed_flush_lsn`.
    pub pending_wal_bytes: Option<i64>,
}

/// The slot named `name`, if it exists.
pub async fn find(client: &Client, name: &str) -> Result<Option<SlotState>> {
    // On a standby (logical slots there since PostgreSQL 16) the current position is the last
    // one received; `pg_current_wal_lsn` would fail there.
    let row = client
        .query_opt(
            "WITH here AS (SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() \
                                      ELSE pg_current_wal_lsn() END AS lsn) \
             SELECT plugin::text, database::text, active_pid, confirmed_flush_lsn::text, \
                    restart_lsn::text, wal_status, safe_wal_size, here.lsn::text, \
                    pg_wal_lsn_diff(here.lsn, restart_lsn)::bigint, \
                    pg_wal_lsn_diff(here.lsn, confirmed_flush_lsn)::bigint \
             FROM pg_catalog.pg_replication_slots, here WHERE slot_name = $1",
            &[&name],
        )
        .await
        .map_err(|e| Error::client("looking up the replication slot", e))?;
    let lsn = |s: Option<String>| s.and_then(|s| s.parse::<Lsn>().ok());
    Ok(row.map(|r| SlotState {
        plugin: r.get(0),
        database: r.get(1),
        active_pid: r.get(2),
        confirmed_flush_lsn: lsn(r.get(3)),
        restart_lsn: lsn(r.get(4)),
        wal_status: r.get(5),
        safe_wal_size: r.get(6),
        current_lsn: lsn(r.get(7)),
        retained_wal_bytes: r.get(8),
        pending_wal_bytes: r.get(9),
    }))
}

/// Drops the slot named `name`. Fails while a consumer streams from it (SQLSTATE 55006, the
/// message names the process); callers check [`SlotState::active_pid`] first to say so
/// plainly.
pub async fn drop(client: &Client, name: &str) -> Result<()> {
    tracing::info!(slot = name, "dropping replication slot");
    // The name travels as a parameter: nothing to quote.
    client
        .execute("SELECT pg_catalog.pg_drop_replication_slot($1)", &[&name])
        .await
        .map_err(|e| {
            Error::client(
                format!("dropping replication slot {}", quote_ident(name)),
                e,
            )
        })?;
    Ok(())
}

/// Fails unless the slot can be used by this pipeline: a logical pgoutput slot of this
/// database that no other process is streaming from.
pub fn check_usable(name: &str, slot: &SlotState, dbname: &str) -> Result<()> {
    if slot.plugin.as_deref() != Some("pgoutput") {
        return Err(Error::prerequisite(
            format!(
                "replication slot \"{name}\" uses plugin {:?}, not pgoutput",
                slot.plugin.as_deref().unwrap_or("(physical)")
            ),
            "Choose another source.slot name, or drop that slot if it is unused.",
        ));
    }
    if slot.database.as_deref() != Some(dbname) {
        return Err(Error::prerequisite(
            format!(
                "replication slot \"{name}\" belongs to database {:?}, not \"{dbname}\"",
                slot.database.as_deref().unwrap_or("")
            ),
            "Choose another source.slot name.",
        ));
    }
    if let Some(pid) = slot.active_pid {
        return Err(Error::prerequisite(
            format!("replication slot \"{name}\" is in use by server process {pid}"),
            "Another sluice sync (or another consumer) is streaming from this slot; stop it or use another source.slot.",
        ));
    }
    if slot.wal_status.as_deref() == Some("lost") {
        return Err(Error::prerequisite(
            format!("replication slot \"{name}\" has lost required WAL (wal_status = lost)"),
            "Changes were lost at the source. Drop the slot (sluice teardown) and the change log, then sync again to take a new snapshot.",
        ));
    }
    Ok(())
}
