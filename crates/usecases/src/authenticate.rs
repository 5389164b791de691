//! [`Authenticator`]: which credentials a deployment accepts, and the caller a request's
//! bearer credential stands for.

use std::sync::Arc;

use connector_domain::{Principal, Scopes, tenant_from_uri};
use connector_ports::{TokenError, TokenVerifier};
use secrecy::{ExposeSecret as _, SecretString};

use crate::api_keys::ApiKeys;
use crate::error::Dependency;

/// Which credentials callers may present.
#[derive(Clone)]
pub enum CredentialPolicy {
    /// None: every caller acts as any tenant, naming it in each request.
    Off,
    /// Static API keys (`ck_…`).
    ApiKeys(ApiKeys),
    /// Identity-provider tokens.
    Tokens(Arc<dyn TokenVerifier>),
    /// Either: a credential starting with `ck_` is an API key, anything else a token.
    TokensOrApiKeys(Arc<dyn TokenVerifier>, ApiKeys),
    /// Client certificates (mutual TLS, checked by the transport): the tenant is named by a
    /// URI SAN matching `tenant_uri` (one `{tenant}` placeholder); the caller holds `scopes`.
    ClientCertificates {
        /// The URI pattern, e.g. `spiffe://mesh.example/tenant/{tenant}`.
        tenant_uri: String,
        /// What certificate holders may do.
        scopes: Scopes,
    },
}

/// What a caller presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The credential of an `authorization: Bearer` header.
    pub bearer: Option<&'a SecretString>,
    /// The URI SANs of the client certificate the transport verified, if any.
    pub certificate_uris: Option<&'a [String]>,
}

impl std::fmt::Debug for CredentialPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Off => "Off",
            Self::ApiKeys(_) => "ApiKeys",
            Self::Tokens(_) => "Tokens",
            Self::TokensOrApiKeys(..) => "TokensOrApiKeys",
            Self::ClientCertificates { .. } => "ClientCertificates",
        })
    }
}

/// Why no caller could be established.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// The credential is missing or refused; the message says which check failed and never
    /// contains the credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// What checks credentials cannot be reached (the database, the identity provider).
    #[error("{dependency} is unavailable: {detail}")]
    Unavailable {
        /// Which one.
        dependency: Dependency,
        /// What happened.
        detail: String,
    },
}

/// Establishes callers under a [`CredentialPolicy`].
#[derive(Debug, Clone)]
pub struct Authenticator {
    policy: CredentialPolicy,
}

impl Authenticator {
    /// An authenticator accepting what `policy` says.
    pub fn new(policy: CredentialPolicy) -> Self {
        Self { policy }
    }

    /// Whether callers are asked for credentials at all.
    pub fn is_on(&self) -> bool {
        !matches!(self.policy, CredentialPolicy::Off)
    }

