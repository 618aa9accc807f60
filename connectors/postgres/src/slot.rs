//! The logical replication slot: what the server keeps for Sluice.

use sluice_core::Lsn;
use tokio_postgres::Client;

use crate::error::{Error, Result};

/// A slot as `pg_replication_slots` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotState {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub active_pid: Option<i32>,
    pub confirmed_flush_lsn: Option<Lsn>,
    pub restart_lsn: Option<Lsn>,
    pub wal_status: Option<String>,
}

/// The slot named `name`, if it exists.
pub async fn find(client: &Client, name: &str) -> Result<Option<SlotState>> {
    let row = client
        .query_opt(
            "SELECT plugin::text, database::text, active_pid, confirmed_flush_lsn::text, \
                    restart_lsn::text, wal_status \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
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
    }))
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
