//! Workers against a private redis-server, running a task kind that
//! counts its copies: whatever happens to the consumer group, a worker
//! never runs two copies of a task at once, and each task completes once.

use super::*;
use std::collections::HashMap;
use stratbox_queue::{TaskSpec, TaskStatus};
use stratbox_redis::test_support::TestServer;
use tokio::sync::oneshot;

const PREFIX: &str = "wt";

/// Runs a task for as many milliseconds as its payload says, counting the
/// copies of each task: started, running now, and the most at once.
#[derive(Default)]
struct Counting {
    counts: Mutex<Counts>,
}

#[derive(Default, Debug, Clone)]
struct Counts {
    started: HashMap<String, usize>,
    running: HashMap<String, usize>,
    most_at_once: HashMap<String, usize>,
}

impl Counting {
    fn counts(&self) -> Counts {
        self.counts.lock().unwrap().clone()
    }
}

impl Runner for Counting {
    fn run(
        &self,
        _rt: &tokio::runtime::Handle,
        delivery: &Delivery,
        ctx: &TaskContext,
    ) -> Result<String, TaskError> {
        let id = delivery.task_id.clone();
        {
            let mut c = self.counts.lock().unwrap();
            *c.started.entry(id.clone()).or_default() += 1;
            let now = c.running.entry(id.clone()).or_default();
            *now += 1;
            let now = *now;
            let most = c.most_at_once.entry(id.clone()).or_default();
            *most = (*most).max(now);
        }
        let ms: u64 = delivery.payload.parse().unwrap();
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until && !ctx.cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(5));
        }
        *self.counts.lock().unwrap().running.get_mut(&id).unwrap() -= 1;
        if ctx.cancel.is_cancelled() {
            return Err(TaskError::transient("cancelled", "stopped"));
        }
        Ok(format!("\"{id}\""))
    }
}

/// A task that runs `ms` milliseconds.
fn counted(ms: u64) -> TaskSpec {
    TaskSpec::new("counted", ms.to_string())
}

/// A worker in this process, with its own runner.
struct TestWorker {
    runner: Arc<Counting>,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<WorkerSummary>>,
}

