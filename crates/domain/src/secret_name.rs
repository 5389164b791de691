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

    /// The tenant and connector whose secret is named `name`, when it is one of this prefix's
    /// names exactly as [`SecretPrefix::secret_name`] writes them.
    pub fn connector_of(&self, name: &str) -> Option<(TenantId, ConnectorId)> {
        let (tenant, id) = name.strip_prefix(&self.0)?.split_once('/')?;
        let tenant = TenantId::parse("tenant_id", tenant).ok()?;
        let id = ConnectorId::parse("connector_id", id).ok()?;
        (self.secret_name(&tenant, id).as_str() == name).then_some((tenant, id))
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
    fn a_name_is_read_back_only_when_it_is_one_of_the_prefixes_own() {
        let prefix = SecretPrefix::parse("secrets.prefix", "sc/").unwrap();
        let tenant = TenantId::parse("tenant_id", "acme").unwrap();
        let id = ConnectorId::new_v7();
        let name = prefix.secret_name(&tenant, id);
        assert_eq!(prefix.connector_of(name.as_str()), Some((tenant, id)));
        for foreign in [
            format!("other/acme/{id}"),
            format!("sc/acme/{id}/x"),
            "sc/acme/not-a-uuid".to_owned(),
            format!("sc/{id}"),
            format!("sc/acme/{}", id.to_string().to_uppercase()),
        ] {
            assert_eq!(prefix.connector_of(&foreign), None, "{foreign}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(SecretPrefix::parse("secrets.prefix", "").is_ok());
        assert!(SecretPrefix::parse("secrets.prefix", "prod/slack@x+=").is_ok());
        assert!(SecretPrefix::parse("secrets.prefix", "has space").is_err());
    }
}
