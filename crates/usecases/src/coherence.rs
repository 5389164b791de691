//! Caches of connector data that stay coherent across replicas.
//!
//! [`Coherence`] is fed by the store's change feed ([`ConnectorChanges`]: PostgreSQL's
//! `LISTEN/NOTIFY`) and tells every cache registered with it to forget a connector the moment
//! any replica changes its row (a delete, a token refresh or replacement, an auth status). While
//! the feed is lost, caches hold nothing and are bypassed, until it is back. Writes made through
//! [`NotingChanges`] in this process count as changes too ([`cached`] puts both over a
//! store), so a store without a feed (an SQLite file) is coherent within its process, and
//! bounded by the TTL across processes.
//!
//! A read that raced a change never caches what it read: a cache notes the [`Coherence::epoch`]
//! before reading and inserts only if no change happened since, checked under the cache's lock
//! that forgetting also takes.
//!
//! [`ConnectorChanges`]: connector_ports::ConnectorChanges

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use connector_domain::{
    BotIdentity, ChannelId, ChannelName, Connector, ConnectorId, ConnectorStatus, RequestId,
    TenantId, WorkspaceId,
};
use connector_ports::{
    ChangeSink, ConnectorLifecycle, ConnectorQueries, ConnectorReconciliation, ConnectorUpdate,
    Connectors, NewConnector, PendingPromotion, RefreshLeases, RefreshOutcome, RepositoryError,
    StatusCount, WorkspaceConnectors,
};

use crate::runtime::Clock;

/// Something holding connector data that must be dropped when it changes.
pub trait Forget: Send + Sync {
    /// Drop what is held about `id`.
    fn forget(&self, id: ConnectorId);
    /// Drop everything.
    fn forget_all(&self);
}

/// Whether caching is safe now, and what to forget; see the module documentation.
pub struct Coherence {
    live: AtomicBool,
    epoch: AtomicU64,
    caches: Mutex<Vec<Weak<dyn Forget>>>,
}

impl std::fmt::Debug for Coherence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coherence")
            .field("live", &self.is_live())
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl Coherence {
    /// Live from the start: for a store only this process writes through [`ConnectorCache`].
    pub fn local() -> Arc<Self> {
        Arc::new(Self::new(true))
    }

    /// Not live until a change feed says [`ChangeSink::restored`].
    pub fn awaiting_feed() -> Arc<Self> {
        Arc::new(Self::new(false))
    }

    fn new(live: bool) -> Self {
        Self {
            live: AtomicBool::new(live),
            epoch: AtomicU64::new(0),
            caches: Mutex::new(Vec::new()),
        }
    }

    /// Whether caches may serve and keep entries.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// A counter every change moves: equal before and after a read means nothing changed.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether an entry read when the epoch was `epoch` may be kept.
    pub fn may_keep(&self, epoch: u64) -> bool {
        self.is_live() && self.epoch() == epoch
    }

    /// Registers `cache` to be told what to forget (held weakly).
    pub fn register(&self, cache: Weak<dyn Forget>) {
        self.lock().push(cache);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Weak<dyn Forget>>> {
        self.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn each(&self, f: impl Fn(&dyn Forget)) {
        let caches: Vec<Arc<dyn Forget>> = {
            let mut registered = self.lock();
            registered.retain(|c| c.strong_count() > 0);
            registered.iter().filter_map(Weak::upgrade).collect()
        };
        for cache in caches {
            f(cache.as_ref());
        }
    }
}

impl Coherence {
    /// Treats every connector as changed (a write that touched rows by another key than
    /// their ID).
    pub fn changed_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.each(|c| c.forget_all());
    }
}

impl ChangeSink for Coherence {
    fn changed(&self, id: ConnectorId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.each(|c| c.forget(id));
    }

    fn lost(&self) {
        metrics::gauge!("connector_change_feed_listening").set(0.0);
        let was_live = self.live.swap(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.each(|c| c.forget_all());
        if was_live {
            tracing::warn!(
                "the connector change feed is lost: connector caches are bypassed until it is back"
            );
        }
    }

    fn restored(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.each(|c| c.forget_all());
        let was_live = self.live.swap(true, Ordering::SeqCst);
        metrics::gauge!("connector_change_feed_listening").set(1.0);
        if !was_live {
            tracing::info!("the connector change feed listens: connector caches are on");
        }
    }
}

/// Counts a lookup in `connector_connector_cache_lookups_total{result}`.
fn count(result: &'static str) {
    metrics::counter!("connector_connector_cache_lookups_total", "result" => result).increment(1);
}

/// The connector rows the send and get paths read, kept for a short TTL and dropped on any
/// change; every other read goes to the store.
pub struct ConnectorCache {
    inner: Arc<dyn ConnectorQueries>,
    coherence: Arc<Coherence>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<ConnectorId, (Connector, Instant)>>,
}

impl std::fmt::Debug for ConnectorCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorCache")
            .field("ttl", &self.ttl)
            .field("coherence", &self.coherence)
            .finish_non_exhaustive()
    }
}

