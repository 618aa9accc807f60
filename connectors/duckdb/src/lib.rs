//! DuckDB destination for Sluice
