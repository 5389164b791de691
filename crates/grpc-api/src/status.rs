//! The one mapping from use-case errors to gRPC statuses (the contract's status table).

pub use connector_usecases::error::{incident_id, log_internal};
use connector_usecases::{ConnectorError, Dependency, SendError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// `UNAVAILABLE` with a fixed text naming the dependency and an incident ID; the detail (a
/// driver's error chain, a host name) goes to the log under the same ID, never to the client.
pub fn unavailable(dependency: Dependency, detail: &str) -> Status {
    let incident = incident_id();
    tracing::warn!(%incident, %dependency, %detail, "a dependency is unavailable");
    Status::unavailable(format!(
        "{dependency} is unavailable; retry later (incident {incident})"
    ))
}

/// Maps a use-case error to the contract's status code.
///
/// Messages name the field or the cause. [`ConnectorError::Internal`] and
/// [`ConnectorError::Unavailable`] are logged here, once, with their detail and an incident ID,
/// and answered with a fixed message carrying the same ID: no driver error, host name or AWS
/// error chain reaches a client.
pub fn to_status(err: ConnectorError) -> Status {
    match err {
        ConnectorError::Invalid(v) => Status::with_error_details(
            Code::InvalidArgument,
            v.to_string(),
            ErrorDetails::with_bad_request_violation(v.field, v.reason),
        ),
        e @ ConnectorError::TokenRejected { .. } => {
            let description = e.to_string();
            Status::with_error_details(
                Code::InvalidArgument,
                description.clone(),
                ErrorDetails::with_bad_request_violation("slack_bot_token", description),
            )
        }
        ConnectorError::FailedPrecondition { field, reason } => {
            let message = match field {
                Some(f) => format!("{f}: {reason}"),
                None => reason.clone(),
            };
            Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure_violation(
                    "SLACK",
                    field.unwrap_or("connector"),
                    reason,
                ),
            )
        }
        e @ (ConnectorError::NotFound { .. } | ConnectorError::MessageNotFound { .. }) => {
            Status::not_found(e.to_string())
        }
        ConnectorError::OutOfRange { field, reason } => Status::with_error_details(
            Code::OutOfRange,
            format!("{field}: {reason}"),
            ErrorDetails::with_bad_request_violation(field, reason),
        ),
        e @ ConnectorError::AlreadyExists { .. } => Status::already_exists(e.to_string()),
        e @ ConnectorError::Aborted { .. } => Status::aborted(e.to_string()),
        e @ ConnectorError::TokenNotYetCurrent => Status::unavailable(e.to_string()),
        ConnectorError::Unavailable { dependency, detail } => unavailable(dependency, &detail),
        ConnectorError::RateLimited { retry_after } => Status::with_error_details(
            Code::ResourceExhausted,
            ConnectorError::RateLimited { retry_after }.to_string(),
            ErrorDetails::with_retry_info(retry_after),
        ),
        ConnectorError::QuotaExceeded {
            subject,
            description,
        } => Status::with_error_details(
            Code::ResourceExhausted,
            format!("{subject}: {description}"),
            ErrorDetails::with_quota_failure_violation(subject, description),
        ),
        ConnectorError::Internal(e) => {
            let incident = incident_id();
            log_internal(&incident, "internal error", &e);
            Status::internal(format!(
                "internal error; the server log has the details (incident {incident})"
            ))
        }
    }
}

/// Slack error strings that mean the request itself was wrong, with the field to blame.
fn slack_input_field(code: &str) -> Option<&'static str> {
    match code {
        "invalid_blocks" | "invalid_blocks_format" => Some("blocks_json"),
        "msg_too_long" | "no_text" => Some("text"),
        "thread_not_found" | "invalid_thread_ts" => Some("thread_ts"),
        _ => None,
    }
}