impl ConnectorCache {
    /// More entries than this and expired ones are swept; if none were, the cache is emptied.
    pub const MAX_ENTRIES: usize = 10_000;

    /// A cache over `inner`, keeping active rows for `ttl`, registered with `coherence`.
    pub fn new(
        inner: Arc<dyn ConnectorQueries>,
        coherence: Arc<Coherence>,
        ttl: Duration,
        clock: Arc<dyn Clock>,
    ) -> Arc<Self> {
        let cache = Arc::new(Self {
            inner,
            coherence: coherence.clone(),
            ttl,
            clock,
            entries: Mutex::new(HashMap::new()),
        });
        let weak: Weak<dyn Forget> = Arc::downgrade(&cache) as Weak<dyn Forget>;
        coherence.register(weak);
        cache
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConnectorId, (Connector, Instant)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cached(&self, id: ConnectorId) -> Option<Connector> {
        if !self.coherence.is_live() {
            count("bypass");
            return None;
        }
        let now = self.clock.now();
        let mut entries = self.lock();
        match entries.get(&id) {
            Some((c, until)) if *until > now => {
                count("hit");
                Some(c.clone())
            }
            Some(_) => {
                entries.remove(&id);
                count("miss");
                None
            }
            None => {
                count("miss");
                None
            }
        }
    }

    fn keep(&self, connector: &Connector, epoch: u64) {
        let now = self.clock.now();
        let mut entries = self.lock();
        // Under the lock forgetting takes: a change after this check forgets what is kept.
        if !self.coherence.may_keep(epoch) {
            return;
        }
        if entries.len() >= Self::MAX_ENTRIES {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= Self::MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(connector.id, (connector.clone(), now + self.ttl));
    }
}

impl Forget for ConnectorCache {
    fn forget(&self, id: ConnectorId) {
        self.lock().remove(&id);
    }
    fn forget_all(&self) {
        self.lock().clear();
    }
}

#[async_trait]
impl ConnectorQueries for ConnectorCache {
    async fn get_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        if let Some(c) = self.cached(id) {
            // Another tenant's connector is as good as missing: ask the store, which says so.
            if c.tenant_id == *tenant {
                return Ok(Some(c));
            }
        }
        let epoch = self.coherence.epoch();
        let found = self.inner.get_active(tenant, id).await?;
        if let Some(c) = &found {
            self.keep(c, epoch);
        }
        Ok(found)
    }

    async fn find_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        if let Some(c) = self.cached(id) {
            return Ok(Some(c));
        }
        let epoch = self.coherence.epoch();
        let found = self.inner.find_active(id).await?;
        if let Some(c) = &found {
            self.keep(c, epoch);
        }
        Ok(found)
    }

    async fn list_active(
        &self,
        tenant: &TenantId,
        after: Option<ConnectorId>,
        limit: u32,
        status: Option<ConnectorStatus>,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.inner.list_active(tenant, after, limit, status).await
    }

    async fn count_by_status(&self) -> Result<Vec<StatusCount>, RepositoryError> {
        self.inner.count_by_status().await
    }
}

/// A role's writes, each noted as a change once made, so this process's caches forget the rows
/// at once (the change feed tells the other replicas). Over a store without a feed (an SQLite
/// file), this is what keeps the cache coherent within its process.
pub struct NotingChanges<T: ?Sized> {
    inner: Arc<T>,
    coherence: Arc<Coherence>,
}

impl<T: ?Sized> NotingChanges<T> {
    /// `inner`'s writes, noted with `coherence`.
    pub fn new(inner: Arc<T>, coherence: Arc<Coherence>) -> Arc<Self> {
        Arc::new(Self { inner, coherence })
    }

    /// Runs a write, then treats `id` as changed (whatever the outcome: a failed write may
    /// still have happened).
    async fn changing<R>(&self, id: ConnectorId, write: impl std::future::Future<Output = R>) -> R {
        let result = write.await;
        self.coherence.changed(id);
        result
    }
}

#[async_trait]
impl ConnectorLifecycle for NotingChanges<dyn ConnectorLifecycle> {
    async fn insert_creating(&self, new: &NewConnector) -> Result<Connector, RepositoryError> {
        self.inner.insert_creating(new).await
    }

    async fn mark_active(&self, id: ConnectorId) -> Result<Option<Connector>, RepositoryError> {
        self.changing(id, self.inner.mark_active(id)).await
    }

