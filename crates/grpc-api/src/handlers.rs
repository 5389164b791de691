//! [`ConnectorGrpc`]: the tonic implementation of `connector.v1.ConnectorService`.

use std::sync::Arc;

use connector_domain::{
    ChannelId, ChannelRef, Connector, ConnectorId, ConnectorStatus, Delivery, FileAttachment,
    Message, MessageEdit, MessageId, MessageStatus, Principal, RequestId, Scope, TenantId,
    ValidationError,
};
use connector_usecases::inbound::InboundEvent;
use connector_usecases::{
    ConnectorService, CreateConnector, EventQuery, InboundEvents, MessageFilter, MessageSender,
    OAuthInstaller, OutboundRecord, UpdateConnector, UpdateFields,
};
use tonic::{Request, Response, Status};

use crate::auth::Authentication;
use crate::pb;
use crate::status::{send_to_status, to_status};

/// Serves `connector.v1.ConnectorService` over the connector use cases.
#[derive(Clone)]
pub struct ConnectorGrpc {
    service: ConnectorService,
    sender: MessageSender,
    installer: OAuthInstaller,
    inbound: InboundEvents,
    auth: Authentication,
    limits: MessageLimits,
    drain: Drain,
}

/// Ends the service's open streams (StreamEvents) when the server drains, so that draining
/// does not wait for them; clients resume from the last cursor they saw.
#[derive(Debug, Clone)]
pub struct Drain(Arc<tokio::sync::watch::Sender<bool>>);

impl Drain {
    fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(false).0))
    }

    /// Ends every open stream (after the event it is sending) and every one opened later.
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once draining started.
    fn started(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|draining| *draining).await;
        }
    }
}

/// How large requests may be: every request at most `max_message_bytes`, SendMessage's
/// attachments not counted, which may add up to `max_attachment_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// A request message at most, attachments not counted.
    pub max_message_bytes: usize,
    /// A SendMessage's attachments together at most.
    pub max_attachment_bytes: usize,
    /// A SendMessage's attachments at most (each one is an upload to Slack).
    pub max_attachments: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self {
            max_message_bytes: 1024 * 1024,
            max_attachment_bytes: 10 * 1024 * 1024,
            max_attachments: 10,
        }
    }
}

impl ConnectorGrpc {
    /// Serves the connector use cases, sending and the OAuth install flow to the callers
    /// `auth` accepts.
    pub fn new(
        service: ConnectorService,
        sender: MessageSender,
        installer: OAuthInstaller,
        inbound: InboundEvents,
        auth: Authentication,
    ) -> Self {
        Self {
            service,
            sender,
            installer,
            inbound,
            auth,
            limits: MessageLimits::default(),
            drain: Drain::new(),
        }
    }

    /// What ends the open streams when the server drains.
    pub fn drain(&self) -> Drain {
        self.drain.clone()
    }

    /// The same service taking requests within `limits`.
    pub fn with_limits(mut self, limits: MessageLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The tonic service, ready to add to a server: it decodes requests up to the largest a
    /// SendMessage with attachments may be; every other request (and SendMessage without its
    /// attachments) is then held to `max_message_bytes` (OUT_OF_RANGE).
    pub fn into_server(self) -> pb::connector_service_server::ConnectorServiceServer<Self> {
        let most = self
            .limits
            .max_message_bytes
            .saturating_add(self.limits.max_attachment_bytes);
        pb::connector_service_server::ConnectorServiceServer::new(self)
            .max_decoding_message_size(most)
    }
}

/// A request that names the tenant it acts for.
trait ForTenant: prost::Message {
    fn tenant_id(&self) -> &str;

