//! What the queue says of itself: the shared counters, its depth per
//! class, and the live workers' heartbeats.

use serde::Serialize;
use std::collections::BTreeMap;

use super::{now_ms, Class, Queue, QueueError, GROUP};

/// The five counters of the old service, plus what the queue adds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counters {
    pub tasks_submitted: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub tasks_timeout: i64,
    pub active_tasks: i64,
    #[serde(skip)]
    pub extra: BTreeMap<String, i64>,
}

/// Depth and health of the queue at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    /// Waiting (not yet delivered) entries per class.
    pub waiting: BTreeMap<&'static str, u64>,
    /// Delivered, not yet acknowledged entries per class.
    pub pending: BTreeMap<&'static str, u64>,
    /// Retries waiting for their backoff.
    pub delayed: u64,
    pub dlq: u64,
    pub live_workers: u64,
}

impl Queue {
    /// Shared counters (every API instance and worker writes the same hash).
    pub async fn counters(&self) -> Result<Counters, QueueError> {
        let mut conn = self.conn.clone();
        let all: BTreeMap<String, i64> = redis::cmd("HGETALL")
            .arg(self.keys.counters())
            .query_async(&mut conn)
            .await?;
        let get = |name: &str| all.get(name).copied().unwrap_or(0);
        Ok(Counters {
            tasks_submitted: get("tasks_submitted"),
            tasks_completed: get("tasks_completed"),
            tasks_failed: get("tasks_failed"),
            tasks_timeout: get("tasks_timeout"),
            active_tasks: get("active_tasks").max(0),
            extra: all,
        })
    }

    /// Waiting and pending entries per class, delayed retries, DLQ length
    /// and live workers, in one round trip.
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        for class in Class::ALL {
            let stream = self.keys.stream(class);
            pipe.cmd("XLEN").arg(&stream);
            pipe.cmd("XPENDING").arg(&stream).arg(GROUP);
        }
        pipe.cmd("ZCARD").arg(self.keys.delayed());
        pipe.cmd("XLEN").arg(self.keys.dlq());
        let alive_since = now_ms() - self.config.heartbeat_ttl.as_millis() as i64;
        pipe.cmd("ZCOUNT")
            .arg(self.keys.workers())
            .arg(alive_since)
            .arg("+inf");
        let replies: Vec<redis::Value> = match pipe.query_async(&mut conn).await {
            Err(e) if super::is_nogroup(&e) => {
                self.ensure_groups().await?;
                pipe.query_async(&mut conn).await?
            }
            other => other?,
        };
        let int = |v: &redis::Value| -> u64 {
            match v {
                redis::Value::Int(n) => (*n).max(0) as u64,
                redis::Value::Array(items) => match items.first() {
                    Some(redis::Value::Int(n)) => (*n).max(0) as u64,
                    _ => 0,
                },
                _ => 0,
            }
        };
        let mut stats = QueueStats::default();
        for (i, class) in Class::ALL.into_iter().enumerate() {
            let len = int(&replies[2 * i]);
            let pending = int(&replies[2 * i + 1]);
            stats
                .waiting
                .insert(class.as_str(), len.saturating_sub(pending));
            stats.pending.insert(class.as_str(), pending);
        }
        stats.delayed = int(&replies[6]);
        stats.dlq = int(&replies[7]);
        stats.live_workers = int(&replies[8]);
        Ok(stats)
    }

    /// Live workers' heartbeats (JSON each), by consumer name.
    pub async fn workers(&self) -> Result<BTreeMap<String, String>, QueueError> {
        let mut conn = self.conn.clone();
        let alive_since = now_ms() - self.config.heartbeat_ttl.as_millis() as i64;
        let names: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.workers())
            .arg(alive_since)
            .arg("+inf")
            .query_async(&mut conn)
            .await?;
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut get = redis::cmd("MGET");
        for name in &names {
            get.arg(self.keys.worker(name));
        }
        let beats: Vec<Option<String>> = get.query_async(&mut conn).await?;
        Ok(names
            .into_iter()
            .zip(beats)
            .filter_map(|(name, beat)| beat.map(|b| (name, b)))
            .collect())
    }
}
