//! Fetching: class order, starvation of lower classes, blocking reads.

use super::*;

#[tokio::test]
async fn submit_then_fetch_in_class_order() {
    let fx = setup(QueueConfig::default()).await;
    let before = fx.queue.stats().await.unwrap();
    for class in Class::ALL {
        assert_eq!(before.waiting[class.as_str()], 0);
        assert_eq!(before.pending[class.as_str()], 0);
    }
    assert_eq!(fx.queue.counters().await.unwrap(), Counters::default());

    let mut urgent = spec(9, "h0");
    urgent.timeout_ms = Some(1234);
    urgent.max_attempts = Some(7);
    let specs = vec![
        spec(1, "l0"),
        spec(5, "n0"),
        urgent,
        spec(0, "l1"),
        spec(7, "h1"),
        spec(4, "n1"),
    ];
    let id = fx.queue.submit(&specs).await.unwrap();
    assert_eq!(id.len(), 6);
    assert_eq!(
        id.iter().collect::<std::collections::BTreeSet<_>>().len(),
        6,
        "ids are unique"
    );

    let stats = fx.queue.stats().await.unwrap();
    for class in Class::ALL {
        assert_eq!(stats.waiting[class.as_str()], 2, "{class:?}");
        assert_eq!(stats.pending[class.as_str()], 0, "{class:?}");
    }
    let c = fx.queue.counters().await.unwrap();
    assert_eq!(c.tasks_submitted, 6);
    assert_eq!(c.active_tasks, 0);
    let queued = fx.info(&id[2]).await;
    assert_eq!(queued.status, TaskStatus::Queued);
    assert_eq!(queued.attempts, 0);
    assert_eq!(queued.priority, 9);
    assert_eq!(queued.max_attempts, 7);
    assert_eq!(queued.kind, "echo");
    assert_eq!(queued.payload, "h0");
    assert!(queued.created_at_ms.is_some());
    assert_eq!(queued.worker, None);

    let a = fx.consumer("a").await;
    let first = a.fetch(4, false).await.unwrap();
    assert_eq!(
        ids(&first),
        vec![id[2].clone(), id[4].clone(), id[1].clone(), id[5].clone()]
    );
    assert_eq!(first[0].stream, fx.stream(Class::High));
    assert_eq!(first[1].stream, fx.stream(Class::High));
    assert_eq!(first[2].stream, fx.stream(Class::Normal));
    assert_eq!(first[3].stream, fx.stream(Class::Normal));
    for d in &first {
        assert_eq!(d.attempt, 1);
        assert_eq!(d.kind, "echo");
    }
    assert_eq!(first[0].payload, "h0");
    assert_eq!(first[0].timeout_ms, 1234);
    assert_eq!(first[0].max_attempts, 7);
    assert_eq!(first[0].priority, 9);
    assert_eq!(first[1].priority, 7);
    assert_eq!(
        first[1].timeout_ms,
        QueueConfig::default().task_timeout.as_millis() as u64
    );
    assert_eq!(first[1].max_attempts, QueueConfig::default().max_attempts);

    for d in &first {
        let info = fx.info(&d.task_id).await;
        assert_eq!(info.status, TaskStatus::Running);
        assert_eq!(info.attempts, 1);
        assert_eq!(info.worker.as_deref(), Some("a"));
        assert!(info.started_at_ms.unwrap() >= info.created_at_ms.unwrap());
    }
    assert_eq!(fx.queue.counters().await.unwrap().active_tasks, 4);
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.waiting["high"], 0);
    assert_eq!(stats.waiting["normal"], 0);
    assert_eq!(stats.waiting["low"], 2);
    assert_eq!(stats.pending["high"], 2);
    assert_eq!(stats.pending["normal"], 2);
    assert_eq!(stats.pending["low"], 0);
    let pending = fx.pending(Class::High).await;
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|p| p.consumer == "a"));
    assert_eq!(pending[0].id, first[0].entry_id);

    let rest = a.fetch(10, false).await.unwrap();
    assert_eq!(ids(&rest), vec![id[0].clone(), id[3].clone()]);
    assert!(rest
        .iter()
        .all(|d| d.stream == fx.stream(Class::Low) && d.attempt == 1));
    assert_eq!(fx.queue.counters().await.unwrap().active_tasks, 6);
    assert!(a.fetch(10, false).await.unwrap().is_empty());
    assert!(a.fetch(0, false).await.unwrap().is_empty());
    fx.assert_balanced().await;
}

#[tokio::test]
async fn old_lower_class_is_served_before_higher_ones() {
    let config = QueueConfig {
        starvation_age: ms(300),
        ..fast()
    };
    let fx = setup(config).await;
    let a = fx.consumer("a").await;
    let old_low = fx.queue.submit_one(spec(1, "old-low")).await.unwrap();
    tokio::time::sleep(ms(400)).await;
    let young = fx
        .queue
        .submit(&[
            spec(9, "h1"),
            spec(9, "h2"),
            spec(5, "n"),
            spec(1, "young-low"),
        ])
        .await
        .unwrap();

    let order = [&old_low, &young[0], &young[1], &young[2], &young[3]];
    for want in order {
        let got = a.fetch(1, false).await.unwrap();
        assert_eq!(ids(&got), vec![want.clone()]);
    }
    assert!(a.fetch(1, false).await.unwrap().is_empty());

    // Normal starves too, and the lowest starving class goes first.
    let old = fx
        .queue
        .submit(&[spec(5, "old-normal"), spec(2, "old-low")])
        .await
        .unwrap();
    tokio::time::sleep(ms(400)).await;
    let high = fx.queue.submit_one(spec(8, "h")).await.unwrap();
    let got = a.fetch(3, false).await.unwrap();
    assert_eq!(ids(&got), vec![old[1].clone(), old[0].clone(), high]);
}

#[tokio::test]
async fn blocking_fetch_wakes_on_submit() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    // Nothing there: returns empty after the block.
    let started = std::time::Instant::now();
    assert!(a.fetch_blocking(1, ms(100)).await.unwrap().is_empty());
    assert!(started.elapsed() >= ms(90));

    let waiter = tokio::spawn(async move {
        let got = a.fetch_blocking(1, Duration::from_secs(5)).await.unwrap();
        (a, got)
    });
    tokio::time::sleep(ms(100)).await;
    let id = fx.queue.submit_one(spec(9, "wake")).await.unwrap();
    let (a, got) = tokio::time::timeout(Duration::from_secs(4), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&got), vec![id.clone()]);
    assert_eq!(got[0].attempt, 1);
    assert_eq!(got[0].payload, "wake");
    assert_eq!(got[0].stream, fx.stream(Class::High));
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Running);
    assert_eq!(info.worker.as_deref(), Some("a"));
    assert_eq!(fx.counter("active_tasks").await, 1);

    // An entry whose task was cancelled while waiting is dropped.
    let c = fx.queue.submit_one(spec(5, "gone")).await.unwrap();
    let mut conn = fx.conn.clone();
    let () = redis::cmd("HSET")
        .arg(fx.task_key(&c))
        .arg("status")
        .arg("cancelled")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(a.fetch_blocking(1, ms(100)).await.unwrap().is_empty());
    assert_eq!(fx.xlen(Class::Normal).await, 0);
    assert!(fx.pending(Class::Normal).await.is_empty());
}