    /// Its size on the wire, attachments not counted.
    fn size_without_attachments(&self) -> usize {
        self.encoded_len()
    }
}

macro_rules! for_tenant {
    ($($request:ty),*) => {$(
        impl ForTenant for $request {
            fn tenant_id(&self) -> &str {
                &self.tenant_id
            }
        }
    )*};
}

impl ForTenant for pb::SendMessageRequest {
    fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    fn size_without_attachments(&self) -> usize {
        let attached: usize = self
            .attachments
            .iter()
            .map(prost::Message::encoded_len)
            .sum();
        prost::Message::encoded_len(self).saturating_sub(attached)
    }
}

for_tenant!(
    pb::CreateConnectorRequest,
    pb::UpdateConnectorRequest,
    pb::GetConnectorRequest,
    pb::ListConnectorsRequest,
    pb::DeleteConnectorRequest,
    pb::GetOAuthV2urlRequest,
    pb::UpdateMessageRequest,
    pb::DeleteMessageRequest,
    pb::CancelScheduledMessageRequest,
    pb::ListEventsRequest,
    pb::StreamEventsRequest,
    pb::GetMessageRequest,
    pb::ListMessagesRequest,
    pb::CancelMessageRequest
);

impl ConnectorGrpc {
    /// The caller of `request` if it holds `scope`, and the tenant the request acts for.
    async fn caller<T: ForTenant>(
        &self,
        request: &Request<T>,
        scope: Scope,
    ) -> Result<(Principal, TenantId), Status> {
        let size = request.get_ref().size_without_attachments();
        if size > self.limits.max_message_bytes {
            return Err(Status::out_of_range(format!(
                "the request is {size} bytes; at most {} are accepted (CONNECTOR__GRPC__MAX_MESSAGE_BYTES; SendMessage's attachments count against CONNECTOR__GRPC__MAX_ATTACHMENT_BYTES instead)",
                self.limits.max_message_bytes
            )));
        }
        self.auth
            .authorize(request, scope, request.get_ref().tenant_id())
            .await
    }

