//! AWS Secrets Manager implementation of the [`SecretStore`] port.
//!
//! One secret per connector, named by the core (`{prefix}{tenant}/{connector id}`), whose value
//! is a JSON object `{"bot_token": "xoxb-…"}` (room for `refresh_token` and `expires_at`
//! later). Deletion is immediate (`ForceDeleteWithoutRecovery`), so a connector's name and
//! secret name can be reused at once. Works against real AWS or an emulator such as LocalStack
//! through [`AwsSettings::endpoint_url`].
//!
//! # Must never
//! Log, display or put into an error a secret value; let an AWS SDK type escape through the
//! port.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::{Credentials, Region};
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use chrono::{DateTime, Utc};
use connector_domain::{SecretName, SecretPrefix};
use connector_ports::{
    ConnectorSecret, SecretLabels, SecretStore, SecretStoreError, StagedVersion,
};
use secrecy::{ExposeSecret as _, SecretString};

/// How to reach Secrets Manager.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// The AWS region, e.g. `us-east-1`.
    pub region: String,
    /// An endpoint override (LocalStack: `http://127.0.0.1:4566`); `None` for real AWS.
    pub endpoint_url: Option<String>,
    /// Static credentials; `None` uses the standard AWS chain (environment, profile, web
    /// identity, instance metadata).
    pub credentials: Option<StaticCredentials>,
    /// Upper bound of one operation, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation (the SDK's standard retry strategy with backoff).
    pub max_attempts: u32,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            region: "us-east-1".into(),
            endpoint_url: None,
            credentials: None,
            operation_timeout: Duration::from_secs(10),
            max_attempts: 3,
        }
    }
}

/// An access key pair; the secret half cannot be printed.
#[derive(Debug, Clone)]
pub struct StaticCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: SecretString,
}

/// The label of the version readers get.
const CURRENT: &str = "AWSCURRENT";
/// The label prefix of a version staged by [`SecretStore::stage`] and not yet promoted; each
/// staged version has its own label (`sc-staged-<version ID>`), so staging another never
/// strips one and leaves it unlabelled (Secrets Manager deprecates, and may drop, a version
/// with no label).
const STAGED_PREFIX: &str = "sc-staged-";
/// A staged version older than this was abandoned (an update takes seconds): its label is
/// removed when another version is staged, so labels do not pile up (20 per secret at most).
const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

fn staged_label(version: &str) -> String {
    format!("{STAGED_PREFIX}{version}")
}

/// The Secrets Manager store; cheap to clone.
#[derive(Debug, Clone)]
pub struct AwsSecretStore {
    client: Client,
}

impl AwsSecretStore {
    /// Builds a client from `settings` (no request is made yet).
    pub async fn new(settings: &AwsSettings) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(Region::new(settings.region.clone()))
            .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(settings.operation_timeout / 2)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(creds) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.expose_secret().to_owned(),
                None,
                None,
                "slack-connector-config",
            ));
        }
        let config = loader.load().await;
        Self {
            client: Client::new(&config),
        }
    }

    /// Wraps an existing client.
    pub fn from_client(client: Client) -> Self {
        Self { client }
    }
}

impl AwsSecretStore {
    /// The secret's description (its versions and their labels); `None` when it does not
    /// exist.
    async fn described(
        &self,
        name: &SecretName,
    ) -> Result<Option<DescribeSecretOutput>, SecretStoreError> {
        match self
            .client
            .describe_secret()
            .secret_id(name.as_str())
            .send()
            .await
            .map_err(classify)
        {
            Ok(d) => Ok(Some(d)),
            Err(SecretStoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the staging labels of versions of `name` staged long ago and never promoted
    /// (other than `keep`). Best effort: a failure only leaves a label behind.
    async fn unlabel_abandoned(&self, name: &SecretName, keep: &str) {
        let listed = match self
            .client
            .list_secret_version_ids()
            .secret_id(name.as_str())
            .max_results(100)
            .send()
            .await
        {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(error = %cause_chain(&e), "could not list secret versions");
                return;
            }
        };
        let cutoff = std::time::SystemTime::now() - ABANDONED_AFTER;
        for v in listed.versions() {
            let (Some(id), Some(created)) = (v.version_id(), v.created_date()) else {
                continue;
            };
            let old = std::time::SystemTime::try_from(*created).is_ok_and(|c| c < cutoff);
            if id == keep || !old {
                continue;
            }
            for label in v
                .version_stages()
                .iter()
                .filter(|l| l.starts_with(STAGED_PREFIX))
            {
                if let Err(e) = self
                    .client
                    .update_secret_version_stage()
                    .secret_id(name.as_str())
                    .version_stage(label)
                    .remove_from_version_id(id)
                    .send()
                    .await
                {
                    tracing::debug!(error = %cause_chain(&e), "could not remove an abandoned staging label");
                }
            }
        }
    }
}

/// Sorts an SDK error into the port's terms. The detail is AWS's message, which never holds
/// the secret value.
fn classify<E>(err: SdkError<E>) -> SecretStoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = cause_chain(&err);
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            SecretStoreError::Unavailable(detail)
        }
        SdkError::ServiceError(service) => match service.err().code() {
            Some("ResourceNotFoundException") => SecretStoreError::NotFound,
            Some(
                "ThrottlingException"
                | "InternalServiceError"
                | "InternalFailure"
                | "ServiceUnavailable"
                | "RequestTimeout",
            ) => SecretStoreError::Unavailable(detail),
            _ if service.raw().status().is_server_error() => SecretStoreError::Unavailable(detail),
            _ => SecretStoreError::Unknown(anyhow::Error::msg(detail)),
        },
        _ => SecretStoreError::Unknown(anyhow::Error::msg(detail)),
    }
}

