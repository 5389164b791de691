//! The gRPC edge of the connector service: `connector.v1.ConnectorService` on tonic.
//!
//! It turns protobuf requests into use-case calls on [`ConnectorService`] and use-case results
//! back into protobuf, and it owns the single mapping from [`ConnectorError`] to
//! [`tonic::Status`] ([`status`]). The generated code lives in [`pb`], with a client that
//! Rust callers and the tests use.
//!
//! # Layout
//! - [`pb`]: prost messages and the tonic client and server, generated from `proto/` by
//!   `build.rs`; [`pb::FILE_DESCRIPTOR_SET`] feeds server reflection.
//! - [`auth`]: [`Authentication`], the caller behind each request's `authorization`, its
//!   scopes and tenant.
//! - [`handlers`]: [`ConnectorGrpc`], the service implementation.
//! - [`intake`]: [`IntakeLayer`], credentials checked and body sizes bounded before a request
//!   is read.
//! - [`rate`]: [`TenantRateLimiter`], a token bucket per tenant.
//! - [`status`]: `ConnectorError` → `Status`, with `BadRequest` details for bad fields.
//!
//! # Must never
//! Hold business rules (they belong to `connector-usecases`), talk to a database, AWS or Slack
//! directly, or put a token in a response, an error or a log line.

pub mod auth;
pub mod handlers;
pub mod intake;
pub mod rate;
pub mod status;

/// Code generated from `proto/connector/v1/connector.proto`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms
)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/connector.v1.rs"));

    /// The encoded `FileDescriptorSet` of the service, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/connector_descriptor.bin"));
}

pub use auth::Authentication;
pub use connector_usecases::ConnectorError;
pub use connector_usecases::ConnectorService;
pub use handlers::{ConnectorGrpc, Drain, MessageLimits};
pub use intake::{IntakeLayer, IntakeLimits};
pub use rate::{ClientRateLimiter, RateLimiter, TenantRateLimiter};

impl std::fmt::Debug for pb::UpdateConnectorRequest {
    /// Like the derived `Debug`, with the token redacted (shown only as given or not).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.slack_bot_token.is_empty() {
            ""
        } else {
            "[REDACTED]"
        };
        f.debug_struct("UpdateConnectorRequest")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("update_mask", &self.update_mask)
            .field("name", &self.name)
            .field("default_channel", &self.default_channel)
            .field("slack_bot_token", &token)
            .field("etag", &self.etag)
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl std::fmt::Debug for pb::CreateConnectorRequest {
    /// Like the derived `Debug`, with the token redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateConnectorRequest")
            .field("tenant_id", &self.tenant_id)
            .field("name", &self.name)
            .field("slack_bot_token", &"[REDACTED]")
            .field("default_channel", &self.default_channel)
            .field("request_id", &self.request_id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::pb;

    #[test]
    fn requests_carrying_a_token_never_print_it() {
        let create = pb::CreateConnectorRequest {
            tenant_id: "acme".into(),
            slack_bot_token: "xoxb-1-2-secretcreate".into(),
            ..Default::default()
        };
        let update = pb::UpdateConnectorRequest {
            tenant_id: "acme".into(),
            slack_bot_token: "xoxb-1-2-secretupdate".into(),
            ..Default::default()
        };
        let printed = format!("{create:?} {update:?} {update:#?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains("[REDACTED]") && printed.contains("acme"),
            "{printed}"
        );
    }
}
