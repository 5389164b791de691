//! Decorators over the ports: [`Observed`] wraps any store or the Slack client and, around
//! every call, opens a tracing span when the call is part of a request or a job (its
//! OpenTelemetry name is `db <operation>`, `secrets <operation>` or `slack <method>`) and, for
//! the stores, counts the call by operation and outcome and times it:
//!
//! | metric | labels |
//! |---|---|
//! | `connector_db_calls_total` | `operation` (the port method), `outcome` (`ok`, `conflict`, `unavailable`, `error`) |
//! | `connector_db_call_duration_seconds` | `operation` |
//! | `connector_secret_store_calls_total` | `operation` (`put`, `get`, `delete`), `outcome` (`ok`, `not_found`, `unavailable`, `error`) |
//! | `connector_secret_store_call_duration_seconds` | `operation` |
//!
//! Slack calls are counted by the Slack adapter itself (it sees each attempt, each 429 and
//! each Retry-After); here they get their span only.
//!
//! Labels are port method names and fixed outcome words: never a tenant, an ID, a channel, a
//! token or message text, and no argument is ever recorded on a span. This crate must do
//! nothing else: no I/O of its own, no exporter (the server installs those), no decisions.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{
    ApiKeyId, BotIdentity, BotToken, ChannelId, ChannelName, Connector, ConnectorId,
    ConnectorStatus, FileAttachment, MessageEdit, MessageId, MessageStatus, Pace, RequestId,
    Scopes, SecretName, SecretPrefix, TenantId, WorkspaceId,
};
use connector_ports::{
    ApiKeyRecord, ApiKeyStore, AttemptOutcome, AuthIdentity, Cancelled, ChannelInfo, ChannelPage,
    ConnectorLifecycle, ConnectorQueries, ConnectorReconciliation, ConnectorSecret,
    ConnectorUpdate, CursorBounds, Enqueued, EventFilter, EventLog, ImmediateRecord, InboundEvent,
    MessageFilter, NewConnector, NewInboundEvent, NewOutboundMessage, OAuthGrant,
    OAuthGrantRequest, OAuthStateStore, OutboundRecord, Outbox, OutgoingMessage, PauseScope,
    PendingInstall, PendingPromotion, PostLookup, PostedMessage, PostedRecord, RefreshLeases,
    RefreshOutcome, RepositoryError, ScheduledMessage, SecretLabels, SecretStore, SecretStoreError,
    SendKey, SendOutcome, SendRecord, SentMessageStore, SlackApi, SlackError, SlackEventStore,
    StagedVersion, StatusCount, UploadedFile, WorkspaceConnectors,
};
use secrecy::SecretString;
use tracing::Instrument as _;

/// Describes this crate's metrics to the installed recorder (their `# HELP` lines).
pub fn describe() {
    metrics::describe_counter!(
        "connector_db_calls_total",
        "Database calls by port operation and outcome (ok, conflict, unavailable, error)"
    );
    metrics::describe_histogram!(
        "connector_db_call_duration_seconds",
        metrics::Unit::Seconds,
        "Database call latency by port operation"
    );
    metrics::describe_counter!(
        "connector_secret_store_calls_total",
        "Secret store calls by operation and outcome (ok, not_found, unavailable, error)"
    );
    metrics::describe_histogram!(
        "connector_secret_store_call_duration_seconds",
        metrics::Unit::Seconds,
        "Secret store call latency by operation"
    );
}

/// A port implementation with every call observed. Cheap to wrap: one pointer-sized field.
#[derive(Debug, Clone)]
pub struct Observed<T> {
    inner: T,
}

impl<T> Observed<T> {
    /// Observes the calls to `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner }
    }

    /// The implementation underneath.
    pub fn inner(&self) -> &T {
        &self.inner
    }
}

/// The metric family a kind of dependency is counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dependency {
    Database,
    SecretStore,
    Slack,
}

impl Dependency {
    fn calls_total(self) -> Option<&'static str> {
        match self {
            Self::Database => Some("connector_db_calls_total"),
            Self::SecretStore => Some("connector_secret_store_calls_total"),
            Self::Slack => None,
        }
    }

    fn duration_seconds(self) -> &'static str {
        match self {
            Self::Database => "connector_db_call_duration_seconds",
            Self::SecretStore => "connector_secret_store_call_duration_seconds",
            Self::Slack => "",
        }
    }
}

/// The bounded word a call's result is counted under.
trait Outcome {
    fn outcome(&self) -> &'static str;
}

impl Outcome for RepositoryError {
    fn outcome(&self) -> &'static str {
        match self {
            Self::DuplicateName | Self::DuplicateRequestId => "conflict",
            Self::Unavailable(_) => "unavailable",
            Self::Unknown(_) => "error",
        }
    }
}

