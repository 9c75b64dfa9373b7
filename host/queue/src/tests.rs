//! Integration tests of the queue against a real, private redis-server
//! (one per test). Several `Consumer`s with different names stand in for
//! several workers; each test drives fetch, complete, keepalive and leave
//! by hand.

#![allow(clippy::unwrap_used)]

use super::consumer::Held;
use super::*;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::streams::{StreamInfoConsumersReply, StreamPendingCountReply, StreamPendingId};
use std::collections::BTreeMap;
use std::time::Duration;
use stratbox_redis::test_support::TestServer;

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

async fn setup(_name: &str, config: QueueConfig) -> Fx {
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

#[tokio::test]
async fn submit_then_fetch_in_class_order() {
    let fx = setup("class-order", QueueConfig::default()).await;
    let before = fx.queue.stats().await.unwrap();
    for class in Class::ALL {
        assert_eq!(before.waiting[class.as_str()], 0);
        assert_eq!(before.pending[class.as_str()], 0);
    }
    assert_eq!(fx.queue.counters().await.unwrap(), Counters::default());

    let mut urgent = spec(9, "h0");
    urgent.timeout_ms = Some(1234);
    urgent.max_attempts = Some(7);
    let specs = vec![
        spec(1, "l0"),
        spec(5, "n0"),
        urgent,
        spec(0, "l1"),
        spec(7, "h1"),
        spec(4, "n1"),
    ];
    let id = fx.queue.submit(&specs).await.unwrap();
    assert_eq!(id.len(), 6);
    assert_eq!(
        id.iter().collect::<std::collections::BTreeSet<_>>().len(),
        6,
        "ids are unique"
    );

    let stats = fx.queue.stats().await.unwrap();
    for class in Class::ALL {
        assert_eq!(stats.waiting[class.as_str()], 2, "{class:?}");
        assert_eq!(stats.pending[class.as_str()], 0, "{class:?}");
    }
    let c = fx.queue.counters().await.unwrap();
    assert_eq!(c.tasks_submitted, 6);
    assert_eq!(c.active_tasks, 0);
    let queued = fx.info(&id[2]).await;
    assert_eq!(queued.status, TaskStatus::Queued);
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.priority, 9);
    assert_eq!(queued.max_attempts, 7);
    assert_eq!(queued.kind, "echo");
    assert_eq!(queued.payload, "h0");
    assert!(queued.created_at_ms.is_some());
    assert_eq!(queued.worker, None);

    let a = fx.consumer("a").await;
    let first = a.fetch(4, false).await.unwrap();
    assert_eq!(
        ids(&first),
        vec![id[2].clone(), id[4].clone(), id[1].clone(), id[5].clone()]
    );
    assert_eq!(first[0].stream, fx.stream(Class::High));
    assert_eq!(first[1].stream, fx.stream(Class::High));
    assert_eq!(first[2].stream, fx.stream(Class::Normal));
    assert_eq!(first[3].stream, fx.stream(Class::Normal));
    for d in &first {
        assert_eq!(d.attempt, 1);
        assert_eq!(d.kind, "echo");
    }
    assert_eq!(first[0].payload, "h0");
    assert_eq!(first[0].timeout_ms, 1234);
    assert_eq!(first[0].max_attempts, 7);
    assert_eq!(first[0].priority, 9);
    assert_eq!(first[1].priority, 7);
    assert_eq!(
        first[1].timeout_ms,
        QueueConfig::default().task_timeout.as_millis() as u64
    );
    assert_eq!(first[1].max_attempts, QueueConfig::default().max_attempts);

    for d in &first {
        let info = fx.info(&d.task_id).await;
        assert_eq!(info.status, TaskStatus::Running);
        assert_eq!(info.attempts, 1);
        assert_eq!(info.worker.as_deref(), Some("a"));
        assert!(info.started_at_ms.unwrap() >= info.created_at_ms.unwrap());
    }
    assert_eq!(fx.queue.counters().await.unwrap().active_tasks, 4);
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.waiting["high"], 0);
    assert_eq!(stats.waiting["normal"], 0);
    assert_eq!(stats.waiting["low"], 2);
    assert_eq!(stats.pending["high"], 2);
    assert_eq!(stats.pending["normal"], 2);
    assert_eq!(stats.pending["low"], 0);
    let pending = fx.pending(Class::High).await;
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|p| p.consumer == "a"));
    assert_eq!(pending[0].id, first[0].entry_id);

    let rest = a.fetch(10, false).await.unwrap();
    assert_eq!(ids(&rest), vec![id[0].clone(), id[3].clone()]);
    assert!(rest
        .iter()
        .all(|d| d.stream == fx.stream(Class::Low) && d.attempt == 1));
    assert_eq!(fx.queue.counters().await.unwrap().active_tasks, 6);
    assert!(a.fetch(10, false).await.unwrap().is_empty());
    assert!(a.fetch(0, false).await.unwrap().is_empty());
    fx.assert_balanced().await;
}

#[tokio::test]
async fn submit_validates_and_is_all_or_nothing() {
    let fx = setup("submit-validation", QueueConfig::default()).await;
    assert!(fx.queue.submit(&[]).await.unwrap().is_empty());
    let bad_kind = TaskSpec::new("", "{}".into());
    let err = fx
        .queue
        .submit(&[spec(5, "ok"), bad_kind])
        .await
        .unwrap_err();
    assert!(
        matches!(err, QueueError::Invalid { field: "kind", .. }),
        "{err}"
    );
    let mut zero = spec(5, "x");
    zero.max_attempts = Some(0);
    let err = fx.queue.submit(&[spec(5, "ok"), zero]).await.unwrap_err();
    assert!(
        matches!(
            err,
            QueueError::Invalid {
                field: "max_attempts",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fx.queue.counters().await.unwrap().tasks_submitted, 0);
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert!(fx.queue.task("no-such-task").await.unwrap().is_none());

    // Submitting after the streams vanished recreates them (NOGROUP path).
    let mut conn = fx.conn.clone();
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let id = fx.queue.submit_one(spec(5, "again")).await.unwrap();
    assert_eq!(fx.status(&id).await, TaskStatus::Queued);
    let a = fx.consumer("a").await;
    assert_eq!(ids(&a.fetch(1, false).await.unwrap()), vec![id]);

    // A server that lost its scripts (restarted without them, or
    // `SCRIPT FLUSH`) is given the submission script again (NOSCRIPT
    // path), and then the groups too.
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let id = fx.queue.submit_one(spec(5, "no script")).await.unwrap();
    assert_eq!(fx.status(&id).await, TaskStatus::Queued);
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let id = fx.queue.submit_one(spec(5, "neither")).await.unwrap();
    assert_eq!(fx.status(&id).await, TaskStatus::Queued);
    let script_count: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(fx.queue.scripts().submit.get_hash())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(script_count, vec![1]);
}

#[tokio::test]
async fn completion_is_idempotent_and_mirrors_the_record() {
    let fx = setup("idempotent", fast()).await;
    let id = fx
        .queue
        .submit_one(with_record(5, "p", "rec:1"))
        .await
        .unwrap();
    let rec = fx.hgetall("rec:1").await;
    assert_eq!(rec["task_id"], id);
    assert_eq!(rec["status"], "queued");
    assert_eq!(rec["progress"], "0");

    let a = fx.consumer("a").await;
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    let rec = fx.hgetall("rec:1").await;
    assert_eq!(rec["status"], "running");
    assert!(rec.contains_key("started_at_ms"));

    assert_eq!(a.complete(&[done(&d, "report-1")]).await.unwrap(), (1, 0));
    // The same delivery again, with another result: acknowledged only.
    assert_eq!(a.complete(&[done(&d, "report-2")]).await.unwrap(), (0, 1));

    let c = fx.queue.counters().await.unwrap();
    assert_eq!(c.tasks_completed, 1);
    assert_eq!(c.active_tasks, 0);
    assert_eq!(fx.counter("active_tasks").await, 0);
    assert_eq!(fx.counter("duplicates").await, 1);

    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Completed);
    assert_eq!(info.progress, Some(1.0));
    assert!(info.finished_at_ms.unwrap() >= info.started_at_ms.unwrap());
    // With a record, the result is kept once: on the record.
    assert_eq!(info.result, None);
    let rec = fx.hgetall("rec:1").await;
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["report"], "report-1");
    assert_eq!(rec["progress"], "1");
    assert_eq!(
        rec["finished_at_ms"],
        info.finished_at_ms.unwrap().to_string()
    );
    assert!(!rec.contains_key("error"));
    assert!(!rec.contains_key("result"));
    let ttl = fx.pttl(&fx.task_key(&id)).await;
    assert!(
        ttl > 0 && ttl <= fast().result_ttl.as_millis() as i64,
        "{ttl}"
    );
    assert_eq!(fx.xlen(Class::Normal).await, 0, "entry deleted");
    assert!(fx.pending(Class::Normal).await.is_empty());

    // A batch holding the same delivery twice: the first wins.
    let id2 = fx.queue.submit_one(spec(5, "p2")).await.unwrap();
    let d2 = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(
        a.complete(&[done(&d2, "first"), done(&d2, "second")])
            .await
            .unwrap(),
        (1, 1)
    );
    assert_eq!(fx.info(&id2).await.result.as_deref(), Some("first"));

    // A second consumer reclaims a stalled delivery and completes it; the
    // stalled one's late completion is a duplicate.
    let id3 = fx.queue.submit_one(spec(5, "p3")).await.unwrap();
    let b = fx.consumer("b").await;
    let stale = a.fetch(1, false).await.unwrap().pop().unwrap();
    tokio::time::sleep(PAST_VISIBILITY).await;
    let fresh = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(fresh.task_id, id3);
    assert_eq!(fresh.attempt, 2);
    assert_eq!(b.complete(&[done(&fresh, "from-b")]).await.unwrap(), (1, 0));
    assert_eq!(a.complete(&[done(&stale, "from-a")]).await.unwrap(), (0, 1));
    let info = fx.info(&id3).await;
    assert_eq!(info.status, TaskStatus::Completed);
    assert_eq!(info.result.as_deref(), Some("from-b"));
    assert_eq!(info.worker.as_deref(), Some("b"));

    let c = fx.queue.counters().await.unwrap();
    assert_eq!(c.tasks_completed, 3);
    assert_eq!(fx.counter("duplicates").await, 3);
    assert_eq!(fx.counter("active_tasks").await, 0);
    assert!(fx.pending(Class::Normal).await.is_empty());
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    fx.assert_balanced().await;

    // Each task's run time is observed once, duplicates never.
    let durations = fx.queue.durations().await.unwrap();
    let completed = &durations["completed"];
    assert_eq!(completed.count, 3);
    // The same three in this minute's history (or, at a minute's edge,
    // the last two minutes').
    let history = fx.queue.history(2).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].at_ms + 60_000 == history[1].at_ms);
    assert_eq!(history.iter().map(|m| m.completed).sum::<u64>(), 3);
    assert_eq!(history.iter().map(|m| m.failed).sum::<u64>(), 0);
    let busy = history.iter().find(|m| m.completed > 0).unwrap();
    assert!(busy.mean_run_ms.is_some() && busy.mean_wait_ms.unwrap() >= 0.0);
    assert_eq!(completed.buckets.iter().sum::<u64>(), 3);
    assert_eq!(completed.cumulative().last().unwrap(), &(None, 3));
    assert_eq!(durations["failed"].count, 0);
}

