//! Who is calling and what they may do: [`Principal`], its [`Scopes`] and its [`TenantGrant`].
//!
//! A caller proves who they are at the edge (an API key, later a JWT or a client certificate);
//! what comes out is a [`Principal`]. Every request then asks it two questions: may this
//! caller do this ([`Principal::require`]), and which tenant does the request act for
//! ([`Principal::tenant_for`]).

use std::fmt;

use crate::error::ValidationError;
use crate::ids::TenantId;

/// A permission a caller can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `connectors:read`: GetConnector, ListConnectors.
    ConnectorsRead,
    /// `connectors:write`: CreateConnector, DeleteConnector, GetOAuthV2URL.
    ConnectorsWrite,
    /// `messages:send`: SendMessage, and GetMessage, ListMessages, CancelMessage (queued
    /// messages).
    MessagesSend,
    /// `messages:manage`: UpdateMessage, DeleteMessage, CancelScheduledMessage, over messages
    /// the tenant's connectors posted. Not implied by `messages:send`: a credential that only
    /// sends cannot rewrite or remove what was sent.
    MessagesManage,
    /// `events:read`: ListEvents (what people did in Slack, the tenant's event log).
    EventsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 5] = [
        Scope::ConnectorsRead,
        Scope::ConnectorsWrite,
        Scope::MessagesSend,
        Scope::MessagesManage,
        Scope::EventsRead,
    ];

    /// The scope's name, as tokens and keys carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectorsRead => "connectors:read",
            Self::ConnectorsWrite => "connectors:write",
            Self::MessagesSend => "messages:send",
            Self::MessagesManage => "messages:manage",
            Self::EventsRead => "events:read",
        }
    }

    /// The scope named `name`; `None` for a name this service does not know (other services'
    /// scopes in a shared token are ignored, not refused).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Self::ConnectorsRead => 1,
            Self::ConnectorsWrite => 2,
            Self::MessagesSend => 4,
            Self::MessagesManage => 8,
            Self::EventsRead => 16,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Scopes(u8);

impl Scopes {
    /// Every scope.
    pub fn all() -> Self {
        Self::ALL
    }

    const ALL: Self = Self(31);

    /// No scope.
    pub fn none() -> Self {
        Self(0)
    }

    /// Whether `scope` is in the set.
    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// The set with `scope` added.
    pub fn with(self, scope: Scope) -> Self {
        Self(self.0 | scope.bit())
    }

    /// The scopes of a space-separated list such as an OAuth `scope` claim; unknown names are
    /// skipped.
    pub fn from_claim(claim: &str) -> Self {
        claim
            .split_whitespace()
            .filter_map(Scope::from_name)
            .fold(Self::none(), Self::with)
    }

    /// Parses scope names given as `field`; an unknown name is an error naming it.
    pub fn parse_names<'a>(
        field: &'static str,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ValidationError> {
        let mut scopes = Self::none();
        for name in names {
            let scope = Scope::from_name(name).ok_or_else(|| {
                ValidationError::new(
                    field,
                    format!(
                        "unknown scope {name:?}; known scopes: connectors:read, connectors:write, messages:send, messages:manage, events:read"
                    ),
                )
            })?;
            scopes = scopes.with(scope);
        }
        if scopes == Self::none() {
            return Err(ValidationError::new(field, "name at least one scope"));
        }
        Ok(scopes)
    }

    /// The scopes in the set, in a fixed order.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

impl fmt::Display for Scopes {
    /// Space-separated, as an OAuth `scope` claim.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scopes({self})")
    }
}

/// Which tenants a caller may act for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TenantGrant {
    /// One tenant: requests act for it, whether they name it or leave `tenant_id` empty.
    One(TenantId),
    /// Every tenant (a platform backend): each request must name its `tenant_id`.
    All,
}

impl fmt::Display for TenantGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::One(t) => t.fmt(f),
            Self::All => f.write_str("*"),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who: the token's `sub`, the API key's ID, the certificate's name. Safe to log.
    pub subject: String,
    /// The tenants it may act for.
    pub tenants: TenantGrant,
    /// What it may do.
    pub scopes: Scopes,
}

/// Why an authenticated caller may not do what it asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessDenied {
    /// The caller lacks the scope the call needs.
    #[error("this call needs the scope {needed}, which the caller's credentials do not grant")]
    MissingScope {
        /// The scope the call needs.
        needed: Scope,
    },
    /// The request names a tenant the caller may not act for.
    #[error("tenant_id: the caller's credentials are for tenant {granted}, not {requested}")]
    OtherTenant {
        /// The tenant the credentials are bound to.
        granted: TenantId,
        /// The tenant the request named.
        requested: String,
    },
}

impl Principal {
    /// The caller when authentication is off: every tenant, every scope; requests name their
    /// tenant as they always did.
    pub fn unauthenticated() -> Self {
        Self {
            subject: "anonymous".into(),
            tenants: TenantGrant::All,
            scopes: Scopes::all(),
        }
    }

