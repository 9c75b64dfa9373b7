//! The queue over `rediss://`: a submission and its record through a TLS
//! connection to a private server with a CA made for the test.

use super::*;
use stratbox_redis::test_support::TlsTestServer;

#[tokio::test]
async fn submit_and_read_back_over_tls() {
    let t = TlsTestServer::start(&[]);
    let conn = stratbox_redis::connection::connect_tls(&t.url(), &t.tls_files())
        .await
        .unwrap();
    let queue = Queue::new(conn, PREFIX, QueueConfig::default()).unwrap();
    queue.ensure_groups().await.unwrap();
    let id = queue.submit_one(spec(5, "over tls")).await.unwrap();
    let task = queue.task(&id).await.unwrap().unwrap();
    assert_eq!(task.status, TaskStatus::Queued);
    assert_eq!(queue.counters().await.unwrap().tasks_submitted, 1);
}
