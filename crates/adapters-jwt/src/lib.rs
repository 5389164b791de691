//! Verifies bearer JWTs the way an OIDC resource server does, and turns a valid one into the
//! [`Principal`] it stands for.
//!
//! - Keys come from the issuer's JWKS URL and are cached. An unknown `kid` triggers a refetch
//!   (a key rotation at the issuer), and the whole set is refetched periodically, so a key the
//!   issuer removed stops working. Refetches are bounded: at most one per
//!   [`JwtSettings::min_refetch_interval`], so a flood of made-up `kid`s cannot hammer the
//!   issuer; concurrent requests share one fetch.
//! - Only RS256, ES256 and EdDSA are accepted, and a token's algorithm must be its key's:
//!   never `none`, never HMAC (an HMAC "signed" with a public key is refused before any
//!   cryptography).
//! - `iss`, `aud`, `exp` and `nbf` are checked with a small leeway; `sub` is required.
//! - The tenant comes from a configurable claim (default `tenant_id`; `*` grants every tenant)
//!   and the scopes from another (default `scope`: space-separated, or an array).
//!
//! The cryptography is `jsonwebtoken`'s (RustCrypto backend).
//!
//! # Must never
//! Echo a token (or any part of one) in an error or a log line; accept a token whose key it
//! has not fetched from the configured issuer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use connector_domain::{Principal, Scopes, TenantGrant, TenantId};
use connector_ports::{TokenError, TokenVerifier};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

/// How tokens are verified.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// The issuer's JWKS document.
    pub jwks_url: String,
    /// The exact `iss` tokens must carry.
    pub issuer: String,
    /// An `aud` tokens must carry.
    pub audience: String,
    /// The claim naming the caller's tenant (`*`: every tenant, only with `platform_claim`).
    pub tenant_claim: String,
    /// The claim that must be `true` for a tenant claim of `*` to grant every tenant; `None`:
    /// `*` is refused (a tenant's token minted with `*` by mistake grants nothing).
    pub platform_claim: Option<String>,
    /// The claim holding the caller's scopes.
    pub scope_claim: String,
    /// Tolerated clock skew for `exp` and `nbf`.
    pub leeway: Duration,
    /// How old the cached key set may get before it is refetched.
    pub refresh_every: Duration,
    /// The least time between two fetches of the key set.
    pub min_refetch_interval: Duration,
    /// How long cached keys are trusted while refetching them keeps failing; then tokens are
    /// refused as unverifiable (an issuer that revoked a key cannot be ignored forever).
    pub keys_max_age: Duration,
    /// Upper bound of one fetch.
    pub fetch_timeout: Duration,
}

impl JwtSettings {
    /// Settings with the usual defaults for an issuer.
    pub fn new(
        jwks_url: impl Into<String>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        Self {
            jwks_url: jwks_url.into(),
            issuer: issuer.into(),
            audience: audience.into(),
            tenant_claim: "tenant_id".into(),
            platform_claim: None,
            scope_claim: "scope".into(),
            leeway: Duration::from_secs(30),
            refresh_every: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            keys_max_age: Duration::from_secs(3600),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a token was not accepted. Messages say which check failed and never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtRejected {
    /// Not three base64url parts with a JSON header.
    #[error("the bearer token is not a JWT")]
    Malformed,
    /// `none`, HMAC, or anything but RS256, ES256 and EdDSA.
    #[error("the token's algorithm {0} is not accepted (RS256, ES256 or EdDSA)")]
    Algorithm(String),
    /// The header names no key.
    #[error("the token's header has no kid")]
    NoKeyId,
    /// The issuer does not publish the key the token names.
    #[error("the token was signed with a key the issuer does not publish")]
    UnknownKey,
    /// The key is the issuer's but for another algorithm.
    #[error("the token's algorithm does not match its key's")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("the token's signature is not valid")]
    BadSignature,
    /// Past `exp` (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// Before `nbf` (beyond the leeway).
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not the configured one")]
    WrongIssuer,
    /// `aud` does not include the configured audience.
    #[error("the token's audience does not include this service")]
    WrongAudience,
    /// A required claim is missing.
    #[error("the token has no {0} claim")]
    MissingClaim(String),
    /// A claim has the wrong form.
    #[error("the token's {0} claim is not valid")]
    BadClaim(String),
}

/// The issuer's keys could not be fetched and none is cached for the token: retry later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the identity provider's keys cannot be fetched: {0}")]
pub struct KeysUnavailable(pub String);

/// One accepted key.
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Key>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

/// Verifies tokens of one issuer. Share it (it holds the key cache); it is `Send + Sync`.
pub struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    cache: tokio::sync::RwLock<KeyCache>,
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.settings.issuer)
            .field("jwks_url", &self.settings.jwks_url)
            .finish_non_exhaustive()
    }
}

