//! The diesel view of the tables, one for both backends (`migrations/postgres` and
//! `migrations/sqlite` create them alike; [`Id`](crate::types::Id) and
//! [`Moment`](crate::types::Moment) are what each stores differently).

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// Connector metadata; see the migration for the meaning of each column.
    connectors (id) {
        /// Server-assigned UUID.
        id -> Id,
        /// Owning tenant.
        tenant_id -> Text,
        /// Unique per tenant.
        name -> Text,
        /// Slack team ID.
        workspace_id -> Text,
        /// Default channel ID.
        default_channel_id -> Text,
        /// Default channel name.
        default_channel_name -> Text,
        /// `creating`, `active` or `deleting`.
        state -> Text,
        /// Idempotency key.
        request_id -> Nullable<Text>,
        /// `ok` or `needs_reauthorization`.
        auth_status -> Text,
        /// When a rotating token expires.
        token_expires_at -> Nullable<Moment>,
        /// Until when a replica holds the right to refresh the token.
        refresh_lease_until -> Nullable<Moment>,
        /// The fencing value of the current refresh lease.
        refresh_fence -> Nullable<BigInt>,
        /// Moves with every update; the etag.
        generation -> BigInt,
        /// The request ID of the last update applied.
        last_update_request_id -> Nullable<Text>,
        /// A staged secret version not yet confirmed current.
        pending_secret_version -> Nullable<Text>,
        /// When Slack said the app was uninstalled or its tokens revoked.
        revoked_at -> Nullable<Moment>,
        /// Whether the default channel can be posted to.
        default_channel_available -> Bool,
        /// The Slack app the token belongs to (`A…`), when known.
        slack_app_id -> Nullable<Text>,
        /// The bot user the token acts as (`U…`); NULL for rows made before it was recorded.
        bot_user_id -> Nullable<Text>,
        /// Creation time.
        created_at -> Moment,
        /// Last change.
        updated_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// Slack event deliveries handled, by Slack's event ID.
    slack_events (event_id) {
        /// Slack's `event_id`.
        event_id -> Text,
        /// When it was first received.
        received_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// Pending OAuth installs, keyed by the SHA-256 of their state.
    oauth_states (state_hash) {
        /// Hex SHA-256 of the state.
        state_hash -> Text,
        /// Owning tenant.
        tenant_id -> Text,
        /// The connector to create.
        name -> Text,
        /// Its default channel, as given.
        default_channel -> Text,
        /// When the URL was issued.
        created_at -> Moment,
        /// When the state stops being accepted.
        expires_at -> Moment,
        /// Hex SHA-256 of the nonce in the browser that opened the link.
        browser_hash -> Nullable<Text>,
        /// The workspace the install must land in, if pinned.
        team_id -> Nullable<Text>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// Static API keys, stored as the hash of their secret.
    api_keys (id) {
        /// The key's ID.
        id -> Id,
        /// Hex SHA-256 of the key's secret part.
        secret_hash -> Text,
        /// The tenant it acts for; NULL: every tenant.
        tenant_id -> Nullable<Text>,
        /// Space-separated scopes.
        scopes -> Text,
        /// A label for operators.
        name -> Text,
        /// When it was created.
        created_at -> Moment,
        /// When it was revoked.
        revoked_at -> Nullable<Moment>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// Idempotent sends, one per connector and request ID.
    sent_messages (connector_id, request_id) {
        /// The connector sent through.
        connector_id -> Id,
        /// The caller's idempotency key.
        request_id -> Text,
        /// The connector's tenant.
        tenant_id -> Text,
        /// Hex SHA-256 of the message.
        fingerprint -> Text,
        /// `in_flight`, `sent`, `partially_sent` or `unknown`.
        outcome -> Text,
        /// Where it was posted.
        channel_id -> Nullable<Text>,
        /// The posted message's `ts`.
        ts -> Nullable<Text>,
        /// When the key was claimed.
        created_at -> Moment,
        /// When the outcome was recorded.
        updated_at -> Moment,
        /// The ID the send's post carries in Slack's message metadata (its landing can be
        /// searched for), if any.
        message_id -> Nullable<Id>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// What each connector posted or scheduled, so that only it can change it later.
    posted_messages (connector_id, channel_id, ts) {
        /// The connector that posted it.
        connector_id -> Id,
        /// The channel it is in.
        channel_id -> Text,
        /// Its `ts`, or a scheduled message's `Q…` ID.
        ts -> Text,
        /// The connector's tenant.
        tenant_id -> Text,
        /// When it was posted.
        posted_at -> Moment,
    }
}

diesel::table! {
    /// The last cursor given to each tenant's inbound events.
    event_cursors (tenant_id) {
        /// The tenant.
        tenant_id -> Text,
        /// Its newest event's cursor.
        last_cursor -> BigInt,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// What people did in Slack, once per connector it belongs to, in each tenant's order.
    inbound_events (tenant_id, cursor) {
        /// The connector's tenant.
        tenant_id -> Text,
        /// Increases by one with each of the tenant's events.
        cursor -> BigInt,
        /// The connector it belongs to.
        connector_id -> Id,
        /// Slack's type.
        event_type -> Text,
        /// Slack's event (or envelope) ID.
        event_id -> Text,
        /// The workspace.
        team_id -> Text,
        /// The channel, when it says.
        channel_id -> Nullable<Text>,
        /// The user, when it says.
        user_id -> Nullable<Text>,
        /// The message's ts.
        ts -> Nullable<Text>,
        /// The thread's ts.
        thread_ts -> Nullable<Text>,
        /// The text.
        text -> Nullable<Text>,
        /// Whether the connector's own bot did it.
        from_own_bot -> Bool,
        /// What Slack sent.
        payload_json -> Text,
        /// When it was accepted.
        received_at -> Moment,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::{Id, Moment};

    /// The outbox: queued messages; see the migration.
    outbound_messages (id) {
        /// The message's UUID.
        id -> Id,
        /// The connector's tenant.
        tenant_id -> Text,
        /// The connector.
        connector_id -> Id,
        /// The workspace.
        team_id -> Text,
        /// The channel.
        channel_id -> Text,
        /// The caller's idempotency key.
        request_id -> Nullable<Text>,
        /// What makes the message what it is.
        fingerprint -> Text,
        /// The message to post.
        body_json -> Text,
        /// `queued`, `sending`, `sent`, `failed`, `unknown`, `cancelled`.
        status -> Text,
        /// Posting attempts made.
        attempts -> Integer,
        /// Why the last attempt did not post it.
        last_error -> Nullable<Text>,
        /// Slack's `ts`, once sent.
        ts -> Nullable<Text>,
        /// The replica holding it.
        lease_owner -> Nullable<Text>,
        /// Until when.
        lease_until -> Nullable<Moment>,
        /// When queued.
        created_at -> Moment,
        /// When due.
        next_attempt_at -> Moment,
        /// When given up.
        deadline_at -> Moment,
        /// When it reached a final status.
        finished_at -> Nullable<Moment>,
        /// Last change.
        updated_at -> Moment,
        /// `queued` (worked by the delivery workers) or `immediate` (the record of an
        /// immediate send with a request_id, final when written).
        delivery -> Text,
        /// When its last posting attempt began.
        attempted_at -> Nullable<Moment>,
        /// Set when an earlier attempt may have posted it: when the first such attempt began
        /// (the channel's history is searched from then before it is posted again).
        unconfirmed_since -> Nullable<Moment>,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use crate::types::Moment;

    /// Rate budgets shared by every replica; see the migration.
    delivery_budgets (scope) {
        /// `channel:<team>:<channel>` or `workspace:<team>`.
        scope -> Text,
        /// The GCRA's theoretical arrival time.
        tat -> Moment,
        /// Until when Slack asked to pause.
        paused_until -> Nullable<Moment>,
    }
}
