//! Completion: idempotent, mirrored into records, and the stream trimmed
//! behind acknowledged entries.

use super::*;

#[tokio::test]
async fn completion_is_idempotent_and_mirrors_the_record() {
    let fx = setup(fast()).await;
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
    let fx = setup(fast()).await;
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
async fn acked_entries_leave_the_stream_in_and_out_of_order() {
    let fx = setup(fast()).await;
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
