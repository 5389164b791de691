//! End-to-end tests of connector-server, in process, on real PostgreSQL, LocalStack and the
//! Slack double, driven by the generated tonic client.

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod auth;
mod coherence;
#[path = "../common/mod.rs"]
mod common;
mod containers;
mod crash_safety;
mod delivery;
mod embedded;
mod events;
mod helpers;
mod idempotency;
mod jwt;
mod lifecycle;
mod limits;
mod messages;
mod oauth;
mod quotas;
mod readiness;
mod rotation;
mod send;
mod socket_mode;
mod status_codes;
mod tls;
mod update;
