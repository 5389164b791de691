//! Who is calling: the `authorization` metadata of each request turned into a [`Principal`],
//! and the mapping of authentication and access failures to `UNAUTHENTICATED` and
//! `PERMISSION_DENIED`. Messages say which check failed and never echo a credential.

use std::sync::Arc;

use connector_domain::{AccessDenied, Principal, Scope, TenantError, TenantId};
use connector_usecases::{AuthFailure, Authenticator, Credentials};
use secrecy::SecretString;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::rate::TenantRateLimiter;
use crate::status::{to_status, unavailable};

/// How callers prove who they are: the credentials an [`Authenticator`] accepts, read from
/// each request's `authorization` metadata.
#[derive(Debug, Clone)]
pub struct Authentication {
    authenticator: Authenticator,
    rate: Option<Arc<TenantRateLimiter>>,
}

impl Authentication {
    /// Callers as `authenticator` establishes them.
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            authenticator,
            rate: None,
        }
    }

    /// The same, each tenant's requests also bounded by `limiter`.
    pub fn with_rate_limit(mut self, limiter: Arc<TenantRateLimiter>) -> Self {
        self.rate = Some(limiter);
        self
    }

    /// The caller the `authorization` header of a request stands for, before its body is
    /// read (the intake layer): `None` when the mode asks no header (authentication off, or
    /// client certificates, which the TLS handshake already required).
    pub async fn principal_of_headers(
        &self,
        headers: &tonic::codegen::http::HeaderMap,
    ) -> Result<Option<Principal>, Status> {
        if !self.authenticator.is_on() || self.authenticator.uses_certificates() {
            return Ok(None);
        }
        let metadata = MetadataMap::from_headers(headers.clone());
        let bearer = bearer(&metadata, self.authenticator.expected())?;
        self.authenticator
            .authenticate_with(Credentials {
                bearer: bearer.as_ref(),
                certificate_uris: None,
            })
            .await
            .map(Some)
            .map_err(|e| match e {
                AuthFailure::Unauthenticated(why) => Status::unauthenticated(why),
                AuthFailure::Unavailable { dependency, detail } => unavailable(dependency, &detail),
            })
    }

    /// The caller of `request`: the one the intake layer established from its headers, else
    /// its bearer credential, or the client certificate the TLS layer verified.
    pub async fn principal<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        if let Some(crate::intake::Authenticated(principal)) = request.extensions().get() {
            return Ok(principal.clone());
        }
        let bearer = if self.authenticator.is_on() && !self.authenticator.uses_certificates() {
            bearer(request.metadata(), self.authenticator.expected())?
        } else {
            None
        };
        let uris = if self.authenticator.uses_certificates() {
            certificate_uris(request)
        } else {
            None
        };
        self.authenticator
            .authenticate_with(Credentials {
                bearer: bearer.as_ref(),
                certificate_uris: uris.as_deref(),
            })
            .await
            .map_err(|e| match e {
                AuthFailure::Unauthenticated(why) => Status::unauthenticated(why),
                AuthFailure::Unavailable { dependency, detail } => unavailable(dependency, &detail),
            })
    }

    /// The caller of `request`, if it holds `scope`, and the tenant the request acts for
    /// given its `tenant_id` field.
    pub async fn authorize<T>(
        &self,
        request: &Request<T>,
        scope: Scope,
        tenant_field: &str,
    ) -> Result<(Principal, TenantId), Status> {
        let principal = self.principal(request).await?;
        principal.require(scope).map_err(denied)?;
        let tenant = principal.tenant_for(tenant_field).map_err(|e| match e {
            TenantError::Invalid(v) => to_status(v.into()),
            TenantError::Denied(d) => denied(d),
        })?;
        if let Some(limiter) = &self.rate
            && let Err(wait) = limiter.check(&tenant)
        {
            return Err(Status::with_error_details(
                Code::ResourceExhausted,
                format!(
                    "tenant {tenant} is over its request rate ({} a second); retry in {} ms",
                    limiter.per_second(),
                    wait.as_millis().max(1)
                ),
                ErrorDetails::with_retry_info(Some(wait)),
            ));
        }
        Ok((principal, tenant))
    }
}

/// The credential of `authorization: Bearer …`; `None` without the metadata; an error naming
/// what is wrong with a malformed one (`how` says what to send).
fn bearer(metadata: &MetadataMap, how: &str) -> Result<Option<SecretString>, Status> {
    let Some(value) = metadata.get("authorization") else {
        return Ok(None);
    };
    let how = format!("send {how}");
    let how = how.as_str();
    let value = value.to_str().map_err(|_| {
        Status::unauthenticated(format!("the authorization metadata is not text: {how}"))
    })?;
    let (scheme, credential) = value.trim().split_once(' ').ok_or_else(|| {
        Status::unauthenticated(format!("the authorization metadata is malformed: {how}"))
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Status::unauthenticated(format!(
            "the authorization scheme must be Bearer: {how}"
        )));
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(Status::unauthenticated(format!(
            "the bearer credential is empty: {how}"
        )));
    }
    Ok(Some(SecretString::from(credential.to_owned())))
}

/// The URI SANs of the client certificate the TLS layer verified; `None` without one.
fn certificate_uris<T>(request: &Request<T>) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
        return Some(Vec::new());
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Some(Vec::new());
    };
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect(),
    )
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
        let how = "`authorization: Bearer <API key>`";
        let ok = bearer(&metadata("Bearer ck_abc_def"), how)
            .unwrap()
            .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&ok), "ck_abc_def");
        let ok = bearer(&metadata("bearer  ck_abc_def "), how)
            .unwrap()
            .unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&ok), "ck_abc_def");
        for (value, says) in [
            ("Basic dXNlcjpwYXNz", "scheme must be Bearer"),
            ("ck_abc_def", "malformed"),
            ("Bearer ", "malformed"),
        ] {
            let s = bearer(&metadata(value), how).unwrap_err();
            assert_eq!(s.code(), Code::Unauthenticated);
            assert!(s.message().contains(says), "{value}: {}", s.message());
            assert!(!s.message().contains("dXNlcjpwYXNz"));
        }
        assert!(bearer(&MetadataMap::new(), how).unwrap().is_none());
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
