//! Who is calling: the `authorization` metadata of each request turned into a [`Principal`],
//! and the mapping of authentication and access failures to `UNAUTHENTICATED` and
//! `PERMISSION_DENIED`. Messages say which check failed and never echo a credential.

use connector_domain::{AccessDenied, Principal, Scope, TenantError, TenantId};
use connector_usecases::{ApiKeys, KeyRejected};
use secrecy::SecretString;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::status::to_status;

/// How callers prove who they are.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Nobody is asked: every caller may act as any tenant, naming it in each request.
    Off,
    /// `authorization: Bearer ck_…`, a static API key.
    ApiKeys(ApiKeys),
}

const HOW: &str = "send the metadata `authorization: Bearer <API key>`";

impl Authentication {
    /// The caller of a request with `metadata`.
    pub async fn principal(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        let keys = match self {
            Self::Off => return Ok(Principal::unauthenticated()),
            Self::ApiKeys(keys) => keys,
        };
        let credential = bearer(metadata)?;
        if !ApiKeys::looks_like_key(secrecy::ExposeSecret::expose_secret(&credential)) {
            return Err(Status::unauthenticated(
                "the bearer credential is not an API key (they start with ck_); this server accepts API keys",
            ));
        }
        match keys.authenticate(&credential).await.map_err(to_status)? {
            Ok(principal) => Ok(principal),
            Err(
                rejected @ (KeyRejected::Malformed | KeyRejected::Unknown | KeyRejected::Revoked),
            ) => Err(Status::unauthenticated(rejected.to_string())),
        }
    }

    /// The caller of a request with `metadata`, if it holds `scope`, and the tenant the
    /// request acts for given its `tenant_id` field.
    pub async fn authorize(
        &self,
        metadata: &MetadataMap,
        scope: Scope,
        tenant_field: &str,
    ) -> Result<(Principal, TenantId), Status> {
        let principal = self.principal(metadata).await?;
        principal.require(scope).map_err(denied)?;
        let tenant = principal.tenant_for(tenant_field).map_err(|e| match e {
            TenantError::Invalid(v) => to_status(v.into()),
            TenantError::Denied(d) => denied(d),
        })?;
        Ok((principal, tenant))
    }
}

/// The credential of `authorization: Bearer …`.
fn bearer(metadata: &MetadataMap) -> Result<SecretString, Status> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| Status::unauthenticated(format!("missing credentials: {HOW}")))?;
    let value = value.to_str().map_err(|_| {
        Status::unauthenticated(format!("the authorization metadata is not text: {HOW}"))
    })?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or_else(|| {
        Status::unauthenticated(format!("the authorization metadata is malformed: {HOW}"))
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Status::unauthenticated(format!(
            "the authorization scheme must be Bearer: {HOW}"
        )));
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(Status::unauthenticated(format!(
            "the bearer credential is empty: {HOW}"
        )));
    }
    Ok(SecretString::from(credential.to_owned()))
}

/// `PERMISSION_DENIED`, with the reason as an `ErrorInfo`.
pub fn denied(d: AccessDenied) -> Status {
    let reason = match &d {
        AccessDenied::MissingScope { .. } => "MISSING_SCOPE",
        AccessDenied::OtherTenant { .. } => "OTHER_TENANT",
    };
    Status::with_error_details(
        Code::PermissionDenied,
        d.to_string(),
        ErrorDetails::with_error_info(
            reason,
            "connector.v1",
            std::collections::HashMap::<String, String>::new(),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(value: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert("authorization", value.parse().unwrap());
        m
    }

    #[test]
    fn bearer_credentials_are_read_and_bad_ones_are_explained_without_echo() {
        let ok = bearer(&metadata("Bearer ck_abc_def")).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&ok), "ck_abc_def");
        let ok = bearer(&metadata("bearer  ck_abc_def ")).unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&ok), "ck_abc_def");
        for (value, says) in [
            ("Basic dXNlcjpwYXNz", "scheme must be Bearer"),
            ("ck_abc_def", "malformed"),
            ("Bearer ", "malformed"),
        ] {
            let s = bearer(&metadata(value)).unwrap_err();
            assert_eq!(s.code(), Code::Unauthenticated);
            assert!(s.message().contains(says), "{value}: {}", s.message());
            assert!(!s.message().contains("dXNlcjpwYXNz"));
        }
        let s = bearer(&MetadataMap::new()).unwrap_err();
        assert!(
            s.message().starts_with("missing credentials"),
            "{}",
            s.message()
        );
    }

    #[test]
    fn access_failures_are_permission_denied() {
        let s = denied(AccessDenied::MissingScope {
            needed: Scope::ConnectorsWrite,
        });
        assert_eq!(s.code(), Code::PermissionDenied);
        assert!(s.message().contains("connectors:write"));
    }
}
