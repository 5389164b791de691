//! The port for connector metadata.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{
    AuthStatus, BotIdentity, ChannelId, ChannelName, Connector, ConnectorId, ConnectorName,
    ConnectorState, ConnectorStatus, RequestId, TenantId, WorkspaceId,
};

/// A connector about to be written, in state `creating`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnector {
    /// The ID the service chose.
    pub id: ConnectorId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Unique per tenant.
    pub name: ConnectorName,
    /// The Slack team of the token.
    pub workspace_id: WorkspaceId,
    /// The resolved default channel.
    pub default_channel_id: ChannelId,
    /// Its name.
    pub default_channel_name: ChannelName,
    /// The caller's idempotency key, if any.
    pub request_id: Option<RequestId>,
    /// When the token expires, for rotating tokens.
    pub token_expires_at: Option<DateTime<Utc>>,
    /// Whose bot the token is: the service always learns it from Slack before it inserts;
    /// `None` stands for a row written before bots were recorded (conformance suites).
    pub bot: Option<BotIdentity>,
}

/// What an UpdateConnector changes in a row; `None` leaves a column as it is. Applying one
/// moves the row's generation by one and renews `updated_at`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectorUpdate {
    /// A new name (unique per tenant).
    pub name: Option<ConnectorName>,
    /// A new default channel, already resolved.
    pub default_channel: Option<(ChannelId, ChannelName)>,
    /// A replacement token was staged in the secret store under this version: the row records
    /// it as pending promotion (the commit point of a token replacement), sets the auth status
    /// back to `ok` (a revoked connector too) and forgets the old token's expiry and refresh
    /// lease. A new default channel is available.
    pub staged_secret_version: Option<String>,
    /// A new token was written (staged, or stored outright for a revoked connector, whose
    /// secret was deleted): the auth status is `ok` again, revocation, expiry and refresh
    /// lease are forgotten.
    pub token_replaced: bool,
    /// With a new token: whose bot it is.
    pub bot: Option<BotIdentity>,
    /// The caller's idempotency key, kept as the row's last update request ID.
    pub request_id: Option<RequestId>,
}

impl ConnectorUpdate {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.default_channel.is_none()
            && self.staged_secret_version.is_none()
    }
}

/// A token replacement committed in a row whose staged secret version has not been confirmed
/// current in the secret store yet (the updater stopped between the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPromotion {
    /// The connector.
    pub connector: Connector,
    /// The staged version to make current.
    pub version: String,
}

/// A [`ConnectorStatus`] filter as the bind values of one static query (so a backend prepares
/// one statement for every filter): `auth_status = auth`, `(revoked_at IS NOT NULL) = revoked`
/// and `default_channel_available = channel_available`, each passed by every row when its
/// `any_*` switch is on.
pub struct StatusFilter {
    /// Every auth status passes.
    pub any_auth: bool,
    /// The stored auth status to match.
    pub auth: &'static str,
    /// Revoked or not, every row passes.
    pub any_revoked: bool,
    /// Whether the row must be revoked.
    pub revoked: bool,
    /// Every channel availability passes.
    pub any_channel: bool,
    /// Whether the default channel must be available.
    pub channel_available: bool,
}

impl StatusFilter {
    /// The filter for `status` (`None`: every row).
    pub fn of(status: Option<ConnectorStatus>) -> Self {
        let all = Self {
            any_auth: true,
            auth: AuthStatus::Ok.as_str(),
            any_revoked: true,
            revoked: false,
            any_channel: true,
            channel_available: true,
        };
        match status {
            None => all,
            Some(ConnectorStatus::Active) => Self {
                any_auth: false,
                any_revoked: false,
                any_channel: false,
                ..all
            },
            Some(ConnectorStatus::NeedsReauthorization) => Self {
                any_auth: false,
                auth: AuthStatus::NeedsReauthorization.as_str(),
                any_revoked: false,
                ..all
            },
            Some(ConnectorStatus::Revoked) => Self {
                any_revoked: false,
                revoked: true,
                ..all
            },
            Some(ConnectorStatus::DefaultChannelUnavailable) => Self {
                any_auth: false,
                any_revoked: false,
                any_channel: false,
                channel_available: false,
                ..all
            },
        }
    }
}

