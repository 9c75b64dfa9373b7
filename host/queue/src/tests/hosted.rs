//! Records that host their task: one hash through its whole life, and
//! a new run superseding the old.

use super::*;
use futures_util::StreamExt;

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
    let fx = setup(fast()).await;
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
    let fx = setup(fast()).await;
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
