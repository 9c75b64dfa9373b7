//! A private `redis-server` on loopback: the demo runs one when no
//! `REDIS_URL` is given, and the tests run one per test binary.

use anyhow::{anyhow, bail, Context};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer PING. Loading a large
/// append-only file on restart is the slow case.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts `redis-server "$@"` with a watcher beside it: a shell loop that
/// sends the server SIGTERM (a clean shutdown, AOF flushed) once the
/// process that started it is gone, so a SIGKILLed owner (the demo, a
/// bench, a test binary) leaves no server behind. The shell `exec`s the
/// server, so the child's pid is the server's. The watcher stops quietly
/// once the server has exited (its own parent is then no longer the
/// server's pid), so it never signals a pid that was reused.
const WATCHED: &str = r#"(
  while kill -0 "$PPID" 2>/dev/null; do
    read -r _ _ _ parent _ < /proc/self/stat
    [ "$parent" = "$$" ] || exit 0
    sleep 1
  done
  kill -TERM "$$" 2>/dev/null
) </dev/null >/dev/null 2>&1 &
exec redis-server "$@""#;

/// Exit status of a shell whose command was not found.
const COMMAND_NOT_FOUND: i32 = 127;

/// How a private server keeps its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Persistence {
    /// Append-only file, fsync every second: what we run and recommend.
    #[default]
    Aof,
    /// Debian's stock `redis.conf`: RDB snapshots (`save 3600 1 300 100
    /// 60 10000`), no AOF; how a Celery broker usually runs.
    Snapshots,
    /// Nothing on disk.
    None,
}

impl Persistence {
    fn args(self) -> &'static [&'static str] {
        match self {
            // AOF is the persistence; RDB snapshots would only add forks.
            // Backtest records make the data set grow with every task, and
            // each AOF rewrite dumps all of it: at the stock 100 % growth
            // the whole set is rewritten about twice over its life, at
            // 400 % about 1.25 times, for up to 5x the data set on disk
            // and a longer load on restart. 100,000 backtests, side by
            // side: rewrites 6.5-7.3 against 2.3-2.7 CPU seconds, 9-13 %
            // more backtests/s.
            Persistence::Aof => &[
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--auto-aof-rewrite-percentage",
                "400",
                "--save",
                "",
            ],
            Persistence::Snapshots => &["--appendonly", "no", "--save", "3600 1 300 100 60 10000"],
            Persistence::None => &["--appendonly", "no", "--save", ""],
        }
    }
}

/// Kept whatever the persistence.
///
/// A backtest record is about 14 short fields and one report of some KB
/// (3.4 KB stored for 100 bars). At the stock limit of 64 bytes per value
/// the report turns the record into a hashtable; as a listpack it stays
/// one compact block: less memory, less for AOF rewrites to dump. Side by
/// side, 30,000 backtests each, two pairs: Redis spent 102 and 137 us per
/// backtest against 113 and 147, and ran 8 % more backtests/s.
///
/// No LZF in snapshots (the AOF's base file): the rewrite's child spent
/// about half its CPU compressing, and on a 2-core machine it takes that
/// from the workers. Side by side, 60,000 backtests, three pairs: rewrites
/// took 2.7-2.8 us per backtest against 5.0-21.2. The cost is disk: 50,000
/// backtests' base file is 232 MB against 130 MB (Redis held 262 MB in
/// memory).
const STORAGE_ARGS: &[&str] = &[
    "--hash-max-listpack-value",
    "8192",
    "--rdbcompression",
    "no",
];

/// A `redis-server` child process, append-only by default, bound to
/// 127.0.0.1. Stopped (gracefully, so the AOF is flushed) on drop.
pub struct LocalRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl LocalRedis {
    /// Starts a server on a free loopback port keeping its data in `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(dir, Persistence::Aof)
    }

    /// [`LocalRedis::start`] with another persistence (benchmarks).
    pub fn start_with(dir: &Path, persistence: Persistence) -> anyhow::Result<Self> {
        let mut last_error = None;
        // A port found free can be taken before the server binds it; retry.
        for _ in 0..5 {
            let port = free_port()?;
            match Self::spawn(dir, port, persistence) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("cannot start redis-server")))
    }

    /// [`LocalRedis::start`] without persistence and with more
    /// `redis-server` arguments (a TLS port, ACL users: the connection
    /// tests). The plain port stays open for the readiness check and the
    /// stop, so the default user must keep working on it.
    pub fn start_with_args(dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        Self::spawn_with(dir, port, Persistence::None, extra)
    }

    /// Starts a server on `port` (a restart reuses the port and the data).
    pub fn start_on(dir: &Path, port: u16) -> anyhow::Result<Self> {
        Self::spawn(dir, port, Persistence::Aof)
    }

    fn spawn(dir: &Path, port: u16, persistence: Persistence) -> anyhow::Result<Self> {
        Self::spawn_with(dir, port, persistence, &[])
    }

    fn spawn_with(
        dir: &Path,
        port: u16,
        persistence: Persistence,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create redis data directory {}", dir.display()))?;
        let child = Command::new("sh")
            .args(["-c", WATCHED, "redis-server"])
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--port", &port.to_string()])
            .arg("--dir")
            .arg(dir)
            .args(persistence.args())
            .args(STORAGE_ARGS)
            .args(extra)
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a terminal's Ctrl-C goes to the
            // owner, which stops the server last, after the workers.
            .process_group(0)
            .spawn()
            .context("cannot run sh to start redis-server")?;
        let mut server = Self {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Graceful stop: `SHUTDOWN` makes the server fsync its AOF first.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = roundtrip(self.port, b"*1\r\n$8\r\nSHUTDOWN\r\n");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Hard stop, as a crash would: no flush beyond what AOF already did.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Ok(reply) = roundtrip(self.port, b"*1\r\n$4\r\nPING\r\n") {
                if reply.starts_with(b"+PONG") {
                    return Ok(());
                }
            }
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    if status.code() == Some(COMMAND_NOT_FOUND) {
                        bail!("cannot run redis-server: not found (Debian package `redis-server`)");
                    }
                    let log =
                        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                    bail!(
                        "redis-server exited ({status}) on port {}: {}",
                        self.port,
                        log.lines().last().unwrap_or("no log")
                    );
                }
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = self.kill();
                bail!("redis-server on port {} did not answer PING", self.port);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A loopback port free at the time of asking.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One raw RESP command and the first bytes of its reply; this runs before
/// any client exists, so it does not need one.
fn roundtrip(port: u16, command: &[u8]) -> std::io::Result<Vec<u8>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(command)?;
    let mut reply = [0u8; 64];
    let n = stream.read(&mut reply)?;
    Ok(reply[..n].to_vec())
}
