//! Records a task mirrors into: created with it, and run again.

use super::*;

/// A record submitted without initial fields exists already and runs
/// again: its last result goes at submission, and the new one lands (a
/// record's result is written with `HSETNX`).
#[tokio::test]
async fn a_record_that_runs_again_gets_the_new_result() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    for result in ["first", "second"] {
        fx.queue
            .submit_one(with_record(5, result, "rec:again"))
            .await
            .unwrap();
        let rec = fx.hgetall("rec:again").await;
        assert_eq!(rec["status"], "queued");
        assert!(!rec.contains_key("report"), "{rec:?}");
        assert!(!rec.contains_key("finished_at_ms"), "{rec:?}");
        let d = a.fetch(1, false).await.unwrap().pop().unwrap();
        assert_eq!(a.complete(&[done(&d, result)]).await.unwrap(), (1, 0));
        assert_eq!(fx.hgetall("rec:again").await["report"], result);
    }
    // The last result goes by the record's own field name, hosted or not.
    for hosts_task in [false, true] {
        let key = format!("rec:summary:{hosts_task}");
        for result in ["first", "second"] {
            let mut record = Record::new(key.clone(), "summary");
            record.hosts_task = hosts_task;
            let spec = TaskSpec {
                record: Some(record),
                ..spec(5, result)
            };
            fx.queue.submit_one(spec).await.unwrap();
            assert!(!fx.hgetall(&key).await.contains_key("summary"));
            let d = a.fetch(1, false).await.unwrap().pop().unwrap();
            assert_eq!(a.complete(&[done(&d, result)]).await.unwrap(), (1, 0));
            assert_eq!(fx.hgetall(&key).await["summary"], result);
        }
    }
}

#[tokio::test]
async fn a_record_is_created_with_its_task() {
    let fx = setup(fast()).await;
    let mut record = Record::new("rec:7".to_string(), "report");
    record.init = vec![
        ("definition".to_string(), "{\"x\":1}".to_string()),
        ("created_at_ms".to_string(), "123".to_string()),
    ];
    record.index = Some(("recent".to_string(), "7".to_string()));
    let with_init = TaskSpec {
        record: Some(record),
        ..spec(5, "a")
    };
    // Mixed with tasks without a record or fields, in one batch.
    let ids = fx
        .queue
        .submit(&[spec(5, "b"), with_init, with_record(5, "c", "rec:8")])
        .await
        .unwrap();
    let rec = fx.hgetall("rec:7").await;
    assert_eq!(rec["definition"], "{\"x\":1}");
    assert_eq!(rec["created_at_ms"], "123");
    assert_eq!(rec["task_id"], ids[1]);
    assert_eq!(rec["status"], "queued");
    assert_eq!(fx.hgetall("rec:8").await["task_id"], ids[2]);
    let mut conn = fx.queue.connection();
    let score: Option<f64> = redis::cmd("ZSCORE")
        .arg("recent")
        .arg("7")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(score.unwrap() > 1.7e12, "scored by server time in ms");
    assert_eq!(fx.xlen(Class::Normal).await, 3);
}
