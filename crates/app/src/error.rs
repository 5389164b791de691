//! Why the application could not be put together.

use crate::config::ConfigError;

/// A setting is wrong, or a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A setting is missing or invalid; the message names it and its variable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A store could not be reached, opened or migrated. Never carries a password.
    #[error("{0}")]
    Open(String),
}
