//! Tests of the test kit itself, against real servers.

mod cluster;