/// The accepted algorithm of a published key, or `None` for a key this service never uses.
fn accepted_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let inferred = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        // An Ed25519 key is 32 bytes; anything else is unusable (and must not reach the
        // verifier, which expects 32).
        AlgorithmParameters::OctetKeyPair(p)
            if p.curve == EllipticCurve::Ed25519
                && base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(p.x.trim_end_matches('='))
                    .is_ok_and(|x| x.len() == 32) =>
        {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match &jwk.common.key_algorithm {
        None => Some(inferred),
        Some(KeyAlgorithm::RS256) if inferred == Algorithm::RS256 => Some(inferred),
        Some(KeyAlgorithm::ES256) if inferred == Algorithm::ES256 => Some(inferred),
        Some(KeyAlgorithm::EdDSA) if inferred == Algorithm::EdDSA => Some(inferred),
        Some(_) => None,
    }
}

/// The header's `alg` and `kid`, read without trusting anything else in the token.
fn header(token: &str) -> Result<(String, Option<String>), JwtRejected> {
    let mut parts = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtRejected::Malformed);
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| JwtRejected::Malformed)?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| JwtRejected::Malformed)?;
    let alg = value
        .get("alg")
        .and_then(Value::as_str)
        .ok_or(JwtRejected::Malformed)?
        .to_owned();
    let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
    Ok((alg, kid))
}

fn rejected(e: &jsonwebtoken::errors::Error) -> JwtRejected {
    match e.kind() {
        ErrorKind::ExpiredSignature => JwtRejected::Expired,
        ErrorKind::ImmatureSignature => JwtRejected::NotYetValid,
        ErrorKind::InvalidIssuer => JwtRejected::WrongIssuer,
        ErrorKind::InvalidAudience => JwtRejected::WrongAudience,
        ErrorKind::MissingRequiredClaim(c) => JwtRejected::MissingClaim(c.clone()),
        ErrorKind::InvalidClaimFormat(c) => JwtRejected::BadClaim(c.clone()),
        ErrorKind::InvalidAlgorithm => JwtRejected::KeyMismatch,
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidEddsaKey => {
            JwtRejected::BadSignature
        }
        _ => JwtRejected::Malformed,
    }
}