/// How a repository adapter pools its connections and bounds its calls; every backend takes
/// the same settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepositorySettings {
    /// Most connections kept open.
    pub max_connections: u32,
    /// How long to wait for a connection from the pool (or a new one); SQLite also waits this
    /// long for a lock another writer holds.
    pub connect_timeout: Duration,
    /// Upper bound of one repository call, queries included.
    pub query_timeout: Duration,
}

impl Default for RepositorySettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(10),
        }
    }
}

/// How a token refresh ended, for [`RefreshLeases::finish_token_refresh`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// A new token was stored; it expires then.
    Refreshed {
        /// The new token's expiry.
        expires_at: DateTime<Utc>,
    },
    /// Slack refused the refresh: a person must reinstall.
    Failed,
    /// Nothing changed (the refresh could not be tried, e.g. Slack unreachable).
    Abandoned,
}

/// How many connectors have one state and auth status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusCount {
    /// Their lifecycle state.
    pub state: ConnectorState,
    /// Whether their token can be used.
    pub auth_status: AuthStatus,
    /// How many.
    pub count: u64,
}

impl StatusCount {
    /// A count read from the database: state and auth status in their stored form.
    pub fn from_stored(
        state: &str,
        auth_status: &str,
        count: i64,
    ) -> Result<Self, RepositoryError> {
        let corrupt = |what: &str, value: &str| {
            RepositoryError::Unknown(anyhow::anyhow!("corrupt {what} {value:?}"))
        };
        Ok(Self {
            state: ConnectorState::from_stored(state)
                .ok_or_else(|| corrupt("connector state", state))?,
            auth_status: AuthStatus::from_stored(auth_status)
                .ok_or_else(|| corrupt("auth status", auth_status))?,
            count: u64::try_from(count).unwrap_or(0),
        })
    }
}

/// A database connection pool's state, for metrics: what it holds now and, since it was
/// opened, how often a caller had to wait for a connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoolStatus {
    /// The most connections it opens.
    pub max_connections: u32,
    /// Connections open now (idle or lent out).
    pub connections: u32,
    /// Of those, the idle ones.
    pub idle_connections: u32,
    /// Checkouts that had to wait for a connection.
    pub waited_total: u64,
    /// Checkouts that gave up waiting.
    pub timed_out_total: u64,
    /// Time spent waiting for connections, in total.
    pub wait_seconds_total: f64,
}

/// What can go wrong in a repository, in terms the use cases act on.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Another connector of the tenant has this name.
    #[error("a connector with this name already exists for the tenant")]
    DuplicateName,
    /// Another connector of the tenant was created with this request ID.
    #[error("a connector was already created with this request_id")]
    DuplicateRequestId,
    /// The database could not be reached or timed out.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken invariant.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The lifecycle of connectors: created, activated, updated and deleted, and what guards those
/// writes (a request ID seen before, the tenant's quota).
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ConnectorLifecycle: Send + Sync {
    /// Inserts a row in state `creating`; timestamps are set by the store.
    async fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError>;

    /// Flips a `creating` row to `active`. `None` when the row is no longer `creating` (the
    /// reconciler took it over), in which case the caller must undo its work.
    async fn mark_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError>;

    /// Removes a row that is still `creating` (compensation after a failed create).
    async fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError>;

    /// The tenant's connector created with this request ID, in any state.
    async fn find_by_request_id(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<Option<Connector>, RepositoryError>;

    /// Applies `update` to the tenant's active connector `id` if its generation is still
    /// `generation`, and returns the updated row. `None` when there is no such active
    /// connector or its generation moved (a concurrent update). A new name another connector
    /// of the tenant has is [`RepositoryError::DuplicateName`].
    async fn update_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
        generation: i64,
        update: &ConnectorUpdate,
    ) -> Result<Option<Connector>, RepositoryError>;

    /// Flips the tenant's `active` connector to `deleting` and returns it; a connector already
    /// `deleting` is returned as it is, so an interrupted delete can be resumed. `None` when
    /// there is no such connector (or it is still `creating`).
    async fn mark_deleting(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError>;

    /// Removes a row that is `deleting` (its secret is already gone).
    async fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError>;

    /// How many connectors the tenant has, in any state (each holds or will hold a secret).
    async fn count_connectors(&self, tenant: &TenantId) -> Result<u64, RepositoryError>;
}

/// What clients and senders read: active connectors only, tenant-scoped wherever a client
/// reaches it; and the counts metrics report.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ConnectorQueries: Send + Sync {
    /// The tenant's active connector with this ID.
    async fn get_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError>;

    /// The active connector with this ID, whatever its tenant. Only for trusted callers that
    /// hold the database credentials themselves (the `sender` library); client-facing calls
    /// use [`ConnectorQueries::get_active`].
    async fn find_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError>;

    /// Up to `limit` of the tenant's active connectors with IDs greater than `after`, in ID
    /// order; with `status`, only those whose [`Connector::status`] it is.
    async fn list_active(
        &self,
        tenant: &TenantId,
        after: Option<ConnectorId>,
        limit: u32,
        status: Option<ConnectorStatus>,
    ) -> Result<Vec<Connector>, RepositoryError>;

    /// How many connectors there are (of every tenant) in each state and auth status, for
    /// metrics; combinations with none are left out.
    async fn count_by_status(&self) -> Result<Vec<StatusCount>, RepositoryError>;
}

