//! Integration tests of the sender library and the connector-send binary on real PostgreSQL,
//! LocalStack and the Slack double.

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod binary;
mod library;
mod rig;
