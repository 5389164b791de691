//! Where settings come from, read once: an optional TOML file, then `CONNECTOR__…`
//! environment variables (`__` separates sections: `CONNECTOR__GRPC__LISTEN_ADDR` is
//! `grpc.listen_addr`). Each edge deserializes the sections it owns from the same
//! [`Sources`]; defaults are the sections' serde defaults.

use std::collections::HashMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// The prefix of every variable.
pub const ENV_PREFIX: &str = "CONNECTOR";

/// The environment variable that sets `key` (`grpc.listen_addr` →
/// `CONNECTOR__GRPC__LISTEN_ADDR`): the one place names are derived.
pub fn env_name(key: &str) -> String {
    format!(
        "{ENV_PREFIX}__{}",
        key.replace('.', "__").to_ascii_uppercase()
    )
}

/// A configuration error, naming the key and the variable that sets it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The sources could not be read or merged, or a value has the wrong type (the message
    /// names the key).
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but unusable.
    #[error("configuration: {key} ({}): {reason}", env_name(key))]
    Invalid {
        /// The dotted key, e.g. `database.url`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl ConfigError {
    /// The dotted key at fault, when one is known.
    pub fn key(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { key, .. } => Some(key),
            Self::Load(_) => None,
        }
    }
}

/// `key` holds an unusable value: `reason`.
pub fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// The file and the environment, merged once (the environment wins).
#[derive(Debug, Clone)]
pub struct Sources(config::Config);

impl Sources {
    /// Reads `file` (required when named) and the process environment.
    pub fn read(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::read_from(file, None)
    }

    /// Like [`Sources::read`], reading `env` instead of the process environment (for tests).
    pub fn read_from(
        file: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(env),
        );
        Ok(Self(builder.build()?))
    }

    /// No file, no variables: every setting at its default.
    pub fn empty() -> Self {
        Self::read_from(None, Some(HashMap::new()))
            .unwrap_or_else(|e| unreachable!("no source cannot fail to read: {e}"))
    }

    /// The settings of type `T`, whose fields are top-level keys and sections; what the
    /// sources do not name takes `T`'s serde defaults, and keys `T` does not know are another
    /// edge's.
    pub fn settings<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        Ok(self.0.clone().try_deserialize()?)
    }
}

/// Serde helpers for values where an empty string means unset, as an unset variable would.
pub mod blank {
    use std::path::PathBuf;

    use secrecy::SecretString;
    use serde::{Deserialize as _, Deserializer};

    fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.filter(|s| !s.trim().is_empty()))
    }

    /// An optional string; blank is `None`.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        text(d)
    }

    /// An optional secret; blank is `None`.
    pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Ok(text(d)?.map(SecretString::from))
    }

    /// An optional path; blank is `None`.
    pub fn path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Ok(text(d)?.map(PathBuf::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_are_derived_from_keys() {
        assert_eq!(env_name("grpc.listen_addr"), "CONNECTOR__GRPC__LISTEN_ADDR");
        assert_eq!(env_name("data_dir"), "CONNECTOR__DATA_DIR");
        assert_eq!(
            invalid("secrets.prefix", "must not be empty").to_string(),
            "configuration: secrets.prefix (CONNECTOR__SECRETS__PREFIX): must not be empty"
        );
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let err = Sources::read_from(Some(Path::new("/nonexistent/connector.toml")), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("connector.toml"), "{err}");
    }
}