/// What Slack's workspace events change: every connector of a workspace at once.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait WorkspaceConnectors: Send + Sync {
    /// Marks revoked every active connector of `workspace` whose bot belongs to app `app`
    /// (the app was uninstalled) or, with `bot_users`, only those whose bot user is one of
    /// them (their tokens were revoked); already revoked ones stay as they are. Returns them
    /// all, so their secrets can be deleted.
    async fn revoke_workspace<'a>(
        &self,
        workspace: &WorkspaceId,
        app: &str,
        bot_users: Option<&'a [String]>,
    ) -> Result<Vec<Connector>, RepositoryError>;

    /// Gives the default channel `channel` of `workspace`'s connectors of app `app` its new
    /// name; returns how many changed.
    async fn rename_channel(
        &self,
        workspace: &WorkspaceId,
        app: &str,
        channel: &ChannelId,
        name: &ChannelName,
    ) -> Result<u64, RepositoryError>;

    /// Marks the default channel `channel` of `workspace`'s connectors of app `app` available
    /// or not; returns how many changed (those already so are left alone).
    async fn set_channel_available(
        &self,
        workspace: &WorkspaceId,
        app: &str,
        channel: &ChannelId,
        available: bool,
    ) -> Result<u64, RepositoryError>;

    /// The active, unrevoked connectors of `workspace` whose bot belongs to app `app`, of
    /// every tenant: those an event of that app in that workspace belongs to.
    async fn of_app(
        &self,
        workspace: &WorkspaceId,
        app: &str,
    ) -> Result<Vec<Connector>, RepositoryError>;

    /// Up to `limit` active, authorised connectors (of `workspace`, or of any) whose bot is
    /// not known yet: made before it was recorded.
    async fn unidentified<'a>(
        &self,
        workspace: Option<&'a WorkspaceId>,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError>;

    /// Records whose bot connector `id`'s token is (learned lazily), unless its token was
    /// replaced meanwhile (the row's bot is known then); `true` when recorded.
    async fn record_bot(&self, id: ConnectorId, bot: &BotIdentity)
    -> Result<bool, RepositoryError>;
}

/// Rotating tokens refreshed one replica at a time: which are due, and the fenced lease on
/// each.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait RefreshLeases: Send + Sync {
    /// Up to `limit` active connectors whose rotating token expires before `before`, whose
    /// last refresh did not fail and whose refresh lease is free.
    async fn tokens_expiring(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError>;

    /// Takes the right to refresh connector `id`'s token for `lease`, unless another holder's
    /// lease is still running: `true` when taken, the lease then tagged with `fence` (a value
    /// the taker chose). Atomic across replicas.
    async fn lease_token_refresh(
        &self,
        id: ConnectorId,
        lease: Duration,
        fence: i64,
    ) -> Result<bool, RepositoryError>;

    /// Extends the lease tagged `fence` to `lease` from now: `false` when the lease is no
    /// longer this holder's (another took it after it expired).
    async fn renew_token_refresh(
        &self,
        id: ConnectorId,
        fence: i64,
        lease: Duration,
    ) -> Result<bool, RepositoryError>;

    /// Records how a refresh ended and gives the lease back, only if the lease is still the
    /// one tagged `fence`: `false` (and nothing changed) for a late finisher.
    async fn finish_token_refresh(
        &self,
        id: ConnectorId,
        fence: i64,
        outcome: RefreshOutcome,
    ) -> Result<bool, RepositoryError>;
}

