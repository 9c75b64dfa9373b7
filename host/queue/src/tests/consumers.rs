//! A consumer's life: its name, keepalive and heartbeat, leaving, and
//! the pruning of dead ones.

use super::*;
use futures_util::StreamExt;

#[tokio::test]
async fn keepalive_keeps_claims_and_reports_lost_and_cancel() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx.queue.submit_one(spec(5, "k")).await.unwrap();
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    let mine = vec![held(&d)];

    // 8 x 60 ms: well past the 200 ms visibility timeout in total.
    for _ in 0..8 {
        tokio::time::sleep(ms(60)).await;
        let report = a.keepalive(&mine, r#"{"pid":1}"#).await.unwrap();
        assert_eq!(report, Default::default());
        assert!(b.fetch(1, true).await.unwrap().is_empty());
    }
    let info = fx.info(&id).await;
    assert_eq!(info.worker.as_deref(), Some("a"));
    assert_eq!(info.attempts, 1);
    let pending = fx.pending(Class::Normal).await;
    assert_eq!(pending[0].consumer, "a");
    assert_eq!(pending[0].times_delivered, 1, "keepalive is not a delivery");

    // The heartbeat.
    let beat = fx.queue.keys().worker("a");
    let ttl = fx.pttl(&beat).await;
    assert!(ttl > 0 && ttl <= 2000, "{ttl}");
    let workers = fx.queue.workers().await.unwrap();
    assert_eq!(workers.get("a").map(String::as_str), Some(r#"{"pid":1}"#));
    assert!(!workers.contains_key("b"));
    assert_eq!(fx.queue.stats().await.unwrap().live_workers, 1);

    // A cancel request: published, and reported by the next keepalive.
    let client = redis::Client::open(fx.t.server.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe(fx.queue.keys().cancel_channel())
        .await
        .unwrap();
    assert_eq!(fx.queue.cancel(&id).await.unwrap(), CancelState::Cancelling);
    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.get_channel_name(), fx.queue.keys().cancel_channel());
    assert_eq!(msg.get_payload::<String>().unwrap(), id);
    let report = a.keepalive(&mine, "{}").await.unwrap();
    assert!(report.lost.is_empty());
    assert_eq!(report.cancel, vec![id.clone()]);

    // A stops refreshing; B reclaims; A's next keepalive learns it lost it.
    tokio::time::sleep(PAST_VISIBILITY).await;
    let taken = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(taken.task_id, id);
    assert_eq!(taken.attempt, 2);
    let report = a.keepalive(&mine, "{}").await.unwrap();
    assert_eq!(report.lost, vec![id.clone()]);
    let report = b.keepalive(&[held(&taken)], "{}").await.unwrap();
    assert!(report.lost.is_empty());
    assert_eq!(report.cancel, vec![id.clone()]);
    assert_eq!(fx.queue.stats().await.unwrap().live_workers, 2);

    assert_eq!(
        b.complete(&[(held(&taken), Outcome::Cancelled)])
            .await
            .unwrap(),
        (0, 0)
    );
    assert_eq!(fx.status(&id).await, TaskStatus::Cancelled);
    assert_eq!(fx.counter("tasks_cancelled").await, 1);
    assert_eq!(fx.counter("active_tasks").await, 0);
    fx.assert_balanced().await;
}

#[tokio::test]
async fn leave_gives_held_tasks_back() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx
        .queue
        .submit(&[spec(5, "1"), spec(5, "2"), spec(9, "3"), spec(5, "4")])
        .await
        .unwrap();
    let ds = a.fetch(4, false).await.unwrap();
    assert_eq!(ds.len(), 4);
    // B reclaims one of them (the oldest idle, in class order: high).
    tokio::time::sleep(PAST_VISIBILITY).await;
    let taken = b.fetch(1, true).await.unwrap().pop().unwrap();
    assert_eq!(taken.task_id, id[2]);
    let kept: Vec<Held> = ds
        .iter()
        .filter(|d| d.task_id != taken.task_id)
        .map(held)
        .collect();
    a.keepalive(&kept, "{}").await.unwrap();
    assert!(fx.exists(&fx.queue.keys().worker("a")).await);
    assert_eq!(fx.counter("active_tasks").await, 4);

    assert_eq!(a.leave().await.unwrap(), 3);
    for task in [&id[0], &id[1], &id[3]] {
        let info = fx.info(task).await;
        assert_eq!(info.status, TaskStatus::Queued);
        assert_eq!(info.attempts, 0, "attempt given back");
    }
    let info = fx.info(&id[2]).await;
    assert_eq!(info.status, TaskStatus::Running, "b's task stays with b");
    assert_eq!(info.worker.as_deref(), Some("b"));
    assert_eq!(fx.counter("tasks_released").await, 3);
    assert_eq!(fx.counter("active_tasks").await, 1);
    for class in Class::ALL {
        let names = fx.group_consumers(class).await;
        assert!(!names.contains(&"a".to_string()), "{class:?}: {names:?}");
    }
    assert!(fx
        .group_consumers(Class::High)
        .await
        .contains(&"b".to_string()));
    assert!(!fx.exists(&fx.queue.keys().worker("a")).await);
    assert!(!fx.queue.workers().await.unwrap().contains_key("a"));
    let mut conn = fx.conn.clone();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg(fx.queue.keys().workers())
        .arg("a")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, None);
    let stats = fx.queue.stats().await.unwrap();
    assert_eq!(stats.waiting["normal"], 3);
    assert_eq!(stats.pending["normal"], 0);
    assert_eq!(stats.pending["high"], 1);
    fx.assert_balanced().await;

    // A's late outcome for a released task is a duplicate.
    let released = ds.iter().find(|d| d.task_id == id[0]).unwrap();
    assert_eq!(a.complete(&[done(released, "late")]).await.unwrap(), (0, 1));
    assert_eq!(fx.status(&id[0]).await, TaskStatus::Queued);

    let again = b.fetch(10, false).await.unwrap();
    assert_eq!(
        ids(&again),
        vec![id[0].clone(), id[1].clone(), id[3].clone()]
    );
    assert!(again.iter().all(|d| d.attempt == 1));
    assert_eq!(b.leave().await.unwrap(), 4);
    assert_eq!(a.leave().await.unwrap(), 0, "leaving twice is harmless");
    fx.assert_balanced().await;
}