    async fn remove_creating(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.changing(id, self.inner.remove_creating(id)).await
    }

    async fn find_by_request_id(
        &self,
        tenant: &TenantId,
        request_id: &RequestId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.inner.find_by_request_id(tenant, request_id).await
    }

    async fn update_active(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
        generation: i64,
        update: &ConnectorUpdate,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.changing(id, self.inner.update_active(tenant, id, generation, update))
            .await
    }

    async fn mark_deleting(
        &self,
        tenant: &TenantId,
        id: ConnectorId,
    ) -> Result<Option<Connector>, RepositoryError> {
        self.changing(id, self.inner.mark_deleting(tenant, id))
            .await
    }

    async fn remove_deleting(&self, id: ConnectorId) -> Result<(), RepositoryError> {
        self.changing(id, self.inner.remove_deleting(id)).await
    }

    async fn count_connectors(&self, tenant: &TenantId) -> Result<u64, RepositoryError> {
        self.inner.count_connectors(tenant).await
    }
}

#[async_trait]
impl WorkspaceConnectors for NotingChanges<dyn WorkspaceConnectors> {
    async fn revoke_workspace<'a>(
        &self,
        workspace: &WorkspaceId,
        app: &str,
        bot_users: Option<&'a [String]>,
    ) -> Result<Vec<Connector>, RepositoryError> {
        let result = self.inner.revoke_workspace(workspace, app, bot_users).await;
        self.coherence.changed_all();
        result
    }

    async fn rename_channel(
        &self,
        workspace: &WorkspaceId,
        app: &str,
        channel: &ChannelId,
        name: &ChannelName,
    ) -> Result<u64, RepositoryError> {
        let result = self
            .inner
            .rename_channel(workspace, app, channel, name)
            .await;
        self.coherence.changed_all();
        result
    }

    async fn set_channel_available(
        &self,
        workspace: &WorkspaceId,
        app: &str,
        channel: &ChannelId,
        available: bool,
    ) -> Result<u64, RepositoryError> {
        let result = self
            .inner
            .set_channel_available(workspace, app, channel, available)
            .await;
        self.coherence.changed_all();
        result
    }

    async fn of_app(
        &self,
        workspace: &WorkspaceId,
        app: &str,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.inner.of_app(workspace, app).await
    }

    async fn unidentified<'a>(
        &self,
        workspace: Option<&'a WorkspaceId>,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.inner.unidentified(workspace, limit).await
    }

    async fn record_bot(
        &self,
        id: ConnectorId,
        bot: &BotIdentity,
    ) -> Result<bool, RepositoryError> {
        let result = self.inner.record_bot(id, bot).await;
        self.coherence.changed(id);
        result
    }
}

#[async_trait]
impl RefreshLeases for NotingChanges<dyn RefreshLeases> {
    async fn tokens_expiring(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError> {
        self.inner.tokens_expiring(before, limit).await
    }

    async fn lease_token_refresh(
        &self,
        id: ConnectorId,
        lease: Duration,
        fence: i64,
    ) -> Result<bool, RepositoryError> {
        self.inner.lease_token_refresh(id, lease, fence).await
    }

    async fn renew_token_refresh(
        &self,
        id: ConnectorId,
        fence: i64,
        lease: Duration,
    ) -> Result<bool, RepositoryError> {
        self.inner.renew_token_refresh(id, fence, lease).await
    }

    async fn finish_token_refresh(
        &self,
        id: ConnectorId,
        fence: i64,
        outcome: RefreshOutcome,
    ) -> Result<bool, RepositoryError> {
        self.changing(id, self.inner.finish_token_refresh(id, fence, outcome))
            .await
    }
}

#[async_trait]
impl ConnectorReconciliation for NotingChanges<dyn ConnectorReconciliation> {
    async fn claim_stale(
        &self,
        stale_after: Duration,
        limit: u32,
    ) -> Result<Vec<Connector>, RepositoryError> {
        let claimed = self.inner.claim_stale(stale_after, limit).await?;
        for c in &claimed {
            self.coherence.changed(c.id);
        }
        Ok(claimed)
    }

