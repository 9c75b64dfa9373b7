//! Fairness lanes: a lane with one task is served beside one with
//! 100,000, caps bound what a lane runs, and a lane task stays in its
//! lane through retry, the DLQ, reclaim, a lost group, release, cancel
//! and supersede. Also the DLQ's cap.

use super::*;
use std::collections::BTreeSet;

fn in_lane(lane: Option<&str>, payload: &str) -> TaskSpec {
    TaskSpec {
        lane: lane.map(str::to_string),
        ..spec(5, payload)
    }
}

/// `n` tasks in `lane`, 2,000 per submission.
async fn submit_many(fx: &Fx, lane: Option<&str>, n: usize) {
    let mut left = n;
    while left > 0 {
        let batch: Vec<TaskSpec> = (0..left.min(2_000))
            .map(|_| in_lane(lane, "bulk"))
            .collect();
        left -= fx.queue.submit(&batch).await.unwrap().len();
    }
}

fn lane_stream(fx: &Fx, class: Class, lane: Option<&str>) -> String {
    fx.queue.keys().lane_stream(class, lane)
}

async fn xlen_of(fx: &Fx, key: &str) -> u64 {
    let mut conn = fx.conn.clone();
    redis::cmd("XLEN")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Deliveries per lane, by the stream they came from.
fn by_lane(fx: &Fx, ds: &[Delivery], lanes: &[Option<&str>]) -> Vec<usize> {
    lanes
        .iter()
        .map(|lane| {
            let streams: Vec<String> = Class::ALL
                .into_iter()
                .map(|c| lane_stream(fx, c, *lane))
                .collect();
            ds.iter().filter(|d| streams.contains(&d.stream)).count()
        })
        .collect()
}

#[tokio::test]
async fn one_task_in_a_lane_is_served_beside_100000_in_another() {
    let fx = setup(QueueConfig::default()).await;
    submit_many(&fx, Some("a"), 100_000).await;
    let b = fx.queue.submit_one(in_lane(Some("b"), "b")).await.unwrap();
    let w = fx.consumer("w").await;
    let got = w.fetch(8, false).await.unwrap();
    assert_eq!(got.len(), 8);
    assert!(ids(&got).contains(&b), "b's task waits behind a's");
    let b_delivery = got.iter().find(|d| d.task_id == b).unwrap();
    assert_eq!(b_delivery.stream, "qt:lane:b:tasks");
    assert_eq!(by_lane(&fx, &got, &[Some("a"), Some("b")]), [7, 1]);
    assert_eq!(fx.info(&b).await.lane.as_deref(), Some("b"));
    // Nothing went to the default lane's streams.
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.waiting["normal"], 100_000 - 7);
    assert_eq!(stats.pending["normal"], 8);
    assert_eq!(stats.lanes["a"].waiting, 100_000 - 7);
    assert_eq!(stats.lanes["a"].running, 7);
    assert_eq!((stats.lanes["b"].waiting, stats.lanes["b"].running), (0, 1));
    assert_eq!(
        fx.queue.lane_depth(Some("a")).await.unwrap(),
        (100_000 - 7, 7)
    );
    assert_eq!(fx.queue.lane_depth(Some("b")).await.unwrap(), (0, 1));
    assert_eq!(fx.queue.lane_depth(None).await.unwrap(), (0, 0));
    assert_eq!(fx.queue.lane_depth(Some("never")).await.unwrap(), (0, 0));
    assert_eq!(fx.queue.lanes().await.unwrap(), ["a", "b"]);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn the_default_lane_takes_turns_like_a_named_one() {
    let fx = setup(QueueConfig::default()).await;
    let w = fx.consumer("w").await;
    // 100,000 in the default lane, one in a named lane.
    submit_many(&fx, None, 100_000).await;
    let b = fx.queue.submit_one(in_lane(Some("b"), "b")).await.unwrap();
    let got = w.fetch(8, false).await.unwrap();
    assert!(
        ids(&got).contains(&b),
        "b's task waits behind the default lane"
    );
    assert_eq!(by_lane(&fx, &got, &[None, Some("b")]), [7, 1]);
    // The other way round: one default task beside 20,000 of lane `a`
    // (the default lane's backlog goes first, so it has none left).
    let fx = setup(QueueConfig::default()).await;
    let w = fx.consumer("w").await;
    submit_many(&fx, Some("a"), 20_000).await;
    let d = fx.queue.submit_one(in_lane(None, "default")).await.unwrap();
    let got = w.fetch(8, false).await.unwrap();
    assert!(ids(&got).contains(&d), "the default lane waits behind a");
    let default = got.iter().find(|x| x.task_id == d).unwrap();
    assert_eq!(default.stream, fx.stream(Class::Normal));
    assert_eq!(fx.info(&d).await.lane, None);
}

#[tokio::test]
async fn lanes_take_turns_and_share_the_leftovers() {
    let fx = setup(QueueConfig::default()).await;
    for lane in ["a", "b", "c"] {
        submit_many(&fx, Some(lane), 10).await;
    }
    let w = fx.consumer("w").await;
    let mut all = Vec::new();
    for _ in 0..3 {
        // Four over three lanes: one each, and the extra one rotates.
        let got = w.fetch(4, false).await.unwrap();
        assert_eq!(got.len(), 4);
        let per = by_lane(&fx, &got, &[Some("a"), Some("b"), Some("c")]);
        assert!(per.iter().all(|n| (1..=2).contains(n)), "{per:?}");
        all.extend(got);
    }
    assert_eq!(
        by_lane(&fx, &all, &[Some("a"), Some("b"), Some("c")]),
        [4, 4, 4]
    );
    // Priorities still come first across lanes: a high task of `c` goes
    // before the normal ones of every lane.
    let high = fx
        .queue
        .submit_one(TaskSpec {
            lane: Some("c".into()),
            ..spec(9, "high")
        })
        .await
        .unwrap();
    let got = w.fetch(1, false).await.unwrap();
    assert_eq!(ids(&got), [high]);
    assert_eq!(got[0].stream, "qt:lane:c:tasks:high");
    // Drained lanes leave the waiting set; others stay.
    let rest = w.fetch(100, false).await.unwrap();
    assert_eq!(rest.len(), 18);
    assert!(w.fetch(100, false).await.unwrap().is_empty());
    let mut conn = fx.conn.clone();
    let waiting: Vec<String> = redis::cmd("SMEMBERS")
        .arg(fx.queue.keys().lanes_waiting())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(waiting.is_empty(), "{waiting:?}");
    fx.assert_balanced().await;
}

#[tokio::test]
async fn a_capped_lane_runs_at_most_its_cap() {
    let fx = setup(QueueConfig::default()).await;
    fx.queue.set_lane_cap(Some("a"), Some(2)).await.unwrap();
    assert_eq!(fx.queue.lane_cap(Some("a")).await.unwrap(), Some(2));
    submit_many(&fx, Some("a"), 10).await;
    let w = fx.consumer("w").await;
    let first = w.fetch(8, false).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(w.fetch(8, false).await.unwrap().is_empty(), "at its cap");
    assert_eq!(fx.queue.lane_depth(Some("a")).await.unwrap(), (8, 2));
    // Another lane is not held back by a's cap.
    let b = fx.queue.submit_one(in_lane(Some("b"), "b")).await.unwrap();
    assert_eq!(ids(&w.fetch(8, false).await.unwrap()), [b]);
    assert_eq!(w.complete(&[done(&first[0], "ok")]).await.unwrap(), (1, 0));
    let next = w.fetch(8, false).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].stream, "qt:lane:a:tasks");
    // Raised, then lifted.
    fx.queue.set_lane_cap(Some("a"), Some(4)).await.unwrap();
    assert_eq!(w.fetch(8, false).await.unwrap().len(), 2);
    fx.queue.set_lane_cap(Some("a"), None).await.unwrap();
    assert_eq!(fx.queue.lane_cap(Some("a")).await.unwrap(), None);
    assert_eq!(w.fetch(8, false).await.unwrap().len(), 5);

    // The default lane can be capped too; 0 holds it back.
    submit_many(&fx, None, 3).await;
    fx.queue.set_lane_cap(None, Some(0)).await.unwrap();
    assert!(w.fetch(8, false).await.unwrap().is_empty());
    fx.queue.set_lane_cap(None, Some(1)).await.unwrap();
    assert_eq!(w.fetch(8, false).await.unwrap().len(), 1);
    assert!(w.fetch(8, false).await.unwrap().is_empty());
    fx.queue.set_lane_cap(None, None).await.unwrap();
    assert_eq!(w.fetch(8, false).await.unwrap().len(), 2);

    let err = fx
        .queue
        .set_lane_cap(Some("No Such"), Some(1))
        .await
        .unwrap_err();
    assert!(
        matches!(err, QueueError::Invalid { field: "lane", .. }),
        "{err}"
    );
    fx.assert_balanced().await;
}

