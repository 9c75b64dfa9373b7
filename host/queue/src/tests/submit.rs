//! Submission: validation, all or nothing, and the ids it hands out.

use super::*;

#[tokio::test]
async fn submit_validates_and_is_all_or_nothing() {
    let fx = setup(QueueConfig::default()).await;
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
async fn task_ids_are_distinct_v4_uuids() {
    let fx = setup(fast()).await;
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