/// A record's result is written ahead of the script (`HSETNX`); a late
/// completion that loses must leave no result where none belongs.
#[tokio::test]
async fn a_late_result_is_kept_off_records_it_did_not_win() {
    let fx = setup("late-result", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    // A task with `record` is submitted; `a` takes it and stalls; `b`
    // reclaims it.
    async fn stall(
        fx: &Fx,
        a: &Consumer,
        b: &Consumer,
        record: &str,
    ) -> (String, Delivery, Delivery) {
        let id = fx
            .queue
            .submit_one(with_record(5, record, record))
            .await
            .unwrap();
        let stale = a.fetch(1, false).await.unwrap().pop().unwrap();
        assert_eq!(stale.task_id, id);
        tokio::time::sleep(PAST_VISIBILITY).await;
        let fresh = b.fetch(1, true).await.unwrap().pop().unwrap();
        assert_eq!(fresh.task_id, id);
        (id, stale, fresh)
    }

    // The reclaimer fails the task: the record says failed, no report.
    let (_, stale, fresh) = stall(&fx, &a, &b, "rec:f").await;
    let failed = Outcome::Failed(TaskError::permanent("strategy_trap", "boom"));
    assert_eq!(b.complete(&[(held(&fresh), failed)]).await.unwrap(), (0, 0));
    assert_eq!(a.complete(&[done(&stale, "late")]).await.unwrap(), (0, 1));
    let rec = fx.hgetall("rec:f").await;
    assert_eq!(rec["status"], "failed");
    assert!(!rec.contains_key("report"), "{rec:?}");

    // The reclaimer sends it back to the queue: it waits, no report.
    let (id, stale, fresh) = stall(&fx, &a, &b, "rec:r").await;
    let retry = Outcome::Retry {
        error: TaskError::transient("host_error", "again"),
        delay_ms: 0,
    };
    assert_eq!(b.complete(&[(held(&fresh), retry)]).await.unwrap(), (0, 0));
    assert_eq!(a.complete(&[done(&stale, "late")]).await.unwrap(), (0, 1));
    let rec = fx.hgetall("rec:r").await;
    assert_eq!(rec["status"], "queued");
    assert!(!rec.contains_key("report"), "{rec:?}");
    // Its next run's result lands.
    fx.queue.promote_due().await.unwrap();
    let again = b.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(again.task_id, id);
    assert_eq!(
        b.complete(&[done(&again, "on time")]).await.unwrap(),
        (1, 0)
    );
    assert_eq!(fx.hgetall("rec:r").await["report"], "on time");

    // A record gone by the time a late result comes is not brought back.
    let (_, stale, fresh) = stall(&fx, &a, &b, "rec:g").await;
    assert_eq!(b.complete(&[done(&fresh, "first")]).await.unwrap(), (1, 0));
    fx.del("rec:g").await;
    assert_eq!(a.complete(&[done(&stale, "late")]).await.unwrap(), (0, 1));
    assert!(fx.hgetall("rec:g").await.is_empty());

    // Mixed in one batch with a result that wins and one without a record.
    let with = fx
        .queue
        .submit_one(with_record(5, "w", "rec:w"))
        .await
        .unwrap();
    let without = fx.queue.submit_one(spec(5, "n")).await.unwrap();
    let ds = a.fetch(2, false).await.unwrap();
    assert_eq!(ids(&ds), vec![with.clone(), without.clone()]);
    let batch = [
        done(&ds[0], "won"),
        done(&ds[1], "plain"),
        done(&ds[0], "dup"),
    ];
    assert_eq!(a.complete(&batch).await.unwrap(), (2, 1));
    assert_eq!(fx.hgetall("rec:w").await["report"], "won");
    assert_eq!(fx.info(&without).await.result.as_deref(), Some("plain"));
    fx.assert_balanced().await;
}

#[tokio::test]
async fn reclaim_moves_ownership_and_stale_outcomes_do_not_requeue() {
    let fx = setup("reclaim", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx.queue.submit_one(spec(5, "t")).await.unwrap();

    let stale = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(stale.attempt, 1);
    // Not idle long enough yet.
    assert!(b.fetch(1, true).await.unwrap().is_empty());
    tokio::time::sleep(PAST_VISIBILITY).await;
    // Without reclaim, nothing: the entry is pending, not new.
    assert!(b.fetch(1, false).await.unwrap().is_empty());
    let fresh = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(fresh.task_id, id);
    assert_eq!(fresh.entry_id, stale.entry_id);
    assert_eq!(fresh.attempt, 2);
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Running);
    assert_eq!(info.attempts, 2);
    assert_eq!(info.worker.as_deref(), Some("b"));
    let pending = fx.pending(Class::Normal).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].consumer, "b");
    assert_eq!(pending[0].times_delivered, 2);
    assert_eq!(fx.counter("active_tasks").await, 1, "counted once");

    // A's late retry and release: not the owner, so nothing moves.
    let retry = Outcome::Retry {
        error: TaskError::transient("host_error", "late"),
        delay_ms: 0,
    };
    assert_eq!(a.complete(&[(held(&stale), retry)]).await.unwrap(), (0, 1));
    assert_eq!(
        a.complete(&[(held(&stale), Outcome::Released)])
            .await
            .unwrap(),
        (0, 1)
    );
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Running);
    assert_eq!(info.attempts, 2);
    assert_eq!(info.worker.as_deref(), Some("b"));
    assert!(info.retries.is_empty());
    assert!(fx.delayed().await.is_empty());
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    let pending = fx.pending(Class::Normal).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].consumer, "b", "b's claim survives");
    assert_eq!(fx.counter("tasks_retried").await, 0);
    assert_eq!(fx.counter("tasks_released").await, 0);
    assert_eq!(fx.counter("active_tasks").await, 1);
    let lost = b.keepalive(&[held(&fresh)], "{}").await.unwrap();
    assert!(lost.lost.is_empty());

    assert_eq!(b.complete(&[done(&fresh, "from-b")]).await.unwrap(), (1, 0));
    assert_eq!(fx.counter("tasks_completed").await, 1);
    assert_eq!(fx.counter("active_tasks").await, 0);
    assert_eq!(fx.counter("duplicates").await, 2);

    // The stalled consumer finishing first wins; the reclaimer's outcome
    // is then a duplicate, and its claim is gone.
    let id2 = fx.queue.submit_one(spec(5, "t2")).await.unwrap();
    let stale = a.fetch(1, false).await.unwrap().pop().unwrap();
    tokio::time::sleep(PAST_VISIBILITY).await;
    let fresh = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(fresh.task_id, id2);
    assert_eq!(a.complete(&[done(&stale, "from-a")]).await.unwrap(), (1, 0));
    assert!(fx.pending(Class::Normal).await.is_empty());
    let report = b.keepalive(&[held(&fresh)], "{}").await.unwrap();
    assert_eq!(report.lost, vec![id2.clone()]);
    assert_eq!(b.complete(&[done(&fresh, "from-b")]).await.unwrap(), (0, 1));
    let info = fx.info(&id2).await;
    assert_eq!(info.status, TaskStatus::Completed);
    assert_eq!(info.result.as_deref(), Some("from-a"));
    assert_eq!(fx.counter("tasks_completed").await, 2);
    assert_eq!(fx.counter("active_tasks").await, 0);
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn reclaim_skips_entries_of_tasks_that_ended() {
    let fx = setup("reclaim-ended", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx.queue.submit_one(spec(5, "x")).await.unwrap();
    let _ = fx.queue.submit_one(spec(5, "y")).await.unwrap();
    let ds = a.fetch(2, false).await.unwrap();
    assert_eq!(ds.len(), 2);
    // Someone ended the first task (e.g. a cancel finished elsewhere) but
    // its entry stayed pending: a reclaim must drop it, not run it.
    let mut conn = fx.conn.clone();
    let () = redis::cmd("HSET")
        .arg(fx.task_key(&id))
        .arg("status")
        .arg("cancelled")
        .query_async(&mut conn)
        .await
        .unwrap();
    tokio::time::sleep(PAST_VISIBILITY).await;
    let got = b.fetch(5, true).await.unwrap();
    assert_eq!(ids(&got), vec![ds[1].task_id.clone()]);
    assert_eq!(got[0].attempt, 2);
    // The dropped entry is acknowledged and deleted.
    let pending = fx.pending(Class::Normal).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, ds[1].entry_id);
    assert_eq!(fx.xlen(Class::Normal).await, 1);
}

