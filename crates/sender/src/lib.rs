//! The `sender` library: send a message through a connector from any Rust program.
//!
//! Not implemented yet: it arrives with the sender issue (a `send_message` function with its
//! own `SenderConfig`, a reusable `Sender`, and the `connector-send` binary). The crate exists
//! now so the workspace has its final shape.
//!
//! # Must never
//! Depend on `grpc-api` or the server: it talks to PostgreSQL, Secrets Manager and Slack
//! through the same adapters the server uses.
