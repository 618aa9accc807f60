//! PostgreSQL source for Sluice: replication connection, slot, publication, snapshot, capture
