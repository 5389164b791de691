//! Slack bot tokens, which must never be printed.

use secrecy::{ExposeSecret, SecretString};

use crate::error::ValidationError;

/// A Slack bot token (`xoxb-…`, or `xoxe.xoxb-…` when token rotation is on).
///
/// It wraps a [`SecretString`]: `Debug` prints `[REDACTED]` and the value is zeroed on drop.
/// Only adapters that must send it (the Slack client, the secret store) call
/// [`BotToken::expose`].
#[derive(Clone)]
pub struct BotToken(SecretString);

impl BotToken {
    /// Longest accepted token, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates the shape of the request field `field`. Error messages never echo the value.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        if value.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if value.len() > Self::MAX_LEN {
            return Err(ValidationError::new(
                field,
                format!("must be at most {} characters", Self::MAX_LEN),
            ));
        }
        let rest = value
            .strip_prefix("xoxb-")
            .or_else(|| value.strip_prefix("xoxe.xoxb-"));
        let Some(rest) = rest else {
            return Err(ValidationError::new(
                field,
                "must be a Slack bot token starting with 'xoxb-'",
            ));
        };
        if rest.len() < 8 || !rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ValidationError::new(
                field,
                "is not shaped like a Slack bot token (xoxb- followed by letters, digits and '-')",
            ));
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    /// Wraps a token read back from the secret store, without re-validating its shape.
    pub fn from_stored(value: SecretString) -> Self {
        Self(value)
    }

    /// The token itself. Call only to send it to Slack or to the secret store.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for BotToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotToken([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bot_tokens_and_rotating_bot_tokens() {
        assert!(BotToken::parse("slack_bot_token", "xoxb-1234-5678-abcdEFGH").is_ok());
        assert!(BotToken::parse("slack_bot_token", "xoxe.xoxb-1-abcdefgh1234").is_ok());
    }

    #[test]
    fn rejects_other_token_kinds_without_echoing_them() {
        for bad in [
            "",
            "xoxp-1234-5678-abcdefgh",
            "xoxb-",
            "xoxb-short",
            "xoxb-1234 5678 abcd",
            "Bearer xoxb-12345678",
        ] {
            let err = BotToken::parse("slack_bot_token", bad).unwrap_err();
            assert_eq!(err.field, "slack_bot_token");
            if bad.len() > "xoxb-".len() {
                assert!(
                    !err.to_string().contains(bad),
                    "error echoes the token: {err}"
                );
            }
        }
        let long = format!("xoxb-{}", "1".repeat(300));
        assert!(BotToken::parse("slack_bot_token", &long).is_err());
    }

    #[test]
    fn debug_is_redacted() {
        let t = BotToken::parse("slack_bot_token", "xoxb-1234-5678-secretpart").unwrap();
        let shown = format!("{t:?}");
        assert!(!shown.contains("secretpart"), "{shown}");
    }
}
