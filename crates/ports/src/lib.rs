//! The ports of the connector core and the use cases written against them.
//!
//! A *port* is an async trait for something the core needs from the outside world: a place to
//! keep connector metadata ([`ConnectorRepository`]), a place to keep tokens ([`SecretStore`]),
//! and Slack itself ([`SlackApi`]). Adapters in other crates implement them; the use cases here
//! ([`ConnectorService`], [`Reconciler`]) only ever see the traits, held as `Arc<dyn Trait>`.
//!
//! # Layout
//! - [`repository`], [`secrets`], [`slack`]: the ports and the errors adapters translate into.
//! - [`service`]: create, get, list and delete connectors, with the lifecycle that keeps the
//!   database and the secret store consistent.
//! - [`send`]: [`MessageSender`], sending through a connector with a TTL token cache, used
//!   by the `SendMessage` RPC and the `sender` library alike.
//! - [`oauth`]: [`OAuthInstaller`], Slack's OAuth v2 install flow over an
//!   [`OAuthStateStore`].
//! - [`refresh`]: [`TokenRefresher`], refreshing rotating tokens one replica at a time.
//! - [`reconciler`]: one pass that finishes (by undoing or deleting) work a crash left behind.
//! - [`error`]: [`ConnectorError`], the one error enum callers map at their edge.
//!
//! With the `mocks` feature every port gets a mockall mock (`MockConnectorRepository`, …);
//! only dev-dependencies enable it.
//!
//! # Must never
//! Do I/O of its own, depend on an async runtime, or know of tonic, diesel, AWS or reqwest.
//! Never log a token or put one in an error.

pub mod error;
pub mod oauth;
pub mod reconciler;
pub mod refresh;
pub mod repository;
pub mod secrets;
pub mod send;
pub mod service;
pub mod slack;

pub use error::{ConnectorError, Dependency};
pub use oauth::{
    InstallError, OAuthConfig, OAuthGrant, OAuthGrantRequest, OAuthInstaller, OAuthStateStore,
    PendingInstall,
};
pub use reconciler::{ReconcileReport, Reconciler};
pub use refresh::{AppCredentials, RefreshReport, RefreshSettings, Sleep, TokenRefresher};
pub use repository::{ConnectorRepository, NewConnector, RefreshOutcome, RepositoryError};
pub use secrets::{ConnectorSecret, SecretLabels, SecretStore, SecretStoreError, TokenRotation};
pub use send::{Clock, MessageSender, SendError, SentMessage, SystemClock, TokenCache};
pub use service::{ConnectorPage, ConnectorService, CreateConnector};
pub use slack::{
    AuthIdentity, ChannelInfo, ChannelPage, OutgoingMessage, PostedMessage, SlackApi, SlackError,
    UploadedFile,
};

#[cfg(feature = "mocks")]
pub use oauth::MockOAuthStateStore;
#[cfg(feature = "mocks")]
pub use repository::MockConnectorRepository;
#[cfg(feature = "mocks")]
pub use secrets::MockSecretStore;
#[cfg(feature = "mocks")]
pub use slack::MockSlackApi;
