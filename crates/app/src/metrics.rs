//! What the application layer adds to the process's metrics (the `metrics` facade; the
//! server installs the Prometheus recorder): the database pool's state and the connectors by
//! status, both read when `/metrics` is scraped, and the periodic jobs' work.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `connector_db_pool_max_connections` | gauge | |
//! | `connector_db_pool_connections` | gauge | `state` (`idle`, `in_use`) |
//! | `connector_db_pool_waits_total` | counter | (checkouts that waited for a connection) |
//! | `connector_db_pool_timeouts_total` | counter | (checkouts that gave up waiting) |
//! | `connector_connectors` | gauge | `state` (`creating`, `active`, `deleting`), `auth_status` (`ok`, `needs_reauthorization`) |
//! | `connector_reconciler_passes_total` | counter | `outcome` (`ok`, `error`) |
//! | `connector_reconciler_connectors_total` | counter | `outcome` (`finished`, `failed`) |
//! | `connector_purged_total` | counter | `what` (`oauth_states`, `send_records`) |

use std::sync::Arc;
use std::time::Duration;

use connector_domain::{AuthStatus, ConnectorState};
use connector_ports::{ConnectorQueries, PoolStatus};

/// Describes the metrics of the application layer, the use cases and the instrumented
/// ports to the installed recorder (their `# HELP` lines).
pub fn describe() {
    connector_instrumentation::describe();
    connector_adapters_slack::describe_metrics();
    metrics::describe_gauge!(
        "connector_db_pool_max_connections",
        "The most connections the database pool opens"
    );
    metrics::describe_gauge!(
        "connector_db_pool_connections",
        "Database connections open, by state (idle, in_use)"
    );
    metrics::describe_counter!(
        "connector_send_deadline_exceeded_total",
        "Sends with a request_id that did not finish within their deadline (outcome unknown)"
    );
    metrics::describe_counter!(
        "connector_db_pool_waits_total",
        "Database connection checkouts that had to wait"
    );
    metrics::describe_counter!(
        "connector_db_pool_timeouts_total",
        "Database connection checkouts that gave up waiting"
    );
    metrics::describe_gauge!(
        "connector_connectors",
        "Connectors of every tenant by state and auth status, read at scrape time"
    );
    metrics::describe_counter!(
        "connector_reconciler_passes_total",
        "Reconciler passes by outcome (ok, error)"
    );
    metrics::describe_counter!(
        "connector_reconciler_connectors_total",
        "Interrupted creates and deletes the reconciler took up, by outcome (finished, failed)"
    );
    metrics::describe_counter!(
        "connector_purged_total",
        "Expired rows purged, by what (oauth_states, send_records)"
    );
    metrics::describe_counter!(
        "connector_token_refreshes_total",
        "Rotating-token refreshes by outcome (refreshed, refused, failed, store_failed, lease_lost)"
    );
    metrics::describe_gauge!(
        "connector_change_feed_listening",
        "1 while the connector change feed listens (0: connector caches are bypassed)"
    );
    metrics::describe_counter!(
        "connector_connector_cache_lookups_total",
        "Connector rows looked up by the send and get paths, by result (hit, miss, bypass)"
    );
    metrics::describe_counter!(
        "connector_oauth_installs_total",
        "OAuth installs completed or refused, by outcome"
    );
}

/// Reads the state behind the gauges when asked (at scrape time). Cheap to clone.
#[derive(Clone)]
pub struct MetricsProbe {
    pool: Arc<dyn Fn() -> PoolStatus + Send + Sync>,
    repo: Arc<dyn ConnectorQueries>,
}

impl std::fmt::Debug for MetricsProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsProbe").finish_non_exhaustive()
    }
}

/// How long a scrape waits for the connector count before showing the last one.
const COUNT_TIMEOUT: Duration = Duration::from_secs(1);

impl MetricsProbe {
    /// A probe over the pool `pool` reads and the connectors in `repo`.
    pub fn new(
        pool: Arc<dyn Fn() -> PoolStatus + Send + Sync>,
        repo: Arc<dyn ConnectorQueries>,
    ) -> Self {
        Self { pool, repo }
    }

    /// Sets the pool gauges and, unless the database does not answer within a second (the
    /// last counts then stay), the connector counts.
    pub async fn record(&self) {
        record_pool(&(self.pool)());
        match tokio::time::timeout(COUNT_TIMEOUT, self.repo.count_by_status()).await {
            Ok(Ok(counts)) => {
                for state in [
                    ConnectorState::Creating,
                    ConnectorState::Active,
                    ConnectorState::Deleting,
                ] {
                    for auth in [
                        AuthStatus::Ok,
                        AuthStatus::NeedsReauthorization,
                        AuthStatus::Revoked,
                    ] {
                        let n = counts
                            .iter()
                            .find(|c| c.state == state && c.auth_status == auth)
                            .map_or(0, |c| c.count);
                        metrics::gauge!("connector_connectors",
                            "state" => state.as_str(), "auth_status" => auth.as_str())
                        .set(n as f64);
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "counting connectors for /metrics failed"),
            Err(_) => tracing::debug!("counting connectors for /metrics timed out"),
        }
    }
}

fn record_pool(s: &PoolStatus) {
    metrics::gauge!("connector_db_pool_max_connections").set(f64::from(s.max_connections));
    metrics::gauge!("connector_db_pool_connections", "state" => "idle")
        .set(f64::from(s.idle_connections));
    metrics::gauge!("connector_db_pool_connections", "state" => "in_use")
        .set(f64::from(s.connections.saturating_sub(s.idle_connections)));
    metrics::counter!("connector_db_pool_waits_total").absolute(s.waited_total);
    metrics::counter!("connector_db_pool_timeouts_total").absolute(s.timed_out_total);
}

/// Counts a reconciler pass and what it did.
pub(crate) fn record_reconcile(finished: usize, failed: usize, pass_ok: bool) {
    metrics::counter!("connector_reconciler_passes_total",
        "outcome" => if pass_ok { "ok" } else { "error" })
    .increment(1);
    metrics::counter!("connector_reconciler_connectors_total", "outcome" => "finished")
        .increment(finished as u64);
    metrics::counter!("connector_reconciler_connectors_total", "outcome" => "failed")
        .increment(failed as u64);
}

/// Counts rows a purge removed.
pub(crate) fn record_purged(what: &'static str, n: u64) {
    metrics::counter!("connector_purged_total", "what" => what).increment(n);
}
