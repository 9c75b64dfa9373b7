//! Guarded submission: tasks that go in only if every guard holds.

use super::*;

#[tokio::test]
async fn a_guarded_submission_happens_once() {
    let fx = setup(fast()).await;
    let mut conn = fx.queue.connection();
    let () = redis::cmd("HSET")
        .arg("sched:1")
        .arg("next")
        .arg("100")
        .query_async(&mut conn)
        .await
        .unwrap();
    let guard = crate::Guard {
        key: "sched:1".into(),
        field: "next".into(),
        expect: "100".into(),
        set: vec![("next".into(), "200".into()), ("last".into(), "100".into())],
        index: Some(("due".into(), "1".into(), 200)),
    };
    let ids = fx
        .queue
        .submit_guarded(&[spec(5, "a"), spec(5, "b")], std::slice::from_ref(&guard))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    let sched = fx.hgetall("sched:1").await;
    assert_eq!(
        (sched["next"].as_str(), sched["last"].as_str()),
        ("200", "100")
    );
    // The same occurrence again (another process): refused, nothing queued.
    let again = fx
        .queue
        .submit_guarded(&[spec(5, "c")], std::slice::from_ref(&guard))
        .await
        .unwrap_err();
    assert!(matches!(again, QueueError::GuardFailed(_)), "{again}");
    assert_eq!(fx.xlen(Class::Normal).await, 2);
    assert_eq!(fx.queue.counters().await.unwrap().tasks_submitted, 2);
    let score: Option<i64> = redis::cmd("ZSCORE")
        .arg("due")
        .arg("1")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(score, Some(200));
}

#[tokio::test]
async fn a_guard_with_an_empty_expect_creates_a_record_once() {
    let fx = setup(fast()).await;
    let mut conn = fx.queue.connection();
    let () = redis::cmd("HSET")
        .arg("sched:1")
        .arg("next")
        .arg("100")
        .query_async(&mut conn)
        .await
        .unwrap();
    let occurrence = |next: &str| crate::Guard {
        key: "sched:1".into(),
        field: "next".into(),
        expect: next.into(),
        set: vec![("next".into(), "200".into())],
        index: None,
    };
    let create = |id: &str| crate::Guard {
        key: format!("rec:{id}"),
        field: "status".into(),
        expect: String::new(),
        set: vec![("status".into(), "queued".into()), ("n".into(), id.into())],
        index: Some(("recs".into(), id.into(), id.parse().unwrap())),
    };
    fx.queue
        .submit_guarded(&[spec(5, "a")], &[occurrence("100"), create("7")])
        .await
        .unwrap();
    let rec = fx.hgetall("rec:7").await;
    assert_eq!((rec["status"].as_str(), rec["n"].as_str()), ("queued", "7"));
    // The record exists now: a second creation of it is refused, and the
    // guard that held before it moves nothing either.
    let () = redis::cmd("HSET")
        .arg("sched:1")
        .arg("next")
        .arg("300")
        .query_async(&mut conn)
        .await
        .unwrap();
    let again = fx
        .queue
        .submit_guarded(&[spec(5, "b")], &[occurrence("300"), create("7")])
        .await
        .unwrap_err();
    assert!(
        matches!(&again, QueueError::GuardFailed(key) if key == "rec:7"),
        "{again}"
    );
    assert_eq!(fx.hgetall("sched:1").await["next"], "300");
    // The occurrence already moved on: refused, naming the schedule, and
    // no record is created.
    let taken = fx
        .queue
        .submit_guarded(&[spec(5, "c")], &[occurrence("100"), create("8")])
        .await
        .unwrap_err();
    assert!(
        matches!(&taken, QueueError::GuardFailed(key) if key == "sched:1"),
        "{taken}"
    );
    assert!(!fx.exists("rec:8").await);
    assert_eq!(fx.xlen(Class::Normal).await, 1);
    let index: Vec<(String, i64)> = redis::cmd("ZRANGE")
        .arg("recs")
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(index, [("7".to_string(), 7)]);
}
