//! Progress reports of running tasks and their records.

use super::*;

#[tokio::test]
async fn progress_is_written_only_while_running() {
    let fx = setup(fast()).await;
    let a = fx.consumer("a").await;
    let id = fx
        .queue
        .submit_one(with_record(5, "p", "rec:p"))
        .await
        .unwrap();
    fx.queue
        .report_progress(&[(id.clone(), 0.3)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, None);
    assert_eq!(fx.hgetall("rec:p").await["progress"], "0");

    let d = a.fetch(1, false).await.unwrap().pop().unwrap();
    fx.queue
        .report_progress(&[(id.clone(), 0.25), ("no-such-task".into(), 0.5)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, Some(0.25));
    assert_eq!(fx.hgetall("rec:p").await["progress"], "0.2500");
    assert!(!fx.exists(&fx.task_key("no-such-task")).await);
    fx.queue
        .report_progress(&[(id.clone(), 1.7)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, Some(1.0), "clamped");
    fx.queue
        .report_progress(&[(id.clone(), 0.5)])
        .await
        .unwrap();
    fx.queue.report_progress(&[]).await.unwrap();

    a.complete(&[done(&d, "r")]).await.unwrap();
    fx.queue
        .report_progress(&[(id.clone(), 0.1)])
        .await
        .unwrap();
    assert_eq!(fx.info(&id).await.progress, Some(1.0));
    assert_eq!(fx.hgetall("rec:p").await["progress"], "1");
}
