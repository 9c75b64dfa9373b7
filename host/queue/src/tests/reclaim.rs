//! Reclaim of a dead worker's entries, and what its late outcomes do.

use super::*;

#[tokio::test]
async fn reclaim_moves_ownership_and_stale_outcomes_do_not_requeue() {
    let fx = setup(fast()).await;
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
    let fx = setup(fast()).await;
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
async fn redeliveries_past_the_limit_are_visible_to_the_worker() {
    let fx = setup(fast()).await;
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