#[tokio::test]
async fn keepalive_keeps_claims_and_reports_lost_and_cancel() {
    let fx = setup("keepalive", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx.queue.submit_one(spec(5, "k")).await.unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    let mine = vec![held(&d)];

    // 8 x 60 ms: well past the 200 ms visibility timeout in total.
    for _ in 0..8 {
        tokio::time::sleep(ms(60)).await;
        let report = a.keepalive(&mine, r#"{"pid":1}"#).await.unwrap();
        assert_eq!(report, Default::default());
        assert!(b.fetch(1, true).await.unwrap().is_empty());
    }
    let info = fx.info(&id).await;
    assert_eq!(info.worker.as_deref(), Some("a"));
    assert_eq!(info.attempts, 1);
    let pending = fx.pending(Class::Normal).await;
    assert_eq!(pending[0].consumer, "a");
    assert_eq!(pending[0].times_delivered, 1, "keepalive is not a delivery");

    // The heartbeat.
    let beat = fx.queue.keys().worker("a");
    let ttl = fx.pttl(&beat).await;
    assert!(ttl > 0 && ttl <= 2000, "{ttl}");
    let workers = fx.queue.workers().await.unwrap();
    assert_eq!(workers.get("a").map(String::as_str), Some(r#"{"pid":1}"#));
    assert!(!workers.contains_key("b"));
    assert_eq!(fx.queue.stats().await.unwrap().live_workers, 1);

    // A cancel request: published, and reported by the next keepalive.
    let client = redis::Client::open(fx.t.server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(fx.queue.keys().cancel_channel())
        .await
        .unwrap();
    assert_eq!(fx.queue.cancel(&id).await.unwrap(), CancelState::Cancelling);
    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_channel_name(), fx.queue.keys().cancel_channel());
    assert_eq!(msg.get_payload::<String>().unwrap(), id);
    let report = a.keepalive(&mine, "{}").await.unwrap();
    assert!(report.lost.is_empty());
    assert_eq!(report.cancel, vec![id.clone()]);

    // A stops refreshing; B reclaims; A's next keepalive learns it lost it.
    tokio::time::sleep(PAST_VISIBILITY).await;
    let taken = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(taken.task_id, id);
    assert_eq!(taken.attempt, 2);
    let report = a.keepalive(&mine, "{}").await.unwrap();
    assert_eq!(report.lost, vec![id.clone()]);
    let report = b.keepalive(&[held(&taken)], "{}").await.unwrap();
    assert!(report.lost.is_empty());
    assert_eq!(report.cancel, vec![id.clone()]);
    assert_eq!(fx.queue.stats().await.unwrap().live_workers, 2);

    assert_eq!(
        b.complete(&[(held(&taken), Outcome::Cancelled)])
            .await
            .unwrap(),
        (0, 0)
    );
    assert_eq!(fx.status(&id).await, TaskStatus::Cancelled);
    assert_eq!(fx.counter("tasks_cancelled").await, 1);
    assert_eq!(fx.counter("active_tasks").await, 0);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn retry_waits_in_the_delayed_set() {
    let fx = setup("retry", fast()).await;
    let a = fx.consumer("a").await;
    let id = fx
        .queue
        .submit_one(with_record(5, "r", "rec:r"))
        .await
        .unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    let before = fx.server_ms().await;
    let retry = Outcome::Retry {
        error: TaskError::transient("redis_down", "connection refused"),
        delay_ms: 400,
    };
    assert_eq!(a.complete(&[(held(&d), retry)]).await.unwrap(), (0, 0));

    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(info.error_code.as_deref(), Some("redis_down"));
    assert_eq!(info.error.as_deref(), Some("connection refused"));
    assert_eq!(info.retries, vec!["1:400:redis_down".to_string()]);
    let due = info.next_attempt_at_ms.unwrap();
    assert!(due >= before + 400 && due <= before + 400 + 1000, "{due}");
    assert_eq!(fx.delayed().await, vec![(id.clone(), due as f64)]);
    assert_eq!(fx.hgetall("rec:r").await["status"], "queued");
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert!(fx.pending(Class::Normal).await.is_empty());
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.delayed, 1);
    assert_eq!(stats.waiting["normal"], 0);
    assert_eq!(fx.counter("tasks_retried").await, 1);
    assert_eq!(fx.counter("active_tasks").await, 0);
    fx.assert_balanced().await;

    // Not due yet.
    assert_eq!(fx.queue.promote_due().await.unwrap(), 0);
    assert!(a.fetch(1, false).await.unwrap().is_empty());
    assert_eq!(fx.delayed().await.len(), 1);

    let wait = due - fx.server_ms().await + 50;
    tokio::time::sleep(ms(wait.max(0) as u64)).await;
    assert_eq!(fx.queue.promote_due().await.unwrap(), 1);
    assert!(fx.delayed().await.is_empty());
    assert_eq!(fx.queue.stats().await.unwrap().waiting["normal"], 1);
    assert_eq!(fx.status(&id).await, TaskStatus::Queued);
    assert_eq!(fx.queue.promote_due().await.unwrap(), 0);

    let again = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(again.task_id, id);
    assert_eq!(again.attempt, 2);
    assert_ne!(again.entry_id, d.entry_id);
    assert_eq!(a.complete(&[done(&again, "ok")]).await.unwrap(), (1, 0));
    let rec = fx.hgetall("rec:r").await;
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["report"], "ok");
    // The retry history ends with the task.
    let retries = format!("{}:retries", fx.task_key(&id));
    assert_eq!(fx.info(&id).await.retries.len(), 1);
    let ttl = fx.pttl(&retries).await;
    assert!(ttl > 0, "retries list kept forever (pttl {ttl})");
    fx.assert_balanced().await;
}

#[tokio::test]
async fn failures_go_to_the_dlq_and_can_be_requeued() {
    let fx = setup("dlq", fast()).await;
    let a = fx.consumer("a").await;
    let id = fx
        .queue
        .submit(&[
            spec(5, "fuel"),
            spec(5, "slow"),
            with_record(5, "flaky", "rec:f"),
        ])
        .await
        .unwrap();
    let ds = a.fetch(3, false).await.unwrap();
    assert_eq!(ids(&ds), id);
    let timeout = TaskError {
        code: "deadline_exceeded".into(),
        message: "ran 10 s".into(),
        transient: true,
        timeout: true,
    };
    let outcomes = vec![
        (
            held(&ds[0]),
            Outcome::Failed(TaskError::permanent("fuel_exhausted", "out of fuel")),
        ),
        (held(&ds[1]), Outcome::Failed(timeout)),
        (
            held(&ds[2]),
            Outcome::Failed(TaskError::transient("host_error", "boom")),
        ),
    ];
    assert_eq!(a.complete(&outcomes).await.unwrap(), (0, 0));
    let c = fx.queue.counters().await.unwrap();
    assert_eq!(c.tasks_failed, 2);
    assert_eq!(c.tasks_timeout, 1);
    assert_eq!(c.tasks_completed, 0);
    assert_eq!(c.active_tasks, 0);
    assert_eq!(fx.queue.stats().await.unwrap().dlq, 3);
    let durations = fx.queue.durations().await.unwrap();
    assert_eq!(durations["failed"].count, 2);
    let history = fx.queue.history(2).await.unwrap();
    assert_eq!(
        history.iter().map(|m| m.failed).sum::<u64>(),
        3,
        "timeouts count as failed"
    );
    assert_eq!(durations["timeout"].count, 1);
    assert_eq!(durations["completed"].count, 0);
    assert!(fx.pending(Class::Normal).await.is_empty());
    assert_eq!(fx.xlen(Class::Normal).await, 0);

    let dlq = fx.queue.dlq(10).await.unwrap();
    assert_eq!(dlq.len(), 3);
    // Newest first.
    let by_task: Vec<&str> = dlq.iter().map(|e| e.fields["task_id"].as_str()).collect();
    assert_eq!(by_task, vec![&id[2][..], &id[1][..], &id[0][..]]);
    let expect = [
        ("fuel_exhausted", "out of fuel", "permanent"),
        ("deadline_exceeded", "ran 10 s", "timeout"),
        ("host_error", "boom", "transient"),
    ];
    for (i, (reason, error, kind)) in expect.iter().enumerate() {
        let f = &dlq[2 - i].fields;
        assert_eq!(f["task_id"], id[i]);
        assert_eq!(f["reason"], *reason);
        assert_eq!(f["error"], *error);
        assert_eq!(f["error_kind"], *kind);
        assert_eq!(f["attempts"], "1");
        assert_eq!(f["worker"], "a");
        assert_eq!(f["kind"], "echo");
        assert!(f["failed_at_ms"].parse::<i64>().unwrap() > 0);
        let info = fx.info(&id[i]).await;
        assert_eq!(info.status, TaskStatus::Failed);
        assert_eq!(info.error_code.as_deref(), Some(*reason));
        assert_eq!(info.error.as_deref(), Some(*error));
        assert!(info.finished_at_ms.is_some());
        // Kept while its dead letter may requeue it.
        assert_eq!(fx.pttl(&fx.task_key(&id[i])).await, -1);
    }
    let rec = fx.hgetall("rec:f").await;
    assert_eq!(rec["status"], "failed");
    let error: serde_json::Value = serde_json::from_str(&rec["error"]).unwrap();
    assert_eq!(
        error,
        serde_json::json!({"code": "host_error", "message": "boom"})
    );
    assert!(rec.contains_key("finished_at_ms"));
    assert_eq!(fx.queue.dlq(1).await.unwrap().len(), 1);
    fx.assert_balanced().await;

    // One entry back, by id.
    let first = dlq[2].entry_id.clone();
    assert_eq!(fx.queue.requeue(Some(&first)).await.unwrap(), 1);
    assert_eq!(fx.queue.requeue(Some(&first)).await.unwrap(), 0, "gone");
    assert_eq!(fx.queue.dlq(10).await.unwrap().len(), 2);
    let info = fx.info(&id[0]).await;
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(info.attempts, 0);
    assert_eq!(info.error_code, None);
    assert_eq!(info.error, None);
    assert_eq!(info.finished_at_ms, None);
    assert_eq!(fx.counter("tasks_requeued").await, 1);
    fx.assert_balanced().await;

    // The rest.
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 2);
    assert!(fx.queue.dlq(10).await.unwrap().is_empty());
    assert_eq!(fx.counter("tasks_requeued").await, 3);
    let rec = fx.hgetall("rec:f").await;
    assert_eq!(rec["status"], "queued");
    assert!(!rec.contains_key("error"));
    assert!(!rec.contains_key("finished_at_ms"));
    fx.assert_balanced().await;

    // Fresh attempts; fail them all again, then purge.
    let ds = a.fetch(10, false).await.unwrap();
    assert_eq!(ds.len(), 3);
    assert!(ds.iter().all(|d| d.attempt == 1));
    let fail: Vec<_> = ds
        .iter()
        .map(|d| (held(d), Outcome::Failed(TaskError::permanent("trap", "x"))))
        .collect();
    assert_eq!(a.complete(&fail).await.unwrap(), (0, 0));
    assert_eq!(fx.counter("tasks_failed").await, 5);
    assert_eq!(fx.queue.purge_dlq().await.unwrap(), 3);
    assert!(fx.queue.dlq(10).await.unwrap().is_empty());
    assert_eq!(fx.queue.stats().await.unwrap().dlq, 0);
    for task in &id {
        let ttl = fx.pttl(&fx.task_key(task)).await;
        assert!(ttl > 0, "purged task {task} never expires ({ttl})");
    }
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 0);
    assert_eq!(fx.queue.purge_dlq().await.unwrap(), 0);
}

#[tokio::test]
async fn cancel_queued_running_final_and_unknown() {
    let fx = setup("cancel", fast()).await;
    let a = fx.consumer("a").await;
    let id = fx
        .queue
        .submit(&[with_record(5, "c1", "rec:c1"), spec(5, "c2")])
        .await
        .unwrap();

    // Queued: cancelled at once, its entry removed, never delivered.
    assert_eq!(
        fx.queue.cancel(&id[0]).await.unwrap(),
        CancelState::Cancelled
    );
    let info = fx.info(&id[0]).await;
    assert_eq!(info.status, TaskStatus::Cancelled);
    assert!(info.finished_at_ms.is_some());
    assert!(fx.pttl(&fx.task_key(&id[0])).await > 0);
    let rec = fx.hgetall("rec:c1").await;
    assert_eq!(rec["status"], "cancelled");
    assert!(rec.contains_key("finished_at_ms"));
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    assert_eq!(fx.counter("tasks_cancelled").await, 1);
    let got = a.fetch(10, false).await.unwrap();
    assert_eq!(ids(&got), vec![id[1].clone()]);
    fx.assert_balanced().await;

    // Running: asked to stop; the worker ends it as cancelled.
    let client = redis::Client::open(fx.t.server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(fx.queue.keys().cancel_channel())
        .await
        .unwrap();
    assert_eq!(
        fx.queue.cancel(&id[1]).await.unwrap(),
        CancelState::Cancelling
    );
    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_payload::<String>().unwrap(), id[1]);
    let info = fx.info(&id[1]).await;
    assert_eq!(info.status, TaskStatus::Running);
    assert_eq!(info.fields["cancel_requested"], "1");
    // Asking twice is harmless.
    assert_eq!(
        fx.queue.cancel(&id[1]).await.unwrap(),
        CancelState::Cancelling
    );
    assert_eq!(
        a.complete(&[(held(&got[0]), Outcome::Cancelled)])
            .await
            .unwrap(),
        (0, 0)
    );
    let info = fx.info(&id[1]).await;
    assert_eq!(info.status, TaskStatus::Cancelled);
    assert!(info.finished_at_ms.is_some());
    assert!(fx.pttl(&fx.task_key(&id[1])).await > 0);
    assert_eq!(fx.counter("tasks_cancelled").await, 2);
    assert_eq!(fx.counter("active_tasks").await, 0);

    // Final states.
    assert_eq!(
        fx.queue.cancel(&id[1]).await.unwrap(),
        CancelState::AlreadyFinished(TaskStatus::Cancelled)
    );
    assert_eq!(
        fx.queue.cancel(&id[0]).await.unwrap(),
        CancelState::AlreadyFinished(TaskStatus::Cancelled)
    );
    let more = fx
        .queue
        .submit(&[spec(5, "ok"), spec(5, "bad")])
        .await
        .unwrap();
    let ds = a.fetch(2, false).await.unwrap();
    a.complete(&[
        done(&ds[0], "r"),
        (
            held(&ds[1]),
            Outcome::Failed(TaskError::permanent("trap", "t")),
        ),
    ])
    .await
    .unwrap();
    assert_eq!(
        fx.queue.cancel(&more[0]).await.unwrap(),
        CancelState::AlreadyFinished(TaskStatus::Completed)
    );
    assert_eq!(
        fx.queue.cancel(&more[1]).await.unwrap(),
        CancelState::AlreadyFinished(TaskStatus::Failed)
    );
    assert_eq!(
        fx.queue.cancel("no-such-task").await.unwrap(),
        CancelState::NotFound
    );
    assert_eq!(fx.counter("tasks_cancelled").await, 2);

    // Waiting for a retry: cancelled, and never promoted.
    let r = fx.queue.submit_one(spec(5, "retry")).await.unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    let retry = Outcome::Retry {
        error: TaskError::transient("host_error", "x"),
        delay_ms: 100,
    };
    a.complete(&[(held(&d), retry)]).await.unwrap();
    assert_eq!(fx.queue.cancel(&r).await.unwrap(), CancelState::Cancelled);
    assert!(fx.delayed().await.is_empty());
    tokio::time::sleep(ms(150)).await;
    assert_eq!(fx.queue.promote_due().await.unwrap(), 0);
    assert!(a.fetch(5, true).await.unwrap().is_empty());
    assert_eq!(fx.status(&r).await, TaskStatus::Cancelled);
    let retries = format!("{}:retries", fx.task_key(&r));
    assert!(fx.pttl(&retries).await > 0, "retries list kept forever");
    assert_eq!(fx.counter("tasks_cancelled").await, 3);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn old_lower_class_is_served_before_higher_ones() {
    let config = QueueConfig {
        starvation_age: ms(300),
        ..fast()
    };
    let fx = setup("starvation", config).await;
    let a = fx.consumer("a").await;
    let old_low = fx.queue.submit_one(spec(1, "old-low")).await.unwrap();
    tokio::time::sleep(ms(400)).await;
    let young = fx
        .queue
        .submit(&[
            spec(9, "h1"),
            spec(9, "h2"),
            spec(5, "n"),
            spec(1, "young-low"),
        ])
        .await
        .unwrap();

    let order = [&old_low, &young[0], &young[1], &young[2], &young[3]];
    for want in order {
        let got = a.fetch(1, false).await.unwrap();
        assert_eq!(ids(&got), vec![want.clone()]);
    }
    assert!(a.fetch(1, false).await.unwrap().is_empty());

    // Normal starves too, and the lowest starving class goes first.
    let old = fx
        .queue
        .submit(&[spec(5, "old-normal"), spec(2, "old-low")])
        .await
        .unwrap();
    tokio::time::sleep(ms(400)).await;
    let high = fx.queue.submit_one(spec(8, "h")).await.unwrap();
    let got = a.fetch(3, false).await.unwrap();
    assert_eq!(ids(&got), vec![old[1].clone(), old[0].clone(), high]);
}

#[tokio::test]
async fn leave_gives_held_tasks_back() {
    let fx = setup("leave", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx
        .queue
        .submit(&[spec(5, "1"), spec(5, "2"), spec(9, "3"), spec(5, "4")])
        .await
        .unwrap();
    let ds = a.fetch(4, false).await.unwrap();
    assert_eq!(ds.len(), 4);
    // B reclaims one of them (the oldest idle, in class order: high).
    tokio::time::sleep(PAST_VISIBILITY).await;
    let taken = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(taken.task_id, id[2]);
    let kept: Vec<Held> = ds
        .iter()
        .filter(|d| d.task_id != taken.task_id)
        .map(held)
        .collect();
    a.keepalive(&kept, "{}").await.unwrap();
    assert!(fx.exists(&fx.queue.keys().worker("a")).await);
    assert_eq!(fx.counter("active_tasks").await, 4);

    assert_eq!(a.leave().await.unwrap(), 3);
    for task in [&id[0], &id[1], &id[3]] {
        let info = fx.info(task).await;
        assert_eq!(info.status, TaskStatus::Queued);
        assert_eq!(info.attempts, 0, "attempt given back");
    }
    let info = fx.info(&id[2]).await;
    assert_eq!(info.status, TaskStatus::Running, "b's task stays with b");
    assert_eq!(info.worker.as_deref(), Some("b"));
    assert_eq!(fx.counter("tasks_released").await, 3);
    assert_eq!(fx.counter("active_tasks").await, 1);
    for class in Class::ALL {
        let names = fx.group_consumers(class).await;
        assert!(!names.contains(&"a".to_string()), "{class:?}: {names:?}");
    }
    assert!(fx
        .group_consumers(Class::High)
        .await
        .contains(&"b".to_string()));
    assert!(!fx.exists(&fx.queue.keys().worker("a")).await);
    assert!(!fx.queue.workers().await.unwrap().contains_key("a"));
    let mut conn = fx.conn.clone();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(fx.queue.keys().workers())
        .arg("a")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, None);
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.waiting["normal"], 3);
    assert_eq!(stats.pending["normal"], 0);
    assert_eq!(stats.pending["high"], 1);
    fx.assert_balanced().await;

    // A's late outcome for a released task is a duplicate.
    let released = ds.iter().find(|d| d.task_id == id[0]).unwrap();
    assert_eq!(a.complete(&[done(released, "late")]).await.unwrap(), (0, 1));
    assert_eq!(fx.status(&id[0]).await, TaskStatus::Queued);

    let again = b.fetch(10, false).await.unwrap();
    assert_eq!(
        ids(&again),
        vec![id[0].clone(), id[1].clone(), id[3].clone()]
    );
    assert!(again.iter().all(|d| d.attempt == 1));
    assert_eq!(b.leave().await.unwrap(), 4);
    assert_eq!(a.leave().await.unwrap(), 0, "leaving twice is harmless");
    fx.assert_balanced().await;
}

#[tokio::test]
async fn released_outcome_requeues_without_using_an_attempt() {
    let fx = setup("release", fast()).await;
    let a = fx.consumer("a").await;
    let id = fx
        .queue
        .submit_one(with_record(5, "x", "rec:x"))
        .await
        .unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(
        a.complete(&[(held(&d), Outcome::Released)]).await.unwrap(),
        (0, 0)
    );
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(info.attempts, 0);
    assert_eq!(fx.hgetall("rec:x").await["status"], "queued");
    assert_eq!(fx.counter("tasks_released").await, 1);
    assert_eq!(fx.counter("active_tasks").await, 0);
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    fx.assert_balanced().await;
    let again = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(again.task_id, id);
    assert_eq!(again.attempt, 1);
    assert_ne!(again.entry_id, d.entry_id);
}

#[tokio::test]
async fn progress_is_written_only_while_running() {
    let fx = setup("progress", fast()).await;
    let a = fx.consumer("a").await;
    let id = fx
        .queue
        .submit_one(with_record(5, "p", "rec:p"))
        .await
        .unwrap();
    fx.queue
        .report_progress(&[(id.clone(), 0.3)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, None);
    assert_eq!(fx.hgetall("rec:p").await["progress"], "0");

    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    fx.queue
        .report_progress(&[(id.clone(), 0.25), ("no-such-task".into(), 0.5)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, Some(0.25));
    assert_eq!(fx.hgetall("rec:p").await["progress"], "0.2500");
    assert!(!fx.exists(&fx.task_key("no-such-task")).await);
    fx.queue
        .report_progress(&[(id.clone(), 1.7)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, Some(1.0), "clamped");
    fx.queue
        .report_progress(&[(id.clone(), 0.5)])
        .await
        .unwrap();
    fx.queue.report_progress(&[]).await.unwrap();

    a.complete(&[done(&d, "r")]).await.unwrap();
    fx.queue
        .report_progress(&[(id.clone(), 0.1)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, Some(1.0));
    assert_eq!(fx.hgetall("rec:p").await["progress"], "1");
}

#[tokio::test]
async fn blocking_fetch_wakes_on_submit() {
    let fx = setup("blocking", fast()).await;
    let a = fx.consumer("a").await;
    // Nothing there: returns empty after the block.
    let started = std::time::Instant::now();
    assert!(a.fetch_blocking(1, ms(100)).await.unwrap().is_empty());
    assert!(started.elapsed() >= ms(90));

    let waiter = tokio::spawn(async move {
        let got = a.fetch_blocking(1, Duration::from_secs(5)).await.unwrap();
        (a, got)
    });
    tokio::time::sleep(ms(100)).await;
    let id = fx.queue.submit_one(spec(9, "wake")).await.unwrap();
    let (a, got) = tokio::time::timeout(Duration::from_secs(4), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got), vec![id.clone()]);
    assert_eq!(got[0].attempt, 1);
    assert_eq!(got[0].payload, "wake");
    assert_eq!(got[0].stream, fx.stream(Class::High));
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Running);
    assert_eq!(info.worker.as_deref(), Some("a"));
    assert_eq!(fx.counter("active_tasks").await, 1);

    // An entry whose task was cancelled while waiting is dropped.
    let c = fx.queue.submit_one(spec(5, "gone")).await.unwrap();
    let mut conn = fx.conn.clone();
    let () = redis::cmd("HSET")
        .arg(fx.task_key(&c))
        .arg("status")
        .arg("cancelled")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(a.fetch_blocking(1, ms(100)).await.unwrap().is_empty());
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert!(fx.pending(Class::Normal).await.is_empty());
}

#[tokio::test]
async fn counters_balance_after_a_mixed_run() {
    let fx = setup("mixed", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let specs: Vec<TaskSpec> = (0..12)
        .map(|i| spec([1, 5, 9][i % 3], &format!("t{i}")))
        .collect();
    let id = fx.queue.submit(&specs).await.unwrap();
    fx.assert_balanced().await;

    // Cancel two while queued.
    assert_eq!(
        fx.queue.cancel(&id[0]).await.unwrap(),
        CancelState::Cancelled
    );
    assert_eq!(
        fx.queue.cancel(&id[1]).await.unwrap(),
        CancelState::Cancelled
    );
    let ds = a.fetch(7, false).await.unwrap();
    assert_eq!(ds.len(), 7);
    fx.assert_balanced().await;

    // One of each outcome, and a duplicate.
    assert_eq!(
        fx.queue.cancel(&ds[5].task_id).await.unwrap(),
        CancelState::Cancelling
    );
    let outcomes = vec![
        done(&ds[0], "r0"),
        done(&ds[1], "r1"),
        done(&ds[1], "again"),
        (
            held(&ds[2]),
            Outcome::Failed(TaskError::permanent("trap", "x")),
        ),
        (
            held(&ds[3]),
            Outcome::Failed(TaskError {
                code: "deadline_exceeded".into(),
                message: "slow".into(),
                transient: true,
                timeout: true,
            }),
        ),
        (
            held(&ds[4]),
            Outcome::Retry {
                error: TaskError::transient("host_error", "x"),
                delay_ms: 0,
            },
        ),
        (held(&ds[5]), Outcome::Cancelled),
        (held(&ds[6]), Outcome::Released),
    ];
    assert_eq!(a.complete(&outcomes).await.unwrap(), (2, 1));
    fx.assert_balanced().await;
    let c = fx.queue.counters().await.unwrap();
    assert_eq!(
        (c.tasks_completed, c.tasks_failed, c.tasks_timeout),
        (2, 1, 1)
    );
    assert_eq!(fx.counter("tasks_cancelled").await, 3);
    assert_eq!(fx.counter("tasks_retried").await, 1);
    assert_eq!(fx.counter("tasks_released").await, 1);
    assert_eq!(fx.counter("duplicates").await, 1);

    // Requeue the failures, promote the retry, and let B hold some while
    // A's stalled one is reclaimed.
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 2);
    fx.assert_balanced().await;
    tokio::time::sleep(ms(5)).await;
    assert_eq!(fx.queue.promote_due().await.unwrap(), 1);
    fx.assert_balanced().await;
    let stalled = a.fetch(1, false).await.unwrap();
    assert_eq!(stalled.len(), 1);
    tokio::time::sleep(PAST_VISIBILITY).await;
    let held_by_b = b.fetch(4, true).await.unwrap();
    assert_eq!(held_by_b.len(), 4);
    assert_eq!(held_by_b[0].task_id, stalled[0].task_id);
    assert_eq!(held_by_b[0].attempt, 2);
    fx.assert_balanced().await;
    assert_eq!(
        a.complete(&[done(&stalled[0], "late")]).await.unwrap(),
        (1, 0)
    );
    assert_eq!(
        b.complete(&[done(&held_by_b[0], "late")]).await.unwrap(),
        (0, 1)
    );
    fx.assert_balanced().await;

    // Run everything to the end.
    let mut rest = held_by_b[1..].to_vec();
    rest.extend(b.fetch(100, false).await.unwrap());
    let outcomes: Vec<_> = rest.iter().map(|d| done(d, "r")).collect();
    b.complete(&outcomes).await.unwrap();
    assert!(b.fetch(100, true).await.unwrap().is_empty());
    fx.assert_balanced().await;
    let c = fx.queue.counters().await.unwrap();
    let cancelled = fx.counter("tasks_cancelled").await;
    let requeued = fx.counter("tasks_requeued").await;
    assert_eq!(c.tasks_submitted + requeued, 14);
    assert_eq!(
        c.tasks_completed + c.tasks_failed + c.tasks_timeout + cancelled,
        14
    );
    assert_eq!(c.active_tasks, 0);
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.waiting.values().sum::<u64>(), 0);
    assert_eq!(stats.pending.values().sum::<u64>(), 0);
    assert_eq!(stats.delayed, 0);
    for task in &id {
        assert!(fx.status(task).await.is_final(), "{task}");
    }
}

#[tokio::test]
async fn a_task_asked_to_cancel_is_not_run_again() {
    let fx = setup("cancel-requeue", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx
        .queue
        .submit(&[
            with_record(5, "released", "rec:c"),
            spec(5, "retried"),
            spec(5, "left"),
            spec(5, "kept"),
        ])
        .await
        .unwrap();
    let ds = a.fetch(4, false).await.unwrap();
    assert_eq!(ids(&ds), id);
    for task in &id[..3] {
        assert_eq!(
            fx.queue.cancel(task).await.unwrap(),
            CancelState::Cancelling
        );
    }
    // The worker missed the message: it releases (shutdown) one and
    // retries another (a transient error); both end cancelled.
    let retry = Outcome::Retry {
        error: TaskError::transient("host_error", "x"),
        delay_ms: 0,
    };
    assert_eq!(
        a.complete(&[(held(&ds[0]), Outcome::Released), (held(&ds[1]), retry)])
            .await
            .unwrap(),
        (0, 0)
    );
    for task in &id[..2] {
        let info = fx.info(task).await;
        assert_eq!(info.status, TaskStatus::Cancelled, "{}", info.payload);
        assert!(info.finished_at_ms.is_some());
        assert!(fx.pttl(&fx.task_key(task)).await > 0);
    }
    assert_eq!(fx.hgetall("rec:c").await["status"], "cancelled");
    assert!(fx.delayed().await.is_empty());
    // Leaving: the cancel-requested one ends, the other goes back.
    assert_eq!(a.leave().await.unwrap(), 1);
    assert_eq!(fx.status(&id[2]).await, TaskStatus::Cancelled);
    assert_eq!(fx.status(&id[3]).await, TaskStatus::Queued);
    assert_eq!(fx.counter("tasks_cancelled").await, 3);
    assert_eq!(fx.counter("tasks_released").await, 1);
    assert_eq!(fx.counter("tasks_retried").await, 0);
    assert_eq!(fx.counter("active_tasks").await, 0);
    fx.assert_balanced().await;
    assert_eq!(fx.queue.promote_due().await.unwrap(), 0);
    assert_eq!(ids(&b.fetch(10, true).await.unwrap()), vec![id[3].clone()]);
}

#[tokio::test]
async fn leave_keeps_entries_read_but_never_started() {
    let fx = setup("leave-unadopted", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx.queue.submit_one(spec(5, "x")).await.unwrap();
    // A blocking read delivered the entry, then the adopt call never ran
    // (say Redis dropped the connection in between).
    let mut conn = fx.conn.clone();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("a")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(fx.stream(Class::Normal))
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fx.pending(Class::Normal).await.len(), 1);
    assert_eq!(fx.status(&id).await, TaskStatus::Queued);
    assert_eq!(a.leave().await.unwrap(), 1);
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(info.attempts, 0);
    assert_eq!(fx.counter("active_tasks").await, 0);
    fx.assert_balanced().await;
    let got = b.fetch(1, false).await.unwrap();
    assert_eq!(ids(&got), vec![id]);
    assert_eq!(got[0].attempt, 1);
}

#[tokio::test]
async fn redeliveries_past_the_limit_are_visible_to_the_worker() {
    let fx = setup("past-limit", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let mut once = spec(5, "x");
    once.max_attempts = Some(1);
    let id = fx.queue.submit_one(once).await.unwrap();
    let first = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!((first.attempt, first.max_attempts), (1, 1));
    tokio::time::sleep(PAST_VISIBILITY).await;
    // Its worker died: the next delivery says it is over the limit, so
    // the worker dead-letters it as worker_lost instead of running it.
    let again = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(again.task_id, id);
    assert_eq!((again.attempt, again.max_attempts), (2, 1));
    let lost = Outcome::Failed(TaskError::permanent("worker_lost", "delivered 2 times"));
    assert_eq!(b.complete(&[(held(&again), lost)]).await.unwrap(), (0, 0));
    let dlq = fx.queue.dlq(1).await.unwrap();
    assert_eq!(dlq[0].fields["reason"], "worker_lost");
    assert_eq!(dlq[0].fields["attempts"], "2");
    assert_eq!(dlq[0].fields["worker"], "b");
    fx.assert_balanced().await;
}

#[tokio::test]
async fn dead_consumers_are_pruned_and_live_ones_kept() {
    let config = QueueConfig {
        visibility_timeout: ms(200),
        keepalive: ms(50),
        heartbeat_ttl: ms(150),
        ..fast()
    };
    let fx = setup("prune", config).await;
    let dead = fx.consumer("dead").await;
    let live = fx.consumer("live").await;
    let sweeper = fx.consumer("sweeper").await;
    fx.queue
        .submit(&[spec(5, "a"), spec(5, "b")])
        .await
        .unwrap();
    let a = dead.fetch(1, false).await.unwrap();
    dead.complete(&[done(&a[0], "ok")]).await.unwrap();
    let b = live.fetch(1, false).await.unwrap();
    live.complete(&[done(&b[0], "ok")]).await.unwrap();
    tokio::time::sleep(ms(300)).await;
    // Only `live` still beats.
    live.keepalive(&[], "{}").await.unwrap();
    assert_eq!(sweeper.prune_dead().await.unwrap(), 1);
    let mut conn = fx.queue.connection();
    let consumers: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(fx.queue.keys().stream(Class::Normal))
        .arg(GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    let names: Vec<String> = consumers
        .iter()
        .filter_map(|c| match c.get("name") {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    assert!(names.contains(&"live".to_string()), "{names:?}");
    assert!(!names.contains(&"dead".to_string()), "{names:?}");
}

#[tokio::test]
async fn task_ids_are_distinct_v4_uuids() {
    let fx = setup("uuids", fast()).await;
    let specs: Vec<TaskSpec> = (0..500).map(|_| spec(5, "u")).collect();
    let ids = fx.queue.submit(&specs).await.unwrap();
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 500);
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).unwrap();
        assert_eq!(uuid.get_version_num(), 4, "{id}");
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
    }
}

#[test]
fn consumer_names_carry_host_pid_and_boot_id() {
    let name = Consumer::unique_name();
    let parts: Vec<&str> = name.rsplitn(3, '-').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert_eq!(parts[1], std::process::id().to_string());
    assert_eq!(parts[0].len(), 8, "eight hex digits of the boot id: {name}");
    assert!(parts[0].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    assert_eq!(name, Consumer::unique_name(), "stable within a process");
}

/// A record submitted without initial fields exists already and runs
/// again: its last result goes at submission, and the new one lands (a
/// record's result is written with `HSETNX`).
#[tokio::test]
async fn a_record_that_runs_again_gets_the_new_result() {
    let fx = setup("run-again", fast()).await;
    let a = fx.consumer("a").await;
    for result in ["first", "second"] {
        fx.queue
            .submit_one(with_record(5, result, "rec:again"))
            .await
            .unwrap();
        let rec = fx.hgetall("rec:again").await;
        assert_eq!(rec["status"], "queued");
        assert!(!rec.contains_key("report"), "{rec:?}");
        assert!(!rec.contains_key("finished_at_ms"), "{rec:?}");
        let d = a.fetch(1, false).await.unwrap().pop().unwrap();
        assert_eq!(a.complete(&[done(&d, result)]).await.unwrap(), (1, 0));
        assert_eq!(fx.hgetall("rec:again").await["report"], result);
    }
    // The last result goes by the record's own field name, hosted or not.
    for hosts_task in [false, true] {
        let key = format!("rec:summary:{hosts_task}");
        for result in ["first", "second"] {
            let mut record = Record::new(key.clone(), "summary");
            record.hosts_task = hosts_task;
            let spec = TaskSpec {
                record: Some(record),
                ..spec(5, result)
            };
            fx.queue.submit_one(spec).await.unwrap();
            assert!(!fx.hgetall(&key).await.contains_key("summary"));
            let d = a.fetch(1, false).await.unwrap().pop().unwrap();
            assert_eq!(a.complete(&[done(&d, result)]).await.unwrap(), (1, 0));
            assert_eq!(fx.hgetall(&key).await["summary"], result);
        }
    }
}

/// Set members and index entries go in one call per key, in chunks of
/// 1,000 values: a batch above that joins whole.
#[tokio::test]
async fn a_big_batch_joins_its_sets_whole() {
    let fx = setup("big-batch", fast()).await;
    let specs: Vec<TaskSpec> = (0..2_100)
        .map(|n| {
            let mut record = Record::new(format!("rec:big:{n}"), "report");
            record.init = vec![("n".to_string(), n.to_string())];
            record.index = Some(("big:index".to_string(), n.to_string()));
            TaskSpec {
                record: Some(record),
                holds: Some(if n % 2 == 0 { "res:even" } else { "res:odd" }.to_string()),
                ..spec(5, "big")
            }
        })
        .collect();
    let ids = fx.queue.submit(&specs).await.unwrap();
    assert_eq!(ids.len(), 2_100);
    let mut conn = fx.queue.connection();
    for (set, want) in [("res:even", 1_050), ("res:odd", 1_050)] {
        let n: u64 = redis::cmd("SCARD")
            .arg(set)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, want, "{set}");
    }
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("big:index")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut want: Vec<String> = (0..2_100).map(|n: u32| n.to_string()).collect();
    let mut got = members;
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);

    // Ending them leaves the sets in one call per set, as many at once.
    let a = fx.consumer("a").await;
    let mut left = 2_100;
    while left > 0 {
        let ds = a.fetch(700, false).await.unwrap();
        let outcomes: Vec<(Held, Outcome)> = ds.iter().map(|d| done(d, "r")).collect();
        assert_eq!(a.complete(&outcomes).await.unwrap(), (ds.len() as u64, 0));
        left -= ds.len();
    }
    for set in ["res:even", "res:odd"] {
        assert!(!fx.exists(set).await, "{set} is empty");
    }
    fx.assert_balanced().await;
}

#[tokio::test]
async fn holders_are_the_tasks_that_may_still_run() {
    let fx = setup("holders", fast()).await;
    let holding = |payload: &str| TaskSpec {
        holds: Some("res:tasks".to_string()),
        ..spec(5, payload)
    };
    let ids = fx
        .queue
        .submit(&[holding("a"), holding("b"), spec(5, "free")])
        .await
        .unwrap();
    let mut both = vec![ids[0].clone(), ids[1].clone()];
    both.sort_unstable();
    assert_eq!(fx.queue.holders("res:tasks").await.unwrap(), both);

    // Running still holds; done does not, and leaves the set as it ends
    // (read raw: `holders` would prune it too).
    let a = fx.consumer("a").await;
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(d.task_id, ids[0]);
    assert_eq!(fx.queue.holders("res:tasks").await.unwrap(), both);
    a.complete(&[done(&d, "r")]).await.unwrap();
    let members = |fx: &Fx| {
        let mut conn = fx.queue.connection();
        async move {
            let mut m: Vec<String> = redis::cmd("SMEMBERS")
                .arg("res:tasks")
                .query_async(&mut conn)
                .await
                .unwrap();
            m.sort_unstable();
            m
        }
    };
    assert_eq!(members(&fx).await, vec![ids[1].clone()]);
    assert_eq!(
        fx.queue.holders("res:tasks").await.unwrap(),
        vec![ids[1].clone()]
    );
    // A cancelled task lets go too, and the set is emptied.
    fx.queue.cancel(&ids[1]).await.unwrap();
    assert!(members(&fx).await.is_empty());
    assert!(fx.queue.holders("res:tasks").await.unwrap().is_empty());
    assert!(!fx.exists("res:tasks").await);
    assert!(fx.queue.holders("nothing:here").await.unwrap().is_empty());

    // Dead-lettered, a task lets go; requeued, it holds again.
    let c = fx.queue.submit(&[holding("c")]).await.unwrap().remove(0);
    let d = a.fetch(5, false).await.unwrap();
    let d = d.iter().find(|d| d.task_id == c).unwrap();
    a.complete(&[(
        Held::from(d),
        Outcome::Failed(TaskError::permanent("trap", "x")),
    )])
    .await
    .unwrap();
    assert!(members(&fx).await.is_empty());
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 1);
    assert_eq!(members(&fx).await, vec![c.clone()]);
    assert_eq!(fx.queue.holders("res:tasks").await.unwrap(), vec![c]);
}

#[tokio::test]
async fn a_record_is_created_with_its_task() {
    let fx = setup("record-init", fast()).await;
    let mut record = Record::new("rec:7".to_string(), "report");
    record.init = vec![
        ("definition".to_string(), "{\"x\":1}".to_string()),
        ("created_at_ms".to_string(), "123".to_string()),
    ];
    record.index = Some(("recent".to_string(), "7".to_string()));
    let with_init = TaskSpec {
        record: Some(record),
        ..spec(5, "a")
    };
    // Mixed with tasks without a record or fields, in one batch.
    let ids = fx
        .queue
        .submit(&[spec(5, "b"), with_init, with_record(5, "c", "rec:8")])
        .await
        .unwrap();
    let rec = fx.hgetall("rec:7").await;
    assert_eq!(rec["definition"], "{\"x\":1}");
    assert_eq!(rec["created_at_ms"], "123");
    assert_eq!(rec["task_id"], ids[1]);
    assert_eq!(rec["status"], "queued");
    assert_eq!(fx.hgetall("rec:8").await["task_id"], ids[2]);
    let mut conn = fx.queue.connection();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("recent")
        .arg("7")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(score.unwrap() > 1.7e12, "scored by server time in ms");
    assert_eq!(fx.xlen(Class::Normal).await, 3);
}

#[tokio::test]
async fn backlog_counts_what_waits_and_how_long_the_oldest_has() {
    let fx = setup("backlog", fast()).await;
    assert_eq!(fx.queue.backlog().await.unwrap(), Default::default());
    fx.queue
        .submit(&[spec(5, "a"), spec(5, "b"), spec(1, "c")])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let backlog = fx.queue.backlog().await.unwrap();
    assert_eq!(backlog.waiting, 3);
    assert!(backlog.oldest_wait_ms.unwrap() >= 50, "{backlog:?}");
    // Two taken: one waits (the low one), two run.
    let a = fx.consumer("a").await;
    let taken = a.fetch(2, false).await.unwrap();
    assert_eq!(taken.len(), 2);
    let backlog = fx.queue.backlog().await.unwrap();
    assert_eq!((backlog.waiting, backlog.active), (1, 2));
    a.complete(&[done(&taken[0], "r")]).await.unwrap();
    let backlog = fx.queue.backlog().await.unwrap();
    assert_eq!((backlog.active, backlog.finished), (1, 1));
}

#[tokio::test]
async fn a_guarded_submission_happens_once() {
    let fx = setup("guard", fast()).await;
    let mut conn = fx.queue.connection();
    let () = redis::cmd("HSET")
        .arg("sched:1")
        .arg("next")
        .arg("100")
        .query_async(&mut conn)
        .await
        .unwrap();
    let guard = crate::Guard {
        key: "sched:1".into(),
        field: "next".into(),
        expect: "100".into(),
        set: vec![("next".into(), "200".into()), ("last".into(), "100".into())],
        index: Some(("due".into(), "1".into(), 200)),
    };
    let ids = fx
        .queue
        .submit_guarded(&[spec(5, "a"), spec(5, "b")], std::slice::from_ref(&guard))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let sched = fx.hgetall("sched:1").await;
    assert_eq!(
        (sched["next"].as_str(), sched["last"].as_str()),
        ("200", "100")
    );
    // The same occurrence again (another process): refused, nothing queued.
    let again = fx
        .queue
        .submit_guarded(&[spec(5, "c")], std::slice::from_ref(&guard))
        .await
        .unwrap_err();
    assert!(matches!(again, QueueError::GuardFailed(_)), "{again}");
    assert_eq!(fx.xlen(Class::Normal).await, 2);
    assert_eq!(fx.queue.counters().await.unwrap().tasks_submitted, 2);
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg("due")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, Some(200));
}

#[tokio::test]
async fn a_guard_with_an_empty_expect_creates_a_record_once() {
    let fx = setup("guard-create", fast()).await;
    let mut conn = fx.queue.connection();
    let () = redis::cmd("HSET")
        .arg("sched:1")
        .arg("next")
        .arg("100")
        .query_async(&mut conn)
        .await
        .unwrap();
    let occurrence = |next: &str| crate::Guard {
        key: "sched:1".into(),
        field: "next".into(),
        expect: next.into(),
        set: vec![("next".into(), "200".into())],
        index: None,
    };
    let create = |id: &str| crate::Guard {
        key: format!("rec:{id}"),
        field: "status".into(),
        expect: String::new(),
        set: vec![("status".into(), "queued".into()), ("n".into(), id.into())],
        index: Some(("recs".into(), id.into(), id.parse().unwrap())),
    };
    fx.queue
        .submit_guarded(&[spec(5, "a")], &[occurrence("100"), create("7")])
        .await
        .unwrap();
    let rec = fx.hgetall("rec:7").await;
    assert_eq!((rec["status"].as_str(), rec["n"].as_str()), ("queued", "7"));
    // The record exists now: a second creation of it is refused, and the
    // guard that held before it moves nothing either.
    let () = redis::cmd("HSET")
        .arg("sched:1")
        .arg("next")
        .arg("300")
        .query_async(&mut conn)
        .await
        .unwrap();
    let again = fx
        .queue
        .submit_guarded(&[spec(5, "b")], &[occurrence("300"), create("7")])
        .await
        .unwrap_err();
    assert!(
        matches!(&again, QueueError::GuardFailed(key) if key == "rec:7"),
        "{again}"
    );
    assert_eq!(fx.hgetall("sched:1").await["next"], "300");
    // The occurrence already moved on: refused, naming the schedule, and
    // no record is created.
    let taken = fx
        .queue
        .submit_guarded(&[spec(5, "c")], &[occurrence("100"), create("8")])
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, QueueError::GuardFailed(key) if key == "sched:1"),
        "{taken}"
    );
    assert!(!fx.exists("rec:8").await);
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    let index: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg("recs")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(index, [("7".to_string(), 7)]);
}

