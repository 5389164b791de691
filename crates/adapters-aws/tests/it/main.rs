//! Integration tests of the Secrets Manager store against LocalStack.

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod containers;
mod secret_store;
