//! `connector-server`: configuration, wiring, start-up and shutdown of the connector service.
//!
//! # Layout
//! - [`config`]: [`ServerConfig`], parsed once: `connector-app`'s core configuration and the
//!   server's own (listeners, TLS, who may call, logs and traces).
//! - [`startup`]: [`Application`], built from a [`ServerConfig`] so tests can start the
//!   whole server in process on port 0; it serves
//!   gRPC (with reflection v1 and v1alpha and `grpc.health.v1`) and runs the periodic jobs
//!   until told to stop.
//! - [`http`]: the HTTP listener: Slack's OAuth redirect, `/metrics`, `/healthz` and
//!   `/readyz`.
//! - [`metrics`]: the Prometheus recorder and the tower layer that counts, times and traces
//!   every gRPC call.
//! - [`telemetry`]: log lines (text or JSON) and, when `CONNECTOR__OTEL__ENDPOINT` is set,
//!   OpenTelemetry traces over OTLP/gRPC.
//! - [`tls`]: TLS and mutual TLS on the gRPC listener, reloaded when the files change.
//!
//! # Must never
//! Hold business rules or talk to a dependency except through the adapters; log a token, a
//! database password or an AWS secret key.

pub mod capped;
pub mod config;
pub mod http;
pub mod metrics;
pub mod startup;
pub mod telemetry;
pub mod tls;

pub use config::ServerConfig;
pub use startup::Application;
