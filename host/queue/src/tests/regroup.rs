//! A consumer group destroyed (XGROUP DESTROY) or made again while
//! workers hold tasks: the running tasks stay with their workers, no
//! delivery is lost, and each task completes once.

use super::*;

async fn destroy_group(fx: &Fx, class: Class) {
    let mut conn = fx.conn.clone();
    let destroyed: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(fx.stream(class))
        .arg(GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
}

/// Pending entries by consumer, task ids sorted.
async fn pending_by_consumer(fx: &Fx, class: Class) -> BTreeMap<String, Vec<String>> {
    let mut by = BTreeMap::<String, Vec<String>>::new();
    let mut conn = fx.conn.clone();
    for p in fx.pending(class).await {
        let entry: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XRANGE")
            .arg(fx.stream(class))
            .arg(&p.id)
            .arg(&p.id)
            .query_async(&mut conn)
            .await
            .unwrap();
        by.entry(p.consumer)
            .or_default()
            .push(entry[0].1["t"].clone());
    }
    for ids in by.values_mut() {
        ids.sort();
    }
    by
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_destroyed_group_comes_back_with_running_tasks_still_claimed() {
    let fx = setup(fast()).await;
    let (a, b, c) = (
        fx.consumer("a").await,
        fx.consumer("b").await,
        fx.consumer("c").await,
    );
    let tasks = fx
        .queue
        .submit(&[
            spec(5, "ended"),
            spec(5, "a1"),
            with_record(5, "a2", "rec:a2"),
            spec(5, "b1"),
            spec(5, "b2"),
            spec(5, "q1"),
            spec(5, "q2"),
        ])
        .await
        .unwrap();
    let on_a = a.fetch(3, false).await.unwrap();
    let on_b = b.fetch(2, false).await.unwrap();
    assert_eq!(ids(&on_a), tasks[..3]);
    assert_eq!(ids(&on_b), tasks[3..5]);
    // The first ended elsewhere while its entry stayed pending.
    let mut conn = fx.conn.clone();
    let () = redis::pipe()
        .hset(fx.task_key(&tasks[0]), "status", "cancelled")
        .ignore()
        .hincr(fx.queue.keys().counters(), "tasks_cancelled", 1)
        .ignore()
        .hincr(fx.queue.keys().counters(), "active_tasks", -1)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();

    destroy_group(&fx, Class::Normal).await;
    // The next fetch makes the group again: only the waiting tasks are
    // new; the running ones are pending to their workers again.
    let on_c = c.fetch(10, true).await.unwrap();
    assert_eq!(ids(&on_c), tasks[5..]);
    assert!(on_c.iter().all(|d| d.attempt == 1));
    let pending = pending_by_consumer(&fx, Class::Normal).await;
    let expect: BTreeMap<String, Vec<String>> = [
        ("a".to_string(), sorted(tasks[1..3].to_vec())),
        ("b".to_string(), sorted(tasks[3..5].to_vec())),
        ("c".to_string(), sorted(tasks[5..].to_vec())),
    ]
    .into();
    assert_eq!(pending, expect);
    assert_eq!(
        fx.xlen(Class::Normal).await,
        6,
        "the ended task's entry went"
    );
    assert_eq!(
        fx.queue.ensure_groups().await.unwrap(),
        0,
        "nothing missing"
    );

    // Their workers keep them, and each completes once.
    let held_a: Vec<Held> = on_a[1..].iter().map(held).collect();
    assert!(a.keepalive(&held_a, "{}").await.unwrap().lost.is_empty());
    let held_b: Vec<Held> = on_b.iter().map(held).collect();
    assert!(b.keepalive(&held_b, "{}").await.unwrap().lost.is_empty());
    let dones = |ds: &[Delivery]| ds.iter().map(|d| done(d, "r")).collect::<Vec<_>>();
    assert_eq!(a.complete(&dones(&on_a[1..])).await.unwrap(), (2, 0));
    assert_eq!(b.complete(&dones(&on_b)).await.unwrap(), (2, 0));
    assert_eq!(c.complete(&dones(&on_c)).await.unwrap(), (2, 0));
    for id in &tasks[1..] {
        let info = fx.info(id).await;
        assert_eq!((info.status, info.attempts), (TaskStatus::Completed, 1));
    }
    assert_eq!(fx.hgetall("rec:a2").await["status"], "completed");
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert_eq!(fx.counter("tasks_completed").await, 6);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn a_fetch_meeting_a_destroyed_group_loses_no_delivery() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let tasks = fx
        .queue
        .submit(&[spec(9, "high"), spec(5, "normal"), spec(1, "low")])
        .await
        .unwrap();
    // The high class is read before the normal one fails: nothing it
    // started may be left running without being handed out.
    destroy_group(&fx, Class::Normal).await;
    let got = a.fetch(10, false).await.unwrap();
    assert_eq!(ids(&got), tasks);
    assert_eq!(fx.counter("active_tasks").await, 3);
    let outcomes: Vec<_> = got.iter().map(|d| done(d, "r")).collect();
    assert_eq!(a.complete(&outcomes).await.unwrap(), (3, 0));
    fx.assert_balanced().await;
}

#[tokio::test]
async fn outcomes_keepalives_and_leave_meeting_a_destroyed_group_are_written_once() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let tasks = fx
        .queue
        .submit(&[
            spec(5, "own"),
            with_record(5, "staged", "rec:s"),
            spec(5, "kept"),
            spec(5, "left"),
        ])
        .await
        .unwrap();
    let ds = a.fetch(4, false).await.unwrap();
    assert_eq!(ids(&ds), tasks);

    // An outcome: the script stops before writing, the group comes back,
    // and the batch is written once (a record's result staged ahead of
    // the script too).
    destroy_group(&fx, Class::Normal).await;
    let outcomes = vec![done(&ds[0], "r0"), done(&ds[1], "r1")];
    assert_eq!(a.complete(&outcomes).await.unwrap(), (2, 0));
    assert_eq!(fx.info(&tasks[0]).await.result.as_deref(), Some("r0"));
    let rec = fx.hgetall("rec:s").await;
    assert_eq!(
        (rec["status"].as_str(), rec["report"].as_str()),
        ("completed", "r1")
    );
    assert_eq!(fx.counter("tasks_completed").await, 2);

    // A keepalive: the running tasks stay this worker's.
    destroy_group(&fx, Class::Normal).await;
    let report = a
        .keepalive(&[held(&ds[2]), held(&ds[3])], "{}")
        .await
        .unwrap();
    assert!(report.lost.is_empty(), "{report:?}");
    assert_eq!(
        pending_by_consumer(&fx, Class::Normal).await["a"],
        sorted(tasks[2..].to_vec())
    );

    // Leaving: what it held goes back to the stream once.
    destroy_group(&fx, Class::Normal).await;
    assert_eq!(a.leave().await.unwrap(), 2);
    let b = fx.consumer("b").await;
    let again = b.fetch(10, false).await.unwrap();
    assert_eq!(sorted(ids(&again)), sorted(tasks[2..].to_vec()));
    let outcomes: Vec<_> = again.iter().map(|d| done(d, "r")).collect();
    assert_eq!(b.complete(&outcomes).await.unwrap(), (2, 0));
    assert_eq!(fx.counter("tasks_completed").await, 4);
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    fx.assert_balanced().await;
}

/// A group made again from id 0 by hand delivers running tasks' entries
/// again; the worker running one keeps it (its keepalive claims it back)
/// and settles the second delivery as a duplicate.
#[tokio::test]
async fn a_group_made_again_from_0_leaves_running_tasks_with_their_worker() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let id = fx.queue.submit_one(spec(5, "t")).await.unwrap();
    let first = a.fetch(1, false).await.unwrap().pop().unwrap();
    let mut conn = fx.conn.clone();
    let () = redis::pipe()
        .atomic()
        .cmd("XGROUP")
        .arg("DESTROY")
        .arg(fx.stream(Class::Normal))
        .arg(GROUP)
        .ignore()
        .cmd("XGROUP")
        .arg("CREATE")
        .arg(fx.stream(Class::Normal))
        .arg(GROUP)
        .arg("0")
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(fx.pending(Class::Normal).await.is_empty());
    let report = a.keepalive(&[held(&first)], "{}").await.unwrap();
    assert!(report.lost.is_empty(), "pending to no one, still ours");
    assert_eq!(fx.pending(Class::Normal).await[0].consumer, "a");

    let again = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!((again.task_id.as_str(), again.attempt), (id.as_str(), 2));
    // The worker does not run it twice: it waits for its running copy.
    assert_eq!(
        a.complete(&[(held(&again), Outcome::Duplicate)])
            .await
            .unwrap(),
        (0, 1),
        "the task still runs: its entry stays"
    );
    assert_eq!(fx.pending(Class::Normal).await.len(), 1);
    assert_eq!(a.complete(&[done(&first, "r")]).await.unwrap(), (1, 0));
    assert_eq!(
        a.complete(&[(held(&again), Outcome::Duplicate)])
            .await
            .unwrap(),
        (0, 1)
    );
    assert!(fx.pending(Class::Normal).await.is_empty());
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert_eq!(fx.info(&id).await.result.as_deref(), Some("r"));
    fx.assert_balanced().await;
}