impl Outcome for SecretStoreError {
    fn outcome(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::Unknown(_) => "error",
        }
    }
}

impl Outcome for SlackError {
    fn outcome(&self) -> &'static str {
        match self {
            Self::InvalidAuth { .. } => "invalid_auth",
            Self::MissingScope { .. } => "missing_scope",
            Self::ChannelNotFound => "channel_not_found",
            Self::NotInChannel => "not_in_channel",
            Self::IsArchived => "is_archived",
            Self::RateLimited { .. } => "ratelimited",
            Self::Unavailable(_) => "unavailable",
            Self::OutcomeUnknown(_) => "outcome_unknown",
            Self::Api { .. } => "api_error",
            Self::Unknown(_) => "error",
        }
    }
}

/// Runs `call` inside `span`, then records its outcome on the span and, for the stores, in
/// the metrics.
async fn observe<R, E: Outcome>(
    dependency: Dependency,
    operation: &'static str,
    span: tracing::Span,
    call: impl Future<Output = Result<R, E>>,
) -> Result<R, E> {
    let started = Instant::now();
    let result = call.instrument(span.clone()).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    };
    span.record("outcome", outcome);
    if outcome != "ok" {
        span.record("otel.status_code", "ERROR");
    }
    record(dependency, operation, outcome, started.elapsed());
    result
}

fn record(dependency: Dependency, operation: &'static str, outcome: &'static str, took: Duration) {
    let Some(total) = dependency.calls_total() else {
        return;
    };
    metrics::counter!(total, "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!(dependency.duration_seconds(), "operation" => operation)
        .record(took.as_secs_f64());
}

/// Forwards each listed method of `$trait` to the inner implementation, observed as
/// `$dependency`, in a span named `$prefix <method>`.
macro_rules! observed {
    ($trait:ident, $dependency:ident, $prefix:literal, $attr:literal {
        $( fn $name:ident $(<$lt:lifetime>)? (&self $(, $arg:ident : $ty:ty)* $(,)?) -> $ret:ty; )*
    }) => {
        #[async_trait]
        impl<T: $trait> $trait for Observed<T> {
            $(
                async fn $name $(<$lt>)? (&self $(, $arg: $ty)*) -> $ret {
                    // Only within a request's or a job's span: a call outside any (the
                    // readiness check every few seconds) would start a trace of its own.
                    let span = if tracing::Span::current().is_none() {
                        tracing::Span::none()
                    } else {
                        tracing::info_span!(
                            $prefix,
                            otel.name = concat!($prefix, " ", stringify!($name)),
                            otel.kind = "client",
                            $attr = stringify!($name),
                            outcome = tracing::field::Empty,
                            otel.status_code = tracing::field::Empty,
                        )
                    };
                    observe(
                        Dependency::$dependency,
                        stringify!($name),
                        span,
                        self.inner.$name($($arg),*),
                    )
                    .await
                }
            )*
        }
    };
}

observed!(ConnectorLifecycle, Database, "db", "db.operation" {
    fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError>;
    fn mark_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError>;
    fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError>;
    fn find_by_request_id(&self, tenant: &TenantId, request_id: &RequestId)
        -> Result<Option<Connector>, RepositoryError>;
    fn update_active(&self, tenant: &TenantId, id: ConnectorId, generation: i64,
        update: &ConnectorUpdate) -> Result<Option<Connector>, RepositoryError>;
    fn mark_deleting(&self, tenant: &TenantId, id: ConnectorId)
        -> Result<Option<Connector>, RepositoryError>;
    fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError>;
    fn count_connectors(&self, tenant: &TenantId) -> Result<u64, RepositoryError>;
});

observed!(ConnectorQueries, Database, "db", "db.operation" {
    fn get_active(&self, tenant: &TenantId, id: ConnectorId)
        -> Result<Option<Connector>, RepositoryError>;
    fn find_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError>;
    fn list_active(&self, tenant: &TenantId, after: Option<ConnectorId>, limit: u32,
        status: Option<ConnectorStatus>) -> Result<Vec<Connector>, RepositoryError>;
    fn count_by_status(&self) -> Result<Vec<StatusCount>, RepositoryError>;
});

observed!(WorkspaceConnectors, Database, "db", "db.operation" {
    fn revoke_workspace<'a>(&self, workspace: &WorkspaceId, app: &str,
        bot_users: Option<&'a [String]>) -> Result<Vec<Connector>, RepositoryError>;
    fn rename_channel(&self, workspace: &WorkspaceId, app: &str, channel: &ChannelId,
        name: &ChannelName) -> Result<u64, RepositoryError>;
    fn set_channel_available(&self, workspace: &WorkspaceId, app: &str, channel: &ChannelId,
        available: bool) -> Result<u64, RepositoryError>;
    fn of_app(&self, workspace: &WorkspaceId, app: &str)
        -> Result<Vec<Connector>, RepositoryError>;
    fn unidentified<'a>(&self, workspace: Option<&'a WorkspaceId>, limit: u32)
        -> Result<Vec<Connector>, RepositoryError>;
    fn record_bot(&self, id: ConnectorId, bot: &BotIdentity) -> Result<bool, RepositoryError>;
});

