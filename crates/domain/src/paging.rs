//! Page sizes and opaque page tokens for listing connectors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ValidationError;
use crate::ids::{ConnectorId, TenantId};

/// How many connectors one page holds: 1 to [`PageSize::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(u32);

impl PageSize {
    /// The page size used when the caller gives 0.
    pub const DEFAULT: u32 = 50;
    /// Larger requests are served with this many.
    pub const MAX: u32 = 1000;

    /// Validates the request field `field`: negative is an error, 0 means the default, larger
    /// than the maximum is lowered to it (as Google's AIP-158 recommends).
    pub fn parse(field: &'static str, value: i32) -> Result<Self, ValidationError> {
        match value {
            v if v < 0 => Err(ValidationError::new(field, "must not be negative")),
            0 => Ok(Self(Self::DEFAULT)),
            v => Ok(Self((v as u32).min(Self::MAX))),
        }
    }

    /// The size.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where the next page starts: after this connector (connectors are listed in ID order, which
/// is creation order for v7 IDs).
///
/// Clients see it only as an opaque string; it is bound to the tenant so that a token cannot be
/// replayed against another tenant's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// The last connector of the previous page.
    pub after: ConnectorId,
}

impl PageToken {
    const VERSION: &'static str = "v1";

    /// The opaque string form for `tenant`.
    pub fn encode(&self, tenant: &TenantId) -> String {
        let raw = format!("{}|{}|{}", Self::VERSION, tenant, self.after);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Parses the request field `field`; an empty value means "the first page".
    pub fn decode(
        field: &'static str,
        value: &str,
        tenant: &TenantId,
    ) -> Result<Option<Self>, ValidationError> {
        if value.is_empty() {
            return Ok(None);
        }
        let invalid = || {
            ValidationError::new(
                field,
                "is not a page token returned by ListConnectors for this tenant",
            )
        };
        if value.len() > 512 {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(value).map_err(|_| invalid())?;
        let raw = String::from_utf8(raw).map_err(|_| invalid())?;
        let mut parts = raw.splitn(3, '|');
        let (Some(version), Some(token_tenant), Some(after)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if version != Self::VERSION || token_tenant != tenant.as_str() {
            return Err(invalid());
        }
        let after = ConnectorId::parse(field, after).map_err(|_| invalid())?;
        Ok(Some(Self { after }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse("tenant_id", s).unwrap()
    }

    #[test]
    fn page_size_defaults_and_clamps() {
        assert_eq!(PageSize::parse("page_size", 0).unwrap().get(), 50);
        assert_eq!(PageSize::parse("page_size", 7).unwrap().get(), 7);
        assert_eq!(PageSize::parse("page_size", 5000).unwrap().get(), 1000);
        assert_eq!(
            PageSize::parse("page_size", -1).unwrap_err().field,
            "page_size"
        );
    }

    #[test]
    fn tokens_round_trip_for_their_tenant_only() {
        let t = PageToken {
            after: ConnectorId::new_v7(),
        };
        let s = t.encode(&tenant("acme"));
        assert_eq!(
            PageToken::decode("page_token", &s, &tenant("acme")).unwrap(),
            Some(t)
        );
        assert!(PageToken::decode("page_token", &s, &tenant("other")).is_err());
        assert_eq!(
            PageToken::decode("page_token", "", &tenant("acme")).unwrap(),
            None
        );
        for bad in ["garbage", "djE", "!!!!"] {
            assert_eq!(
                PageToken::decode("page_token", bad, &tenant("acme"))
                    .unwrap_err()
                    .field,
                "page_token"
            );
        }
    }
}
