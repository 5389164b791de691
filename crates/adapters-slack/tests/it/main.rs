//! Integration tests of the Slack adapter against the Slack double over real HTTP.

// Helpers here are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod slack_api;
