//! The diesel view of `migrations/sqlite`.

diesel::table! {
    /// Connector metadata; see the migration for the meaning of each column.
    connectors (id) {
        /// Canonical UUID text.
        id -> Text,
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
        token_expires_at -> Nullable<BigInt>,
        /// Until when a replica holds the right to refresh the token.
        refresh_lease_until -> Nullable<BigInt>,
        /// The fencing value of the current refresh lease.
        refresh_fence -> Nullable<BigInt>,
        /// Moves with every update; the etag.
        generation -> BigInt,
        /// The request ID of the last update applied.
        last_update_request_id -> Nullable<Text>,
        /// A staged secret version not yet confirmed current.
        pending_secret_version -> Nullable<Text>,
        /// When Slack said the app was uninstalled or its tokens revoked.
        revoked_at -> Nullable<BigInt>,
        /// Whether the default channel can be posted to.
        default_channel_available -> Bool,
        /// Microseconds since the Unix epoch.
        created_at -> BigInt,
        /// Microseconds since the Unix epoch.
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Slack event deliveries handled, by Slack's event ID.
    slack_events (event_id) {
        /// Slack's `event_id`.
        event_id -> Text,
        /// When it was first received.
        received_at -> BigInt,
    }
}

diesel::table! {
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
        /// Microseconds since the Unix epoch.
        created_at -> BigInt,
        /// Microseconds since the Unix epoch.
        expires_at -> BigInt,
        /// Hex SHA-256 of the nonce in the browser that opened the link.
        browser_hash -> Nullable<Text>,
        /// The workspace the install must land in, if pinned.
        team_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// Static API keys, stored as the hash of their secret.
    api_keys (id) {
        /// The key's ID.
        id -> Text,
        /// Hex SHA-256 of the key's secret part.
        secret_hash -> Text,
        /// The tenant it acts for; NULL: every tenant.
        tenant_id -> Nullable<Text>,
        /// Space-separated scopes.
        scopes -> Text,
        /// A label for operators.
        name -> Text,
        /// When it was created.
        created_at -> BigInt,
        /// When it was revoked.
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Idempotent sends, one per connector and request ID.
    sent_messages (connector_id, request_id) {
        /// The connector sent through (canonical UUID text).
        connector_id -> Text,
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
        /// When the key was claimed (microseconds since the epoch).
        created_at -> BigInt,
        /// When the outcome was recorded (microseconds since the epoch).
        updated_at -> BigInt,
    }
}
