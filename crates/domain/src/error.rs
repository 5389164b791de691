//! Validation errors that name the offending field.

/// A field of a request was missing, too long or malformed.
///
/// `field` is the name the caller used (the protobuf field name), so the message can point at
/// it; `reason` says what was wrong without echoing secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ValidationError {
    /// The request field, e.g. `tenant_id`.
    pub field: &'static str,
    /// What is wrong with it, e.g. `must not be empty`.
    pub reason: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// Checks the common length rules and returns the value unchanged.
pub(crate) fn check_len(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    let n = value.chars().count();
    if n > max_chars {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max_chars} characters (got {n})"),
        ));
    }
    Ok(())
}
