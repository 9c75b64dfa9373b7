//! Task hashes of the layout before the packed `spec` field.

use super::*;

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
    let fx = setup(fast()).await;
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
