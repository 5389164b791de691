//! [`SqlPool`]: a bounded bb8 pool of one backend's connections, with the query timeout and
//! the read-once-more rule every store shares.

use std::future::Future;
use std::time::Duration;

use bb8::ManageConnection;
use connector_ports::{PoolStatus, RepositoryError, RepositorySettings};
use diesel_async::pooled_connection::bb8::{Pool, PooledConnection, RunError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, PoolError, PoolableConnection,
};

/// A pool of `C` connections; cheap to clone.
pub struct SqlPool<C: PoolableConnection + 'static>
where
    AsyncDieselConnectionManager<C>: ManageConnection<Error = PoolError>,
{
    pool: Pool<C>,
    query_timeout: Duration,
    max_connections: u32,
}

impl<C: PoolableConnection + 'static> Clone for SqlPool<C>
where
    AsyncDieselConnectionManager<C>: ManageConnection<Error = PoolError>,
{
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            query_timeout: self.query_timeout,
            max_connections: self.max_connections,
        }
    }
}

impl<C: PoolableConnection + 'static> std::fmt::Debug for SqlPool<C>
where
    AsyncDieselConnectionManager<C>: ManageConnection<Error = PoolError>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlPool")
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl<C: PoolableConnection + 'static> SqlPool<C>
where
    AsyncDieselConnectionManager<C>: ManageConnection<Error = PoolError>,
{
    /// Builds the pool as `settings` bound it (at least one connection) and checks that one
    /// connection can be made. The error is the driver's text: it never holds the URL.
    pub async fn open(
        manager: AsyncDieselConnectionManager<C>,
        settings: &RepositorySettings,
    ) -> Result<Self, String> {
        let max_connections = settings.max_connections.max(1);
        let pool = Pool::builder()
            .max_size(max_connections)
            .connection_timeout(settings.connect_timeout)
            .build(manager)
            .await
            .map_err(|e| e.to_string())?;
        drop(pool.get().await.map_err(|e| e.to_string())?);
        Ok(Self {
            pool,
            query_timeout: settings.query_timeout,
            max_connections,
        })
    }

    /// The pool's state, for metrics.
    pub fn status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            max_connections: self.max_connections,
            connections: state.connections,
            idle_connections: state.idle_connections,
            waited_total: state.statistics.get_waited,
            timed_out_total: state.statistics.get_timed_out,
            wait_seconds_total: state.statistics.get_wait_time.as_secs_f64(),
        }
    }

    /// A connection, or `Unavailable` when none comes in time.
    pub async fn conn(&self) -> Result<PooledConnection<'_, C>, RepositoryError> {
        self.pool.get().await.map_err(|e| match e {
            RunError::TimedOut => {
                RepositoryError::Unavailable("timed out waiting for a database connection".into())
            }
            RunError::User(e) => {
                RepositoryError::Unavailable(format!("cannot connect to the database: {e}"))
            }
        })
    }

    /// Runs `f` bounded by the query timeout.
    pub async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, RepositoryError>>,
    ) -> Result<T, RepositoryError> {
        tokio::time::timeout(self.query_timeout, f)
            .await
            .map_err(|_| RepositoryError::Unavailable("database query timed out".into()))?
    }
}