#[tokio::test]
async fn leave_keeps_entries_read_but_never_started() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let b = fx.consumer("b").await;
    let id = fx.queue.submit_one(spec(5, "x")).await.unwrap();
    // A blocking read delivered the entry, then the adopt call never ran
    // (say Redis dropped the connection in between).
    let mut conn = fx.conn.clone();
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg("a")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(fx.stream(Class::Normal))
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(fx.pending(Class::Normal).await.len(), 1);
    assert_eq!(fx.status(&id).await, TaskStatus::Queued);
    assert_eq!(a.leave().await.unwrap(), 1);
    let info = fx.info(&id).await;
    assert_eq!(info.status, TaskStatus::Queued);
    assert_eq!(info.attempts, 0);
    assert_eq!(fx.counter("active_tasks").await, 0);
    fx.assert_balanced().await;
    let got = b.fetch(1, false).await.unwrap();
    assert_eq!(ids(&got), vec![id]);
    assert_eq!(got[0].attempt, 1);
}

#[tokio::test]
async fn dead_consumers_are_pruned_and_live_ones_kept() {
    let config = QueueConfig {
        visibility_timeout: ms(200),
        keepalive: ms(50),
        heartbeat_ttl: ms(150),
        ..fast()
    };
    let fx = setup(config).await;
    let dead = fx.consumer("dead").await;
    let live = fx.consumer("live").await;
    let sweeper = fx.consumer("sweeper").await;
    fx.queue
        .submit(&[spec(5, "a"), spec(5, "b")])
        .await
        .unwrap();
    let a = dead.fetch(1, false).await.unwrap();
    dead.complete(&[done(&a[0], "ok")]).await.unwrap();
    let b = live.fetch(1, false).await.unwrap();
    live.complete(&[done(&b[0], "ok")]).await.unwrap();
    tokio::time::sleep(ms(300)).await;
    // Only `live` still beats.
    live.keepalive(&[], "{}").await.unwrap();
    assert_eq!(sweeper.prune_dead().await.unwrap(), 1);
    let mut conn = fx.queue.connection();
    let consumers: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(fx.queue.keys().stream(Class::Normal))
        .arg(GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    let names: Vec<String> = consumers
        .iter()
        .filter_map(|c| match c.get("name") {
            Some(redis::Value::BulkString(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        })
        .collect();
    assert!(names.contains(&"live".to_string()), "{names:?}");
    assert!(!names.contains(&"dead".to_string()), "{names:?}");
}

#[test]
fn consumer_names_carry_host_pid_and_boot_id() {
    let name = Consumer::unique_name();
    let parts: Vec<&str> = name.rsplitn(3, '-').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert_eq!(parts[1], std::process::id().to_string());
    assert_eq!(parts[0].len(), 8, "eight hex digits of the boot id: {name}");
    assert!(parts[0].chars().all(|c| c.is_ascii_hexdigit()), "{name}");
    assert_eq!(name, Consumer::unique_name(), "stable within a process");
}
