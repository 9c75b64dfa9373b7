//! The dead-letter stream: failures in, requeue and purge out.

use super::*;

#[tokio::test]
async fn failures_go_to_the_dlq_and_can_be_requeued() {
    let fx = setup(fast()).await;
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
