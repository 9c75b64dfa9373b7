//! `stratbox demo`: the whole service on one machine. A private Redis
//! (unless `REDIS_URL` is given), the API and two worker processes, then a
//! strategy upload, a year of hourly candles and the reference create-and-run
//! request, over real HTTP. Ctrl-C stops everything, workers first.

use anyhow::{anyhow, Context};
use clap::Args;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::client::Client;
use super::{CliError, CliResult};
use stratbox_engine::candles;
use stratbox_redis::LocalRedis;

/// Worker processes the demo runs (one task slot each).
const WORKERS: usize = 2;
/// 2024 has 366 days: 8,784 hourly bars.
const BARS_2024: usize = 8_784;
const START_2024: i64 = 1_704_067_200;
const HOUR: i64 = 3_600;
/// The API answers health in milliseconds once up; a cold start of the
/// release binary with its sandbox is well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const BACKTEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Longer than a worker's default grace period (30 s), so a drain can end.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The strategy component to upload (`scripts/demo.sh` builds it).
    #[arg(long)]
    plugin: PathBuf,
    /// The same strategy written in Python (`scripts/demo.sh` builds
    /// plugins/ema-crossover/python): uploaded and run too, and its report
    /// compared with the Rust one's.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Redis to use; a private one is started when unset.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// API address [default: that of `stratbox serve`, or a free port if taken].
    #[arg(long, env = "STRATBOX_API_ADDR")]
    addr: Option<String>,
    /// Where the private Redis keeps its data and the processes their
    /// logs [default: a fresh directory under the system temp dir].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stop everything once the backtest is reported, without waiting
    /// for Ctrl-C (scripted runs).
    #[arg(long)]
    exit: bool,
}

/// The processes the demo started; stopped in reverse order on drop.
struct Services {
    workers: Vec<Child>,
    api: Option<Child>,
    redis: Option<LocalRedis>,
    /// Removed at the end when the demo created it.
    temp_dir: Option<PathBuf>,
}

