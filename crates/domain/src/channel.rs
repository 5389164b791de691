//! What a caller may give as a connector's default channel.

use std::fmt;

use crate::error::ValidationError;
use crate::ids::ChannelId;

/// A Slack channel name without the leading `#`, as Slack spells it: lower case, at most 80
/// characters, letters, digits, `-` and `_` (letters of any script are allowed, as Slack allows
/// them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelName(String);

impl ChannelName {
    /// Longest channel name Slack allows.
    pub const MAX_LEN: usize = 80;

    /// Wraps a name as Slack reported it.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The name as a string, without `#`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A default channel as a caller gave it: a name (`alerts` or `#alerts`) or an ID (`C…`/`G…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelRef {
    /// A channel name, to be resolved through `conversations.list`.
    Name(ChannelName),
    /// A channel ID, to be checked through `conversations.info`.
    Id(ChannelId),
}

impl ChannelRef {
    /// Parses the request field `field`.
    ///
    /// Upper-case strings shaped like `C0123ABCD` are IDs (Slack names are never upper case);
    /// everything else must be a valid channel name, with an optional leading `#`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationError> {
        if value.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if ChannelId::looks_like_id(value) {
            return Ok(Self::Id(ChannelId::new(value)));
        }
        let name = value.strip_prefix('#').unwrap_or(value);
        if name.is_empty() {
            return Err(ValidationError::new(field, "must name a channel after '#'"));
        }
        let n = name.chars().count();
        if n > ChannelName::MAX_LEN {
            return Err(ValidationError::new(
                field,
                format!(
                    "a channel name has at most {} characters (got {n})",
                    ChannelName::MAX_LEN
                ),
            ));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !((c.is_alphanumeric() && !c.is_uppercase()) || matches!(c, '-' | '_')))
        {
            return Err(ValidationError::new(
                field,
                format!(
                    "must be a channel name (lower-case letters, digits, '-', '_', optionally after '#') \
                     or a channel ID like C0123ABCD (found {c:?})"
                ),
            ));
        }
        Ok(Self::Name(ChannelName::new(name)))
    }
}

impl fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => write!(f, "#{n}"),
            Self::Id(id) => write!(f, "{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_hash() {
        assert_eq!(
            ChannelRef::parse("default_channel", "alerts").unwrap(),
            ChannelRef::Name(ChannelName::new("alerts"))
        );
        assert_eq!(
            ChannelRef::parse("default_channel", "#ops-alerts_2").unwrap(),
            ChannelRef::Name(ChannelName::new("ops-alerts_2"))
        );
        assert_eq!(
            ChannelRef::parse("default_channel", "#日本").unwrap(),
            ChannelRef::Name(ChannelName::new("日本"))
        );
    }

    #[test]
    fn ids() {
        assert_eq!(
            ChannelRef::parse("default_channel", "C0123ABCD").unwrap(),
            ChannelRef::Id(ChannelId::new("C0123ABCD"))
        );
        assert!(matches!(
            ChannelRef::parse("default_channel", "G0ABCDEFGH").unwrap(),
            ChannelRef::Id(_)
        ));
    }

    #[test]
    fn rejects_malformed_values_naming_the_field() {
        for bad in [
            "",
            "#",
            "Alerts",
            "two words",
            "#a#b",
            "a.b",
            &"x".repeat(81),
        ] {
            let err = ChannelRef::parse("default_channel", bad).unwrap_err();
            assert_eq!(err.field, "default_channel", "{bad:?}");
        }
    }
}