/// Maps a send error to the contract's status code (`SendMessage` rows of the table).
pub fn send_to_status(err: SendError) -> Status {
    match err {
        SendError::Invalid(v) => to_status(ConnectorError::Invalid(v)),
        e @ (SendError::ConnectorNotFound { .. } | SendError::MessageNotFound { .. }) => {
            Status::not_found(e.to_string())
        }
        e @ (SendError::SecretMissing { .. }
        | SendError::NeedsReauthorization { .. }
        | SendError::ConnectorRevoked { .. }
        | SendError::MessageNotEditable { .. }
        | SendError::DefaultChannelUnavailable { .. }
        | SendError::TokenRevoked { .. }
        | SendError::MissingScope { .. }
        | SendError::NotInChannel { .. }
        | SendError::ChannelArchived { .. }
        | SendError::ChannelNotFound { .. }) => Status::failed_precondition(e.to_string()),
        SendError::RateLimited { retry_after } => {
            to_status(ConnectorError::RateLimited { retry_after })
        }
        SendError::ChannelPaced {
            channel,
            retry_after,
        } => Status::with_error_details(
            Code::ResourceExhausted,
            SendError::ChannelPaced {
                channel,
                retry_after,
            }
            .to_string(),
            ErrorDetails::with_retry_info(Some(retry_after)),
        ),
        e @ SendError::TooManyInFlight { .. } => Status::with_error_details(
            Code::ResourceExhausted,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
        ),
        SendError::Slack { code } => match slack_input_field(&code) {
            Some(field) => Status::with_error_details(
                Code::InvalidArgument,
                format!("{field}: Slack refused it ({code})"),
                ErrorDetails::with_bad_request_violation(
                    field,
                    format!("Slack refused it ({code})"),
                ),
            ),
            None => Status::failed_precondition(format!("Slack refused the message ({code})")),
        },
        SendError::Unavailable { dependency, detail } => {
            to_status(ConnectorError::Unavailable { dependency, detail })
        }
        SendError::OutcomeUnknown { detail } => {
            // A fixed text: the detail (a host, a driver's words) goes to the log only.
            let incident = incident_id();
            tracing::warn!(%incident, %detail, "a send's outcome is unknown");
            Status::unavailable(format!(
                "Slack's answer was lost; the message may have been posted: check the channel before sending it again; a retry with the same request_id never posts it twice (incident {incident})"
            ))
        }
        e @ SendError::SendInProgress { .. } => Status::with_error_details(
            Code::Aborted,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(std::time::Duration::from_secs(1))),
        ),
        e @ SendError::EarlierOutcomeUnsettled { retry_after, .. } => Status::with_error_details(
            Code::Unavailable,
            e.to_string(),
            ErrorDetails::with_retry_info(Some(retry_after)),
        ),
        e @ (SendError::EarlierOutcomeUnknown { .. }
        | SendError::EarlierPartiallySent { .. }
        | SendError::QueuedEarlier { .. }) => Status::aborted(e.to_string()),
        e @ SendError::RequestIdReused { .. } => Status::with_error_details(
            Code::InvalidArgument,
            e.to_string(),
            ErrorDetails::with_bad_request_violation(
                "request_id",
                "already used for a different message through this connector",
            ),
        ),
        SendError::PartiallySent { sent, error } => {
            let inner = send_to_status(*error);
            Status::new(
                inner.code(),
                format!(
                    "only part of the message was delivered (first message ts {} in {}, {} more part(s)): {}",
                    sent.ts,
                    sent.channel,
                    sent.continuation_ts.len(),
                    inner.message()
                ),
            )
        }
        SendError::Internal(e) => to_status(ConnectorError::Internal(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_domain::ValidationError;

    #[test]
    fn dependency_details_never_reach_the_client() {
        let detail = "dispatch failure: io error: connect to secretsmanager.internal.corp:443 refused; SQLSTATE 57P01 terminating connection";
        for status in [
            to_status(ConnectorError::Unavailable {
                dependency: Dependency::SecretStore,
                detail: detail.into(),
            }),
            send_to_status(SendError::Unavailable {
                dependency: Dependency::Database,
                detail: detail.into(),
            }),
            to_status(ConnectorError::Internal(anyhow::anyhow!(detail))),
        ] {
            let m = status.message();
            assert!(!m.contains("corp"), "{m}");
            assert!(!m.contains("SQLSTATE"), "{m}");
            assert!(m.contains("(incident "), "{m}");
        }
        let m = to_status(ConnectorError::Unavailable {
            dependency: Dependency::SecretStore,
            detail: detail.into(),
        });
        assert!(
            m.message()
                .starts_with("the secret store is unavailable; retry later")
        );
    }

    #[test]
    fn each_error_maps_to_the_contract_code() {
        let cases: Vec<(ConnectorError, Code)> = vec![
            (
                ValidationError::new("name", "must not be empty").into(),
                Code::InvalidArgument,
            ),
            (
                ConnectorError::TokenRejected {
                    code: "invalid_auth".into(),
                },
                Code::InvalidArgument,
            ),
            (
                ConnectorError::FailedPrecondition {
                    field: Some("default_channel"),
                    reason: "archived".into(),
                },
                Code::FailedPrecondition,
            ),
            (ConnectorError::NotFound { id: "x".into() }, Code::NotFound),
            (
                ConnectorError::AlreadyExists { name: "n".into() },
                Code::AlreadyExists,
            ),
            (
                ConnectorError::Aborted {
                    reason: "busy".into(),
                },
                Code::Aborted,
            ),
            (
                ConnectorError::Unavailable {
                    dependency: Dependency::Slack,
                    detail: "timeout".into(),
                },
                Code::Unavailable,
            ),
            (
                ConnectorError::RateLimited { retry_after: None },
                Code::ResourceExhausted,
            ),
            (ConnectorError::Internal(anyhow_like()), Code::Internal),
        ];
        for (err, code) in cases {
            let shown = format!("{err:?}");
            assert_eq!(to_status(err).code(), code, "{shown}");
        }
    }

    fn anyhow_like() -> anyhow::Error {
        anyhow::anyhow!("secret detail that must stay in the log")
    }

    #[test]
    fn invalid_arguments_name_the_field_in_message_and_details() {
        let status = to_status(ValidationError::new("tenant_id", "must not be empty").into());
        assert!(
            status.message().starts_with("tenant_id:"),
            "{}",
            status.message()
        );
        let details = status.get_error_details();
        let bad = details.bad_request().expect("BadRequest details");
        assert_eq!(bad.field_violations[0].field, "tenant_id");
    }

    #[test]
    fn send_errors_map_to_the_contract_codes() {
        use connector_usecases::SendError as E;
        let cases: Vec<(E, Code)> = vec![
            (E::ConnectorNotFound { id: "x".into() }, Code::NotFound),
            (
                E::NotInChannel {
                    channel: "C1".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                E::ChannelArchived {
                    channel: "C1".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                E::TokenRevoked {
                    code: "token_revoked".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                E::SecretMissing { id: "x".into() },
                Code::FailedPrecondition,
            ),
            (
                E::RateLimited { retry_after: None },
                Code::ResourceExhausted,
            ),
            (
                E::Slack {
                    code: "invalid_blocks".into(),
                },
                Code::InvalidArgument,
            ),
            (
                E::Slack {
                    code: "restricted_action".into(),
                },
                Code::FailedPrecondition,
            ),
            (
                E::Unavailable {
                    dependency: Dependency::Slack,
                    detail: "down".into(),
                },
                Code::Unavailable,
            ),
            (
                E::OutcomeUnknown {
                    detail: "timed out".into(),
                },
                Code::Unavailable,
            ),
            (
                E::SendInProgress {
                    request_id: "k".into(),
                },
                Code::Aborted,
            ),
            (
                E::EarlierOutcomeUnknown {
                    request_id: "k".into(),
                },
                Code::Aborted,
            ),
            (
                E::EarlierOutcomeUnsettled {
                    request_id: "k".into(),
                    retry_after: std::time::Duration::from_secs(7),
                },
                Code::Unavailable,
            ),
            (
                E::EarlierPartiallySent {
                    request_id: "k".into(),
                    channel: "C1".into(),
                    ts: "1.1".into(),
                },
                Code::Aborted,
            ),
            (
                E::RequestIdReused {
                    request_id: "k".into(),
                },
                Code::InvalidArgument,
            ),
            (
                E::QueuedEarlier {
                    request_id: "k".into(),
                    message_id: "m".into(),
                    status: "QUEUED".into(),
                },
                Code::Aborted,
            ),
            (
                E::ChannelPaced {
                    channel: "C1".into(),
                    retry_after: std::time::Duration::from_millis(300),
                },
                Code::ResourceExhausted,
            ),
            (E::Internal(anyhow_like()), Code::Internal),
        ];
        for (err, code) in cases {
            let shown = format!("{err:?}");
            assert_eq!(send_to_status(err).code(), code, "{shown}");
        }
    }

    #[test]
    fn internal_errors_are_opaque() {
        let status = to_status(ConnectorError::Internal(anyhow_like()));
        assert!(!status.message().contains("secret detail"));
    }
}
