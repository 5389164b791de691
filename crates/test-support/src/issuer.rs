//! [`LocalIssuer`]: an identity provider for tests. It generates its signing keys per test,
//! serves them as a JWKS over HTTP (counting fetches), rotates them on demand, and signs
//! tokens with whatever claims a test needs, including ones a real issuer never would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The audience tokens are issued for unless a test says otherwise.
pub const AUDIENCE: &str = "connector-api";

enum SigningKey {
    Ed(ed25519_dalek::SigningKey),
    Es(p256::SecretKey),
}

impl SigningKey {
    fn jwk(&self, kid: &str) -> Value {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        match self {
            Self::Ed(k) => json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                "x": b64(k.verifying_key().as_bytes()),
            }),
            Self::Es(k) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint as _;
                let point = k.public_key().to_encoded_point(false);
                json!({
                    "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                    "x": b64(point.x().map(|x| x.as_slice()).unwrap_or_default()),
                    "y": b64(point.y().map(|y| y.as_slice()).unwrap_or_default()),
                })
            }
        }
    }

    fn encoding(&self) -> (Algorithm, EncodingKey) {
        match self {
            Self::Ed(k) => {
                use ed25519_dalek::pkcs8::EncodePrivateKey as _;
                let der = k.to_pkcs8_der().expect("an Ed25519 key encodes");
                (Algorithm::EdDSA, EncodingKey::from_ed_der(der.as_bytes()))
            }
            Self::Es(k) => {
                use p256::pkcs8::EncodePrivateKey as _;
                let der = k.to_pkcs8_der().expect("a P-256 key encodes");
                (Algorithm::ES256, EncodingKey::from_ec_der(der.as_bytes()))
            }
        }
    }

    /// The public key's bytes, as an attacker who read the JWKS has them.
    fn public_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ed(k) => k.verifying_key().as_bytes().to_vec(),
            Self::Es(k) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint as _;
                k.public_key().to_encoded_point(false).as_bytes().to_vec()
            }
        }
    }
}

#[derive(Default)]
struct State {
    keys: Vec<(String, SigningKey)>,
    fetches: usize,
    down: bool,
}

/// A running identity provider on `127.0.0.1`, stopped when dropped.
pub struct LocalIssuer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for LocalIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl LocalIssuer {
    /// Starts an issuer publishing one EdDSA key, `k1`.
    pub async fn start() -> anyhow::Result<Self> {
        let state = Arc::new(Mutex::new(State::default()));
        let served = state.clone();
        let router = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let state = served.clone();
                async move {
                    use axum::response::IntoResponse as _;
                    let mut s = lock(&state);
                    s.fetches += 1;
                    if s.down {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    let keys: Vec<Value> = s.keys.iter().map(|(kid, k)| k.jwk(kid)).collect();
                    axum::Json(json!({ "keys": keys })).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let issuer = Self { addr, state, task };
        issuer.add_key("k1", Algorithm::EdDSA);
        Ok(issuer)
    }

    /// The issuer's identifier (`iss`).
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where its JWKS is served.
    pub fn jwks_url(&self) -> String {
        format!("http://{}/.well-known/jwks.json", self.addr)
    }

    /// Answers `503` to every JWKS fetch from now on (`false`: serves again).
    pub fn set_down(&self, down: bool) {
        lock(&self.state).down = down;
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        lock(&self.state).fetches
    }

    /// Publishes a new key (EdDSA or ES256) under `kid`.
    pub fn add_key(&self, kid: &str, algorithm: Algorithm) {
        let secret: [u8; 32] = rand::random();
        let key = match algorithm {
            Algorithm::EdDSA => SigningKey::Ed(ed25519_dalek::SigningKey::from_bytes(&secret)),
            Algorithm::ES256 => SigningKey::Es(
                // A random 32-byte string is a valid P-256 scalar but with negligible odds.
                p256::SecretKey::from_slice(&secret).expect("a P-256 scalar"),
            ),
            other => panic!("the local issuer signs with EdDSA or ES256, not {other:?}"),
        };
        lock(&self.state).keys.push((kid.to_owned(), key));
    }

    /// Stops publishing `kid` (a key rotation's last step).
    pub fn remove_key(&self, kid: &str) {
        lock(&self.state).keys.retain(|(k, _)| k != kid);
    }

    /// Claims of a valid token for `sub` of `tenant` with `scope`: this issuer, the usual
    /// audience, valid from a little while ago for five minutes.
    pub fn claims(&self, sub: &str, tenant: &str, scope: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.issuer(), "aud": AUDIENCE, "sub": sub,
            "tenant_id": tenant, "scope": scope,
            "iat": now, "nbf": now - 5, "exp": now + 300,
        })
    }

    /// `claims` signed with key `kid` (which must have been published at some point).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        let state = lock(&self.state);
        let (_, key) = state
            .keys
            .iter()
            .find(|(k, _)| k == kid)
            .unwrap_or_else(|| panic!("no key {kid}"));
        let (alg, encoding) = key.encoding();
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &encoding).expect("signing works")
    }

    /// A valid token for `sub` of `tenant` with `scope`, signed with `k1`.
    pub fn token(&self, sub: &str, tenant: &str, scope: &str) -> String {
        self.sign("k1", &self.claims(sub, tenant, scope))
    }

    /// An `alg: none` token carrying `claims`.
    pub fn unsigned(&self, claims: &Value) -> String {
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
            b64(claims)
        )
    }

    /// An HS256 token "signed" with key `kid`'s public key as the HMAC secret: the classic
    /// algorithm-confusion attack.
    pub fn hmac_with_public_key(&self, kid: &str, claims: &Value) -> String {
        let public = {
            let state = lock(&self.state);
            let (_, key) = state
                .keys
                .iter()
                .find(|(k, _)| k == kid)
                .unwrap_or_else(|| panic!("no key {kid}"));
            key.public_bytes()
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&public))
            .expect("HMAC signing works")
    }
}