#[tokio::test]
async fn acked_entries_leave_the_stream_in_and_out_of_order() {
    let fx = setup("trim", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let early = fx.queue.submit_one(spec(5, "b0")).await.unwrap();
    let held_by_b = b.fetch(1, false).await.unwrap();
    assert_eq!(ids(&held_by_b), vec![early]);
    for i in 0..5 {
        fx.queue
            .submit_one(spec(5, &format!("a{i}")))
            .await
            .unwrap();
    }
    let ds = a.fetch(5, false).await.unwrap();
    assert_eq!(ds.len(), 5);
    // Out of order: b's older entry and ds[0] stay pending below them.
    assert_eq!(
        a.complete(&[done(&ds[3], "r"), done(&ds[1], "r")])
            .await
            .unwrap(),
        (2, 0)
    );
    assert_eq!(fx.xlen(Class::Normal).await, 4);
    assert_eq!(fx.pending(Class::Normal).await.len(), 4);
    // New entries, never delivered, are never trimmed.
    fx.queue.submit_one(spec(5, "w0")).await.unwrap();
    fx.queue.submit_one(spec(5, "w1")).await.unwrap();
    assert_eq!(a.complete(&[done(&ds[0], "r")]).await.unwrap(), (1, 0));
    assert_eq!(fx.xlen(Class::Normal).await, 5);
    assert_eq!(fx.queue.stats().await.unwrap().waiting["normal"], 2);
    // b's entry is the oldest pending: nothing of it goes.
    assert_eq!(
        a.complete(&[done(&ds[2], "r"), done(&ds[4], "r")])
            .await
            .unwrap(),
        (2, 0)
    );
    let pending = fx.pending(Class::Normal).await;
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, held_by_b[0].entry_id);
    assert_eq!(fx.xlen(Class::Normal).await, 3);
    assert_eq!(fx.queue.stats().await.unwrap().waiting["normal"], 2);
    fx.assert_balanced().await;
    // The oldest pending acked last: everything before the waiting ones goes.
    assert_eq!(
        b.complete(&[done(&held_by_b[0], "r")]).await.unwrap(),
        (1, 0)
    );
    assert_eq!(fx.xlen(Class::Normal).await, 2);
    let rest = a.fetch(5, false).await.unwrap();
    let payloads: Vec<&str> = rest.iter().map(|d| d.payload.as_str()).collect();
    assert_eq!(payloads, ["w0", "w1"]);
    let outcomes: Vec<_> = rest.iter().map(|d| done(d, "r")).collect();
    assert_eq!(a.complete(&outcomes).await.unwrap(), (2, 0));
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert!(fx.pending(Class::Normal).await.is_empty());
    fx.assert_balanced().await;
}