#[tokio::test]
async fn a_blocked_fetch_wakes_for_a_lane_task_and_for_room_in_a_capped_lane() {
    let fx = setup(fast()).await;
    fx.queue.set_lane_cap(Some("a"), Some(1)).await.unwrap();
    let a = fx.consumer("a").await;
    let w = fx.consumer("w").await;
    let started = std::time::Instant::now();
    assert!(w.fetch_blocking(1, ms(100)).await.unwrap().is_empty());
    assert!(started.elapsed() >= ms(90));

    let waiter = tokio::spawn(async move {
        let got = w.fetch_blocking(1, Duration::from_secs(10)).await.unwrap();
        (w, got)
    });
    tokio::time::sleep(ms(100)).await;
    let started = std::time::Instant::now();
    let id = fx
        .queue
        .submit_one(in_lane(Some("b"), "wake"))
        .await
        .unwrap();
    let (w, got) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ids(&got), [id]);
    assert_eq!(got[0].stream, "qt:lane:b:tasks");

    // Lane `a` at its cap: a blocked fetch wakes once a's task ends.
    submit_many(&fx, Some("a"), 2).await;
    let running = a.fetch(5, false).await.unwrap();
    assert_eq!(running.len(), 1);
    let waiter = tokio::spawn(async move {
        let got = w.fetch_blocking(1, Duration::from_secs(10)).await.unwrap();
        (w, got)
    });
    tokio::time::sleep(ms(200)).await;
    assert!(!waiter.is_finished(), "served past a's cap");
    let started = std::time::Instant::now();
    a.complete(&[done(&running[0], "ok")]).await.unwrap();
    let (_, got) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].stream, "qt:lane:a:tasks");
}

