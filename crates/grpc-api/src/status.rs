//! The one mapping from use-case errors to gRPC statuses (the contract's status table).

use connector_ports::ConnectorError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// Maps a use-case error to the contract's status code.
///
/// Messages name the field or the cause. [`ConnectorError::Internal`] is logged here, once,
/// with its chain, and answered with an opaque message.
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
        e @ ConnectorError::NotFound { .. } => Status::not_found(e.to_string()),
        e @ ConnectorError::AlreadyExists { .. } => Status::already_exists(e.to_string()),
        e @ ConnectorError::Aborted { .. } => Status::aborted(e.to_string()),
        e @ ConnectorError::Unavailable { .. } => Status::unavailable(e.to_string()),
        ConnectorError::RateLimited { retry_after } => Status::with_error_details(
            Code::ResourceExhausted,
            ConnectorError::RateLimited { retry_after }.to_string(),
            ErrorDetails::with_retry_info(retry_after),
        ),
        ConnectorError::Internal(e) => {
            tracing::error!(error = ?e, "internal error");
            Status::internal("internal error; see the server log")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_domain::ValidationError;
    use connector_ports::Dependency;

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
    fn internal_errors_are_opaque() {
        let status = to_status(ConnectorError::Internal(anyhow_like()));
        assert!(!status.message().contains("secret detail"));
    }
}
