//! PostgreSQL destination for Sluice.