    /// The files of a SendMessage, within the attachment limit.
    fn attachments(&self, attachments: Vec<pb::Attachment>) -> Result<Vec<FileAttachment>, Status> {
        if attachments.len() > self.limits.max_attachments {
            return Err(Status::out_of_range(format!(
                "attachments: {} files; at most {} are accepted (CONNECTOR__GRPC__MAX_ATTACHMENTS)",
                attachments.len(),
                self.limits.max_attachments
            )));
        }
        let total: usize = attachments.iter().map(|a| a.content.len()).sum();
        if total > self.limits.max_attachment_bytes {
            return Err(Status::out_of_range(format!(
                "attachments: {total} bytes together; at most {} are accepted (CONNECTOR__GRPC__MAX_ATTACHMENT_BYTES)",
                self.limits.max_attachment_bytes
            )));
        }
        Ok(attachments
            .into_iter()
            .map(|a| FileAttachment {
                filename: a.filename,
                title: non_empty(a.title),
                content: a.content,
            })
            .collect())
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The protobuf form of a connector. The token is not part of it.
pub fn connector_to_pb(c: Connector) -> pb::Connector {
    pb::Connector {
        etag: c.etag(),
        id: c.id.to_string(),
        tenant_id: c.tenant_id.to_string(),
        name: c.name.to_string(),
        workspace_id: c.workspace_id.to_string(),
        default_channel_id: c.default_channel_id.to_string(),
        default_channel_name: c.default_channel_name.to_string(),
        create_time: Some(timestamp(c.created_at)),
        update_time: Some(timestamp(c.updated_at)),
        status: match c.status() {
            ConnectorStatus::Active => pb::ConnectorStatus::Active,
            ConnectorStatus::NeedsReauthorization => pb::ConnectorStatus::NeedsReauthorization,
            ConnectorStatus::Revoked => pb::ConnectorStatus::Revoked,
            ConnectorStatus::DefaultChannelUnavailable => {
                pb::ConnectorStatus::DefaultChannelUnavailable
            }
        } as i32,
    }
}

/// Counts an open stream while it lives.
struct StreamOpen(metrics::Gauge);

impl Drop for StreamOpen {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// An event of the log, as the contract shows it.
fn inbound_event(e: InboundEvent) -> pb::InboundEvent {
    let event = e.event;
    pb::InboundEvent {
        cursor: e.cursor.to_string(),
        connector_id: event.connector_id.to_string(),
        r#type: event.event_type,
        event_id: event.event_id,
        team_id: event.team_id,
        channel_id: event.channel_id.unwrap_or_default(),
        user_id: event.user_id.unwrap_or_default(),
        ts: event.ts.unwrap_or_default(),
        thread_ts: event.thread_ts.unwrap_or_default(),
        text: event.text.unwrap_or_default(),
        received_at: Some(timestamp(event.received_at)),
        payload_json: event.payload_json,
    }
}

fn timestamp(t: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

#[tonic::async_trait]
impl pb::connector_service_server::ConnectorService for ConnectorGrpc {
    async fn create_connector(
        &self,
        request: Request<pb::CreateConnectorRequest>,
    ) -> Result<Response<pb::CreateConnectorResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::ConnectorsWrite).await?;
        let r = request.into_inner();
        let cmd = CreateConnector::parse(
            tenant.as_str(),
            &r.name,
            &r.slack_bot_token,
            &r.default_channel,
            &r.request_id,
        )
        .map_err(|e| to_status(e.into()))?;
        drop(r);
        let connector = self.service.create(cmd).await.map_err(to_status)?;
        tracing::info!(target: "audit", action = "connector.create", subject = %caller.subject,
            tenant_id = %connector.tenant_id, connector_id = %connector.id,
            workspace_id = %connector.workspace_id, "connector created");
        Ok(Response::new(pb::CreateConnectorResponse {
            connector: Some(connector_to_pb(connector)),
        }))
    }

    async fn update_connector(
        &self,
        request: Request<pb::UpdateConnectorRequest>,
    ) -> Result<Response<pb::UpdateConnectorResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::ConnectorsWrite).await?;
        let r = request.into_inner();
        let cmd = UpdateConnector::parse(UpdateFields {
            tenant_id: tenant.as_str(),
            id: &r.id,
            update_mask: r.update_mask.as_ref().map_or(&[], |m| m.paths.as_slice()),
            name: &r.name,
            default_channel: &r.default_channel,
            slack_bot_token: &r.slack_bot_token,
            etag: &r.etag,
            request_id: &r.request_id,
        })
        .map_err(|e| to_status(e.into()))?;
        drop(r);
        let changed = [
            cmd.name.is_some().then_some("name"),
            cmd.default_channel.is_some().then_some("default_channel"),
            cmd.bot_token.is_some().then_some("slack_bot_token"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(",");
        let connector = self.service.update(cmd).await.map_err(to_status)?;
        tracing::info!(target: "audit", action = "connector.update", subject = %caller.subject,
            tenant_id = %connector.tenant_id, connector_id = %connector.id, fields = %changed,
            etag = %connector.etag(), "connector updated");
        Ok(Response::new(pb::UpdateConnectorResponse {
            connector: Some(connector_to_pb(connector)),
        }))
    }

    async fn get_connector(
        &self,
        request: Request<pb::GetConnectorRequest>,
    ) -> Result<Response<pb::GetConnectorResponse>, Status> {
        let (_, tenant) = self.caller(&request, Scope::ConnectorsRead).await?;
        let r = request.into_inner();
        let id = ConnectorId::parse("id", &r.id).map_err(|e| to_status(e.into()))?;
        let connector = self.service.get(&tenant, id).await.map_err(to_status)?;
        Ok(Response::new(pb::GetConnectorResponse {
            connector: Some(connector_to_pb(connector)),
        }))
    }

    async fn list_connectors(
        &self,
        request: Request<pb::ListConnectorsRequest>,
    ) -> Result<Response<pb::ListConnectorsResponse>, Status> {
        let (_, tenant) = self.caller(&request, Scope::ConnectorsRead).await?;
        let r = request.into_inner();
        let status = match pb::ConnectorStatus::try_from(r.status) {
            Ok(pb::ConnectorStatus::Unspecified) => None,
            Ok(pb::ConnectorStatus::Active) => Some(ConnectorStatus::Active),
            Ok(pb::ConnectorStatus::NeedsReauthorization) => {
                Some(ConnectorStatus::NeedsReauthorization)
            }
            Ok(pb::ConnectorStatus::Revoked) => Some(ConnectorStatus::Revoked),
            Ok(pb::ConnectorStatus::DefaultChannelUnavailable) => {
                Some(ConnectorStatus::DefaultChannelUnavailable)
            }
            Err(_) => {
                return Err(to_status(
                    ValidationError::new("status", format!("unknown status {}", r.status)).into(),
                ));
            }
        };
        let page = self
            .service
            .list(&tenant, r.page_size, &r.page_token, status)
            .await
            .map_err(to_status)?;
        let tenant = page.connectors.first().map(|c| c.tenant_id.clone());
        let next_page_token = match (page.next, tenant) {
            (Some(next), Some(tenant)) => next.encode(&tenant),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListConnectorsResponse {
            connectors: page.connectors.into_iter().map(connector_to_pb).collect(),
            next_page_token,
        }))
    }

    async fn delete_connector(
        &self,
        request: Request<pb::DeleteConnectorRequest>,
    ) -> Result<Response<pb::DeleteConnectorResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::ConnectorsWrite).await?;
        let r = request.into_inner();
        let id = ConnectorId::parse("id", &r.id).map_err(|e| to_status(e.into()))?;
        self.service
            .delete(&tenant, id)
            .await
            .map_err(|e| {
                let status = to_status(e);
                if status.code() == tonic::Code::Unavailable {
                    // The row is already `deleting`: say how it ends.
                    Status::unavailable(format!(
                        "{}; the connector is no longer usable and its deletion will be finished by retrying DeleteConnector or by the reconciler",
                        status.message()
                    ))
                } else {
                    status
                }
            })?;
        tracing::info!(target: "audit", action = "connector.delete", subject = %caller.subject,
            tenant_id = %tenant, connector_id = %r.id, "connector deleted");
        Ok(Response::new(pb::DeleteConnectorResponse {}))
    }

    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let (_, tenant) = self.caller(&request, Scope::MessagesSend).await?;
        let r = request.into_inner();
        let id =
            ConnectorId::parse("connector_id", &r.connector_id).map_err(|e| to_status(e.into()))?;
        let channel = match r.channel.as_str() {
            "" => None,
            given => Some(ChannelRef::parse("channel", given).map_err(|e| to_status(e.into()))?),
        };
        let message = Message {
            request_id: RequestId::parse_optional("request_id", &r.request_id)
                .map_err(|e| to_status(e.into()))?,
            files: self.attachments(r.attachments)?,
            text: r.text,
            thread_ts: non_empty(r.thread_ts),
            reply_broadcast: r.reply_broadcast,
            blocks_json: non_empty(r.blocks_json),
            channel,
            unfurl_links: r.unfurl_links,
            unfurl_media: r.unfurl_media,
            post_at: match r.post_at {
                None => None,
                Some(t) => Some(
                    chrono::DateTime::from_timestamp(
                        t.seconds,
                        u32::try_from(t.nanos).unwrap_or(0),
                    )
                    .ok_or_else(|| {
                        to_status(ValidationError::new("post_at", "is not a valid time").into())
                    })?,
                ),
            },
        };
        let delivery = pb::Delivery::try_from(r.delivery).map_err(|_| {
            to_status(
                ValidationError::new("delivery", "must be DELIVERY_IMMEDIATE or DELIVERY_QUEUED")
                    .into(),
            )
        })?;
        if delivery == pb::Delivery::Queued {
            let queued = self
                .sender
                .enqueue(Some(&tenant), id, &message)
                .await
                .map_err(send_to_status)?;
            tracing::debug!(connector_id = %id, tenant_id = %tenant, message_id = %queued.id,
                "message queued");
            return Ok(Response::new(pb::SendMessageResponse {
                channel_id: queued.channel_id.to_string(),
                ts: queued.ts.clone().unwrap_or_default(),
                scheduled_message_id: String::new(),
                message_id: queued.id.to_string(),
                status: message_status(queued.status) as i32,
            }));
        }
        // The use case runs a send with a request_id to its end even if this call is
        // cancelled (a client's deadline), so its outcome is always recorded.
        let request_id = message.request_id.clone();
        let sent = match self.sender.send_owned(Some(&tenant), id, message).await {
            Ok(sent) => sent,
            Err(e) => {
                let mut status = send_to_status(e);
                // A keyed send that failed is recorded too: the answer names the record.
                if let Some(request_id) = request_id
                    && let Ok(Some(record)) = self
                        .sender
                        .message_for_request(&tenant, id, request_id.as_str())
                        .await
                    && record.delivery == Delivery::Immediate
                    && let Ok(value) = record.id.to_string().parse()
                {
                    status.metadata_mut().insert("x-message-id", value);
                }
                return Err(status);
            }
        };
        tracing::debug!(connector_id = %id, tenant_id = %tenant, channel = %sent.channel,
            ts = %sent.ts, "message sent");
        Ok(Response::new(pb::SendMessageResponse {
            channel_id: sent.channel.to_string(),
            ts: sent.ts,
            status: if sent.scheduled_message_id.is_some() {
                // Scheduled in Slack: not posted yet, and not the outbox's to follow.
                pb::MessageStatus::Unspecified as i32
            } else {
                pb::MessageStatus::Sent as i32
            },
            scheduled_message_id: sent.scheduled_message_id.unwrap_or_default(),
            message_id: sent.message_id.map(|m| m.to_string()).unwrap_or_default(),
        }))
    }

    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let (_, tenant) = self.caller(&request, Scope::MessagesSend).await?;
        let r = request.into_inner();
        let id = MessageId::parse("message_id", &r.message_id).map_err(|e| to_status(e.into()))?;
        let message = self
            .sender
            .get_message(&tenant, id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(outbound_message(message)),
        }))
    }

    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let (_, tenant) = self.caller(&request, Scope::MessagesSend).await?;
        let r = request.into_inner();
        let connector_id = match r.connector_id.as_str() {
            "" => None,
            given => {
                Some(ConnectorId::parse("connector_id", given).map_err(|e| to_status(e.into()))?)
            }
        };
        let mut statuses = Vec::with_capacity(r.statuses.len());
        for s in &r.statuses {
            statuses.push(status_of(*s).ok_or_else(|| {
                to_status(
                    ValidationError::new(
                        "statuses",
                        format!("{s} is not a MessageStatus other than UNSPECIFIED"),
                    )
                    .into(),
                )
            })?);
        }
        if !(0..=100).contains(&r.page_size) {
            return Err(to_status(
                ValidationError::new("page_size", "must be 0 (the default, 50) to 100").into(),
            ));
        }
        let page_size = if r.page_size == 0 {
            50
        } else {
            r.page_size as u32
        };
        let page = self
            .sender
            .list_messages(
                &tenant,
                &MessageFilter {
                    connector_id,
                    statuses,
                },
                page_size,
                &r.page_token,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListMessagesResponse {
            messages: page.messages.into_iter().map(outbound_message).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn cancel_message(
        &self,
        request: Request<pb::CancelMessageRequest>,
    ) -> Result<Response<pb::CancelMessageResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::MessagesSend).await?;
        let r = request.into_inner();
        let id = MessageId::parse("message_id", &r.message_id).map_err(|e| to_status(e.into()))?;
        let message = self
            .sender
            .cancel_message(&tenant, id)
            .await
            .map_err(to_status)?;
        tracing::info!(target: "audit", action = "message.cancel", subject = %caller.subject,
            tenant_id = %tenant, message_id = %id, "queued message cancelled");
        Ok(Response::new(pb::CancelMessageResponse {
            message: Some(outbound_message(message)),
        }))
    }

    async fn update_message(
        &self,
        request: Request<pb::UpdateMessageRequest>,
    ) -> Result<Response<pb::UpdateMessageResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::MessagesManage).await?;
        let r = request.into_inner();
        let id =
            ConnectorId::parse("connector_id", &r.connector_id).map_err(|e| to_status(e.into()))?;
        let edit = MessageEdit {
            channel: ChannelId::new(r.channel_id),
            ts: r.ts,
            text: r.text,
            blocks_json: non_empty(r.blocks_json),
        };
        let updated = self
            .sender
            .update_message(Some(&tenant), id, &edit)
            .await
            .map_err(send_to_status)?;
        tracing::info!(target: "audit", action = "message.update", subject = %caller.subject,
            tenant_id = %tenant, connector_id = %id, channel_id = %edit.channel, ts = %edit.ts,
            "message updated");
        Ok(Response::new(pb::UpdateMessageResponse {
            channel_id: updated.channel.to_string(),
            ts: updated.ts,
        }))
    }

    async fn delete_message(
        &self,
        request: Request<pb::DeleteMessageRequest>,
    ) -> Result<Response<pb::DeleteMessageResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::MessagesManage).await?;
        let r = request.into_inner();
        let id =
            ConnectorId::parse("connector_id", &r.connector_id).map_err(|e| to_status(e.into()))?;
        let channel = ChannelId::new(r.channel_id);
        self.sender
            .delete_message(Some(&tenant), id, &channel, &r.ts)
            .await
            .map_err(send_to_status)?;
        tracing::info!(target: "audit", action = "message.delete", subject = %caller.subject,
            tenant_id = %tenant, connector_id = %id, channel_id = %channel, ts = %r.ts,
            "message deleted");
        Ok(Response::new(pb::DeleteMessageResponse {}))
    }

    async fn cancel_scheduled_message(
        &self,
        request: Request<pb::CancelScheduledMessageRequest>,
    ) -> Result<Response<pb::CancelScheduledMessageResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::MessagesManage).await?;
        let r = request.into_inner();
        let id =
            ConnectorId::parse("connector_id", &r.connector_id).map_err(|e| to_status(e.into()))?;
        let channel = ChannelId::new(r.channel_id);
        self.sender
            .cancel_scheduled(Some(&tenant), id, &channel, &r.scheduled_message_id)
            .await
            .map_err(send_to_status)?;
        tracing::info!(target: "audit", action = "message.cancel_scheduled",
            subject = %caller.subject, tenant_id = %tenant, connector_id = %id,
            channel_id = %channel, ts = %r.scheduled_message_id, "scheduled message cancelled");
        Ok(Response::new(pb::CancelScheduledMessageResponse {}))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let (_, tenant) = self.caller(&request, Scope::EventsRead).await?;
        let r = request.into_inner();
        let page = self
            .inbound
            .list(
                &tenant,
                &EventQuery {
                    connector_ids: &r.connector_ids,
                    types: &r.types,
                    after_cursor: &r.after_cursor,
                    page_size: r.page_size,
                    include_own: r.include_own_messages,
                },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListEventsResponse {
            events: page.events.into_iter().map(inbound_event).collect(),
            next_cursor: page.next_cursor.to_string(),
        }))
    }

    type StreamEventsStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::StreamEventsResponse, Status>> + Send>,
    >;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        let (_, tenant) = self.caller(&request, Scope::EventsRead).await?;
        let r = request.into_inner();
        let events = self
            .inbound
            .follow(
                &tenant,
                &EventQuery {
                    connector_ids: &r.connector_ids,
                    types: &r.types,
                    after_cursor: &r.after_cursor,
                    page_size: 0,
                    include_own: r.include_own_messages,
                },
            )
            .await
            .map_err(to_status)?;
        let streams = metrics::gauge!("connector_event_streams");
        streams.increment(1.0);
        let open = StreamOpen(streams);
        let lag = metrics::histogram!("connector_event_stream_lag_seconds");
        let events = futures::StreamExt::map(events, move |item| {
            let _held = &open;
            item.map(|e| {
                // How far behind the stream is: the event's age as it is sent (replayed events
                // are as old as they are).
                let age = chrono::Utc::now() - e.event.received_at;
                lag.record(age.to_std().unwrap_or_default().as_secs_f64());
                pb::StreamEventsResponse {
                    event: Some(inbound_event(e)),
                }
            })
            .map_err(to_status)
        });
        // Draining ends the stream cleanly (no error): the client resumes elsewhere.
        let until_drained = futures::StreamExt::take_until(events, self.drain.started());
        Ok(Response::new(Box::pin(until_drained)))
    }

    async fn get_o_auth_v2url(
        &self,
        request: Request<pb::GetOAuthV2urlRequest>,
    ) -> Result<Response<pb::GetOAuthV2urlResponse>, Status> {
        let (caller, tenant) = self.caller(&request, Scope::ConnectorsWrite).await?;
        let r = request.into_inner();
        let (url, expires_at) = self
            .installer
            .authorize_url(&tenant, &r.name, &r.default_channel, &r.team_id)
            .await
            .map_err(to_status)?;
        tracing::info!(target: "audit", action = "oauth.install_url", subject = %caller.subject,
            tenant_id = %tenant, name = %r.name, "OAuth install URL issued");
        Ok(Response::new(pb::GetOAuthV2urlResponse {
            url,
            expire_time: Some(timestamp(expires_at)),
        }))
    }
}

