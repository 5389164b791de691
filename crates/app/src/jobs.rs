//! The periodic work of a server replica, each job on its own switch and interval: finishing
//! interrupted creates and deletes, purging expired OAuth install states and the records of
//! idempotent sends older than a day, refreshing rotating
//! tokens that are due. Every job is safe to stop at any point (an interrupted pass is
//! finished by the next one) and to run on several replicas at once.

use std::future::Future;
use std::time::Duration;

use futures::FutureExt as _;
use tokio::task::JoinHandle;

use crate::config::JobsConfig;
use crate::services::Services;

/// The running jobs; [`PeriodicJobs::stop`] (or dropping it) ends them.
#[derive(Debug, Default)]
pub struct PeriodicJobs {
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl PeriodicJobs {
    /// Starts every job whose interval is not zero. Must be called within a tokio runtime.
    pub fn start(services: &Services, config: &JobsConfig) -> Self {
        let mut jobs = Self::default();
        let reconciler = services.reconciler.clone();
        jobs.every("reconcile", config.reconcile_every, move || {
            let reconciler = reconciler.clone();
            async move {
                match reconciler.run_once().await {
                    Ok(report) => {
                        crate::metrics::record_reconcile(report.finished.len(), report.failed.len(), true);
                        for id in &report.finished {
                            tracing::info!(connector_id = %id, "reconciler finished an interrupted create or delete");
                        }
                        for id in &report.promoted {
                            tracing::info!(connector_id = %id, "reconciler made a recorded token replacement current");
                        }
                        for id in &report.discarded {
                            tracing::info!(connector_id = %id, "reconciler removed a staged token no update recorded");
                        }
                        if report.identified > 0 {
                            tracing::info!(connectors = report.identified, "reconciler learned the Slack bots of older connectors");
                        }
                        for (id, reason) in &report.failed {
                            tracing::warn!(connector_id = %id, %reason, "reconciler could not finish a connector; will retry");
                        }
                    }
                    Err(e) => {
                        crate::metrics::record_reconcile(0, 0, false);
                        tracing::warn!(error = %e, "reconciler pass failed; will retry");
                    }
                }
            }
        });
        let installer = services.installer.clone();
        let sender = services.sender.clone();
        let events = services.events.clone();
        let inbound = services.inbound.clone();
        jobs.every(
            "purge expired OAuth states, send records, Slack event IDs and inbound events",
            config.purge_every,
            move || {
                let installer = installer.clone();
                let sender = sender.clone();
                let events = events.clone();
                let inbound = inbound.clone();
                async move {
                    match inbound.purge_expired().await {
                        Ok(0) => {}
                        Ok(n) => {
                            crate::metrics::record_purged("inbound_events", n);
                            tracing::debug!(count = n, "inbound events older than the retention purged");
                        }
                        Err(e) => tracing::warn!(error = %e, "purging inbound events failed; will retry"),
                    }
                    match events.purge_expired().await {
                        Ok(0) => {}
                        Ok(n) => {
                            crate::metrics::record_purged("slack_events", n);
                            tracing::debug!(count = n, "Slack event IDs older than a day purged");
                        }
                        Err(e) => tracing::warn!(error = %e, "purging Slack event IDs failed; will retry"),
                    }
                    match installer.purge_expired().await {
                        Ok(0) => {}
                        Ok(n) => {
                            crate::metrics::record_purged("oauth_states", n);
                            tracing::debug!(count = n, "expired OAuth states purged");
                        }
                        Err(e) => tracing::warn!(error = %e, "purging expired OAuth states failed; will retry"),
                    }
                    match sender.purge_expired().await {
                        Ok(0) => {}
                        Ok(n) => {
                            crate::metrics::record_purged("send_records", n);
                            tracing::debug!(count = n, "send records older than a day purged");
                        }
                        Err(e) => tracing::warn!(error = %e, "purging send records failed; will retry"),
                    }
                }
            },
        );
        let refresher = services.refresher.clone();
        let batch = config.refresh_batch;
        jobs.every("refresh due tokens", config.refresh_every, move || {
            let refresher = refresher.clone();
            async move {
                match refresher.refresh_due(batch).await {
                    Ok(report) if report == Default::default() => {}
                    Ok(report) => tracing::info!(
                        refreshed = report.refreshed,
                        failed = report.failed,
                        skipped = report.skipped,
                        "rotating tokens refreshed"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "refreshing rotating tokens failed; will retry")
                    }
                }
            }
        });
        jobs
    }

    fn every<F, Fut>(&mut self, name: &'static str, every: Duration, mut pass: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if every.is_zero() {
            tracing::info!(job = name, "periodic job off");
            return;
        }
        self.tasks.push((
            name,
            tokio::spawn(async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    // A pass that panics is logged and the job goes on with the next one: a
                    // bad value must not stop reconciling or refreshing for good.
                    if let Err(panic) = std::panic::AssertUnwindSafe(pass()).catch_unwind().await {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(job = name, panic = %what, "a periodic job's pass panicked; the job continues");
                    }
                }
            }),
        ));
    }

    /// The names of the jobs running.
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(name, _)| *name).collect()
    }

    /// Stops every job at once.
    pub fn stop(mut self) {
        self.abort_all();
    }

    fn abort_all(&mut self) {
        for (_, task) in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for PeriodicJobs {
    fn drop(&mut self) {
        self.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pass_that_panics_does_not_stop_the_job() {
        let passes = Arc::new(AtomicUsize::new(0));
        let mut jobs = PeriodicJobs::default();
        let counted = passes.clone();
        jobs.every("flaky", Duration::from_secs(1), move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("a bad value");
                }
            }
        });
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tokio::task::yield_now().await;
        }
        assert!(
            passes.load(Ordering::SeqCst) >= 3,
            "the job stopped after the panic"
        );
        assert_eq!(jobs.names(), vec!["flaky"]);
        jobs.stop();
    }
}