impl TestWorker {
    fn start(url: &str, name: &str, slots: usize) -> TestWorker {
        let config = WorkerConfig {
            redis_url: url.to_string(),
            prefix: PREFIX.to_string(),
            slots,
            queue: QueueConfig {
                visibility_timeout: Duration::from_secs(4),
                keepalive: Duration::from_millis(200),
                heartbeat_ttl: Duration::from_secs(2),
                sweep_interval: Duration::from_millis(500),
                block: Duration::from_millis(100),
                ..QueueConfig::default()
            },
            name: Some(name.to_string()),
        };
        let runner = Arc::new(Counting::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(run(config, runner.clone(), async {
            let _ = stopped.await;
        }));
        TestWorker {
            runner,
            stop,
            handle,
        }
    }

    async fn stop(self) -> (WorkerSummary, Counts) {
        let _ = self.stop.send(());
        let summary = self.handle.await.unwrap().unwrap();
        (summary, self.runner.counts())
    }
}

async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the live workers' heartbeats: they read the streams.
async fn wait_for_workers(queue: &Queue, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue.workers().await.unwrap().len() < n {
        assert!(Instant::now() < deadline, "{n} workers never beat");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until every task has ended; asserts each completed.
async fn wait_completed(queue: &Queue, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in ids {
        loop {
            let info = queue.task(id).await.unwrap().unwrap();
            match info.status {
                TaskStatus::Completed => break,
                TaskStatus::Queued | TaskStatus::Running => {}
                other => panic!("task {id} ended {other:?}: {info:?}"),
            }
            assert!(Instant::now() < deadline, "task {id} never ended: {info:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn redis_cmd(queue: &Queue, cmd: &redis::Cmd) {
    let mut conn = queue.connection();
    let _: redis::Value = cmd.query_async(&mut conn).await.unwrap();
}

fn destroy_group(queue: &Queue) -> redis::Cmd {
    let mut cmd = redis::cmd("XGROUP");
    cmd.arg("DESTROY")
        .arg(queue.keys().stream(Class::Normal))
        .arg(stratbox_queue::GROUP);
    cmd
}

/// Each task completed once, the counters agree, nothing is left.
async fn assert_completed_once(queue: &Queue, ids: &[String]) {
    let c = queue.counters().await.unwrap();
    assert_eq!(
        (c.tasks_submitted, c.tasks_completed, c.tasks_failed),
        (ids.len() as i64, ids.len() as i64, 0),
        "{c:?}"
    );
    assert_eq!(c.active_tasks, 0, "{c:?}");
    let stats = queue.stats().await.unwrap();
    let left: u64 = stats.waiting.values().chain(stats.pending.values()).sum();
    assert_eq!(left, 0, "{stats:?}");
    for id in ids {
        let info = queue.task(id).await.unwrap().unwrap();
        assert_eq!(info.result.as_deref(), Some(format!("\"{id}\"").as_str()));
    }
}

/// The most copies of any task that ran at once in one worker.
fn most_at_once(counts: &Counts) -> usize {
    counts.most_at_once.values().copied().max().unwrap_or(0)
}

/// XGROUP DESTROY while a worker runs two tasks and two more wait: the
/// queue recreates the group without delivering the running ones again,
/// so each runs once and completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_destroyed_under_one_worker_runs_each_task_once() {
    let t = TestServer::start();
    let queue = Queue::connect(&t.url(), PREFIX, QueueConfig::default())
        .await
        .unwrap();
    let w1 = TestWorker::start(&t.url(), "w1", 2);
    wait_for_workers(&queue, 1).await;
    // No prefetch before a first run: the short tasks wait in Redis.
    let ids = queue
        .submit(&[counted(300), counted(2_500), counted(300), counted(300)])
        .await
        .unwrap();
    wait_until("two running tasks", || {
        w1.runner.counts().started.len() == 2
    })
    .await;
    redis_cmd(&queue, &destroy_group(&queue)).await;
    wait_completed(&queue, &ids).await;
    let (summary, counts) = w1.stop().await;
    assert_eq!(most_at_once(&counts), 1, "{counts:?}");
    for id in &ids {
        assert_eq!(counts.started.get(id), Some(&1), "{id}: {counts:?}");
    }
    assert_eq!(summary.completed, 4, "{summary:?}");
    assert_completed_once(&queue, &ids).await;
}

/// The same with two workers running two tasks each: neither runs a task
/// twice, and no task runs on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_destroyed_under_two_workers_runs_each_task_once() {
    let t = TestServer::start();
    let queue = Queue::connect(&t.url(), PREFIX, QueueConfig::default())
        .await
        .unwrap();
    let w1 = TestWorker::start(&t.url(), "w1", 2);
    let w2 = TestWorker::start(&t.url(), "w2", 2);
    wait_for_workers(&queue, 2).await;
    let ids = queue
        .submit(&[
            counted(300),
            counted(2_500),
            counted(300),
            counted(2_500),
            counted(300),
            counted(300),
        ])
        .await
        .unwrap();
    let started = || w1.runner.counts().started.len() + w2.runner.counts().started.len();
    wait_until("four running tasks", || started() == 4).await;
    assert!(
        !w1.runner.counts().started.is_empty() && !w2.runner.counts().started.is_empty(),
        "both workers run tasks when the group goes"
    );
    redis_cmd(&queue, &destroy_group(&queue)).await;
    wait_completed(&queue, &ids).await;
    let (s1, c1) = w1.stop().await;
    let (s2, c2) = w2.stop().await;
    assert_eq!(most_at_once(&c1), 1, "w1: {c1:?}");
    assert_eq!(most_at_once(&c2), 1, "w2: {c2:?}");
    for id in &ids {
        let runs = c1.started.get(id).unwrap_or(&0) + c2.started.get(id).unwrap_or(&0);
        assert_eq!(runs, 1, "{id}: w1 {c1:?}, w2 {c2:?}");
    }
    assert_eq!(s1.completed + s2.completed, 6, "{s1:?} {s2:?}");
    assert_completed_once(&queue, &ids).await;
}

/// An operator recreates the group from id 0 by hand, so the running
/// tasks' entries are delivered again, some to the worker running them:
/// it does not start a second copy, and each task completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_recreated_from_0_never_runs_two_copies_in_one_worker() {
    let t = TestServer::start();
    let queue = Queue::connect(&t.url(), PREFIX, QueueConfig::default())
        .await
        .unwrap();
    let w1 = TestWorker::start(&t.url(), "w1", 2);
    wait_for_workers(&queue, 1).await;
    let ids = queue
        .submit(&[counted(300), counted(3_000), counted(300), counted(300)])
        .await
        .unwrap();
    wait_until("two running tasks", || {
        w1.runner.counts().started.len() == 2
    })
    .await;
    let mut recreate = redis::pipe();
    recreate.atomic().add_command(destroy_group(&queue));
    recreate
        .cmd("XGROUP")
        .arg("CREATE")
        .arg(queue.keys().stream(Class::Normal))
        .arg(stratbox_queue::GROUP)
        .arg("0");
    let mut conn = queue.connection();
    let _: redis::Value = recreate.query_async(&mut conn).await.unwrap();
    wait_completed(&queue, &ids).await;
    let (_, counts) = w1.stop().await;
    assert_eq!(most_at_once(&counts), 1, "{counts:?}");
    let long = queue.task(&ids[1]).await.unwrap().unwrap();
    assert!(
        long.attempts >= 2,
        "the long task was delivered again while it ran: {long:?}"
    );
    assert_eq!(counts.started.get(&ids[1]), Some(&1), "{counts:?}");
    assert_completed_once(&queue, &ids).await;
}