/// A recorded message, as the contract shows it.
fn outbound_message(m: OutboundRecord) -> pb::OutboundMessage {
    pb::OutboundMessage {
        id: m.id.to_string(),
        connector_id: m.connector_id.to_string(),
        channel_id: m.channel_id.to_string(),
        status: message_status(m.status) as i32,
        ts: m.ts.unwrap_or_default(),
        attempts: i32::try_from(m.attempts).unwrap_or(i32::MAX),
        last_error: m.last_error.unwrap_or_default(),
        create_time: Some(timestamp(m.created_at)),
        send_time: m.finished_at.map(timestamp),
        next_attempt_time: (m.status == MessageStatus::Queued)
            .then(|| timestamp(m.next_attempt_at)),
        request_id: m.request_id.unwrap_or_default(),
        delivery: match m.delivery {
            Delivery::Immediate => pb::Delivery::Immediate,
            Delivery::Queued => pb::Delivery::Queued,
        } as i32,
    }
}

fn message_status(s: MessageStatus) -> pb::MessageStatus {
    match s {
        MessageStatus::Queued => pb::MessageStatus::Queued,
        MessageStatus::Sending => pb::MessageStatus::Sending,
        MessageStatus::Sent => pb::MessageStatus::Sent,
        MessageStatus::Failed => pb::MessageStatus::Failed,
        MessageStatus::Unknown => pb::MessageStatus::Unknown,
        MessageStatus::Cancelled => pb::MessageStatus::Cancelled,
    }
}

/// The status a request names (`None`: unspecified or not a status).
fn status_of(value: i32) -> Option<MessageStatus> {
    match pb::MessageStatus::try_from(value).ok()? {
        pb::MessageStatus::Unspecified => None,
        pb::MessageStatus::Queued => Some(MessageStatus::Queued),
        pb::MessageStatus::Sending => Some(MessageStatus::Sending),
        pb::MessageStatus::Sent => Some(MessageStatus::Sent),
        pb::MessageStatus::Failed => Some(MessageStatus::Failed),
        pb::MessageStatus::Unknown => Some(MessageStatus::Unknown),
        pb::MessageStatus::Cancelled => Some(MessageStatus::Cancelled),
    }
}
