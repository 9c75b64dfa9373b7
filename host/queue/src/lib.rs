//! A task queue on Redis Streams, generic over task kinds: submission,
//! priorities, at-least-once delivery with idempotent completion, retries
//! through a delayed set, a dead-letter stream, reclaim of dead workers'
//! entries, cancellation, shared counters and heartbeats.
//!
//! Every state change is one Lua script, so a task, its record and the
//! counters never disagree, and a batch of tasks costs one round trip.
#![forbid(unsafe_code)]

mod admin;
mod cancel;
pub mod config;
pub mod consumer;
mod delayed;
mod error;
pub mod keys;
mod lookup;
pub mod metrics;
mod progress;
mod scripts;
mod stats;
mod submit;
pub mod task;
#[cfg(test)]
mod tests;

pub use admin::DlqEntry;
pub use cancel::CancelState;
pub use config::QueueConfig;
pub use consumer::Consumer;
pub use error::QueueError;
pub use keys::{QueueKeys, GROUP};
pub use stats::{Counters, QueueStats};
pub use stratbox_redis::clock::now_ms;
pub use task::{
    Class, Delivery, Guard, Outcome, Record, TaskError, TaskInfo, TaskSpec, TaskStatus,
};

use redis::aio::ConnectionManager;
use std::sync::Arc;

/// Producer-side handle, also the base of a [`Consumer`]. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    conn: ConnectionManager,
    keys: QueueKeys,
    config: QueueConfig,
    scripts: Arc<scripts::Scripts>,
}

impl Queue {
    pub async fn connect(url: &str, prefix: &str, config: QueueConfig) -> anyhow::Result<Self> {
        let conn = stratbox_redis::connection::connect(url).await?;
        let queue = Self::new(conn, prefix, config)?;
        queue.ensure_groups().await?;
        Ok(queue)
    }

    pub fn new(conn: ConnectionManager, prefix: &str, config: QueueConfig) -> anyhow::Result<Self> {
        config
            .check()
            .map_err(|e| anyhow::anyhow!("queue settings: {e}"))?;
        Ok(Self {
            conn,
            keys: QueueKeys::new(prefix),
            config,
            scripts: Arc::new(scripts::Scripts::new()),
        })
    }

    pub fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Creates the streams and the consumer group if missing (after a
    /// flush, or on first use). Reading from id 0 delivers entries added
    /// before the group existed.
    pub async fn ensure_groups(&self) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        for class in Class::ALL {
            let result: Result<(), redis::RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(self.keys.stream(class))
                .arg(GROUP)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match result {
                Ok(()) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    pub(crate) fn scripts(&self) -> &scripts::Scripts {
        &self.scripts
    }
}