/// `err` and its sources on one line, each message once (the SDK's own context adds the
/// Debug form of every layer, which made log lines unreadable).
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[async_trait]
impl SecretStore for AwsSecretStore {
    async fn put(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
        labels: &SecretLabels,
    ) -> Result<(), SecretStoreError> {
        let value = secret.to_json();
        let created = self
            .client
            .create_secret()
            .name(name.as_str())
            .description("Slack bot token of a slack-connector connector")
            .secret_string(&value)
            .tags(tag("slack-connector:tenant-id", labels.tenant_id.as_str()))
            .tags(tag(
                "slack-connector:connector-id",
                &labels.connector_id.to_string(),
            ))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_resource_exists_exception() => {
                // Left over from an attempt whose answer was lost: replace the value.
                self.client
                    .put_secret_value()
                    .secret_id(name.as_str())
                    .secret_string(value)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(classify)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn get(&self, name: &SecretName) -> Result<ConnectorSecret, SecretStoreError> {
        // AWSCURRENT is the default; named, because moto (the emulator in the container
        // tests) answers its first version until told which stage after a label move.
        let out = self
            .client
            .get_secret_value()
            .secret_id(name.as_str())
            .version_stage(CURRENT)
            .send()
            .await
            .map_err(classify)?;
        let raw = out.secret_string().ok_or_else(|| {
            SecretStoreError::Unknown(anyhow::Error::msg(format!(
                "secret {name} has no string value"
            )))
        })?;
        // Never quote the value in the error: say only where it is.
        ConnectorSecret::from_json(raw.as_bytes()).ok_or_else(|| {
            SecretStoreError::Unknown(anyhow::Error::msg(format!(
                "secret {name} is not a JSON object with a bot_token"
            )))
        })
    }

    async fn delete(&self, name: &SecretName) -> Result<(), SecretStoreError> {
        match self
            .client
            .delete_secret()
            .secret_id(name.as_str())
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) | Err(SecretStoreError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn stage(
        &self,
        name: &SecretName,
        secret: &ConnectorSecret,
    ) -> Result<String, SecretStoreError> {
        // A new version labelled AWSPENDING only: AWSCURRENT stays where it is. The request
        // token makes a retried call the same version.
        let version = uuid::Uuid::new_v4().to_string();
        self.client
            .put_secret_value()
            .secret_id(name.as_str())
            .secret_string(secret.to_json())
            .client_request_token(&version)
            .version_stages(staged_label(&version))
            .send()
            .await
            .map_err(classify)?;
        self.unlabel_abandoned(name, &version).await;
        Ok(version)
    }

    async fn promote(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError> {
        let Some(described) = self.described(name).await? else {
            return Ok(false);
        };
        let stages = described.version_ids_to_stages();
        let labels = stages.and_then(|s| s.get(version));
        if labels.is_some_and(|l| l.iter().any(|l| l == CURRENT)) {
            return Ok(false);
        }
        if labels.is_none() {
            // Not listed: it lost its staging label to a later stage, or it never was. Only a
            // version that exists can be moved to.
            match self
                .client
                .get_secret_value()
                .secret_id(name.as_str())
                .version_id(version)
                .send()
                .await
                .map_err(classify)
            {
                Ok(_) => {}
                Err(SecretStoreError::NotFound) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        let current = stages.and_then(|s| {
            s.iter()
                .find(|(_, labels)| labels.iter().any(|l| l == CURRENT))
                .map(|(id, _)| id.clone())
        });
        // One call moves the label: readers see the old value or the new one. A version that
        // lost its staging label to a later stage is not listed, but is still there to move to.
        let moved = self
            .client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(CURRENT)
            .move_to_version_id(version)
            .set_remove_from_version_id(current)
            .send()
            .await;
        match moved {
            Ok(_) => {}
            Err(SdkError::ServiceError(e))
                if e.err().is_resource_not_found_exception()
                    || e.err().is_invalid_parameter_exception()
                    || e.err().is_invalid_request_exception() =>
            {
                return Ok(false);
            }
            Err(e) => return Err(classify(e)),
        }
        if labels.is_some_and(|l| l.contains(&staged_label(version))) {
            // Tidiness only: a label left behind changes nothing a reader sees.
            if let Err(e) = self
                .client
                .update_secret_version_stage()
                .secret_id(name.as_str())
                .version_stage(staged_label(version))
                .remove_from_version_id(version)
                .send()
                .await
            {
                tracing::debug!(error = %cause_chain(&e), "could not remove the staging label");
            }
        }
        Ok(true)
    }

    async fn discard(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError> {
        let Some(described) = self.described(name).await? else {
            return Ok(false);
        };
        let label = staged_label(version);
        let staged = described
            .version_ids_to_stages()
            .and_then(|s| s.get(version))
            .is_some_and(|l| l.contains(&label) && !l.iter().any(|l| l == CURRENT));
        if !staged {
            return Ok(false);
        }
        // Secrets Manager has no call that deletes one version: without its label the version
        // is deprecated, never read by the service, and dropped by Secrets Manager.
        match self
            .client
            .update_secret_version_stage()
            .secret_id(name.as_str())
            .version_stage(&label)
            .remove_from_version_id(version)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if e.err().is_resource_not_found_exception()
                    || e.err().is_invalid_parameter_exception()
                    || e.err().is_invalid_request_exception() =>
            {
                Ok(false)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn staged_versions(
        &self,
        prefix: &SecretPrefix,
        staged_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StagedVersion>, SecretStoreError> {
        let before = std::time::SystemTime::from(staged_before);
        let mut found = Vec::new();
        let mut next_token = None;
        loop {
            let mut request = self
                .client
                .list_secrets()
                .max_results(100)
                .set_next_token(next_token.take());
            if !prefix.as_str().is_empty() {
                request = request.filters(
                    Filter::builder()
                        .key(FilterNameStringType::Name)
                        .values(prefix.as_str())
                        .build(),
                );
            }
            let page = request.send().await.map_err(classify)?;
            for entry in page.secret_list() {
                let Some((tenant_id, connector_id)) =
                    entry.name().and_then(|n| prefix.connector_of(n))
                else {
                    continue;
                };
                // Only secrets with a staged version still labelled are worth a second call.
                let staged = entry.secret_versions_to_stages().is_some_and(|v| {
                    v.values().any(|labels| {
                        labels.iter().any(|l| l.starts_with(STAGED_PREFIX))
                            && !labels.iter().any(|l| l == CURRENT)
                    })
                });
                if !staged {
                    continue;
                }
                let versions = self
                    .client
                    .list_secret_version_ids()
                    .secret_id(entry.name().unwrap_or_default())
                    .max_results(100)
                    .send()
                    .await
                    .map_err(classify)?;
                for v in versions.versions() {
                    let labels = v.version_stages();
                    let abandoned = labels.iter().any(|l| l.starts_with(STAGED_PREFIX))
                        && !labels.iter().any(|l| l == CURRENT)
                        && v.created_date()
                            .and_then(|c| std::time::SystemTime::try_from(*c).ok())
                            .is_some_and(|c| c < before);
                    if let (true, Some(version)) = (abandoned, v.version_id()) {
                        found.push(StagedVersion {
                            tenant_id: tenant_id.clone(),
                            connector_id,
                            version: version.to_owned(),
                        });
                        if found.len() >= limit as usize {
                            return Ok(found);
                        }
                    }
                }
            }
            match page.next_token() {
                Some(t) => next_token = Some(t.to_owned()),
                None => return Ok(found),
            }
        }
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("dispatch failure")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_cause_chain_is_one_readable_line_without_debug_forms() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection closed before message completed",
        ));
        let line = cause_chain(&err);
        assert_eq!(
            line,
            "dispatch failure: connection closed before message completed"
        );
        assert!(!line.contains('{'));
    }
}