    async fn pending_promotions(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<Vec<PendingPromotion>, RepositoryError> {
        self.inner.pending_promotions(older_than, limit).await
    }

    async fn clear_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError> {
        self.changing(id, self.inner.clear_pending_promotion(id, version))
            .await
    }

    async fn is_pending_promotion(
        &self,
        id: ConnectorId,
        version: &str,
    ) -> Result<bool, RepositoryError> {
        self.inner.is_pending_promotion(id, version).await
    }
}

/// `connectors` with the reads served by a [`ConnectorCache`] (rows kept for `ttl`, as
/// `clock` tells it) and every write noted with `coherence`.
pub fn cached(
    connectors: Connectors,
    coherence: Arc<Coherence>,
    ttl: Duration,
    clock: Arc<dyn Clock>,
) -> Connectors {
    Connectors {
        queries: ConnectorCache::new(connectors.queries, coherence.clone(), ttl, clock),
        lifecycle: NotingChanges::new(connectors.lifecycle, coherence.clone()),
        workspaces: NotingChanges::new(connectors.workspaces, coherence.clone()),
        refresh: NotingChanges::new(connectors.refresh, coherence.clone()),
        reconciliation: NotingChanges::new(connectors.reconciliation, coherence),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use connector_domain::ConnectorState;
    use connector_ports::MockConnectors;

    use super::*;
    use crate::testing::connector;

    /// A clock the test moves.
    #[derive(Default)]
    struct TestClock(Mutex<Duration>);

    impl TestClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

    impl Clock for TestClock {
        fn now(&self) -> Instant {
            *BASE.get_or_init(Instant::now) + *self.0.lock().unwrap()
        }
        fn utc(&self) -> DateTime<Utc> {
            Utc::now() + *self.0.lock().unwrap()
        }
    }

    /// A repository whose `get_active` answers `row` and counts the reads.
    fn counting(row: Connector) -> (Connectors, Arc<AtomicUsize>) {
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        let mut repo = MockConnectors::default();
        repo.queries.expect_get_active().returning(move |_, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(Some(row.clone()))
        });
        repo.lifecycle
            .expect_mark_deleting()
            .returning(|_, _| Ok(None));
        (repo.into_connectors(), reads)
    }

    fn cache(repo: Connectors, coherence: Arc<Coherence>) -> (Connectors, Arc<TestClock>) {
        let clock = Arc::new(TestClock::default());
        (
            cached(repo, coherence, Duration::from_secs(5), clock.clone()),
            clock,
        )
    }

    #[tokio::test]
    async fn rows_are_served_from_memory_until_the_ttl_or_a_change() {
        let row = connector("acme", "prod", ConnectorState::Active);
        let (id, tenant) = (row.id, row.tenant_id.clone());
        let (repo, reads) = counting(row);
        let coherence = Coherence::local();
        let (cache, clock) = cache(repo, coherence.clone());
        for _ in 0..3 {
            assert!(
                cache
                    .queries
                    .get_active(&tenant, id)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "read once, then served");
        clock.advance(Duration::from_secs(6));
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "read again after the TTL");
        coherence.changed(id);
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 3, "read again after a change");
        // Another tenant never gets the cached row: the store is asked.
        let other = TenantId::parse("tenant_id", "globex").unwrap();
        cache.queries.get_active(&other, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_write_through_the_cache_is_a_change() {
        let row = connector("acme", "prod", ConnectorState::Active);
        let (id, tenant) = (row.id, row.tenant_id.clone());
        let (repo, reads) = counting(row);
        let (cache, _) = cache(repo, Coherence::local());
        cache.queries.get_active(&tenant, id).await.unwrap();
        cache.lifecycle.mark_deleting(&tenant, id).await.unwrap();
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_is_cached_until_the_feed_listens_nor_while_it_is_lost() {
        let row = connector("acme", "prod", ConnectorState::Active);
        let (id, tenant) = (row.id, row.tenant_id.clone());
        let (repo, reads) = counting(row);
        let coherence = Coherence::awaiting_feed();
        let (cache, _) = cache(repo, coherence.clone());
        cache.queries.get_active(&tenant, id).await.unwrap();
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "bypassed before the feed");
        coherence.restored();
        cache.queries.get_active(&tenant, id).await.unwrap();
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 3, "cached once live");
        coherence.lost();
        cache.queries.get_active(&tenant, id).await.unwrap();
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 5, "bypassed while lost");
        coherence.restored();
        cache.queries.get_active(&tenant, id).await.unwrap();
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            6,
            "cached again once restored"
        );
    }

    #[tokio::test]
    async fn a_read_that_raced_a_change_is_not_kept() {
        let row = connector("acme", "prod", ConnectorState::Active);
        let (id, tenant) = (row.id, row.tenant_id.clone());
        let coherence = Coherence::local();
        let during = coherence.clone();
        let reads = Arc::new(AtomicUsize::new(0));
        let counted = reads.clone();
        let mut repo = MockConnectors::default();
        repo.queries.expect_get_active().returning(move |_, _| {
            // The row changes on another replica while this read is on its way.
            if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                during.changed(id);
            }
            Ok(Some(row.clone()))
        });
        let (cache, _) = cache(repo.into_connectors(), coherence);
        cache.queries.get_active(&tenant, id).await.unwrap();
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "the raced read was not kept"
        );
        cache.queries.get_active(&tenant, id).await.unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 2);
    }
}