/// A task hash as written before the immutable fields were packed into
/// `spec` (one field each, and `stream`).
async fn old_layout_task(fx: &Fx, id: &str, payload: &str, record: Option<&str>) {
    let mut conn = fx.conn.clone();
    let stream = fx.stream(Class::Normal);
    let entry: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("t")
        .arg(id)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut hset = redis::cmd("HSET");
    hset.arg(fx.task_key(id)).arg(&[
        ("kind", "echo"),
        ("payload", payload),
        ("priority", "6"),
        ("class", "normal"),
        ("timeout_ms", "1234"),
        ("max_attempts", "2"),
        ("created_us", "1700000000000000"),
        ("status", "queued"),
        ("stream", &stream),
        ("entry", &entry),
    ]);
    if let Some(record) = record {
        hset.arg("record")
            .arg(record)
            .arg("result_field")
            .arg("report");
    }
    let () = hset.query_async(&mut conn).await.unwrap();
    let () = redis::cmd("HINCRBY")
        .arg(fx.queue.keys().counters())
        .arg("tasks_submitted")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn tasks_of_the_old_hash_layout_still_run_and_cancel() {
    let fx = setup("old-layout", fast()).await;
    let a = fx.consumer("a").await;
    old_layout_task(&fx, "old-1", "p1", Some("rec:old")).await;
    let info = fx.info("old-1").await;
    assert_eq!((info.kind.as_str(), info.priority), ("echo", 6));
    assert_eq!(info.created_at_ms, Some(1_700_000_000_000));
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(
        (
            d.kind.as_str(),
            d.payload.as_str(),
            d.attempt,
            d.max_attempts
        ),
        ("echo", "p1", 1, 2)
    );
    assert_eq!((d.timeout_ms, d.priority), (1234, 6));
    assert_eq!(a.complete(&[done(&d, "old-report")]).await.unwrap(), (1, 0));
    let rec = fx.hgetall("rec:old").await;
    assert_eq!(rec["report"], "old-report");
    assert_eq!(rec["status"], "completed");
    assert_eq!(fx.info("old-1").await.progress, Some(1.0));
    let durations = fx.queue.durations().await.unwrap();
    assert_eq!(durations["completed"].count, 1);

    old_layout_task(&fx, "old-2", "p2", None).await;
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    assert_eq!(
        fx.queue.cancel("old-2").await.unwrap(),
        CancelState::Cancelled
    );
    assert_eq!(fx.xlen(Class::Normal).await, 0);

    // Released at shutdown, it goes back to its class stream.
    old_layout_task(&fx, "old-3", "p3", None).await;
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(
        a.complete(&[(held(&d), Outcome::Released)]).await.unwrap(),
        (0, 0)
    );
    assert_eq!(fx.queue.stats().await.unwrap().waiting["normal"], 1);
    let again = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!((again.task_id.as_str(), again.attempt), ("old-3", 1));
    assert_eq!(
        a.complete(&[(
            held(&again),
            Outcome::Failed(TaskError::permanent("boom", "it broke"))
        )])
        .await
        .unwrap(),
        (0, 0)
    );
    let dlq = fx.queue.dlq(1).await.unwrap();
    assert_eq!(dlq[0].fields["kind"], "echo");
    assert_eq!(dlq[0].fields["task_id"], "old-3");
    fx.assert_balanced().await;
}

/// A record that hosts its task ([`Record::hosts_task`]); created with it
/// when `init` is set.
fn hosted(payload: &str, record: &str, init: bool) -> TaskSpec {
    let mut r = Record::new(record.to_string(), "report");
    r.hosts_task = true;
    if init {
        r.init = vec![("definition".to_string(), payload.to_string())];
    }
    TaskSpec {
        record: Some(r),
        holds: Some("plugin:tasks".into()),
        ..spec(5, payload)
    }
}

/// One hash per hosted task through retry, the DLQ, requeue, reclaim and
/// completion: no task hash of its own, the record's `error` always its
/// JSON, the task readable by id throughout, and nothing expires.
#[tokio::test]
async fn a_record_hosts_its_task_through_its_whole_life() {
    let fx = setup("hosted-life", fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx
        .queue
        .submit_one(hosted("def", "rec:h", true))
        .await
        .unwrap();
    assert!(!fx.exists(&fx.task_key(&id)).await);
    assert_eq!(
        fx.hgetall(&fx.queue.keys().task_homes()).await[&id],
        "rec:h"
    );
    let rec = fx.hgetall("rec:h").await;
    assert_eq!(
        (rec["task_id"].as_str(), rec["status"].as_str()),
        (id.as_str(), "queued")
    );
    assert_eq!(
        (rec["payload"].as_str(), rec["definition"].as_str()),
        ("def", "def")
    );
    assert_eq!(
        fx.queue.holders("plugin:tasks").await.unwrap(),
        vec![id.clone()]
    );

    // A transient failure: back to the delayed set, the message apart.
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert!(d.hosted);
    assert_eq!((d.record.as_str(), d.attempt), ("rec:h", 1));
    let rec = fx.hgetall("rec:h").await;
    assert_eq!(
        (rec["status"].as_str(), rec["worker"].as_str()),
        ("running", "a")
    );
    assert!(rec.contains_key("started_at_ms") && rec.contains_key("started_us"));
    fx.queue
        .report_progress(&[(id.clone(), 0.5)])
        .await
        .unwrap();
    assert_eq!(fx.hgetall("rec:h").await["progress"], "0.5000");
    let retry = Outcome::Retry {
        error: TaskError::transient("host_error", "flaky"),
        delay_ms: 0,
    };
    assert_eq!(a.complete(&[(held(&d), retry)]).await.unwrap(), (0, 0));
    let rec = fx.hgetall("rec:h").await;
    assert_eq!(
        (rec["status"].as_str(), rec["task_error"].as_str()),
        ("queued", "flaky")
    );
    assert!(!rec.contains_key("error"), "{rec:?}");
    let info = fx.info(&id).await;
    assert_eq!(
        (info.status, info.error.as_deref()),
        (TaskStatus::Queued, Some("flaky"))
    );
    assert_eq!(info.retries.len(), 1);

    // The next attempt fails for good: the DLQ, and the record's error JSON.
    fx.queue.promote_due().await.unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!((d.task_id.as_str(), d.attempt), (id.as_str(), 2));
    let failed = Outcome::Failed(TaskError::permanent("strategy_trap", "boom"));
    assert_eq!(a.complete(&[(held(&d), failed)]).await.unwrap(), (0, 0));
    let rec = fx.hgetall("rec:h").await;
    assert_eq!(rec["status"], "failed");
    let error: serde_json::Value = serde_json::from_str(&rec["error"]).unwrap();
    assert_eq!(error["code"], "strategy_trap");
    let info = fx.info(&id).await;
    assert_eq!(
        (info.status, info.error.as_deref()),
        (TaskStatus::Failed, Some("boom"))
    );
    assert_eq!(fx.queue.dlq(10).await.unwrap()[0].fields["task_id"], id);
    assert!(fx.queue.holders("plugin:tasks").await.unwrap().is_empty());

    // Requeued from the DLQ: `a` takes it and stalls, `b` reclaims it
    // (the reclaimed entry carries the record too) and completes it.
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 1);
    let rec = fx.hgetall("rec:h").await;
    assert_eq!(rec["status"], "queued");
    assert!(
        !rec.contains_key("error") && !rec.contains_key("task_error"),
        "{rec:?}"
    );
    let stale = a.fetch(1, false).await.unwrap().pop().unwrap();
    tokio::time::sleep(PAST_VISIBILITY).await;
    let fresh = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert!(fresh.hosted);
    assert_eq!((fresh.task_id.as_str(), fresh.attempt), (id.as_str(), 2));
    assert_eq!(b.complete(&[done(&fresh, "report")]).await.unwrap(), (1, 0));
    assert_eq!(a.complete(&[done(&stale, "late")]).await.unwrap(), (0, 1));
    let rec = fx.hgetall("rec:h").await;
    assert_eq!(
        (
            rec["status"].as_str(),
            rec["report"].as_str(),
            rec["progress"].as_str()
        ),
        ("completed", "report", "1")
    );
    assert_eq!(fx.pttl("rec:h").await, -1, "a record does not expire");
    let info = fx.info(&id).await;
    assert_eq!(
        (info.status, info.worker.as_deref()),
        (TaskStatus::Completed, Some("b"))
    );
    assert_eq!(info.result, None, "the result is kept once, on the record");
    assert!(!fx.exists(&fx.task_key(&id)).await);

    // Cancelled while queued, and purged from the DLQ after a failure:
    // either way the record stays, without a TTL.
    let queued = fx
        .queue
        .submit_one(hosted("q", "rec:q", true))
        .await
        .unwrap();
    assert_eq!(
        fx.queue.cancel(&queued).await.unwrap(),
        CancelState::Cancelled
    );
    assert_eq!(fx.hgetall("rec:q").await["status"], "cancelled");
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    let dead = fx
        .queue
        .submit_one(hosted("d", "rec:d", true))
        .await
        .unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    let failed = Outcome::Failed(TaskError::permanent("strategy_trap", "boom"));
    assert_eq!(a.complete(&[(held(&d), failed)]).await.unwrap(), (0, 0));
    assert_eq!(fx.queue.purge_dlq().await.unwrap(), 1);
    assert_eq!(fx.info(&dead).await.status, TaskStatus::Failed);
    for rec in ["rec:h", "rec:q", "rec:d"] {
        assert_eq!(fx.pttl(rec).await, -1, "{rec} does not expire");
    }
    fx.assert_balanced().await;
}

/// Running a hosting record again supersedes its task, queued or running:
/// it ends as cancelled, and a late outcome of it is only acknowledged.
#[tokio::test]
async fn running_a_hosting_record_again_supersedes_its_task() {
    let fx = setup("hosted-again", fast()).await;
    let a = fx.consumer("a").await;
    let client = redis::Client::open(fx.t.server.url()).unwrap();
    let mut cancels = client.get_async_pubsub().await.unwrap();
    cancels
        .subscribe(fx.queue.keys().cancel_channel())
        .await
        .unwrap();

    let first = fx
        .queue
        .submit_one(hosted("one", "rec:s", true))
        .await
        .unwrap();
    let running = a.fetch(1, false).await.unwrap().pop().unwrap();
    let second = fx
        .queue
        .submit_one(hosted("two", "rec:s", false))
        .await
        .unwrap();
    // The running one's worker is told to stop.
    let told = tokio::time::timeout(Duration::from_secs(5), cancels.on_message().next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(told.get_payload::<String>().unwrap(), first);
    assert!(fx.queue.task(&first).await.unwrap().is_none());
    assert_eq!(fx.counter("tasks_cancelled").await, 1);
    // Its late result is acknowledged only, and kept off the new run.
    assert_eq!(
        a.complete(&[done(&running, "stale")]).await.unwrap(),
        (0, 1)
    );
    let rec = fx.hgetall("rec:s").await;
    assert_eq!(
        (rec["task_id"].as_str(), rec["status"].as_str()),
        (second.as_str(), "queued")
    );
    assert!(
        !rec.contains_key("report") && !rec.contains_key("worker"),
        "{rec:?}"
    );

    // A queued one superseded leaves the stream with it.
    let third = fx
        .queue
        .submit_one(hosted("three", "rec:s", false))
        .await
        .unwrap();
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    assert_eq!(fx.counter("tasks_cancelled").await, 2);
    assert_eq!(
        fx.queue.holders("plugin:tasks").await.unwrap(),
        vec![third.clone()]
    );
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(
        (d.task_id.as_str(), d.payload.as_str()),
        (third.as_str(), "three")
    );

    // Cancelled while running; then a new run, released at shutdown.
    assert_eq!(
        fx.queue.cancel(&third).await.unwrap(),
        CancelState::Cancelling
    );
    let report = a.keepalive(&[held(&d)], "{}").await.unwrap();
    assert_eq!(report.cancel, vec![third.clone()]);
    assert_eq!(
        a.complete(&[(held(&d), Outcome::Cancelled)]).await.unwrap(),
        (0, 0)
    );
    assert_eq!(fx.hgetall("rec:s").await["status"], "cancelled");
    assert_eq!(fx.pttl("rec:s").await, -1);
    let fourth = fx
        .queue
        .submit_one(hosted("four", "rec:s", false))
        .await
        .unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(d.task_id, fourth);
    assert_eq!(a.leave().await.unwrap(), 1);
    let info = fx.info(&fourth).await;
    assert_eq!((info.status, info.attempts), (TaskStatus::Queued, 0));
    let b = fx.consumer("b").await;
    let d = b.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(b.complete(&[done(&d, "four")]).await.unwrap(), (1, 0));
    assert_eq!(fx.hgetall("rec:s").await["report"], "four");

    // A running task of the layout before hosting, mirrored into a record
    // that now runs again hosted: it lets go of the record, and its late
    // result stays off it.
    let legacy = fx
        .queue
        .submit_one(with_record(5, "legacy", "rec:l"))
        .await
        .unwrap();
    let old = b.fetch(1, false).await.unwrap().pop().unwrap();
    assert!(!old.hosted && old.record == "rec:l");
    let new = fx
        .queue
        .submit_one(hosted("new", "rec:l", false))
        .await
        .unwrap();
    assert_eq!(b.complete(&[done(&old, "old")]).await.unwrap(), (1, 0));
    assert_eq!(fx.info(&legacy).await.status, TaskStatus::Completed);
    let rec = fx.hgetall("rec:l").await;
    assert_eq!(
        (rec["task_id"].as_str(), rec["status"].as_str()),
        (new.as_str(), "queued")
    );
    assert!(!rec.contains_key("report"), "{rec:?}");
    let d = b.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(b.complete(&[done(&d, "new")]).await.unwrap(), (1, 0));
    assert_eq!(fx.hgetall("rec:l").await["report"], "new");
    fx.assert_balanced().await;
}