impl JwtVerifier {
    /// A verifier for the issuer `settings` describe; keys are fetched on first use.
    pub fn new(settings: JwtSettings) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .build()?;
        Ok(Self {
            settings,
            http,
            cache: tokio::sync::RwLock::new(KeyCache::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// The caller `token` stands for: `Ok(Err(_))` when the token is refused, `Err(_)` when
    /// the issuer's keys cannot be had.
    pub async fn verify(
        &self,
        token: &SecretString,
    ) -> Result<Result<Principal, JwtRejected>, KeysUnavailable> {
        let token = token.expose_secret();
        let (alg, kid) = match header(token) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let algorithm = match alg.as_str() {
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            "EdDSA" => Algorithm::EdDSA,
            other => {
                let shown: String = other
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(10)
                    .collect();
                return Ok(Err(JwtRejected::Algorithm(shown)));
            }
        };
        let Some(kid) = kid else {
            return Ok(Err(JwtRejected::NoKeyId));
        };
        self.refresh_if_needed(&kid).await?;
        let cache = self.cache.read().await;
        if cache
            .fetched_at
            .is_some_and(|t| t.elapsed() > self.settings.keys_max_age)
        {
            return Err(KeysUnavailable(format!(
                "the cached keys are older than {} s and refetching them fails",
                self.settings.keys_max_age.as_secs()
            )));
        }
        let Some(key) = cache.keys.get(&kid) else {
            return Ok(Err(JwtRejected::UnknownKey));
        };
        if key.algorithm != algorithm {
            return Ok(Err(JwtRejected::KeyMismatch));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway.as_secs();
        let data = match jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &key.key,
            &validation,
        ) {
            Ok(data) => data,
            Err(e) => return Ok(Err(rejected(&e))),
        };
        drop(cache);
        Ok(self.principal(&data.claims))
    }

    fn principal(&self, claims: &serde_json::Map<String, Value>) -> Result<Principal, JwtRejected> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| JwtRejected::MissingClaim("sub".into()))?;
        let tenant_claim = &self.settings.tenant_claim;
        let tenants = match claims.get(tenant_claim) {
            None | Some(Value::Null) => {
                return Err(JwtRejected::MissingClaim(tenant_claim.clone()));
            }
            Some(Value::String(t)) if t == "*" => {
                let platform = self
                    .settings
                    .platform_claim
                    .as_ref()
                    .and_then(|c| claims.get(c))
                    .is_some_and(|v| v == &Value::Bool(true) || v == "true");
                if !platform {
                    return Err(JwtRejected::BadClaim(tenant_claim.clone()));
                }
                TenantGrant::All
            }
            Some(Value::String(t)) => TenantGrant::One(
                TenantId::parse("tenant_id", t)
                    .map_err(|_| JwtRejected::BadClaim(tenant_claim.clone()))?,
            ),
            Some(_) => return Err(JwtRejected::BadClaim(tenant_claim.clone())),
        };
        let scope_claim = &self.settings.scope_claim;
        let scopes = match claims.get(scope_claim) {
            None | Some(Value::Null) => Scopes::none(),
            Some(Value::String(s)) => Scopes::from_claim(s),
            Some(Value::Array(items)) => {
                let names: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                Scopes::from_claim(&names.join(" "))
            }
            Some(_) => return Err(JwtRejected::BadClaim(scope_claim.clone())),
        };
        Ok(Principal {
            subject: format!("jwt:{}", subject.chars().take(200).collect::<String>()),
            tenants,
            scopes,
        })
    }

    /// Fetches the key set when `kid` is not cached or the cache is old, at most once per
    /// `min_refetch_interval`; a failed fetch keeps the keys already cached.
    async fn refresh_if_needed(&self, kid: &str) -> Result<(), KeysUnavailable> {
        let needed = |c: &KeyCache| {
            !c.keys.contains_key(kid)
                || c.fetched_at
                    .is_none_or(|t| t.elapsed() >= self.settings.refresh_every)
        };
        let allowed = |c: &KeyCache| {
            c.last_attempt
                .is_none_or(|t| t.elapsed() >= self.settings.min_refetch_interval)
        };
        {
            let cache = self.cache.read().await;
            if !needed(&cache) || !allowed(&cache) {
                return Ok(());
            }
        }
        // One fetch at a time; whoever waited finds the fresh set.
        let _fetching = self.fetching.lock().await;
        {
            let cache = self.cache.read().await;
            if !needed(&cache) || !allowed(&cache) {
                return Ok(());
            }
        }
        self.cache.write().await.last_attempt = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "identity provider keys fetched");
                let mut cache = self.cache.write().await;
                cache.keys = keys;
                cache.fetched_at = Some(Instant::now());
                Ok(())
            }
            Err(e) => {
                let cache = self.cache.read().await;
                tracing::warn!(error = %e, cached = cache.keys.len(),
                    "fetching the identity provider's keys failed");
                if cache.keys.is_empty() {
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Key>, KeysUnavailable> {
        let response = self
            .http
            .get(&self.settings.jwks_url)
            .send()
            .await
            .map_err(|e| KeysUnavailable(format!("GET {}: {e}", self.settings.jwks_url)))?;
        if !response.status().is_success() {
            return Err(KeysUnavailable(format!(
                "GET {} answered {}",
                self.settings.jwks_url,
                response.status()
            )));
        }
        let set: JwkSet = response
            .json()
            .await
            .map_err(|e| KeysUnavailable(format!("the JWKS is not valid: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(algorithm)) = (&jwk.common.key_id, accepted_algorithm(jwk)) else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), Key { algorithm, key });
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping an unusable key in the JWKS"),
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl TokenVerifier for JwtVerifier {
    async fn verify(&self, token: &SecretString) -> Result<Principal, TokenError> {
        match JwtVerifier::verify(self, token).await {
            Ok(Ok(principal)) => Ok(principal),
            Ok(Err(rejected)) => Err(TokenError::Rejected(rejected.to_string())),
            Err(unavailable) => Err(TokenError::Unavailable(unavailable.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_read_without_trusting_the_rest() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let token = format!("{}.{}.sig", enc(r#"{"alg":"ES256","kid":"k1"}"#), enc("{}"));
        assert_eq!(header(&token).unwrap(), ("ES256".into(), Some("k1".into())));
        assert_eq!(header("a.b"), Err(JwtRejected::Malformed));
        assert_eq!(header("not-base64!.b.c"), Err(JwtRejected::Malformed));
        let none = format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc("{}"));
        assert_eq!(header(&none).unwrap(), ("none".into(), None));
    }
}
