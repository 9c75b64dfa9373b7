//! A private Redis per test, worker processes of the real binary, and the
//! library handles (store, queue) a client would use.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use stratbox_queue::{Queue, QueueConfig, TaskInfo, TaskStatus};
use stratbox_redis::LocalRedis;
use stratbox_store::Store;

use super::support;

/// Queue timings for tests: seconds, not the production tens of seconds,
/// so crash recovery is observable quickly.
pub const FAST_ENV: &[(&str, &str)] = &[
    ("STRATBOX_VISIBILITY_TIMEOUT_MS", "3000"),
    ("STRATBOX_KEEPALIVE_MS", "500"),
    ("STRATBOX_HEARTBEAT_TTL_MS", "2000"),
    ("STRATBOX_SWEEP_INTERVAL_MS", "500"),
    ("STRATBOX_BACKOFF_BASE_MS", "200"),
    ("STRATBOX_BACKOFF_CAP_MS", "2000"),
];

pub fn fast_config() -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_millis(3000),
        keepalive: Duration::from_millis(500),
        heartbeat_ttl: Duration::from_millis(2000),
        sweep_interval: Duration::from_millis(500),
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_millis(2000),
        ..QueueConfig::default()
    }
}

pub struct Service {
    pub redis: LocalRedis,
    pub dir: PathBuf,
    pub prefix: String,
    pub store: Store,
    pub queue: Queue,
}

impl Service {
    pub async fn start(test: &str) -> Service {
        let dir = support::scratch(test);
        let redis = LocalRedis::start(&dir.join("redis")).expect("redis-server starts");
        let prefix = format!("t-{test}");
        let store = Store::connect(&redis.url(), &prefix).await.unwrap();
        let queue = Queue::connect(&redis.url(), &prefix, fast_config())
            .await
            .unwrap();
        Service {
            redis,
            dir,
            prefix,
            store,
            queue,
        }
    }

    pub fn url(&self) -> String {
        self.redis.url()
    }

    /// Stops Redis gracefully (AOF flushed), keeps it down for `down`,
    /// and starts it again on the same port and data.
    pub fn restart_redis(&mut self, down: Duration) {
        let (dir, port) = (self.redis.dir().to_path_buf(), self.redis.port());
        self.redis.stop().unwrap();
        std::thread::sleep(down);
        self.redis = LocalRedis::start_on(&dir, port).expect("redis-server restarts");
    }

    /// After a restart, a client's first command fails while its connection
    /// is re-made (a caller would retry, or answer 503): wait for that.
    pub async fn wait_reconnected(&self) {
        let started = Instant::now();
        loop {
            let mut a = self.store.connection();
            let mut b = self.queue.connection();
            let pa: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut a).await;
            let pb: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut b).await;
            if pa.is_ok() && pb.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "clients did not reconnect"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Consumer names in the `workers` group of every stream.
    pub async fn consumers(&self) -> Vec<String> {
        let mut conn = self.queue.connection();
        let mut names = Vec::new();
        for class in stratbox_queue::Class::ALL {
            let infos: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(self.queue.keys().stream(class))
                .arg("workers")
                .query_async(&mut conn)
                .await
                .unwrap();
            for info in infos {
                if let Some(redis::Value::BulkString(name)) = info.get("name") {
                    names.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        names
    }

    /// `stratbox worker --workers N` with the fast timings, logging to a
    /// file under the test's directory.
    pub fn worker(&self, name: &str, slots: usize, extra: &[(&str, &str)]) -> WorkerProc {
        let log = self.dir.join(format!("worker-{name}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
        cmd.args(["worker", "--workers", &slots.to_string(), "--name", name])
            .env("REDIS_URL", self.url())
            .env("STRATBOX_PREFIX", &self.prefix)
            .env("STRATBOX_CACHE_DIR", self.dir.join("cache"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in FAST_ENV.iter().chain(extra) {
            cmd.env(k, v);
        }
        WorkerProc {
            child: Some(cmd.spawn().expect("worker starts")),
            log,
        }
    }

    pub async fn put_plugin(&self, dir: &str) -> String {
        let bytes = support::plugin_bytes(dir);
        let sandbox = stratbox_sandbox::Sandbox::new(stratbox_sandbox::SandboxConfig {
            cache_dir: Some(self.dir.join("cache")),
            ..Default::default()
        })
        .unwrap();
        let plugin = sandbox.load(&bytes).unwrap();
        let d = &plugin.description;
        self.store
            .put_plugin(&plugin.sha256, &bytes, &d.name, &d.version, d)
            .await
            .unwrap();
        plugin.sha256.clone()
    }

    /// Polls until the task reaches a final status.
    pub async fn wait_final(&self, task_id: &str, timeout: Duration) -> TaskInfo {
        let started = Instant::now();
        loop {
            if let Some(info) = self.queue.task(task_id).await.unwrap() {
                if info.status.is_final() {
                    return info;
                }
            }
            assert!(
                started.elapsed() < timeout,
                "task {task_id} did not finish within {timeout:?}: {:?}",
                self.queue.task(task_id).await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Polls until the task has the given status.
    pub async fn wait_status(
        &self,
        task_id: &str,
        status: TaskStatus,
        timeout: Duration,
    ) -> TaskInfo {
        let started = Instant::now();
        loop {
            if let Some(info) = self.queue.task(task_id).await.unwrap() {
                if info.status == status {
                    return info;
                }
            }
            assert!(
                started.elapsed() < timeout,
                "task {task_id} not {status:?} within {timeout:?}: {:?}",
                self.queue.task(task_id).await.unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Nothing waiting, pending or delayed in any class.
    pub async fn assert_drained(&self) {
        let stats = self.queue.stats().await.unwrap();
        assert!(stats.waiting.values().all(|n| *n == 0), "{stats:?}");
        assert!(stats.pending.values().all(|n| *n == 0), "{stats:?}");
        assert_eq!(stats.delayed, 0, "{stats:?}");
    }
}

pub struct WorkerProc {
    child: Option<Child>,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(0)
    }

    /// SIGKILL: the process dies without any cleanup.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// Waits for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let started = Instant::now();
        let child = self.child.as_mut().expect("worker running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "worker did not exit within {timeout:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Path as &str for command lines.
pub fn p(path: &Path) -> &str {
    support::path_str(path)
}
