//! Finding a channel the bot can post to, by name (`conversations.list`, page by page) or by ID
//! (`conversations.info`): one algorithm for the default channel of a connector and for a
//! send's channel override; each caller says what a miss means in its own errors.

use connector_domain::{BotToken, ChannelRef};
use connector_ports::{ChannelInfo, SlackApi, SlackError};

/// Why a channel was not found.
#[derive(Debug)]
pub(crate) enum Lookup {
    /// Slack failed.
    Slack(SlackError),
    /// No such channel the bot can see.
    Missing,
    /// Not among the first `max_pages` pages: the caller should give the ID.
    BeyondPages {
        /// The pages read.
        max_pages: usize,
    },
    /// The channel is archived.
    Archived,
}

/// Finds `channel` with `token`, reading at most `max_pages` pages of channels for a name.
pub(crate) async fn find(
    slack: &dyn SlackApi,
    token: &BotToken,
    channel: &ChannelRef,
    max_pages: usize,
) -> Result<ChannelInfo, Lookup> {
    let info = match channel {
        ChannelRef::Id(id) => slack.channel_info(token, id).await.map_err(|e| match e {
            SlackError::ChannelNotFound => Lookup::Missing,
            other => Lookup::Slack(other),
        })?,
        ChannelRef::Name(name) => {
            let mut cursor = None;
            let mut found = None;
            let mut exhausted = true;
            for page_number in 1..=max_pages {
                let page = slack
                    .list_channels(token, cursor.take())
                    .await
                    .map_err(Lookup::Slack)?;
                if let Some(hit) = page.channels.into_iter().find(|c| c.name == *name) {
                    found = Some(hit);
                    break;
                }
                match page.next_cursor {
                    Some(next) if !next.is_empty() => {
                        cursor = Some(next);
                        exhausted = page_number < max_pages;
                    }
                    _ => break,
                }
            }
            match found {
                Some(hit) => hit,
                None if exhausted => return Err(Lookup::Missing),
                None => return Err(Lookup::BeyondPages { max_pages }),
            }
        }
    };
    if info.is_archived {
        return Err(Lookup::Archived);
    }
    Ok(info)
}
