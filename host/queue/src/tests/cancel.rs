//! Cancellation of queued, running, waiting and finished tasks.

use super::*;
use futures_util::StreamExt;

#[tokio::test]
async fn cancel_queued_running_final_and_unknown() {
    let fx = setup(fast()).await;
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
async fn a_task_asked_to_cancel_is_not_run_again() {
    let fx = setup(fast()).await;
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
