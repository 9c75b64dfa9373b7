//! `stratbox demo`: the whole service from one command, stopped by Ctrl-C.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::service::p;
use super::support;

/// `stratbox demo` on `port`, its data under `dir`, standard output piped.
fn spawn_demo(dir: &std::path::Path, port: u16, stderr: Stdio) -> std::process::Child {
    let plugin = support::plugin("ema-crossover");
    Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["demo", "--plugin", p(&plugin), "--data-dir"])
        .arg(dir.join("data"))
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env_remove("REDIS_URL")
        .env_remove("STRATBOX_API_TOKEN")
        .env("STRATBOX_CACHE_DIR", dir.join("cache"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The port of the first `redis://127.0.0.1:PORT` in the demo's output.
fn redis_port(text: &str) -> Option<u16> {
    text.split("redis://127.0.0.1:")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
}

#[test]
fn demo_runs_a_backtest_over_http_and_stops_cleanly_on_ctrl_c() {
    let dir = support::scratch("demo");
    let port = support::free_port();
    let mut child = spawn_demo(&dir, port, Stdio::piped());
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let started = Instant::now();
    while !lines.iter().any(|l: &String| l.starts_with("Ctrl-C")) {
        let left = Duration::from_secs(120).saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                panic!(
                    "demo did not get to Ctrl-C; stdout:\n{}\nstderr:\n{}",
                    lines.join("\n"),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    let text = lines.join("\n");
    for needle in [
        "uploaded EMA Crossover",
        "imported BTCUSDT 1h: 8784 rows, 2024-01-01T00:00:00Z .. 2024-12-31T23:00:00Z",
        "completed in",
        "final equity",
        "top 5 (in-sample sharpe, out-of-sample sharpe):",
        "  1. fast_period=",
        &format!("http://127.0.0.1:{port}/docs/"),
        &format!("http://127.0.0.1:{port}/metrics"),
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    let redis_port = redis_port(&text).expect("the demo prints its redis url");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok(), "api is up");

    // Ctrl-C: the demo stops workers, API and Redis, and exits 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    for port in [port, redis_port] {
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still open after the demo stopped"
        );
    }
    let worker_log = std::fs::read_to_string(dir.join("data/worker-1.log")).unwrap();
    assert!(!worker_log.contains("ERROR"), "{worker_log}");
}

#[test]
fn ctrl_c_during_the_demo_steps_stops_at_once_and_cleanly() {
    let dir = support::scratch("demo_interrupted");
    let port = support::free_port();
    let mut child = spawn_demo(&dir, port, Stdio::null());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The services are up; the steps (upload, import, backtest,
    // optimization) have yet to run.
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "stratbox demo");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = rest.join("\n");
    assert!(
        !text.contains("submitted optimization"),
        "ran on after Ctrl-C:\n{text}"
    );
    assert!(text.ends_with("stopping: workers, api, redis"), "{text}");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the API still listens"
    );
}

/// `kill -9` of the demo leaves nothing running: its private Redis stops
/// (the watcher beside it sees its owner gone), and so do the API and the
/// workers (they watch their parent too).
#[test]
fn a_killed_demo_leaves_no_server_behind() {
    let dir = support::scratch("demo_killed");
    let port = support::free_port();
    let mut child = spawn_demo(&dir, port, Stdio::null());
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut redis = None;
    for line in stdout.lines().map_while(Result::ok) {
        redis = redis.or_else(|| redis_port(&line));
        if line.starts_with("uploaded") {
            break;
        }
    }
    let redis_port = redis.expect("the demo prints its redis url");
    // The API is up once a strategy was uploaded through it.
    for open in [port, redis_port] {
        assert!(
            TcpStream::connect(("127.0.0.1", open)).is_ok(),
            "port {open} is not open"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let started = Instant::now();
    for closed in [redis_port, port] {
        while TcpStream::connect(("127.0.0.1", closed)).is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "port {closed} still open 20 s after the demo was killed"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Stopped cleanly: Redis logs its shutdown (SIGTERM), not a crash.
    let log = std::fs::read_to_string(dir.join("data/redis/redis.log")).unwrap();
    assert!(log.contains("Received SIGTERM"), "{log}");
}
