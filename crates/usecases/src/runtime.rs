//! The runtime seam: what the use cases need of time and tasks, injected so this crate needs
//! no async runtime and tests control time. One place for all of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Time, injected so expiry and deadlines can be tested.
pub trait Clock: Send + Sync {
    /// Now, on the monotonic clock: how long something has been kept.
    fn now(&self) -> Instant;
    /// Now, on the wall clock: what is stored, or compared with what is stored.
    fn utc(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Waits (`tokio::time::sleep`).
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Runs a future on its own, detached from the caller (`tokio::spawn`).
pub type Spawn = Arc<dyn Fn(Pin<Box<dyn Future<Output = ()> + Send>>) + Send + Sync>;

/// `work`, unless `deadline` passes first (as `sleep` measures it): `None` then, and `work` is
/// dropped.
pub async fn within<T>(
    sleep: &Sleep,
    deadline: Duration,
    work: impl Future<Output = T>,
) -> Option<T> {
    let work = std::pin::pin!(work);
    match futures::future::select(work, sleep(deadline)).await {
        futures::future::Either::Left((done, _)) => Some(done),
        futures::future::Either::Right(_) => None,
    }
}
