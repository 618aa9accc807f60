//! Integration tests: decoding bytes captured from a real PostgreSQL 15 (see
//! `fixtures/README.md`), and malformed input.

mod fixtures;
mod frames;
mod malformed;
mod stream;
mod v1;
