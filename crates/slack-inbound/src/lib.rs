//! What Slack delivers, whichever way it comes: the wire formats of events, interactions and
//! slash commands and the v0 request signature ([`wire`]), the one path that stores and acts on
//! a delivery ([`Receiver`]), and Slack's Socket Mode transport ([`SocketMode`]). The HTTP
//! routes that take the same deliveries are the `http-api` crate's.
//!
//! # Must never
//! Acknowledge a delivery before it is stored (Slack would not deliver it again), read a body
//! whose signature was not verified, or log the app token or a connection URL (it carries a
//! ticket).

mod receiver;
pub mod socket_mode;
pub mod wire;

pub use receiver::{NotAccepted, Receiver, Transport, count_malformed};
pub use socket_mode::{SocketMode, SocketModeSettings};
