//! The port telling caches when connectors change on any replica.

use std::sync::Arc;

use connector_domain::ConnectorId;

/// Receives what a change feed observes. Called from the feed's own task: implementations
/// must return quickly and never block.
pub trait ChangeSink: Send + Sync {
    /// Connector `id`'s row changed (deleted, its token replaced or refreshed, its auth
    /// status): anything cached about it is stale.
    fn changed(&self, id: ConnectorId);
    /// The feed stopped listening: changes may be missed from now until [`restored`].
    ///
    /// [`restored`]: ChangeSink::restored
    fn lost(&self);
    /// The feed listens again (also its first start): changes are delivered from now on;
    /// what happened while it was lost is unknown.
    fn restored(&self);
}

/// A feed of connector changes made by any process sharing the database.
pub trait ConnectorChanges: Send + Sync {
    /// Starts delivering changes to `sink` and returns at once; the feed reconnects by itself
    /// after a failure, telling `sink` when it is lost and restored. Must be called within an
    /// async runtime.
    fn watch(&self, sink: Arc<dyn ChangeSink>);
}
