//! [`EventBells`]: one bell per tenant that streams following its event log wait on, rung
//! when the log grows (by this process at once, by other replicas through the database's
//! feed). Runtime-free: a generation counter and the wakers of the tasks waiting past it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};

use connector_ports::EventSink;

/// One tenant's bell.
#[derive(Debug, Default)]
pub struct Bell {
    state: Mutex<Rung>,
}

#[derive(Debug, Default)]
struct Rung {
    times: u64,
    waiting: Vec<Waker>,
}

impl Bell {
    /// How often it rang: wait with [`Bell::rings_after`] past what was read before looking.
    pub fn times(&self) -> u64 {
        self.lock().times
    }

    /// Rings: every task waiting is woken.
    pub fn ring(&self) {
        let waiting = {
            let mut s = self.lock();
            s.times += 1;
            std::mem::take(&mut s.waiting)
        };
        for w in waiting {
            w.wake();
        }
    }

    /// Resolves once the bell rang more than `seen` times.
    pub fn rings_after(&self, seen: u64) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            let mut s = self.lock();
            if s.times > seen {
                return Poll::Ready(());
            }
            // One entry per waiting task, however often it is polled.
            if !s.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                s.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rung> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The bells of the tenants someone follows; a bell lives while a stream holds it.
#[derive(Debug, Default)]
pub struct EventBells {
    bells: Mutex<HashMap<String, Weak<Bell>>>,
}

impl EventBells {
    /// `tenant`'s bell, made when first followed.
    pub fn bell(&self, tenant: &str) -> Arc<Bell> {
        let mut bells = self.lock();
        if let Some(bell) = bells.get(tenant).and_then(Weak::upgrade) {
            return bell;
        }
        // Bells nobody holds any more go before a new one is kept.
        bells.retain(|_, b| b.strong_count() > 0);
        let bell = Arc::new(Bell::default());
        bells.insert(tenant.to_owned(), Arc::downgrade(&bell));
        bell
    }

    /// Rings `tenant`'s bell, if anyone follows it.
    pub fn ring(&self, tenant: &str) {
        let bell = self.lock().get(tenant).and_then(Weak::upgrade);
        if let Some(bell) = bell {
            bell.ring();
        }
    }

    /// Rings every bell (appends may have gone unannounced).
    pub fn ring_all(&self) {
        let bells: Vec<Arc<Bell>> = self.lock().values().filter_map(Weak::upgrade).collect();
        for bell in bells {
            bell.ring();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Bell>>> {
        self.bells.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventSink for EventBells {
    fn appended(&self, tenant: &str) {
        self.ring(tenant);
    }

    fn lost(&self) {
        tracing::warn!(
            "the event feed stopped: streams fall back to reading the log every few seconds"
        );
    }

    fn restored(&self) {
        self.ring_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_waiting_stream_wakes_when_its_tenants_bell_rings_and_not_for_others() {
        let bells = Arc::new(EventBells::default());
        let acme = bells.bell("acme");
        let seen = acme.times();
        let waiting = {
            let acme = acme.clone();
            tokio::spawn(async move { acme.rings_after(seen).await })
        };
        tokio::task::yield_now().await;
        bells.ring("globex");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "another tenant's bell");
        bells.appended("acme");
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        // A ring before the wait began is not missed.
        let seen = acme.times();
        acme.ring();
        acme.rings_after(seen).await;
        // Dropped by every holder: gone.
        drop(acme);
        bells.bell("other");
        assert!(bells.lock().get("acme").is_none());
    }
}
