//! Tasks that go back to the queue: retries through the delayed set, and
//! releases that use no attempt.

use super::*;

#[tokio::test]
async fn retry_waits_in_the_delayed_set() {
    let fx = setup(fast()).await;
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
async fn released_outcome_requeues_without_using_an_attempt() {
    let fx = setup(fast()).await;
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
