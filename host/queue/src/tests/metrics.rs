//! Counters that balance, and the backlog an autoscaler reads.

use super::*;

#[tokio::test]
async fn counters_balance_after_a_mixed_run() {
    let fx = setup(fast()).await;
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
async fn backlog_counts_what_waits_and_how_long_the_oldest_has() {
    let fx = setup(fast()).await;
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
