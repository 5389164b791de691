//! Identifiers: tenants, connectors, Slack workspaces and channels, idempotency keys.

use std::fmt;
use std::str::FromStr;

use crate::error::{ValidationError, check_len};

/// The tenant that owns a connector: 1-64 characters of `A-Z a-z 0-9 . _ -`.
///
/// The charset is deliberately narrow: tenant IDs become part of secret names, which AWS
/// restricts to `A-Z a-z 0-9 / _ + = . @ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// Longest accepted tenant ID, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates `value` as the request field `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        check_len(field, value, Self::MAX_LEN)?;
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ValidationError::new(
                field,
                format!("may contain only A-Z, a-z, 0-9, '.', '_' and '-' (found {c:?})"),
            ));
        }
        if value == "." || value == ".." {
            return Err(ValidationError::new(field, "must not be '.' or '..'"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The tenant ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A connector's server-assigned ID: a UUID (v7 for new connectors), shown in canonical
/// lowercase hyphenated form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectorId(uuid::Uuid);

impl ConnectorId {
    /// A fresh, time-ordered (v7) ID.
    pub fn new_v7() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The nil UUID: never a connector's (they are server-assigned v7 IDs), so a lookup of
    /// it is a harmless probe.
    pub fn nil() -> Self {
        Self(uuid::Uuid::nil())
    }

    /// Wraps an existing UUID (as stored).
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }

    /// Validates `value` as the request field `field`: a UUID in canonical hyphenated form
    /// (either case accepted).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        if value.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if value.len() != 36 {
            return Err(ValidationError::new(
                field,
                "must be a UUID like 0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c",
            ));
        }
        uuid::Uuid::parse_str(value).map(Self).map_err(|_| {
            ValidationError::new(
                field,
                "must be a UUID like 0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c",
            )
        })
    }
}

impl fmt::Display for ConnectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for ConnectorId {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse("id", s)
    }
}

/// A connector's name: 1-100 characters, unique per tenant.
///
/// Letters and digits of any script, spaces, and `. _ - ( ) : / @ #` are allowed; no control
/// characters and no leading or trailing whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectorName(String);

impl ConnectorName {
    /// Longest accepted name, in characters.
    pub const MAX_LEN: usize = 100;

    /// Validates `value` as the request field `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        check_len(field, value, Self::MAX_LEN)?;
        if value.trim() != value {
            return Err(ValidationError::new(
                field,
                "must not start or end with whitespace",
            ));
        }
        if let Some(c) = value.chars().find(|c| {
            !(c.is_alphanumeric()
                || *c == ' '
                || matches!(c, '.' | '_' | '-' | '(' | ')' | ':' | '/' | '@' | '#'))
        }) {
            return Err(ValidationError::new(
                field,
                format!("may contain letters, digits, spaces and . _ - ( ) : / @ # (found {c:?})"),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An optional idempotency key, scoped to the tenant: 1-128 printable ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Longest accepted request ID, in characters.
    pub const MAX_LEN: usize = 128;

    /// Validates `value` as the request field `field`; an empty value means "none".
    pub fn parse_optional(
        field: &'static str,
        value: &str,
    ) -> Result<Option<Self>, ValidationError> {
        if value.is_empty() {
            return Ok(None);
        }
        check_len(field, value, Self::MAX_LEN)?;
        if !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ValidationError::new(
                field,
                "may contain only printable ASCII without spaces",
            ));
        }
        Ok(Some(Self(value.to_owned())))
    }

    /// Validates `value` as the request field `field`; it must not be empty.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        Self::parse_optional(field, value)?
            .ok_or_else(|| ValidationError::new(field, "must not be empty"))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Slack workspace (team) ID such as `T0123ABCD`, as reported by `auth.test`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkspaceId(String);

impl WorkspaceId {
    /// Wraps a team ID reported by Slack or read back from storage.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The team ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Slack conversation ID: `C…` (public channel), `G…` (private channel or group) or `D…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelId(String);

impl ChannelId {
    /// Whether `value` has the shape of a channel ID: `C`, `G` or `D`, then 8-20 upper-case
    /// letters and digits.
    pub fn looks_like_id(value: &str) -> bool {
        let mut chars = value.chars();
        matches!(chars.next(), Some('C' | 'G' | 'D'))
            && (9..=21).contains(&value.len())
            && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    }

    /// Wraps an ID reported by Slack or read back from storage.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The ID as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_accept_the_documented_charset_only() {
        assert!(TenantId::parse("tenant_id", "acme-prod_1.eu").is_ok());
        for bad in ["", "a b", "a/b", "ünï", "..", &"x".repeat(65)] {
            let err = TenantId::parse("tenant_id", bad).unwrap_err();
            assert_eq!(err.field, "tenant_id", "{bad:?}");
        }
        assert!(TenantId::parse("tenant_id", &"x".repeat(64)).is_ok());
    }

    #[test]
    fn connector_ids_are_canonical_uuids() {
        let id = ConnectorId::new_v7();
        let text = id.to_string();
        assert_eq!(text, text.to_lowercase());
        assert_eq!(ConnectorId::parse("id", &text).unwrap(), id);
        assert_eq!(
            ConnectorId::parse("id", &text.to_uppercase()).unwrap(),
            id,
            "upper case is accepted"
        );
        for bad in [
            "",
            "nope",
            "0192f5e48f4c7a8e9c3d5b2a1e0f9d7c",
            "{0192f5e4-8f4c-7a8e-9c3d-5b2a1e0f9d7c}",
        ] {
            assert_eq!(
                ConnectorId::parse("id", bad).unwrap_err().field,
                "id",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn v7_ids_sort_in_creation_order() {
        let a = ConnectorId::new_v7();
        let b = ConnectorId::new_v7();
        assert!(a < b);
    }

    #[test]
    fn connector_names_reject_control_characters_and_padding() {
        assert!(ConnectorName::parse("name", "Prod alerts (EU) #1").is_ok());
        assert!(ConnectorName::parse("name", "Überwachung").is_ok());
        for bad in [
            "",
            " x",
            "x ",
            "a\nb",
            "a\u{0}b",
            "semi;colon",
            &"n".repeat(101),
        ] {
            assert_eq!(
                ConnectorName::parse("name", bad).unwrap_err().field,
                "name",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn request_ids_are_optional_and_printable() {
        assert_eq!(RequestId::parse_optional("request_id", "").unwrap(), None);
        assert!(
            RequestId::parse_optional("request_id", "req-1:abc")
                .unwrap()
                .is_some()
        );
        assert!(RequestId::parse_optional("request_id", "a b").is_err());
        assert!(RequestId::parse_optional("request_id", &"r".repeat(129)).is_err());
    }

    #[test]
    fn channel_id_shape() {
        assert!(ChannelId::looks_like_id("C0123ABCD"));
        assert!(ChannelId::looks_like_id("G0123ABCDEF"));
        assert!(!ChannelId::looks_like_id("general"));
        assert!(!ChannelId::looks_like_id("C012"));
        assert!(!ChannelId::looks_like_id("Cabcdefghi"));
    }
}