observed!(RefreshLeases, Database, "db", "db.operation" {
    fn tokens_expiring(&self, before: DateTime<Utc>, limit: u32)
        -> Result<Vec<Connector>, RepositoryError>;
    fn lease_token_refresh(&self, id: ConnectorId, lease: Duration, fence: i64)
        -> Result<bool, RepositoryError>;
    fn renew_token_refresh(&self, id: ConnectorId, fence: i64, lease: Duration)
        -> Result<bool, RepositoryError>;
    fn finish_token_refresh(&self, id: ConnectorId, fence: i64, outcome: RefreshOutcome)
        -> Result<bool, RepositoryError>;
});

observed!(ConnectorReconciliation, Database, "db", "db.operation" {
    fn claim_stale(&self, stale_after: Duration, limit: u32)
        -> Result<Vec<Connector>, RepositoryError>;
    fn pending_promotions(&self, older_than: Duration, limit: u32)
        -> Result<Vec<PendingPromotion>, RepositoryError>;
    fn clear_pending_promotion(&self, id: ConnectorId, version: &str)
        -> Result<bool, RepositoryError>;
    fn is_pending_promotion(&self, id: ConnectorId, version: &str)
        -> Result<bool, RepositoryError>;
});

observed!(OAuthStateStore, Database, "db", "db.operation" {
    fn save_state(&self, state_hash: &str, pending: &PendingInstall) -> Result<(), RepositoryError>;
    fn take_state(&self, state_hash: &str, browser_hash: &str)
        -> Result<Option<PendingInstall>, RepositoryError>;
    fn bind_browser(&self, state_hash: &str, browser_hash: &str, now: DateTime<Utc>)
        -> Result<Option<PendingInstall>, RepositoryError>;
    fn count_states(&self, tenant: &TenantId, now: DateTime<Utc>) -> Result<u64, RepositoryError>;
    fn purge_states(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
});

observed!(ApiKeyStore, Database, "db", "db.operation" {
    fn insert_api_key(&self, key: &ApiKeyRecord) -> Result<(), RepositoryError>;
    fn find_api_key(&self, id: ApiKeyId) -> Result<Option<ApiKeyRecord>, RepositoryError>;
    fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, RepositoryError>;
    fn revoke_api_key(&self, id: ApiKeyId, at: DateTime<Utc>) -> Result<bool, RepositoryError>;
    fn set_api_key_scopes(&self, id: ApiKeyId, scopes: Scopes) -> Result<bool, RepositoryError>;
});

observed!(SentMessageStore, Database, "db", "db.operation" {
    fn claim_send(&self, key: &SendKey, fingerprint: &str, message_id: Option<MessageId>,
        now: DateTime<Utc>, expired_before: DateTime<Utc>)
        -> Result<Option<SendRecord>, RepositoryError>;
    fn retake_send(&self, key: &SendKey, seen: &SendRecord, now: DateTime<Utc>)
        -> Result<bool, RepositoryError>;
    fn finish_send(&self, key: &SendKey, outcome: &SendOutcome) -> Result<(), RepositoryError>;
    fn release_send(&self, key: &SendKey) -> Result<(), RepositoryError>;
    fn find_send(&self, key: &SendKey) -> Result<Option<SendRecord>, RepositoryError>;
    fn purge_sends(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
    fn record_posted(&self, posted: &[PostedRecord], at: DateTime<Utc>)
        -> Result<(), RepositoryError>;
    fn was_posted(&self, connector: ConnectorId, channel: &ChannelId, ts: &str)
        -> Result<bool, RepositoryError>;
    fn forget_posted(&self, connector: ConnectorId, channel: &ChannelId, ts: &str)
        -> Result<(), RepositoryError>;
    fn purge_posted(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
});

observed!(EventLog, Database, "db", "db.operation" {
    fn append_events(&self, events: &[NewInboundEvent])
        -> Result<Vec<InboundEvent>, RepositoryError>;
    fn list_events(&self, tenant: &TenantId, filter: &EventFilter, after: Option<i64>, limit: u32)
        -> Result<Vec<InboundEvent>, RepositoryError>;
    fn cursor_bounds(&self, tenant: &TenantId) -> Result<CursorBounds, RepositoryError>;
    fn purge_events_before(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
});

observed!(Outbox, Database, "db", "db.operation" {
    fn enqueue(&self, message: &NewOutboundMessage) -> Result<Enqueued, RepositoryError>;
    fn record_immediate(&self, record: &ImmediateRecord) -> Result<(), RepositoryError>;
    fn find_by_request(&self, connector: ConnectorId, request_id: &str)
        -> Result<Option<OutboundRecord>, RepositoryError>;
    fn claim(&self, owner: &str, pace: &Pace, lease: Duration, limit: u32)
        -> Result<Vec<OutboundRecord>, RepositoryError>;
    fn next_admission(&self, pace: &Pace) -> Result<Option<Duration>, RepositoryError>;
    fn finish(&self, id: MessageId, owner: &str, outcome: &AttemptOutcome)
        -> Result<bool, RepositoryError>;
    fn spend(&self, team_id: &str, channel: &ChannelId, pace: &Pace)
        -> Result<Option<Duration>, RepositoryError>;
    fn pause(&self, scope: &PauseScope, for_: Duration) -> Result<PauseScope, RepositoryError>;
    fn busy_scopes(&self, within: Duration) -> Result<Vec<PauseScope>, RepositoryError>;
    fn take_over_expired(&self, error: &str, limit: u32)
        -> Result<Vec<OutboundRecord>, RepositoryError>;
    fn fail_connector(&self, connector: ConnectorId, error: &str)
        -> Result<Vec<OutboundRecord>, RepositoryError>;
    fn expire(&self, limit: u32) -> Result<Vec<OutboundRecord>, RepositoryError>;
    fn get(&self, tenant: &TenantId, id: MessageId)
        -> Result<Option<OutboundRecord>, RepositoryError>;
    fn list(&self, tenant: &TenantId, filter: &MessageFilter,
        before: Option<(DateTime<Utc>, MessageId)>, limit: u32)
        -> Result<Vec<OutboundRecord>, RepositoryError>;
    fn cancel(&self, tenant: &TenantId, id: MessageId) -> Result<Cancelled, RepositoryError>;
    fn count_by_status(&self) -> Result<Vec<(MessageStatus, u64)>, RepositoryError>;
    fn purge_finished(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
});

observed!(SlackEventStore, Database, "db", "db.operation" {
    fn record_event(&self, event_id: &str, at: DateTime<Utc>) -> Result<bool, RepositoryError>;
    fn forget_event(&self, event_id: &str) -> Result<(), RepositoryError>;
    fn purge_events(&self, before: DateTime<Utc>) -> Result<u64, RepositoryError>;
});

observed!(SecretStore, SecretStore, "secrets", "secrets.operation" {
    fn put(&self, name: &SecretName, secret: &ConnectorSecret, labels: &SecretLabels)
        -> Result<(), SecretStoreError>;
    fn get(&self, name: &SecretName) -> Result<ConnectorSecret, SecretStoreError>;
    fn delete(&self, name: &SecretName) -> Result<(), SecretStoreError>;
    fn stage(&self, name: &SecretName, secret: &ConnectorSecret) -> Result<String, SecretStoreError>;
    fn promote(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError>;
    fn discard(&self, name: &SecretName, version: &str) -> Result<bool, SecretStoreError>;
    fn staged_versions(&self, prefix: &SecretPrefix, staged_before: DateTime<Utc>, limit: u32)
        -> Result<Vec<StagedVersion>, SecretStoreError>;
});

observed!(SlackApi, Slack, "slack", "slack.method" {
    fn auth_test(&self, token: &BotToken) -> Result<AuthIdentity, SlackError>;
    fn bot_app_id(&self, token: &BotToken, bot_id: &str) -> Result<String, SlackError>;
    fn list_channels(&self, token: &BotToken, cursor: Option<String>)
        -> Result<ChannelPage, SlackError>;
    fn channel_info(&self, token: &BotToken, channel: &ChannelId)
        -> Result<ChannelInfo, SlackError>;
    fn post_message(&self, token: &BotToken, message: &OutgoingMessage)
        -> Result<PostedMessage, SlackError>;
    fn post_message_once(&self, token: &BotToken, message: &OutgoingMessage)
        -> Result<PostedMessage, SlackError>;
    fn find_post(&self, token: &BotToken, lookup: &PostLookup)
        -> Result<Option<PostedMessage>, SlackError>;
    fn schedule_message(&self, token: &BotToken, message: &OutgoingMessage, post_at: i64)
        -> Result<ScheduledMessage, SlackError>;
    fn delete_scheduled_message(&self, token: &BotToken, channel: &ChannelId,
        scheduled_message_id: &str) -> Result<(), SlackError>;
    fn update_message(&self, token: &BotToken, edit: &MessageEdit)
        -> Result<PostedMessage, SlackError>;
    fn delete_message(&self, token: &BotToken, channel: &ChannelId, ts: &str)
        -> Result<(), SlackError>;
    fn oauth_access(&self, client_id: &str, client_secret: &SecretString,
        grant: &OAuthGrantRequest) -> Result<OAuthGrant, SlackError>;
    fn upload_file(&self, token: &BotToken, channel: &ChannelId, thread_ts: Option<String>,
        file: &FileAttachment) -> Result<UploadedFile, SlackError>;
});

#[cfg(test)]
mod tests {
    // Test code: a failed unwrap is a failed test.
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use connector_ports::{MockConnectorQueries, MockSecretStore};
    use metrics_util::CompositeKey;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    type Snapshot = Vec<(
        CompositeKey,
        Option<metrics::Unit>,
        Option<metrics::SharedString>,
        DebugValue,
    )>;

    use super::*;

    fn counter(snapshot: &Snapshot, name: &str, labels: &[(&str, &str)]) -> u64 {
        snapshot
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .filter(|(key, ..)| {
                labels
                    .iter()
                    .all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v))
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    fn histogram_count(snapshot: &Snapshot, name: &str, operation: &str) -> usize {
        snapshot
            .iter()
            .filter(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == "operation" && l.value() == operation)
            })
            .map(|(.., value)| match value {
                DebugValue::Histogram(v) => v.len(),
                other => panic!("{name} is not a histogram: {other:?}"),
            })
            .sum()
    }

    /// Runs `f` on a runtime of its own with a recorder only this thread sees; what it
    /// recorded.
    fn with_recorder<F: Future<Output = ()>>(f: impl FnOnce() -> F) -> Snapshot {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(f());
        });
        snapshotter.snapshot().into_vec()
    }

    #[test]
    fn store_calls_are_counted_by_operation_and_outcome_and_timed() {
        let snapshot = with_recorder(|| async {
            let mut repo = MockConnectorQueries::new();
            repo.expect_find_active().times(1).returning(|_| Ok(None));
            repo.expect_find_active()
                .times(2)
                .returning(|_| Err(RepositoryError::Unavailable("connection refused".into())));
            let repo: Arc<dyn ConnectorQueries> = Arc::new(Observed::new(repo));
            let id = ConnectorId::new_v7();
            assert!(repo.find_active(id).await.unwrap().is_none());
            for _ in 0..2 {
                assert!(matches!(
                    repo.find_active(id).await,
                    Err(RepositoryError::Unavailable(_))
                ));
            }

            let mut secrets = MockSecretStore::new();
            secrets
                .expect_get()
                .returning(|_| Err(SecretStoreError::NotFound));
            let secrets = Observed::new(secrets);
            let name = connector_domain::SecretPrefix::parse("prefix", "sc/")
                .unwrap()
                .secret_name(&TenantId::parse("tenant_id", "acme").unwrap(), id);
            assert!(matches!(
                secrets.get(&name).await,
                Err(SecretStoreError::NotFound)
            ));
        });
        let db = "connector_db_calls_total";
        let op = ("operation", "find_active");
        assert_eq!(counter(&snapshot, db, &[op, ("outcome", "ok")]), 1);
        assert_eq!(counter(&snapshot, db, &[op, ("outcome", "unavailable")]), 2);
        assert_eq!(
            histogram_count(
                &snapshot,
                "connector_db_call_duration_seconds",
                "find_active"
            ),
            3
        );
        assert_eq!(
            counter(
                &snapshot,
                "connector_secret_store_calls_total",
                &[("operation", "get"), ("outcome", "not_found")]
            ),
            1
        );
    }

    #[test]
    fn every_outcome_word_is_a_bounded_label() {
        let words = [
            RepositoryError::DuplicateName.outcome(),
            RepositoryError::Unavailable(String::new()).outcome(),
            SecretStoreError::NotFound.outcome(),
            SlackError::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
            }
            .outcome(),
            SlackError::Api {
                code: "some_new_error_slack_invents".into(),
            }
            .outcome(),
        ];
        assert_eq!(
            words,
            [
                "conflict",
                "unavailable",
                "not_found",
                "ratelimited",
                "api_error"
            ]
        );
    }
}