#[tokio::test]
async fn a_lane_task_retries_dead_letters_and_requeues_in_its_lane() {
    let fx = setup(fast()).await;
    let w = fx.consumer("w").await;
    let id = fx
        .queue
        .submit_one(TaskSpec {
            record: Some(Record::new("rec:l".into(), "report")),
            ..in_lane(Some("t1"), "x")
        })
        .await
        .unwrap();
    let other = fx.queue.submit_one(in_lane(None, "default")).await.unwrap();
    let lane_normal = lane_stream(&fx, Class::Normal, Some("t1"));
    let ds = w.fetch(2, false).await.unwrap();
    assert_eq!(ds.len(), 2);
    let d = ds.iter().find(|d| d.task_id == id).unwrap();
    assert_eq!(d.stream, lane_normal);

    // Retry: through the delayed set, back to its lane.
    let retry = Outcome::Retry {
        error: TaskError::transient("host_error", "flaky"),
        delay_ms: 0,
    };
    w.complete(&[(held(d), retry)]).await.unwrap();
    assert_eq!(xlen_of(&fx, &lane_normal).await, 0);
    assert_eq!(fx.queue.promote_due().await.unwrap(), 1);
    assert_eq!(xlen_of(&fx, &lane_normal).await, 1);
    let again = w.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!((again.task_id.as_str(), again.attempt), (id.as_str(), 2));
    assert_eq!(again.stream, lane_normal);

    // Dead-lettered, with its lane, beside a default-lane failure.
    let dead = |d: &Delivery| {
        (
            held(d),
            Outcome::Failed(TaskError::permanent("trap", "boom")),
        )
    };
    let default = ds.iter().find(|d| d.task_id == other).unwrap();
    w.complete(&[dead(&again), dead(default)]).await.unwrap();
    let dlq = fx.queue.dlq(10).await.unwrap();
    assert_eq!(dlq.len(), 2);
    let lane_entry = dlq.iter().find(|e| e.fields["task_id"] == id).unwrap();
    assert_eq!(lane_entry.lane.as_deref(), Some("t1"));
    assert_eq!(lane_entry.fields["lane"], "t1");
    let default_entry = dlq.iter().find(|e| e.fields["task_id"] == other).unwrap();
    assert_eq!(default_entry.lane, None);
    assert!(!default_entry.fields.contains_key("lane"));
    let mine = fx.queue.dlq_entries(10, Some("t1")).await.unwrap();
    assert_eq!(mine, vec![lane_entry.clone()]);
    assert!(fx
        .queue
        .dlq_entries(10, Some("t2"))
        .await
        .unwrap()
        .is_empty());
    let json = serde_json::to_value(default_entry).unwrap();
    assert!(json.get("lane").is_none(), "{json}");

    // Requeued by id: its lane again.
    fx.queue.requeue(Some(&lane_entry.entry_id)).await.unwrap();
    assert_eq!(xlen_of(&fx, &lane_normal).await, 1);
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    let d = w.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(
        (d.task_id.as_str(), d.stream.as_str()),
        (id.as_str(), lane_normal.as_str())
    );
    w.complete(&[dead(&d)]).await.unwrap();
    // Requeued with all: each to its own lane.
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 2);
    assert_eq!(xlen_of(&fx, &lane_normal).await, 1);
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    let info = fx.info(&id).await;
    assert_eq!(info.lane.as_deref(), Some("t1"));
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["lane"], "t1");
    let json = serde_json::to_value(fx.info(&other).await).unwrap();
    assert!(json.get("lane").is_none(), "{json}");
    fx.assert_balanced().await;
}

