//! The diesel view of `migrations/postgres`.

diesel::table! {
    /// Connector metadata; see the migration for the meaning of each column.
    connectors (id) {
        /// Server-assigned UUID.
        id -> Uuid,
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
        /// Creation time.
        created_at -> Timestamptz,
        /// Last change.
        updated_at -> Timestamptz,
    }
}