    /// Ok when the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), AccessDenied> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AccessDenied::MissingScope { needed: scope })
        }
    }

    /// The tenant a request whose `tenant_id` field is `requested` acts for: the caller's own
    /// tenant when the field is empty or names it; for a caller granted every tenant, the
    /// tenant the field names (it must name one).
    pub fn tenant_for(&self, requested: &str) -> Result<TenantId, TenantError> {
        match &self.tenants {
            TenantGrant::One(own) if requested.is_empty() || requested == own.as_str() => {
                Ok(own.clone())
            }
            TenantGrant::One(own) => Err(TenantError::Denied(AccessDenied::OtherTenant {
                granted: own.clone(),
                requested: requested.chars().take(TenantId::MAX_LEN).collect(),
            })),
            TenantGrant::All => TenantId::parse("tenant_id", requested).map_err(|e| {
                if requested.is_empty() {
                    TenantError::Invalid(ValidationError::new(
                        "tenant_id",
                        "is required: these credentials act for any tenant, so each request must name one",
                    ))
                } else {
                    TenantError::Invalid(e)
                }
            }),
        }
    }
}

/// An API key's public identifier (the part of the key before its secret), safe to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(uuid::Uuid);

impl ApiKeyId {
    /// A fresh, random ID.
    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// Wraps a stored UUID.
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }

    /// Parses the 32 hexadecimal digits (or a hyphenated UUID) given as `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::try_parse(value)
            .map(Self)
            .map_err(|_| ValidationError::new(field, "is not an API key ID"))
    }
}

impl fmt::Display for ApiKeyId {
    /// 32 lowercase hexadecimal digits, as inside the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.simple())
    }
}

/// The tenants a client certificate's URI names under `pattern`, a URI with one `{tenant}`
/// placeholder (`spiffe://mesh.example/ns/tenants/sa/{tenant}`): the placeholder's text must be
/// a valid tenant ID, or `*` for every tenant. `None` when the URI does not match.
pub fn tenant_from_uri(pattern: &str, uri: &str) -> Option<TenantGrant> {
    let (prefix, suffix) = pattern.split_once("{tenant}")?;
    let middle = uri.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if middle == "*" {
        return Some(TenantGrant::All);
    }
    TenantId::parse("tenant", middle).ok().map(TenantGrant::One)
}

/// Why a request's tenant could not be settled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The field is malformed or missing.
    #[error(transparent)]
    Invalid(ValidationError),
    /// The caller may not act for that tenant.
    #[error(transparent)]
    Denied(AccessDenied),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(t: &str) -> TenantId {
        TenantId::parse("t", t).unwrap()
    }

    #[test]
    fn scopes_parse_from_claims_and_names() {
        let s = Scopes::from_claim("openid messages:send  connectors:read other:thing");
        assert!(s.contains(Scope::MessagesSend));
        assert!(s.contains(Scope::ConnectorsRead));
        assert!(!s.contains(Scope::ConnectorsWrite));
        assert_eq!(s.to_string(), "connectors:read messages:send");
        assert_eq!(
            Scopes::from_claim("messages:manage").to_string(),
            "messages:manage"
        );
        assert!(Scopes::all().contains(Scope::MessagesManage));
        let err = Scopes::parse_names("scope", ["messages:send", "connectors:admin"]).unwrap_err();
        assert!(err.to_string().contains("connectors:admin"), "{err}");
        assert!(Scopes::parse_names("scope", []).is_err());
        assert_eq!(
            Scopes::parse_names("scope", ["connectors:write"]).unwrap(),
            Scopes::none().with(Scope::ConnectorsWrite)
        );
    }

    #[test]
    fn a_single_tenant_caller_acts_for_its_own_tenant_only() {
        let p = Principal {
            subject: "key-1".into(),
            tenants: TenantGrant::One(tenant("acme")),
            scopes: Scopes::none().with(Scope::MessagesSend),
        };
        assert_eq!(p.tenant_for("").unwrap(), tenant("acme"));
        assert_eq!(p.tenant_for("acme").unwrap(), tenant("acme"));
        assert!(matches!(
            p.tenant_for("globex"),
            Err(TenantError::Denied(AccessDenied::OtherTenant { .. }))
        ));
        assert!(p.require(Scope::MessagesSend).is_ok());
        // Sending does not imply changing what was sent.
        assert!(p.require(Scope::MessagesManage).is_err());
        assert_eq!(
            p.require(Scope::ConnectorsWrite),
            Err(AccessDenied::MissingScope {
                needed: Scope::ConnectorsWrite
            })
        );
    }

    #[test]
    fn certificate_uris_name_tenants_by_pattern() {
        let p = "spiffe://mesh.example/tenant/{tenant}/sa";
        assert_eq!(
            tenant_from_uri(p, "spiffe://mesh.example/tenant/acme/sa"),
            Some(TenantGrant::One(tenant("acme")))
        );
        assert_eq!(
            tenant_from_uri(p, "spiffe://mesh.example/tenant/*/sa"),
            Some(TenantGrant::All)
        );
        assert_eq!(
            tenant_from_uri(p, "spiffe://mesh.example/tenant/a b/sa"),
            None
        );
        assert_eq!(tenant_from_uri(p, "spiffe://other/tenant/acme/sa"), None);
        assert_eq!(tenant_from_uri(p, "spiffe://mesh.example/tenant//sa"), None);
        assert_eq!(tenant_from_uri("no placeholder", "no placeholder"), None);
    }

    #[test]
    fn an_all_tenants_caller_must_name_the_tenant() {
        let p = Principal::unauthenticated();
        assert_eq!(p.tenant_for("globex").unwrap(), tenant("globex"));
        let err = p.tenant_for("").unwrap_err().to_string();
        assert!(err.starts_with("tenant_id:"), "{err}");
        assert!(matches!(p.tenant_for("a b"), Err(TenantError::Invalid(_))));
    }
}