    /// What a caller should send, for messages.
    pub fn expected(&self) -> &'static str {
        match self.policy {
            CredentialPolicy::Off => "nothing",
            CredentialPolicy::ApiKeys(_) => "`authorization: Bearer <API key>`",
            CredentialPolicy::Tokens(_) => "`authorization: Bearer <JWT>`",
            CredentialPolicy::TokensOrApiKeys(..) => "`authorization: Bearer <JWT or API key>`",
            CredentialPolicy::ClientCertificates { .. } => {
                "a client certificate from the configured CA"
            }
        }
    }

    /// Whether the caller is identified by its client certificate.
    pub fn uses_certificates(&self) -> bool {
        matches!(self.policy, CredentialPolicy::ClientCertificates { .. })
    }

    /// The caller presenting `credentials`.
    pub async fn authenticate_with(
        &self,
        credentials: Credentials<'_>,
    ) -> Result<Principal, AuthFailure> {
        if let CredentialPolicy::ClientCertificates { tenant_uri, scopes } = &self.policy {
            let Some(uris) = credentials.certificate_uris else {
                return Err(AuthFailure::Unauthenticated(
                    "no client certificate: connect with TLS and a certificate from the configured CA"
                        .into(),
                ));
            };
            return uris
                .iter()
                .find_map(|uri| {
                    tenant_from_uri(tenant_uri, uri).map(|tenants| Principal {
                        subject: format!("cert:{}", uri.chars().take(200).collect::<String>()),
                        tenants,
                        scopes: *scopes,
                    })
                })
                .ok_or_else(|| {
                    AuthFailure::Unauthenticated(format!(
                        "the client certificate names no tenant: it needs a URI SAN like {tenant_uri}"
                    ))
                });
        }
        self.authenticate(credentials.bearer).await
    }

    /// The caller presenting `bearer` (the credential of an `authorization: Bearer` header,
    /// `None` when there was none).
    pub async fn authenticate(
        &self,
        bearer: Option<&SecretString>,
    ) -> Result<Principal, AuthFailure> {
        let (tokens, keys) = match &self.policy {
            CredentialPolicy::Off => return Ok(Principal::unauthenticated()),
            CredentialPolicy::ClientCertificates { .. } => {
                return Err(AuthFailure::Unauthenticated(
                    "this server identifies callers by their client certificate".into(),
                ));
            }
            CredentialPolicy::ApiKeys(keys) => (None, Some(keys)),
            CredentialPolicy::Tokens(tokens) => (Some(tokens), None),
            CredentialPolicy::TokensOrApiKeys(tokens, keys) => (Some(tokens), Some(keys)),
        };
        let Some(credential) = bearer else {
            return Err(AuthFailure::Unauthenticated(format!(
                "missing credentials: send {}",
                self.expected()
            )));
        };
        let is_key = ApiKeys::looks_like_key(credential.expose_secret());
        match (is_key, keys, tokens) {
            (true, Some(keys), _) => self.with_key(keys, credential).await,
            (false, _, Some(tokens)) => tokens.verify(credential).await.map_err(|e| match e {
                TokenError::Rejected(why) => AuthFailure::Unauthenticated(why),
                TokenError::Unavailable(detail) => AuthFailure::Unavailable {
                    dependency: Dependency::IdentityProvider,
                    detail,
                },
            }),
            (true, None, _) => Err(AuthFailure::Unauthenticated(
                "API keys are not accepted here; send a JWT".into(),
            )),
            (false, _, None) => Err(AuthFailure::Unauthenticated(
                "the bearer credential is not an API key (they start with ck_); this server accepts API keys".into(),
            )),
        }
    }

    async fn with_key(
        &self,
        keys: &ApiKeys,
        credential: &SecretString,
    ) -> Result<Principal, AuthFailure> {
        match keys.authenticate(credential).await {
            Ok(Ok(principal)) => Ok(principal),
            Ok(Err(rejected)) => Err(AuthFailure::Unauthenticated(rejected.to_string())),
            Err(e) => Err(AuthFailure::Unavailable {
                dependency: Dependency::Database,
                detail: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use connector_domain::TenantGrant;
    use connector_ports::{MockApiKeyStore, MockTokenVerifier};

    use super::*;

    fn token_verifier() -> Arc<dyn TokenVerifier> {
        let mut v = MockTokenVerifier::new();
        v.expect_verify().returning(|t| {
            if t.expose_secret() == "good.jwt.token" {
                Ok(Principal {
                    subject: "jwt:svc".into(),
                    tenants: TenantGrant::All,
                    scopes: Scopes::all(),
                })
            } else if t.expose_secret() == "down.jwt.token" {
                Err(TokenError::Unavailable("keys unreachable".into()))
            } else {
                Err(TokenError::Rejected("the token has expired".into()))
            }
        });
        Arc::new(v)
    }

    fn keys() -> ApiKeys {
        let mut store = MockApiKeyStore::new();
        store.expect_find_api_key().returning(|_| Ok(None));
        ApiKeys::new(Arc::new(store), Arc::new(crate::SystemClock))
    }

    fn s(v: &str) -> SecretString {
        SecretString::from(v.to_owned())
    }

    #[tokio::test]
    async fn each_policy_accepts_exactly_its_credentials() {
        let off = Authenticator::new(CredentialPolicy::Off);
        assert_eq!(
            off.authenticate(None).await.unwrap(),
            Principal::unauthenticated()
        );

        let jwt = Authenticator::new(CredentialPolicy::Tokens(token_verifier()));
        assert_eq!(
            jwt.authenticate(Some(&s("good.jwt.token")))
                .await
                .unwrap()
                .subject,
            "jwt:svc"
        );
        let e = jwt
            .authenticate(Some(&s("old.jwt.token")))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            AuthFailure::Unauthenticated("the token has expired".into())
        );
        let e = jwt.authenticate(Some(&s("ck_0123_abc"))).await.unwrap_err();
        assert!(e.to_string().contains("API keys are not accepted"), "{e}");
        let e = jwt.authenticate(None).await.unwrap_err();
        assert!(e.to_string().contains("<JWT>"), "{e}");
        let e = jwt
            .authenticate(Some(&s("down.jwt.token")))
            .await
            .unwrap_err();
        assert!(matches!(
            e,
            AuthFailure::Unavailable {
                dependency: Dependency::IdentityProvider,
                ..
            }
        ));

        let keys_only = Authenticator::new(CredentialPolicy::ApiKeys(keys()));
        let e = keys_only
            .authenticate(Some(&s("good.jwt.token")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not an API key"), "{e}");

        let both = Authenticator::new(CredentialPolicy::TokensOrApiKeys(token_verifier(), keys()));
        assert!(both.authenticate(Some(&s("good.jwt.token"))).await.is_ok());
        let e = both
            .authenticate(Some(&s(&format!(
                "ck_0123456789abcdef0123456789abcdef_{}",
                "s".repeat(43)
            ))))
            .await
            .unwrap_err();
        assert_eq!(
            e,
            AuthFailure::Unauthenticated("the API key is not valid".into())
        );
    }

    #[tokio::test]
    async fn client_certificates_name_the_tenant_by_uri() {
        let certs = Authenticator::new(CredentialPolicy::ClientCertificates {
            tenant_uri: "spiffe://mesh/tenant/{tenant}".into(),
            scopes: Scopes::all(),
        });
        let uris = vec![
            "dns:ignored".to_owned(),
            "spiffe://mesh/tenant/acme".to_owned(),
        ];
        let p = certs
            .authenticate_with(Credentials {
                bearer: None,
                certificate_uris: Some(&uris),
            })
            .await
            .unwrap();
        assert_eq!(p.subject, "cert:spiffe://mesh/tenant/acme");
        assert!(matches!(p.tenants, TenantGrant::One(_)));
        let other = vec!["spiffe://elsewhere/acme".to_owned()];
        let e = certs
            .authenticate_with(Credentials {
                bearer: None,
                certificate_uris: Some(&other),
            })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("names no tenant"), "{e}");
        let e = certs
            .authenticate_with(Credentials::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("no client certificate"), "{e}");
    }
}
