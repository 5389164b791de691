//! Integration tests of the PostgreSQL repository against a real server: a fresh database per
//! test (see `test-support`).

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod changes;
mod containers;
mod repository;