async fn lane_consumers(fx: &Fx, stream: &str) -> BTreeSet<String> {
    let mut conn = fx.conn.clone();
    let reply: StreamInfoConsumersReply = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    reply.consumers.into_iter().map(|c| c.name).collect()
}

#[tokio::test]
async fn a_dead_workers_lane_task_is_reclaimed_in_its_lane() {
    let fx = setup(fast()).await;
    let dead = fx.consumer("dead").await;
    let live = fx.consumer("live").await;
    let id = fx.queue.submit_one(in_lane(Some("r"), "x")).await.unwrap();
    let first = dead.fetch(1, false).await.unwrap().pop().unwrap();
    tokio::time::sleep(PAST_VISIBILITY).await;
    let got = live.fetch(5, true).await.unwrap();
    assert_eq!(ids(&got), std::slice::from_ref(&id));
    assert_eq!(got[0].stream, first.stream);
    assert_eq!(got[0].stream, "qt:lane:r:tasks");
    assert_eq!(got[0].attempt, 2);
    assert_eq!(fx.info(&id).await.worker.as_deref(), Some("live"));
    assert_eq!(live.complete(&[done(&got[0], "ok")]).await.unwrap(), (1, 0));
    assert_eq!(
        dead.complete(&[done(&first, "late")]).await.unwrap(),
        (0, 1)
    );
    // With nothing pending and no heartbeat, the dead one leaves the
    // lane's group too.
    tokio::time::sleep(PAST_VISIBILITY).await;
    assert!(lane_consumers(&fx, "qt:lane:r:tasks")
        .await
        .contains("dead"));
    let pruner = Consumer::new(
        Queue::new(
            fx.conn.clone(),
            PREFIX,
            QueueConfig {
                heartbeat_ttl: ms(100),
                ..fast()
            },
        )
        .unwrap(),
        &fx.t.server.url(),
        "live".into(),
    )
    .await
    .unwrap();
    assert!(pruner.prune_dead().await.unwrap() >= 1);
    assert!(!lane_consumers(&fx, "qt:lane:r:tasks")
        .await
        .contains("dead"));
    fx.assert_balanced().await;
}

