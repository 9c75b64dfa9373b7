//! One private `redis-server` per test, in its own temporary directory.
//! A static one would never be dropped, leaving the server running after
//! the test binary exits; this one stops when the value is dropped.

use crate::LocalRedis;
pub use tempfile::TempDir;

pub struct TestServer {
    pub server: LocalRedis,
    /// Holds the server's files; removed after the server stops.
    pub dir: TempDir,
}

impl TestServer {
    /// Panics when no server can be started: a test cannot go on without it.
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory for redis-server");
        let server = LocalRedis::start(dir.path()).expect("a private redis-server");
        TestServer { server, dir }
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}
