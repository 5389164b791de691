//! `connector-app`: the one place the connector application is put together, for the server
//! and the `sender` library alike.
//!
//! - [`settings`]: [`Settings`], the typed configuration (one table of defaults, then a TOML
//!   file, then `CONNECTOR__…` variables) and its one [`Settings::validate`].
//! - [`storage`]: which stores a configuration names (PostgreSQL + Secrets Manager, or the
//!   embedded SQLite file + local encrypted secrets), opening and migrating them.
//! - [`services`]: [`Services::open`], every use case wired to those stores and to Slack.
//! - [`jobs`]: [`PeriodicJobs`], the background passes, each on its own switch.
//! - [`metrics`]: [`MetricsProbe`], the pool and connector gauges read at scrape time, and
//!   the jobs' counters. Every store and the Slack client are wrapped in
//!   `connector-instrumentation`'s `Observed`, so each call is counted, timed and traced.
//!
//! # Must never
//! Hold business rules (they are in `connector-usecases`), know of gRPC or HTTP serving (the
//! server's), or print a database password, a key or a token.

pub mod error;
pub mod jobs;
pub mod metrics;
pub mod readiness;
pub mod services;
pub mod settings;
pub mod storage;

pub use error::AppError;
pub use jobs::PeriodicJobs;
pub use metrics::MetricsProbe;
pub use readiness::{ReadinessMonitor, ReadyState};
pub use services::Services;
pub use settings::{Settings, SettingsError, default_data_dir};
pub use storage::{Metadata, Migrate};

/// Slack's Events API on the wire (the request signature, the callback format), for the
/// server's `POST /slack/events`.
pub use connector_adapters_slack::events as slack_events;
