//! Sustained `create-and-run` submissions against one `stratbox serve`
//! process, with Redis on the same machine and the load generator (this
//! process, keep-alive HTTP/1.1 connections) on loopback.
//!
//! ```text
//! cargo bench -p stratbox --bench api -- --plugin path/to/ema-crossover.wasm
//! ```

mod common;

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{cpu_secs, PREFIX};
use stratbox_engine::candles;
use stratbox_redis::LocalRedis;

/// Sustained create-and-run submissions against one API process: rate
/// and latency, measured by a load generator on loopback.
#[derive(Debug, Parser)]
#[command(name = "api")]
struct ApiBenchArgs {
    /// The ema-crossover component, uploaded through the API first.
    #[arg(long)]
    plugin: PathBuf,
    /// Measured seconds (after a warm-up of a fifth of that).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent client connections, each sending one request at a time
    /// (16 keeps 2 cores busy without queueing most of the latency).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Submit as a tenant with a quota (every quota checked, none
    /// reached): the tenant path against the install's.
    #[arg(long)]
    tenant: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    harness: common::Harness,
}

fn main() -> ExitCode {
    common::main(|args: ApiBenchArgs| run(&args))
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    tenant: bool,
    connections: usize,
    seconds: f64,
    submissions: usize,
    errors: usize,
    submissions_per_sec: f64,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    /// CPU per submission of each process, in microseconds.
    server_cpu_us: f64,
    redis_cpu_us: f64,
    client_cpu_us: f64,
    server_rss_mb: f64,
}

