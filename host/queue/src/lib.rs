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

pub use admin::{DlqEntry, DLQ_BATCH};
pub use cancel::CancelState;
pub use config::QueueConfig;
pub use consumer::Consumer;
pub use error::QueueError;
pub use keys::{QueueKeys, GROUP};
pub use stats::{Counters, LaneDepth, QueueStats};
pub use stratbox_redis::clock::now_ms;
pub use task::{
    valid_lane, Class, Delivery, Guard, Outcome, Record, TaskError, TaskInfo, TaskSpec, TaskStatus,
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

    /// Creates the streams and the consumer groups that are missing
    /// (first use, a flush, an `XGROUP DESTROY`). Entries added before a
    /// group existed are delivered; a stream that lost its group gives
    /// its running tasks' entries back to their workers instead of
    /// delivering them again (`regroup.lua`). Returns how many it gave back.
    pub async fn ensure_groups(&self) -> Result<u64, QueueError> {
        let mut conn = self.conn.clone();
        let n: u64 = self
            .scripts
            .regroup
            .arg(self.keys.prefix())
            .arg("")
            .invoke_async(&mut conn)
            .await?;
        Ok(n)
    }

    pub(crate) fn scripts(&self) -> &scripts::Scripts {
        &self.scripts
    }
}

/// A stream without its consumer group (`XGROUP DESTROY`, a flush):
/// `NOGROUP`, alone or among a transaction's replies.
pub(crate) fn is_nogroup(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, s)| s.code() == "NOGROUP"))
}