#[tokio::test]
async fn a_lane_survives_a_destroyed_group_and_a_worker_leaving() {
    let fx = setup(fast()).await;
    let x = fx.consumer("x").await;
    let y = fx.consumer("y").await;
    let ids_in = fx
        .queue
        .submit(&[in_lane(Some("g"), "run"), in_lane(Some("g"), "wait")])
        .await
        .unwrap();
    let running = x.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(running.task_id, ids_in[0]);
    let sk = lane_stream(&fx, Class::Normal, Some("g"));
    let mut conn = fx.conn.clone();
    let destroyed: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(&sk)
        .arg(GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    // The first fetch meets the lost group and has it made again.
    let mut got = y.fetch(5, false).await.unwrap();
    if got.is_empty() {
        got = y.fetch(5, false).await.unwrap();
    }
    assert_eq!(ids(&got), [ids_in[1].clone()], "only the waiting task");
    assert_eq!(got[0].stream, sk);
    // The running one is still x's, pending to it, and ends once.
    let report = x.keepalive(&[held(&running)], "{}").await.unwrap();
    assert!(report.lost.is_empty());
    assert_eq!(x.complete(&[done(&running, "ok")]).await.unwrap(), (1, 0));

    // y leaves holding its lane task: it goes back to its lane.
    assert_eq!(y.leave().await.unwrap(), 1);
    assert_eq!(fx.info(&ids_in[1]).await.status, TaskStatus::Queued);
    let again = x.fetch(5, false).await.unwrap();
    assert_eq!(ids(&again), [ids_in[1].clone()]);
    assert_eq!(again[0].stream, sk);
    assert_eq!(again[0].attempt, 1);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn cancel_and_supersede_remove_a_lane_entry() {
    let fx = setup(fast()).await;
    let sk = lane_stream(&fx, Class::Normal, Some("c"));
    let id = fx.queue.submit_one(in_lane(Some("c"), "x")).await.unwrap();
    assert_eq!(xlen_of(&fx, &sk).await, 1);
    assert_eq!(fx.queue.cancel(&id).await.unwrap(), CancelState::Cancelled);
    assert_eq!(xlen_of(&fx, &sk).await, 0);

    let hosted = || {
        let mut r = Record::new("rec:s".into(), "report");
        r.hosts_task = true;
        TaskSpec {
            record: Some(r),
            ..in_lane(Some("c"), "run")
        }
    };
    let first = fx.queue.submit_one(hosted()).await.unwrap();
    assert_eq!(xlen_of(&fx, &sk).await, 1);
    let second = fx.queue.submit_one(hosted()).await.unwrap();
    // The first run's entry went with it: one entry, the second's.
    assert_eq!(xlen_of(&fx, &sk).await, 1);
    let w = fx.consumer("w").await;
    let got = w.fetch(5, false).await.unwrap();
    assert_eq!(ids(&got), std::slice::from_ref(&second));
    assert!(fx.queue.task(&first).await.unwrap().is_none());
    fx.assert_balanced().await;
}

#[tokio::test]
async fn lane_names_are_checked_at_submit() {
    let fx = setup(fast()).await;
    for bad in ["", "Upper", "a b", "a:b", "x@y", &"l".repeat(33)] {
        let err = fx
            .queue
            .submit(&[in_lane(Some("ok"), "fine"), in_lane(Some(bad), "bad")])
            .await
            .unwrap_err();
        assert!(
            matches!(err, QueueError::Invalid { field: "lane", .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("lane"), "{err}");
    }
    let err = fx
        .queue
        .submit_one(TaskSpec::new("@kind", "{}".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, QueueError::Invalid { field: "kind", .. }),
        "{err}"
    );
    // All or nothing: not even the good one went in.
    assert_eq!(fx.queue.counters().await.unwrap().tasks_submitted, 0);
    assert!(fx.queue.lanes().await.unwrap().is_empty());
    let longest = "l".repeat(32);
    fx.queue
        .submit_one(in_lane(Some(&longest), "ok"))
        .await
        .unwrap();
    assert_eq!(fx.queue.lanes().await.unwrap(), [longest]);
}

#[tokio::test]
async fn the_dlq_keeps_its_newest_entries_up_to_its_cap() {
    let fx = setup(QueueConfig {
        dlq_max_len: 5,
        ..fast()
    })
    .await;
    let w = fx.consumer("w").await;
    let mut failed = Vec::new();
    // Failed in three batches, so trimming meets an over-full DLQ more
    // than once.
    for n in [3, 4, 1] {
        let specs: Vec<TaskSpec> = (0..n).map(|_| spec(5, "f")).collect();
        let batch = fx.queue.submit(&specs).await.unwrap();
        let ds = w.fetch(n, false).await.unwrap();
        assert_eq!(ids(&ds), batch);
        let outcomes: Vec<_> = ds
            .iter()
            .map(|d| (held(d), Outcome::Failed(TaskError::permanent("trap", "x"))))
            .collect();
        w.complete(&outcomes).await.unwrap();
        failed.extend(batch);
    }
    assert_eq!(fx.queue.stats().await.unwrap().dlq, 5);
    assert_eq!(fx.counter("dlq_trimmed").await, 3);
    let kept: Vec<String> = fx
        .queue
        .dlq(10)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.fields["task_id"].clone())
        .collect();
    assert_eq!(kept, failed[3..]);
    // The trimmed tasks expire as purged ones do; the kept ones wait.
    for (i, id) in failed.iter().enumerate() {
        let ttl = fx.pttl(&fx.task_key(id)).await;
        if i < 3 {
            assert!(ttl > 0, "trimmed task {i} never expires ({ttl})");
        } else {
            assert_eq!(ttl, -1, "kept task {i}");
        }
    }
    fx.assert_balanced().await;
}

#[tokio::test]
async fn a_starving_class_in_one_lane_goes_before_higher_ones_in_others() {
    let fx = setup(QueueConfig {
        starvation_age: ms(300),
        ..fast()
    })
    .await;
    let old_low = fx
        .queue
        .submit_one(TaskSpec {
            lane: Some("a".into()),
            ..spec(1, "old-low")
        })
        .await
        .unwrap();
    tokio::time::sleep(ms(400)).await;
    let high: Vec<TaskSpec> = (0..3)
        .map(|_| TaskSpec {
            lane: Some("b".into()),
            ..spec(9, "high")
        })
        .collect();
    let high = fx.queue.submit(&high).await.unwrap();
    let w = fx.consumer("w").await;
    assert_eq!(ids(&w.fetch(1, false).await.unwrap()), [old_low]);
    // Young low tasks wait for the high ones, whatever their lane.
    let young_low = fx
        .queue
        .submit_one(TaskSpec {
            lane: Some("a".into()),
            ..spec(1, "young-low")
        })
        .await
        .unwrap();
    let got = w.fetch(3, false).await.unwrap();
    assert_eq!(ids(&got), high);
    assert_eq!(ids(&w.fetch(3, false).await.unwrap()), [young_low]);
}