/// Finishing what a crash left behind: rows left `creating` or `deleting`, token
/// replacements committed but not yet promoted.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait ConnectorReconciliation: Send + Sync {
    /// Claims up to `limit` rows left `creating` or `deleting` for longer than `stale_after`:
    /// atomically flips them to `deleting` and renews their `updated_at`, which acts as a lease
    /// so that another replica does not claim the same rows before another `stale_after` has
    /// passed. Rows another transaction holds are skipped, never waited for.
    async fn claim_stale(
        &self,
        stale_after: Duration,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError>;

    /// Up to `limit` active connectors with a staged secret version recorded more than
    /// `older_than` ago (left by an updater that stopped before promoting it).
    async fn pending_promotions(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<PendingPromotion>, RepositoryError>;

    /// Forgets connector `id`'s pending staged version if it is still `version` (the store
    /// now has it current); `false` when another version is pending or none.
    async fn clear_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError>;

    /// Whether connector `id`'s row records `version` as its pending staged version (an update
    /// committed it and its promotion is still to come).
    async fn is_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError>;
}

/// Connector metadata storage: every role at once, as a database adapter implements it.
/// Every read a client can reach is tenant-scoped; only
/// [`ConnectorState::Active`](connector_domain::ConnectorState::Active) rows are visible to
/// clients.
pub trait ConnectorRepository:
    ConnectorLifecycle
    + ConnectorQueries
    + WorkspaceConnectors
    + RefreshLeases
    + ConnectorReconciliation
{
}

impl<T> ConnectorRepository for T where
    T: ConnectorLifecycle
        + ConnectorQueries
        + WorkspaceConnectors
        + RefreshLeases
        + ConnectorReconciliation
{
}

/// The connector store by role, as the use cases hold it: one adapter behind every role, or a
/// decorator over only the roles it touches (a cache over the queries, a fault double over
/// one write). Cheap to clone.
#[derive(Clone)]
pub struct Connectors {
    /// Create, update, delete.
    pub lifecycle: Arc<dyn ConnectorLifecycle>,
    /// Reads.
    pub queries: Arc<dyn ConnectorQueries>,
    /// Workspace-wide changes from Slack's events.
    pub workspaces: Arc<dyn WorkspaceConnectors>,
    /// Token refresh leases.
    pub refresh: Arc<dyn RefreshLeases>,
    /// Crash recovery.
    pub reconciliation: Arc<dyn ConnectorReconciliation>,
}

impl Connectors {
    /// Every role served by `repo`.
    pub fn new<R: ConnectorRepository + 'static>(repo: Arc<R>) -> Self {
        Self {
            lifecycle: repo.clone(),
            queries: repo.clone(),
            workspaces: repo.clone(),
            refresh: repo.clone(),
            reconciliation: repo,
        }
    }
}

impl std::fmt::Debug for Connectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connectors").finish_non_exhaustive()
    }
}

/// A mock of every role, for unit tests: expectations are set on the role a call belongs to
/// (`repo.queries.expect_get_active()`).
#[cfg(feature = "mocks")]
#[derive(Default)]
pub struct MockConnectors {
    /// The lifecycle's calls.
    pub lifecycle: MockConnectorLifecycle,
    /// The reads.
    pub queries: MockConnectorQueries,
    /// The workspace-wide changes.
    pub workspaces: MockWorkspaceConnectors,
    /// The refresh leases.
    pub refresh: MockRefreshLeases,
    /// The crash recovery.
    pub reconciliation: MockConnectorReconciliation,
}

#[cfg(feature = "mocks")]
impl MockConnectors {
    /// The mocks as the use cases hold the store.
    pub fn into_connectors(self) -> Connectors {
        Connectors {
            lifecycle: Arc::new(self.lifecycle),
            queries: Arc::new(self.queries),
            workspaces: Arc::new(self.workspaces),
            refresh: Arc::new(self.refresh),
            reconciliation: Arc::new(self.reconciliation),
        }
    }
}
