//! Changing what a connector posted or scheduled: `chat.update`, `chat.delete` and
//! `chat.deleteScheduledMessage`, with the connector's
//! token (refused without calling Slack for a connector that cannot use it, as a send is).
//!
//! Only messages the named connector posted are changed: a message the service did not record
//! as this connector's (another tenant's, even through the same bot; or older than
//! [`EDIT_WINDOW`](super::EDIT_WINDOW)) is [`SendError::MessageNotFound`], without a Slack call.

use connector_domain::{
    ChannelId, ConnectorId, MessageEdit, TenantId, check_channel_id, check_message_ref,
};
use connector_ports::SlackError;

use super::{MessageSender, SentMessage};
use crate::error::SendError;

/// Slack's answers that mean the message is not there.
const GONE: &[&str] = &["message_not_found", "invalid_scheduled_message_id"];
/// Slack's answers that mean the message cannot be changed by this bot.
const NOT_EDITABLE: &[&str] = &[
    "cant_update_message",
    "cant_delete_message",
    "edit_window_closed",
    "compliance_exports_prevent_deletion",
];

fn edit_error(e: SlackError, channel: &ChannelId, ts: &str) -> SendError {
    match e {
        SlackError::Api { code } if GONE.contains(&code.as_str()) => SendError::MessageNotFound {
            channel: channel.to_string(),
            ts: ts.to_owned(),
        },
        SlackError::Api { code } if NOT_EDITABLE.contains(&code.as_str()) => {
            SendError::MessageNotEditable { code }
        }
        other => SendError::from_slack(other, channel),
    }
}

impl MessageSender {
    /// Replaces the text (and blocks) of a message connector `id` posted. With `tenant`, a
    /// connector of another tenant is [`SendError::ConnectorNotFound`].
    #[tracing::instrument(name = "usecase messages.update", skip_all)]
    pub async fn update_message(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        edit: &MessageEdit,
    ) -> Result<SentMessage, SendError> {
        edit.validate()?;
        if let Some(blocks) = &edit.blocks_json
            && blocks.len() > self.limits.max_blocks_bytes
        {
            return Err(connector_domain::ValidationError::new(
                "blocks_json",
                format!("must be at most {} bytes", self.limits.max_blocks_bytes),
            )
            .into());
        }
        let connector = self.usable_connector(tenant, id).await?;
        self.posted_by(id, &edit.channel, &edit.ts).await?;
        let slack = self.ports.slack.clone();
        let updated = self
            .with_token(&connector, None, |token| {
                let slack = slack.clone();
                async move { slack.update_message(&token, edit).await }
            })
            .await?
            .map_err(|e| edit_error(e, &edit.channel, &edit.ts))?;
        Ok(SentMessage {
            channel: updated.channel,
            ts: updated.ts,
            continuation_ts: Vec::new(),
            file_ids: Vec::new(),
            scheduled_message_id: None,
            message_id: None,
        })
    }

    /// Deletes a message connector `id` posted.
    #[tracing::instrument(name = "usecase messages.delete", skip_all)]
    pub async fn delete_message(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<(), SendError> {
        check_message_ref(channel, ts)?;
        let connector = self.usable_connector(tenant, id).await?;
        self.posted_by(id, channel, ts).await?;
        let slack = self.ports.slack.clone();
        self.with_token(&connector, None, |token| {
            let slack = slack.clone();
            async move { slack.delete_message(&token, channel, ts).await }
        })
        .await?
        .map_err(|e| edit_error(e, channel, ts))?;
        self.forget_posted(id, channel, ts).await;
        Ok(())
    }

    /// `Ok` when connector `id` posted `ts` in `channel`; otherwise the message is not found
    /// (for this caller it does not exist).
    async fn posted_by(
        &self,
        id: ConnectorId,
        channel: &ChannelId,
        ts: &str,
    ) -> Result<(), SendError> {
        if self.posted.holds(id, channel, ts) || self.sends.was_posted(id, channel, ts).await? {
            Ok(())
        } else {
            Err(SendError::MessageNotFound {
                channel: channel.to_string(),
                ts: ts.to_owned(),
            })
        }
    }

    /// Forgets a message that is gone; a failure leaves a record of a message Slack no longer
    /// has, which Slack's own answer then reports as not found.
    async fn forget_posted(&self, id: ConnectorId, channel: &ChannelId, ts: &str) {
        if let Err(e) = self.sends.forget_posted(id, channel, ts).await {
            tracing::warn!(connector_id = %id, error = %e, "could not forget a deleted message");
        }
    }
}

impl MessageSender {
    /// Cancels a message connector `id` scheduled (`post_at`), by its channel and Slack's
    /// scheduled message ID.
    #[tracing::instrument(name = "usecase messages.cancel_scheduled", skip_all)]
    pub async fn cancel_scheduled(
        &self,
        tenant: Option<&TenantId>,
        id: ConnectorId,
        channel: &ChannelId,
        scheduled_message_id: &str,
    ) -> Result<(), SendError> {
        check_channel_id(channel)?;
        let well_formed = scheduled_message_id.len() <= 64
            && scheduled_message_id.starts_with('Q')
            && scheduled_message_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric());
        if !well_formed {
            return Err(connector_domain::ValidationError::new(
                "scheduled_message_id",
                "must be Slack's scheduled message ID (Q…) as SendMessage answered it",
            )
            .into());
        }
        let connector = self.usable_connector(tenant, id).await?;
        self.posted_by(id, channel, scheduled_message_id).await?;
        let slack = self.ports.slack.clone();
        self.with_token(&connector, None, |token| {
            let slack = slack.clone();
            async move {
                slack
                    .delete_scheduled_message(&token, channel, scheduled_message_id)
                    .await
            }
        })
        .await?
        .map_err(|e| edit_error(e, channel, scheduled_message_id))?;
        self.forget_posted(id, channel, scheduled_message_id).await;
        Ok(())
    }
}
