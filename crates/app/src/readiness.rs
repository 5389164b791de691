//! [`ReadinessMonitor`]: the replica's readiness, checked in the background at an interval
//! and read by the gRPC health service and `GET /readyz` without touching a dependency.

use std::time::Duration;

use connector_usecases::{Readiness, ReadinessCheck};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What probes are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyState {
    /// The last check found every dependency answering.
    Ready,
    /// The last check found these dependencies not answering.
    NotReady(Vec<&'static str>),
    /// The replica is stopping: not ready, whatever the dependencies say.
    ShuttingDown,
}

impl ReadyState {
    fn from_check(r: &Readiness) -> Self {
        if r.is_ready() {
            Self::Ready
        } else {
            Self::NotReady(r.unavailable())
        }
    }

    /// Whether probes should send traffic.
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

/// Checks the dependencies every interval and publishes the result; stops when dropped.
#[derive(Debug)]
pub struct ReadinessMonitor {
    state: watch::Sender<ReadyState>,
    task: JoinHandle<()>,
}

impl ReadinessMonitor {
    /// Checks once now (so the first answer is a real one), then every `every`. Must be
    /// called within a tokio runtime.
    pub async fn start(check: ReadinessCheck, every: Duration) -> Self {
        let first = check.check().await;
        log_change(None, &first);
        let (state, _) = watch::channel(ReadyState::from_check(&first));
        let publish = state.clone();
        let task = tokio::spawn(async move {
            let mut last = first;
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let now = check.check().await;
                log_change(Some(&last), &now);
                publish.send_if_modified(|s| {
                    let next = ReadyState::from_check(&now);
                    if *s == ReadyState::ShuttingDown || *s == next {
                        return false;
                    }
                    *s = next;
                    true
                });
                last = now;
            }
        });
        Self { state, task }
    }

    /// The current state.
    pub fn current(&self) -> ReadyState {
        self.state.borrow().clone()
    }

    /// A receiver told of every change.
    pub fn subscribe(&self) -> watch::Receiver<ReadyState> {
        self.state.subscribe()
    }

    /// Marks the replica as stopping (not ready for good) and stops checking.
    pub fn shutting_down(&self) {
        self.task.abort();
        self.state.send_replace(ReadyState::ShuttingDown);
    }
}

impl Drop for ReadinessMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn log_change(before: Option<&Readiness>, now: &Readiness) {
    let was_ready = before.is_none_or(Readiness::is_ready);
    if now.is_ready() && !was_ready {
        tracing::info!("dependencies answer again: ready");
    } else if !now.is_ready() && (was_ready || before != Some(now)) {
        tracing::warn!(
            database = now.database.as_deref().unwrap_or("ok"),
            secret_store = now.secret_store.as_deref().unwrap_or("ok"),
            "a dependency does not answer: not ready"
        );
    }
}
