//! [`PostedLog`]: what connectors posted, recorded off the send's path and in batches.
//!
//! Every post is recorded (so that only its connector may change it later), but a commit per
//! send would halve the service's send rate on a small database: records wait in memory and
//! one task at a time writes whatever has gathered, in one transaction (group commit: under
//! load, one commit carries many sends; idle, each send's record is written at once). Until
//! its batch is committed, a record is answered from memory, so an edit right after a send on
//! the same replica finds it; another replica finds it once committed (milliseconds). A
//! process killed before its batch commits loses those records: the messages stay in Slack,
//! but cannot be changed through the service.

use std::sync::{Arc, Mutex};

use connector_domain::{ChannelId, ConnectorId};
use connector_ports::{PostedRecord, SentMessageStore};
use tracing::Instrument as _;

use crate::runtime::Spawn;

/// Records written in one transaction at most.
const BATCH: usize = 500;

/// Records waiting to be written, and the batch being written.
#[derive(Default)]
struct Queue {
    pending: Vec<PostedRecord>,
    writing: Vec<PostedRecord>,
    /// A task is writing (it takes what gathers until nothing is left).
    writer: bool,
}

/// Posted-message records on their way to the store.
#[derive(Clone)]
pub(crate) struct PostedLog {
    store: Arc<dyn SentMessageStore>,
    spawn: Spawn,
    clock: Arc<dyn crate::Clock>,
    queue: Arc<Mutex<Queue>>,
}

impl PostedLog {
    /// Records for `store`, written by tasks `spawn` starts.
    pub(crate) fn new(
        store: Arc<dyn SentMessageStore>,
        spawn: Spawn,
        clock: Arc<dyn crate::Clock>,
    ) -> Self {
        Self {
            store,
            spawn,
            clock,
            queue: Arc::new(Mutex::new(Queue::default())),
        }
    }

    /// Queues `records`; starts the writer unless one runs.
    pub(crate) fn record(&self, records: Vec<PostedRecord>) {
        if records.is_empty() {
            return;
        }
        let start = {
            let mut q = self.lock();
            q.pending.extend(records);
            !std::mem::replace(&mut q.writer, true)
        };
        if start {
            let this = self.clone();
            (self.spawn)(Box::pin(
                async move { this.write().await }.in_current_span(),
            ));
        }
    }

    /// Whether `connector` posted `ts` in `channel` and its record is not yet committed.
    pub(crate) fn holds(&self, connector: ConnectorId, channel: &ChannelId, ts: &str) -> bool {
        let q = self.lock();
        q.pending
            .iter()
            .chain(q.writing.iter())
            .any(|r| r.connector_id == connector && r.channel == *channel && r.ts == ts)
    }

    /// Resolves once every record queued so far is written (or `limit` passed), checking
    /// every 2 ms with `sleep`: for a process about to end (a CLI send, a draining server).
    pub(crate) async fn flushed(&self, sleep: &crate::runtime::Sleep, limit: std::time::Duration) {
        let step = std::time::Duration::from_millis(2);
        let mut waited = std::time::Duration::ZERO;
        while waited < limit {
            {
                let q = self.lock();
                if q.pending.is_empty() && !q.writer {
                    return;
                }
            }
            sleep(step).await;
            waited += step;
        }
        tracing::warn!("posted-message records still unwritten when the wait ended");
    }

    /// Writes batches until nothing is pending.
    async fn write(&self) {
        loop {
            let batch = {
                let mut q = self.lock();
                if q.pending.is_empty() {
                    q.writer = false;
                    q.writing.clear();
                    return;
                }
                let n = q.pending.len().min(BATCH);
                let batch: Vec<PostedRecord> = q.pending.drain(..n).collect();
                q.writing = batch.clone();
                batch
            };
            if let Err(e) = self.store.record_posted(&batch, self.clock.utc()).await {
                metrics::counter!("connector_posted_records_lost_total")
                    .increment(batch.len() as u64);
                tracing::warn!(records = batch.len(), error = %e,
                    "could not record posted messages: they cannot be updated or deleted through the service");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemorySends, tokio_spawn};

    fn record(ts: &str) -> PostedRecord {
        PostedRecord {
            tenant_id: connector_domain::TenantId::parse("t", "acme").unwrap(),
            connector_id: ConnectorId::nil(),
            channel: ChannelId::new("C1"),
            ts: ts.into(),
        }
    }

    #[tokio::test]
    async fn records_are_held_until_written_then_found_in_the_store() {
        let store = Arc::new(MemorySends::default());
        let log = PostedLog::new(
            store.clone(),
            tokio_spawn(),
            Arc::new(crate::runtime::SystemClock),
        );
        for i in 0..1200 {
            log.record(vec![record(&format!("1.{i}"))]);
            // Answered from memory or from the store, never neither.
            let held = log.holds(ConnectorId::nil(), &ChannelId::new("C1"), &format!("1.{i}"));
            let stored = store
                .was_posted(ConnectorId::nil(), &ChannelId::new("C1"), &format!("1.{i}"))
                .await
                .unwrap();
            assert!(held || stored, "record {i}");
        }
        for _ in 0..200 {
            if store.posted.lock().unwrap().len() == 1200 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(store.posted.lock().unwrap().len(), 1200, "all written");
        assert!(!log.holds(ConnectorId::nil(), &ChannelId::new("C1"), "1.0"));
        assert!(
            !log.lock().writer,
            "the writer stopped once nothing was pending"
        );
    }
}
