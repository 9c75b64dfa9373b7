//! The `stratbox` command line.

/// mimalloc: glibc's malloc was a fifth of the API's CPU per request
/// (many small short-lived allocations across threads). Built without
/// transparent huge pages (`no_thp`): with them a worker's peak RSS was
/// 2.5x larger (133 MB against 50 MB in the optimize bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that ends the process quietly when the reader has gone away
/// (`stratbox ... | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::emit_line(format_args!($($arg)*))
    };
}

mod autoscale;
mod backtest;
mod bench;
mod candles;
mod client;
mod data;
mod demo;
#[cfg(test)]
mod docs;
mod guest;
mod market;
mod ops;
mod optimize;
mod plugin;
mod scheduler;
mod serve;
mod settings;
mod tenants;
mod upload;
mod worker;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Sandboxed WebAssembly trading strategies: backtest locally, inspect and
/// build plugins, generate candles, benchmark.
#[derive(Debug, Parser)]
#[command(name = "stratbox", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a backtest locally (no Redis, no server).
    Backtest(backtest::BacktestArgs),
    /// Sweep strategy params locally on every core (no Redis): grid,
    /// random or Bayesian (TPE), ranked by a report metric, with an
    /// optional hold-out.
    Optimize(Box<optimize::OptimizeArgs>),
    /// Build, inspect and check strategy plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Generate or convert candle files.
    #[command(subcommand)]
    Candles(candles::CandlesCommand),
    /// Measure engine and sandbox throughput, WASM against native.
    Bench(bench::BenchArgs),
    /// Run task slots that take backtests from the Redis queue.
    Worker(Box<worker::WorkerArgs>),
    /// Run the HTTP API (base /api/v1; Swagger UI at /docs).
    Serve(Box<serve::ServeArgs>),
    /// Run the whole service locally (Redis, API, two workers) and a
    /// backtest through it over HTTP.
    Demo(Box<demo::DemoArgs>),
    /// Keep between --min and --max worker processes, sized to a wait SLA.
    Autoscale(Box<autoscale::AutoscaleArgs>),
    /// Run the scheduler loop alone (`serve` runs it too).
    Scheduler(Box<scheduler::SchedulerArgs>),
    /// Upload a strategy component to a running API.
    Upload(upload::UploadArgs),
    /// Market data from exchanges (Bybit), into a CSV or Redis.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// The dead-letter stream of a running service: list, requeue, purge.
    #[command(subcommand)]
    Dlq(ops::DlqCommand),
    /// Tasks of a running service: the queue at a glance, one task,
    /// cancel.
    #[command(subcommand)]
    Tasks(ops::TasksCommand),
    /// API keys of a running service: create, list, revoke (an admin's).
    #[command(subcommand)]
    Keys(tenants::KeysCommand),
    /// Tenants of a running service: usage, and their quotas.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
}

/// A failure with its exit status: 2 for bad input (a flag, a file, a
/// param), 1 when a run fails (a strategy error, a trap, a limit).
#[derive(Debug)]
pub struct CliError {
    pub status: u8,
    pub error: anyhow::Error,
}

impl CliError {
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: 2,
            error: error.into(),
        }
    }
    pub fn run(error: impl Into<anyhow::Error>) -> Self {
        Self {
            status: 1,
            error: error.into(),
        }
    }
}

pub type CliResult = Result<(), CliError>;

fn main() -> ExitCode {
    stratbox_marketdata::install_tls_provider();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backtest(args) => backtest::run(&args),
        Command::Optimize(args) => optimize::run(&args),
        Command::Plugin(cmd) => plugin::run(cmd),
        Command::Candles(cmd) => candles::run(cmd),
        Command::Bench(args) => bench::run(&args),
        Command::Worker(args) => worker::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Upload(args) => upload::run(&args),
        Command::Autoscale(args) => autoscale::run(&args),
        Command::Scheduler(args) => scheduler::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Data(cmd) => data::run(cmd),
        Command::Dlq(cmd) => ops::run_dlq(cmd),
        Command::Tasks(cmd) => ops::run_tasks(cmd),
        Command::Keys(cmd) => tenants::run_keys(cmd),
        Command::Tenants(cmd) => tenants::run_tenants(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {:#}", e.error);
            ExitCode::from(e.status)
        }
    }
}

pub(crate) fn emit_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// failure never leaves a half-written file behind.
pub(crate) fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
