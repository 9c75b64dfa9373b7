//! The `holds` sets: which tasks may still run, and sets joined in bulk.

use super::*;

/// Set members and index entries go in one call per key, in chunks of
/// 1,000 values: a batch above that joins whole.
#[tokio::test]
async fn a_big_batch_joins_its_sets_whole() {
    let fx = setup(fast()).await;
    let specs: Vec<TaskSpec> = (0..2_100)
        .map(|n| {
            let mut record = Record::new(format!("rec:big:{n}"), "report");
            record.init = vec![("n".to_string(), n.to_string())];
            record.index = Some(("big:index".to_string(), n.to_string()));
            TaskSpec {
                record: Some(record),
                holds: Some(if n % 2 == 0 { "res:even" } else { "res:odd" }.to_string()),
                ..spec(5, "big")
            }
        })
        .collect();
    let ids = fx.queue.submit(&specs).await.unwrap();
    assert_eq!(ids.len(), 2_100);
    let mut conn = fx.queue.connection();
    for (set, want) in [("res:even", 1_050), ("res:odd", 1_050)] {
        let n: u64 = redis::cmd("SCARD")
            .arg(set)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, want, "{set}");
    }
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg("big:index")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut want: Vec<String> = (0..2_100).map(|n: u32| n.to_string()).collect();
    let mut got = members;
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);

    // Ending them leaves the sets in one call per set, as many at once.
    let a = fx.consumer("a").await;
    let mut left = 2_100;
    while left > 0 {
        let ds = a.fetch(700, false).await.unwrap();
        let outcomes: Vec<(Held, Outcome)> = ds.iter().map(|d| done(d, "r")).collect();
        assert_eq!(a.complete(&outcomes).await.unwrap(), (ds.len() as u64, 0));
        left -= ds.len();
    }
    for set in ["res:even", "res:odd"] {
        assert!(!fx.exists(set).await, "{set} is empty");
    }
    fx.assert_balanced().await;
}

#[tokio::test]
async fn holders_are_the_tasks_that_may_still_run() {
    let fx = setup(fast()).await;
    let holding = |payload: &str| TaskSpec {
        holds: Some("res:tasks".to_string()),
        ..spec(5, payload)
    };
    let ids = fx
        .queue
        .submit(&[holding("a"), holding("b"), spec(5, "free")])
        .await
        .unwrap();
    let mut both = vec![ids[0].clone(), ids[1].clone()];
    both.sort_unstable();
    assert_eq!(fx.queue.holders("res:tasks").await.unwrap(), both);

    // Running still holds; done does not, and leaves the set as it ends
    // (read raw: `holders` would prune it too).
    let a = fx.consumer("a").await;
    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    assert_eq!(d.task_id, ids[0]);
    assert_eq!(fx.queue.holders("res:tasks").await.unwrap(), both);
    a.complete(&[done(&d, "r")]).await.unwrap();
    let members = |fx: &Fx| {
        let mut conn = fx.queue.connection();
        async move {
            let mut m: Vec<String> = redis::cmd("SMEMBERS")
                .arg("res:tasks")
                .query_async(&mut conn)
                .await
                .unwrap();
            m.sort_unstable();
            m
        }
    };
    assert_eq!(members(&fx).await, vec![ids[1].clone()]);
    assert_eq!(
        fx.queue.holders("res:tasks").await.unwrap(),
        vec![ids[1].clone()]
    );
    // A cancelled task lets go too, and the set is emptied.
    fx.queue.cancel(&ids[1]).await.unwrap();
    assert!(members(&fx).await.is_empty());
    assert!(fx.queue.holders("res:tasks").await.unwrap().is_empty());
    assert!(!fx.exists("res:tasks").await);
    assert!(fx.queue.holders("nothing:here").await.unwrap().is_empty());

    // Dead-lettered, a task lets go; requeued, it holds again.
    let c = fx.queue.submit(&[holding("c")]).await.unwrap().remove(0);
    let d = a.fetch(5, false).await.unwrap();
    let d = d.iter().find(|d| d.task_id == c).unwrap();
    a.complete(&[(
        Held::from(d),
        Outcome::Failed(TaskError::permanent("trap", "x")),
    )])
    .await
    .unwrap();
    assert!(members(&fx).await.is_empty());
    assert_eq!(fx.queue.requeue(None).await.unwrap(), 1);
    assert_eq!(members(&fx).await, vec![c.clone()]);
    assert_eq!(fx.queue.holders("res:tasks").await.unwrap(), vec![c]);
}