impl Services {
    fn stop(&mut self) {
        // Workers first: they give running tasks back while Redis is up.
        let mut children: Vec<Child> = self.workers.drain(..).collect();
        children.extend(self.api.take());
        for child in &children {
            terminate(child);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for mut child in children {
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !matches!(child.try_wait(), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(mut redis) = self.redis.take() {
            if let Err(e) = redis.stop() {
                eprintln!("warning: stopping redis-server: {e:#}");
            }
        }
        if let Some(dir) = self.temp_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// The first child that exited, with its name and status.
    fn exited(&mut self) -> Option<String> {
        let api = self.api.iter_mut().map(|c| ("api".to_string(), c));
        let workers = self
            .workers
            .iter_mut()
            .enumerate()
            .map(|(i, c)| (format!("worker-{}", i + 1), c));
        for (name, child) in api.chain(workers) {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(format!("{name} exited ({status})"));
            }
        }
        None
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.stop();
    }
}

fn terminate(child: &Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

pub fn run(args: &DemoArgs) -> CliResult {
    let plugin = std::fs::read(&args.plugin)
        .with_context(|| format!("--plugin: cannot read {}", args.plugin.display()))
        .map_err(CliError::input)?;
    let (dir, temp_dir) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("stratbox-demo-{}", std::process::id()));
            (dir.clone(), Some(dir))
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))
        .map_err(CliError::run)?;
    // Listening from the start: a Ctrl-C at any moment stops the services
    // in order rather than killing the demo and orphaning them.
    let signals = StopSignals::listen()?;
    let mut services = Services {
        workers: Vec::new(),
        api: None,
        redis: None,
        temp_dir,
    };
    let result = demo(args, &plugin, &dir, &mut services, &signals);
    if signals.requested() {
        // Asked to stop, at whatever step: an orderly stop is success.
        outln!("stopping: workers, api, redis");
        services.stop();
        return Ok(());
    }
    if result.is_err() {
        eprintln!("stopping the demo services");
    }
    services.stop();
    result
}

fn demo(
    args: &DemoArgs,
    plugin: &[u8],
    dir: &Path,
    services: &mut Services,
    signals: &StopSignals,
) -> CliResult {
    let redis_url = match &args.redis_url {
        Some(url) => url.clone(),
        None => {
            let redis = LocalRedis::start(&dir.join("redis"))
                .context("cannot start a private redis-server")
                .map_err(CliError::run)?;
            let url = redis.url();
            services.redis = Some(redis);
            url
        }
    };
    let addr = api_addr(args.addr.as_deref())?;
    let exe = std::env::current_exe()
        .context("cannot find the stratbox binary")
        .map_err(CliError::run)?;
    let spawn = |name: &str, extra: &[&str]| -> Result<Child, CliError> {
        let log = std::fs::File::create(dir.join(format!("{name}.log")))
            .with_context(|| format!("cannot create {name}.log"))
            .map_err(CliError::run)?;
        let err = log.try_clone().map_err(|e| CliError::run(anyhow!(e)))?;
        let mut command = Command::new(&exe);
        command
            .args(extra)
            .env("REDIS_URL", &redis_url)
            .env(
                stratbox_service::worker::PARENT_PID_ENV,
                std::process::id().to_string(),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        // Own process group: Ctrl-C reaches the demo alone, which then
        // stops the services in order.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        command
            .spawn()
            .with_context(|| format!("cannot start {name}"))
            .map_err(CliError::run)
    };
    services.api = Some(spawn("api", &["serve", "--addr", &addr.to_string()])?);
    for i in 1..=WORKERS {
        let worker = spawn(&format!("worker-{i}"), &["worker", "--workers", "1"])?;
        services.workers.push(worker);
    }
    let base = format!("http://{addr}");
    let client = Client::with_base(&base, std::env::var("STRATBOX_API_TOKEN").ok().as_deref())?;
    wait_ready(&client, services, signals)?;

    outln!("stratbox demo");
    match &services.redis {
        Some(redis) => outln!(
            "  redis    {redis_url} (private; append-only data in {})",
            redis.dir().display()
        ),
        None => outln!(
            "  redis    {} (from REDIS_URL)",
            stratbox_redis::connection::redact(&redis_url)
        ),
    }
    outln!("  api      {base} (log {})", dir.join("api.log").display());
    outln!(
        "  workers  {WORKERS} processes (logs {}/worker-N.log)",
        dir.display()
    );

    signals.check()?;
    let strategy = client.upload_strategy(plugin.to_vec(), &|| {})?;
    outln!(
        "uploaded {} {} as strategy {} (sha256 {})",
        strategy["name"].as_str().unwrap_or("?"),
        strategy["version"].as_str().unwrap_or("?"),
        strategy["strategy_id"],
        strategy["sha256"].as_str().unwrap_or("?")
    );

    let bars = candles::synth(BARS_2024, 2024, HOUR, START_2024, 42_000.0);
    let mut csv = Vec::with_capacity(BARS_2024 * 64);
    candles::write_csv(&bars, &mut csv).map_err(|e| CliError::run(anyhow!(e)))?;
    signals.check()?;
    let imported = client.post("/api/v1/candles/BTCUSDT/1h", "text/csv", csv)?;
    outln!(
        "imported BTCUSDT 1h: {} rows, {} .. {}",
        imported["rows"],
        date(&imported["first_ts"]),
        date(&imported["last_ts"])
    );

    // The reference create-and-run request of docs/conventions/api-compat.md, word for word.
    let request = json!({"strategy_id": strategy["strategy_id"], "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T00:00:00Z",
        "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
        "config": {"name": "EMA Crossover", "params": {"fast_period": 12, "slow_period": 26}}});
    let submitted = client.post_json("/api/v1/queue/backtest/create-and-run", &request)?;
    let backtest_id = submitted["backtest_id"]
        .as_u64()
        .ok_or_else(|| CliError::run(anyhow!("no backtest_id in {submitted}")))?;
    outln!(
        "submitted backtest {backtest_id} (task {})",
        submitted["task_id"].as_str().unwrap_or("?")
    );
    let backtest = wait_backtest(&client, backtest_id, signals)?;
    print_summary(&backtest);
    if let Some(python) = &args.python {
        python_twin(&client, python, &request, &backtest, signals)?;
    }
    let optimization_id =
        super::optimize::demo(&client, &strategy["strategy_id"], &|| signals.requested())?;

    outln!("look around:");
    outln!("  dashboard     {base}/dashboard/");
    outln!("  Swagger UI    {base}/docs/");
    outln!("  metrics       {base}/metrics");
    outln!("  health        {base}/api/v1/queue/health");
    outln!("  backtest      {base}/api/v1/backtests/{backtest_id}");
    outln!("  optimization  {base}/api/v1/optimizations/{optimization_id}");
    if args.exit {
        return Ok(());
    }
    outln!("Ctrl-C stops everything.");
    signals.wait(services)
}

/// The requested address, else `stratbox serve`'s default, else a free
/// loopback port.
fn api_addr(requested: Option<&str>) -> Result<SocketAddr, CliError> {
    if let Some(text) = requested {
        return text
            .parse()
            .map_err(|e| CliError::input(anyhow!("STRATBOX_API_ADDR / --addr {text:?}: {e}")));
    }
    for candidate in [stratbox_api::DEFAULT_ADDR, "127.0.0.1:0"] {
        if let Ok(listener) = TcpListener::bind(candidate) {
            return listener.local_addr().map_err(|e| CliError::run(anyhow!(e)));
        }
    }
    Err(CliError::run(anyhow!("no free loopback port for the API")))
}

fn wait_ready(client: &Client, services: &mut Services, signals: &StopSignals) -> CliResult {
    let started = Instant::now();
    loop {
        signals.check()?;
        if let Some(exit) = services.exited() {
            return Err(CliError::run(anyhow!(
                "{exit} during start-up; see its log"
            )));
        }
        if client.get("/api/v1/queue/health").is_ok() {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(CliError::run(anyhow!(
                "the API at {} did not become healthy within {READY_TIMEOUT:?}",
                client.base()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_backtest(
    client: &Client,
    backtest_id: u64,
    signals: &StopSignals,
) -> Result<Value, CliError> {
    let started = Instant::now();
    loop {
        signals.check()?;
        let backtest = client.get(&format!("/api/v1/backtests/{backtest_id}"))?;
        match backtest["status"].as_str() {
            Some("completed") => {
                outln!("completed in {:.2} s", started.elapsed().as_secs_f64());
                return Ok(backtest);
            }
            Some("failed" | "cancelled") => {
                return Err(CliError::run(anyhow!(
                    "backtest {backtest_id} ended {}: {}",
                    backtest["status"],
                    backtest["error"]
                )))
            }
            _ => {}
        }
        if started.elapsed() > BACKTEST_TIMEOUT {
            return Err(CliError::run(anyhow!(
                "backtest {backtest_id} not done after {BACKTEST_TIMEOUT:?}: {backtest}"
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Uploads the Python build of the same strategy, runs the same request
/// with it, and says whether its report matches the Rust one's.
fn python_twin(
    client: &Client,
    path: &std::path::Path,
    request: &Value,
    rust: &Value,
    signals: &StopSignals,
) -> Result<(), CliError> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("--python: cannot read {}", path.display()))
        .map_err(CliError::input)?;
    signals.check()?;
    let started = Instant::now();
    let strategy = client.upload_strategy(bytes, &|| {
        outln!("uploaded the Python twin; the server compiles it in the background...")
    })?;
    outln!(
        "stored the Python {} as strategy {} ({:.1} s)",
        strategy["name"].as_str().unwrap_or("?"),
        strategy["strategy_id"],
        started.elapsed().as_secs_f64()
    );
    let mut request = request.clone();
    request["strategy_id"] = strategy["strategy_id"].clone();
    let submitted = client.post_json("/api/v1/queue/backtest/create-and-run", &request)?;
    let backtest_id = submitted["backtest_id"]
        .as_u64()
        .ok_or_else(|| CliError::run(anyhow!("no backtest_id in {submitted}")))?;
    let backtest = wait_backtest(client, backtest_id, signals)?;
    outln!("backtest {backtest_id}, the same request in Python:");
    print_summary(&backtest);
    let trading = |b: &Value| {
        let mut report = b["report"].clone();
        if let Some(r) = report.as_object_mut() {
            r.remove("fuel_used");
            if let Some(s) = r.get_mut("strategy").and_then(Value::as_object_mut) {
                s.remove("sha256");
            }
        }
        report
    };
    outln!(
        "  same trades and figures as Rust: {}",
        if trading(&backtest) == trading(rust) {
            "yes, bit for bit"
        } else {
            "NO (a bug: please report it)"
        }
    );
    Ok(())
}

fn print_summary(backtest: &Value) {
    let report = &backtest["report"];
    let number = |name: &str| report[name].as_f64().unwrap_or(f64::NAN);
    outln!("  final equity   {:>12.2}", number("final_equity"));
    outln!("  total return   {:>11.2} %", number("total_return_pct"));
    outln!("  max drawdown   {:>11.2} %", number("max_drawdown_pct"));
    outln!("  sharpe         {:>12.3}", number("sharpe"));
    outln!("  trades         {:>12}", report["num_trades"]);
    outln!("  win rate       {:>11.2} %", number("win_rate_pct"));
    outln!("  fuel used      {:>12}", report["fuel_used"]);
}

fn date(ts: &Value) -> String {
    ts.as_i64()
        .map(stratbox_engine::time::format_rfc3339_secs)
        .unwrap_or_else(|| ts.to_string())
}

/// SIGINT and SIGTERM, caught from the demo's first moment by a thread of
/// their own, so every wait of the demo can see them at once.
struct StopSignals {
    stopped: Arc<AtomicBool>,
}

impl StopSignals {
    fn listen() -> Result<StopSignals, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let stopped = Arc::new(AtomicBool::new(false));
        let flag = stopped.clone();
        let runtime = super::settings::runtime(None)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            runtime.block_on(async move {
                let handlers = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                );
                let (mut interrupt, mut terminate) = match handlers {
                    (Ok(i), Ok(t)) => {
                        let _ = ready_tx.send(Ok(()));
                        (i, t)
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                flag.store(true, Ordering::SeqCst);
            });
        });
        ready_rx
            .recv()
            .map_err(|e| CliError::run(anyhow!("signal listener: {e}")))?
            .map_err(CliError::run)?;
        Ok(StopSignals { stopped })
    }

    fn requested(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// An error that ends the current step when a stop was asked for.
    fn check(&self) -> CliResult {
        if self.requested() {
            Err(CliError::run(anyhow!("interrupted")))
        } else {
            Ok(())
        }
    }

    /// Blocks until SIGINT/SIGTERM, or until a service dies on its own.
    fn wait(&self, services: &mut Services) -> CliResult {
        while !self.requested() {
            if let Some(exit) = services.exited() {
                return Err(CliError::run(anyhow!("{exit}; see its log")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}
