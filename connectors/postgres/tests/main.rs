//! Integration tests of the PostgreSQL source against real throwaway clusters.

mod auth;
mod replication;
mod support;
mod tls;