fn run(args: &ApiBenchArgs) -> anyhow::Result<()> {
    if args.seconds == 0 || args.connections == 0 {
        bail!("--seconds and --connections must be at least 1");
    }
    let plugin = common::read_plugin(&args.plugin)?;
    let scratch = common::scratch_dir("api");
    let redis = LocalRedis::start(&scratch.join("redis"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())?
        .port();
    let mut server = Server::spawn(&args.harness.exe(), &redis.url(), port, &scratch)?;
    let runtime = common::runtime()?;
    let figures = runtime.block_on(measure(args, &plugin, &mut server, port, redis.pid()));
    drop(server);
    drop(redis);
    let _ = std::fs::remove_dir_all(&scratch);
    print(args, &figures?)
}

struct Server {
    child: Child,
}

impl Server {
    fn spawn(exe: &Path, redis_url: &str, port: u16, scratch: &Path) -> anyhow::Result<Server> {
        let log = std::fs::File::create(scratch.join("serve.log"))?;
        let child = Command::new(exe)
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .env("REDIS_URL", redis_url)
            .env("STRATBOX_PREFIX", PREFIX)
            .env("STRATBOX_CACHE_DIR", scratch.join("cache"))
            // Per-request info lines would measure the log writer.
            .env("RUST_LOG", "warn")
            .env_remove("STRATBOX_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        Ok(Server { child })
    }

    fn rss_mb(&self) -> f64 {
        common::status_mb(self.child.id(), "VmRSS").unwrap_or(0.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn measure(
    args: &ApiBenchArgs,
    plugin: &[u8],
    server: &mut Server,
    port: u16,
    redis_pid: Option<u32>,
) -> anyhow::Result<Figures> {
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .timeout(Duration::from_secs(10))
        .build()?;
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/api/v1/queue/health")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        if let Some(status) = server.child.try_wait()? {
            bail!("stratbox serve exited ({status})");
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("stratbox serve not healthy within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bars = candles::synth(8_784, 2024, 3_600, 1_704_067_200, 42_000.0);
    let mut csv = Vec::new();
    candles::write_csv(&bars, &mut csv)?;
    // The install's candles: a tenant reads them as shared market data.
    http.post(format!("{base}/api/v1/candles/BTCUSDT/1h"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await?
        .error_for_status()?;
    // A tenant's key, and a quota whose every check runs and passes.
    let key = if args.tenant {
        // The quota first: once a key exists, nothing anonymous passes.
        http.put(format!("{base}/api/v1/tenants/bench/quota"))
            .json(
                &json!({"max_queued": 1_000_000_000u64, "max_running": 1_000_000,
                "max_fuel": 1_000_000_000_000u64, "max_results": 1_000_000_000u64}),
            )
            .send()
            .await?
            .error_for_status()?;
        let key: Value = http
            .post(format!("{base}/api/v1/keys"))
            .json(&json!({"tenant": "bench", "label": "bench api"}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        key["secret"].as_str().map(String::from)
    } else {
        None
    };
    let auth = Arc::new(key.map(|k| format!("Bearer {k}")));
    let mut upload = http.post(format!("{base}/api/v1/strategies"));
    if let Some(auth) = auth.as_deref() {
        upload = upload.header("authorization", auth);
    }
    let strategy: Value = upload
        .header("content-type", "application/wasm")
        .body(plugin.to_vec())
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    // The reference create-and-run request (docs/conventions/api-compat.md,
    // "The old service's endpoints").
    let body = Arc::new(
        json!({"strategy_id": strategy["strategy_id"], "symbol": "BTCUSDT", "timeframe": "1h",
            "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T00:00:00Z",
            "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
            "config": {"name": "EMA Crossover", "params": {"fast_period": 12, "slow_period": 26}}})
        .to_string(),
    );
    let url = Arc::new(format!("{base}/api/v1/queue/backtest/create-and-run"));

    let warmup = Duration::from_secs(args.seconds).div_f64(5.0);
    let measured = Duration::from_secs(args.seconds);
    run_load(&http, &url, &body, &auth, args.connections, warmup).await;
    let server_pid = server.child.id().to_string();
    let redis_pid = redis_pid.map(|p| p.to_string());
    let cpu_before = (
        cpu_secs(&server_pid),
        redis_pid.as_deref().map_or(0.0, cpu_secs),
        cpu_secs("self"),
    );
    let clock = Instant::now();
    let (mut latencies, errors) =
        run_load(&http, &url, &body, &auth, args.connections, measured).await;
    let elapsed = clock.elapsed().as_secs_f64();
    let cpu_after = (
        cpu_secs(&server_pid),
        redis_pid.as_deref().map_or(0.0, cpu_secs),
        cpu_secs("self"),
    );
    if latencies.is_empty() {
        bail!("no submission succeeded ({errors} errors)");
    }
    latencies.sort_unstable();
    let n = latencies.len();
    let at = |q: f64| latencies[((n as f64 * q) as usize).min(n - 1)].as_secs_f64() * 1e3;
    let per = |before: f64, after: f64| (after - before) * 1e6 / n as f64;
    Ok(Figures {
        tenant: args.tenant,
        connections: args.connections,
        seconds: elapsed,
        submissions: n,
        errors,
        submissions_per_sec: n as f64 / elapsed,
        latency_p50_ms: at(0.50),
        latency_p99_ms: at(0.99),
        latency_max_ms: latencies[n - 1].as_secs_f64() * 1e3,
        server_cpu_us: per(cpu_before.0, cpu_after.0),
        redis_cpu_us: per(cpu_before.1, cpu_after.1),
        client_cpu_us: per(cpu_before.2, cpu_after.2),
        server_rss_mb: server.rss_mb(),
    })
}

/// `connections` loops, each sending the next request when the last one
/// is answered, for `duration`. Latencies of the 200s, and the error count.
async fn run_load(
    http: &reqwest::Client,
    url: &Arc<String>,
    body: &Arc<String>,
    auth: &Arc<Option<String>>,
    connections: usize,
    duration: Duration,
) -> (Vec<Duration>, usize) {
    let until = Instant::now() + duration;
    let mut loops = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (http, url, body, auth) = (http.clone(), url.clone(), body.clone(), auth.clone());
        loops.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0;
            while Instant::now() < until {
                let sent = Instant::now();
                let mut request = http.post(url.as_str());
                if let Some(auth) = auth.as_deref() {
                    request = request.header("authorization", auth);
                }
                let reply = request
                    .header("content-type", "application/json")
                    .body(body.as_str().to_owned())
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status() == 200 => {
                        // Read the body: the answer is complete only then.
                        if r.bytes().await.is_ok() {
                            latencies.push(sent.elapsed());
                        } else {
                            errors += 1;
                        }
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for handle in loops {
        if let Ok((latencies, e)) = handle.await {
            all.extend(latencies);
            errors += e;
        }
    }
    (all, errors)
}

fn print(args: &ApiBenchArgs, f: &Figures) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(f)?);
        return Ok(());
    }
    println!(
        "stratbox bench api (one serve process, {} connections, {:.1} s{})",
        f.connections,
        f.seconds,
        if f.tenant {
            ", as a tenant with a quota"
        } else {
            ""
        }
    );
    println!(
        "  create-and-run submissions   {:>8.0} /s  ({} ok, {} errors; target >= 5,000)",
        f.submissions_per_sec, f.submissions, f.errors
    );
    println!(
        "  latency                      p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms  (target p99 < 10)",
        f.latency_p50_ms, f.latency_p99_ms, f.latency_max_ms
    );
    println!(
        "  CPU per submission           server {:.0} us, redis {:.0} us, load generator {:.0} us",
        f.server_cpu_us, f.redis_cpu_us, f.client_cpu_us
    );
    println!("  server RSS                   {:.1} MB", f.server_rss_mb);
    Ok(())
}
