//! Where a connector's token lives in the secret store.

use std::fmt;

use crate::error::ValidationError;
use crate::ids::{ConnectorId, TenantId};

/// The configurable prefix of every secret name, such as `slack-connector/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretPrefix(String);

impl SecretPrefix {
    /// Validates a configured prefix: at most 256 characters of the set AWS allows in secret
    /// names (`A-Z a-z 0-9 / _ + = . @ -`). It may be empty.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        if value.len() > 256 {
            return Err(ValidationError::new(
                field,
                "must be at most 256 characters",
            ));
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
        {
            return Err(ValidationError::new(
                field,
                format!("may contain only A-Z a-z 0-9 / _ + = . @ - (found {c:?})"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The secret name of one connector: `{prefix}{tenant}/{connector id}`.
    ///
    /// The connector ID makes it unique per connector (never shared by two connectors of one
    /// workspace), and it is the only name the token is ever written or read under.
    pub fn secret_name(&self, tenant: &TenantId, id: ConnectorId) -> SecretName {
        SecretName(format!("{}{}/{}", self.0, tenant, id))
    }

    /// The prefix itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The full name of one connector's secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_connector() {
        let prefix = SecretPrefix::parse("secrets.prefix", "slack-connector/").unwrap();
        let tenant = TenantId::parse("tenant_id", "acme").unwrap();
        let a = ConnectorId::new_v7();
        let b = ConnectorId::new_v7();
        assert_eq!(
            prefix.secret_name(&tenant, a).as_str(),
            format!("slack-connector/acme/{a}")
        );
        assert_ne!(
            prefix.secret_name(&tenant, a),
            prefix.secret_name(&tenant, b)
        );
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(SecretPrefix::parse("secrets.prefix", "").is_ok());
        assert!(SecretPrefix::parse("secrets.prefix", "prod/slack@x+=").is_ok());
        assert!(SecretPrefix::parse("secrets.prefix", "has space").is_err());
    }
}
