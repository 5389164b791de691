//! `connector-app`: the one place the connector application is put together, for the server
//! and the `sender` library alike.
//!
//! - [`config`]: the settings read once ([`config::Sources`]: a TOML file, then
//!   `CONNECTOR__…` variables; defaults are serde defaults) and the core ones parsed once
//!   into [`CoreConfig`]; each edge parses its own sections the same way.
//! - [`storage`]: which stores a configuration names (PostgreSQL + Secrets Manager, or the
//!   embedded SQLite file + local encrypted secrets), opening and migrating them.
//! - [`services`]: [`Services::open`], every use case wired to those stores and to Slack.
//! - [`jobs`]: [`PeriodicJobs`], the background passes, each on its own switch.
//! - [`metrics`]: [`MetricsProbe`], the pool and connector gauges read at scrape time, and
//!   the jobs' counters. Every store and the Slack client are wrapped in
//!   `connector-instrumentation`'s `Observed`, so each call is counted, timed and traced.
//!
//! # Must never
//! Hold business rules (they are in `connector-usecases`), know of gRPC or HTTP serving,
//! authentication of callers or telemetry export (the server's), or print a database
//! password, a key or a token.

pub mod config;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod readiness;
pub mod services;
pub mod storage;

pub use config::{ConfigError, CoreConfig, CoreSettings, Sources, default_data_dir};
pub use error::AppError;
pub use jobs::PeriodicJobs;
pub use metrics::MetricsProbe;
pub use readiness::{ReadinessMonitor, ReadyState};
pub use services::Services;
pub use storage::Migrate;
