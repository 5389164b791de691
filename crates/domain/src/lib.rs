//! The connector domain: entities, value objects and their validation.
//!
//! A *connector* is a named, tenant-owned link to one Slack workspace. This crate says what a
//! valid tenant ID, connector name, bot token, channel reference or page token is, and what a
//! connector looks like once it exists.
//!
//! # Layout
//! - [`access`]: [`Principal`], the authenticated caller, with its [`Scopes`] and tenants.
//! - [`ids`]: tenant, connector, workspace and channel identifiers.
//! - [`connector`]: the [`Connector`] entity and its lifecycle [`ConnectorState`].
//! - [`token`]: [`BotToken`], a Slack bot token that cannot be printed by accident.
//! - [`channel`]: [`ChannelRef`], what a caller may give as a default channel.
//! - [`message`]: [`Message`] to send, its validation, and [`split_text`] for long text.
//! - [`outbox`]: queued delivery: [`MessageId`], [`MessageStatus`], [`Delivery`], [`Pace`].
//! - [`paging`]: page sizes and opaque page tokens.
//! - [`secret_name`]: [`SecretPrefix`] and the [`SecretName`] of each connector.
//! - [`error`]: [`ValidationError`], naming the field that was wrong.
//!
//! # Must never
//! Do I/O, start or need an async runtime, or know of gRPC, SQL, AWS or HTTP. Everything here is
//! plain data and pure functions so every other crate can depend on it.

pub mod access;
pub mod channel;
pub mod connector;
pub mod error;
pub mod ids;
pub mod message;
pub mod outbox;
pub mod paging;
pub mod secret_name;
pub mod token;

pub use access::{
    AccessDenied, ApiKeyId, Principal, Scope, Scopes, TenantError, TenantGrant, tenant_from_uri,
};
pub use channel::{ChannelName, ChannelRef};
pub use connector::{AuthStatus, BotIdentity, Connector, ConnectorState, ConnectorStatus};
pub use error::ValidationError;
pub use ids::{ChannelId, ConnectorId, ConnectorName, RequestId, TenantId, WorkspaceId};
pub use message::{
    FileAttachment, Message, MessageEdit, SendLimits, check_channel_id, check_message_ref,
    split_text,
};
pub use outbox::{Delivery, MessageId, MessageStatus, Pace, Rate};
pub use paging::{PageSize, PageToken};
pub use secret_name::{SecretName, SecretPrefix};
pub use token::BotToken;
