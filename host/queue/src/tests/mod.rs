//! Integration tests of the queue against a real, private redis-server
//! (one per test). Several `Consumer`s with different names stand in for
//! several workers; each test drives fetch, complete, keepalive and leave
//! by hand.
//!
//! This file holds the shared fixture ([`Fx`], [`setup`] and helpers); the
//! tests sit in one file per feature.

use super::consumer::Held;
use super::*;
use redis::aio::ConnectionManager;
use redis::streams::{StreamInfoConsumersReply, StreamPendingCountReply, StreamPendingId};
use std::collections::BTreeMap;
use std::time::Duration;
use stratbox_redis::test_support::TestServer;

mod bench;
mod cancel;
mod complete;
mod consumers;
mod dlq;
mod dlq_batches;
mod fetch;
mod guards;
mod holds;
mod hosted;
mod lanes;
mod metrics;
mod old_layout;
mod progress;
mod reclaim;
mod records;
mod regroup;
mod retries;
mod submit;
mod tls;

const PREFIX: &str = "qt";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Short timings: reclaim after 200 ms of silence.
fn fast() -> QueueConfig {
    QueueConfig {
        visibility_timeout: ms(200),
        keepalive: ms(50),
        heartbeat_ttl: ms(2000),
        block: ms(100),
        backoff_base: ms(10),
        backoff_cap: ms(100),
        ..QueueConfig::default()
    }
}

/// Past the visibility timeout of [`fast`], with margin.
const PAST_VISIBILITY: Duration = Duration::from_millis(260);

struct Fx {
    t: TestServer,
    queue: Queue,
    conn: ConnectionManager,
}

async fn setup(config: QueueConfig) -> Fx {
    let t = TestServer::start();
    let conn = stratbox_redis::connection::connect(&t.url()).await.unwrap();
    let queue = Queue::new(conn.clone(), PREFIX, config).unwrap();
    queue.ensure_groups().await.unwrap();
    // Idempotent: a second call meets BUSYGROUP and is fine.
    queue.ensure_groups().await.unwrap();
    Fx { t, queue, conn }
}

fn spec(priority: i64, payload: &str) -> TaskSpec {
    TaskSpec {
        priority,
        ..TaskSpec::new("echo", payload.to_string())
    }
}

fn with_record(priority: i64, payload: &str, record: &str) -> TaskSpec {
    TaskSpec {
        record: Some(Record::new(record.to_string(), "report")),
        ..spec(priority, payload)
    }
}

fn held(d: &Delivery) -> Held {
    Held::from(d)
}

fn done(d: &Delivery, result: &str) -> (Held, Outcome) {
    (
        held(d),
        Outcome::Completed {
            result: result.to_string(),
        },
    )
}

fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.task_id.clone()).collect()
}

impl Fx {
    async fn consumer(&self, name: &str) -> Consumer {
        Consumer::new(self.queue.clone(), &self.t.server.url(), name.to_string())
            .await
            .unwrap()
    }

    fn stream(&self, class: Class) -> String {
        self.queue.keys().stream(class)
    }

    fn task_key(&self, id: &str) -> String {
        self.queue.keys().task(id)
    }

    async fn hgetall(&self, key: &str) -> BTreeMap<String, String> {
        let mut conn = self.conn.clone();
        redis::cmd("HGETALL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    async fn del(&self, key: &str) {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .unwrap();
    }

    async fn exists(&self, key: &str) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<i64>(&mut conn)
            .await
            .unwrap()
            == 1
    }

    /// Remaining life in ms: -1 without expiry, -2 when missing.
    async fn pttl(&self, key: &str) -> i64 {
        let mut conn = self.conn.clone();
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    /// A counter as stored (not clamped at zero), 0 when absent.
    async fn counter(&self, name: &str) -> i64 {
        let mut conn = self.conn.clone();
        let v: Option<i64> = redis::cmd("HGET")
            .arg(self.queue.keys().counters())
            .arg(name)
            .query_async(&mut conn)
            .await
            .unwrap();
        v.unwrap_or(0)
    }

    async fn xlen(&self, class: Class) -> u64 {
        let mut conn = self.conn.clone();
        redis::cmd("XLEN")
            .arg(self.stream(class))
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    async fn pending(&self, class: Class) -> Vec<StreamPendingId> {
        let mut conn = self.conn.clone();
        let reply: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(self.stream(class))
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        reply.ids
    }

    async fn group_consumers(&self, class: Class) -> Vec<String> {
        let mut conn = self.conn.clone();
        let reply: StreamInfoConsumersReply = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(self.stream(class))
            .arg(GROUP)
            .query_async(&mut conn)
            .await
            .unwrap();
        reply.consumers.into_iter().map(|c| c.name).collect()
    }

    async fn delayed(&self) -> Vec<(String, f64)> {
        let mut conn = self.conn.clone();
        redis::cmd("ZRANGE")
            .arg(self.queue.keys().delayed())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .unwrap()
    }

    async fn info(&self, id: &str) -> TaskInfo {
        self.queue.task(id).await.unwrap().unwrap()
    }

    async fn status(&self, id: &str) -> TaskStatus {
        self.info(id).await.status
    }

    async fn server_ms(&self) -> i64 {
        let mut conn = self.conn.clone();
        let (s, us): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
        s * 1000 + us / 1000
    }

    /// Every task submitted or requeued has ended exactly once or is still
    /// somewhere in the queue, and `active_tasks` matches what is held.
    async fn assert_balanced(&self) {
        let c = self.queue.counters().await.unwrap();
        let s = self.queue.stats().await.unwrap();
        let waiting: u64 = s.waiting.values().sum();
        let pending: u64 = s.pending.values().sum();
        let requeued = self.counter("tasks_requeued").await;
        let cancelled = self.counter("tasks_cancelled").await;
        assert_eq!(
            c.tasks_submitted + requeued,
            c.tasks_completed
                + c.tasks_failed
                + c.tasks_timeout
                + cancelled
                + (waiting + pending + s.delayed) as i64,
            "counters {c:?} / stats {s:?}"
        );
        assert_eq!(self.counter("active_tasks").await, pending as i64);
    }
}
