//! `connector-server`: configuration, wiring, start-up and shutdown of the connector service.
//!
//! # Layout
//! - [`settings`]: the typed configuration (defaults, then `--config FILE`, then `CONNECTOR__…`
//!   environment variables), with secrets wrapped.
//! - [`startup`]: [`Application`], built from [`Settings`](settings::Settings) so tests can
//!   start the whole server in process on port 0; it serves gRPC (with reflection v1 and
//!   v1alpha and `grpc.health.v1`) and runs the reconciler until told to stop.
//! - [`http`]: the HTTP listener: Slack's OAuth redirect and `/healthz`.
//! - [`telemetry`]: tracing set-up (text or JSON).
//!
//! # Must never
//! Hold business rules or talk to a dependency except through the adapters; log a token, a
//! database password or an AWS secret key.

pub mod http;
pub mod settings;
pub mod startup;
pub mod telemetry;

pub use settings::Settings;
pub use startup::Application;
