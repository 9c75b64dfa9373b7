use anyhow::Context;
use clap::{Args, Subcommand};
use std::path::PathBuf;

use super::client::{ApiArgs, Client};
use super::{write_atomically, CliError, CliResult};
use stratbox_engine::candles::{self, Candles};

#[derive(Debug, Subcommand)]
pub enum CandlesCommand {
    /// Write a seeded random-walk candle CSV (same seed, same bytes).
    Synth(SynthArgs),
    /// Check a candle CSV and summarise it.
    Check {
        /// CSV file (header ts,open,high,low,close,volume).
        path: PathBuf,
    },
    /// Send a candle CSV to a running API (merged with what it holds).
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// CSV file (header ts,open,high,low,close,volume).
    path: PathBuf,
    /// Symbol, e.g. BTCUSDT.
    #[arg(long)]
    symbol: String,
    /// Bar length, e.g. 1m, 5m, 1h, 1d.
    #[arg(long)]
    timeframe: String,
    #[command(flatten)]
    api: ApiArgs,
    /// Print the server's reply as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Number of bars.
    #[arg(long, default_value_t = 1_000)]
    bars: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Bar length, e.g. 1m, 5m, 1h, 1d.
    #[arg(long, default_value = "1m")]
    timeframe: String,
    /// First bar's open time: unix seconds or RFC 3339.
    #[arg(long, default_value = "2024-01-01T00:00:00Z")]
    start: String,
    /// First open price.
    #[arg(long, default_value_t = 42_000.0)]
    price: f64,
    /// Output file; standard output when absent.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

pub fn run(cmd: CandlesCommand) -> CliResult {
    match cmd {
        CandlesCommand::Import(args) => import(&args),
        CandlesCommand::Synth(args) => synth(args),
        CandlesCommand::Check { path } => {
            let candles = load_csv(&path)?;
            outln!(
                "{}: {} bars, {} .. {}, timeframe {}",
                path.display(),
                candles.len(),
                candles.ts[0],
                candles.ts[candles.len() - 1],
                candles
                    .timeframe_secs()
                    .map(candles::format_timeframe)
                    .unwrap_or_else(|| "unknown".into())
            );
            Ok(())
        }
    }
}

fn synth(args: SynthArgs) -> CliResult {
    let timeframe = candles::parse_timeframe(&args.timeframe)
        .map_err(|e| CliError::input(anyhow::anyhow!("--timeframe: {e}")))?;
    let start = parse_start(&args.start).ok_or_else(|| {
        CliError::input(anyhow::anyhow!(
            "--start: `{}` is neither unix seconds nor RFC 3339",
            args.start
        ))
    })?;
    if args.bars == 0 {
        return Err(CliError::input(anyhow::anyhow!(
            "--bars must be at least 1"
        )));
    }
    if !(args.price.is_finite() && args.price > 0.0) {
        return Err(CliError::input(anyhow::anyhow!(
            "--price must be a positive number"
        )));
    }
    let data = candles::synth(args.bars, args.seed, timeframe, start, args.price);
    let mut bytes = Vec::with_capacity(args.bars * 64);
    candles::write_csv(&data, &mut bytes).map_err(CliError::run)?;
    match args.out {
        Some(path) => write_atomically(&path, &bytes).map_err(CliError::run)?,
        None => {
            use std::io::Write;
            match std::io::stdout().lock().write_all(&bytes) {
                Ok(()) => {}
                // The reader stopped early (`| head`): not an error.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                Err(e) => {
                    return Err(CliError::run(
                        anyhow::Error::new(e).context("cannot write to standard output"),
                    ))
                }
            }
        }
    }
    Ok(())
}

fn parse_start(text: &str) -> Option<i64> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return Some(secs);
    }
    let csv = format!("ts,open,high,low,close,volume\n{text},1,1,1,1,0\n");
    candles::parse_csv(&csv).ok().map(|c| c.ts[0])
}

/// Reads and checks a candle CSV; errors name the file and the line.
fn import(args: &ImportArgs) -> CliResult {
    candles::parse_timeframe(&args.timeframe)
        .map_err(|e| CliError::input(anyhow::anyhow!("--timeframe {}: {e}", args.timeframe)))?;
    stratbox_store::candles::normalize_symbol(&args.symbol)
        .map_err(|e| CliError::input(anyhow::anyhow!("--symbol: {e}")))?;
    let body = std::fs::read(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))
        .map_err(CliError::input)?;
    let client = Client::new(&args.api)?;
    let path = format!("/api/v1/candles/{}/{}", args.symbol, args.timeframe);
    let reply = client.post(&path, "text/csv", body)?;
    if args.json {
        outln!("{reply}");
    } else {
        outln!(
            "{} {}: {} rows imported, {} .. {}",
            reply["symbol"].as_str().unwrap_or("?"),
            reply["timeframe"].as_str().unwrap_or("?"),
            reply["rows"],
            reply["first_ts"],
            reply["last_ts"]
        );
    }
    Ok(())
}

pub(crate) fn load_csv(path: &std::path::Path) -> Result<Candles, CliError> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read candles from {}", path.display()))
        .map_err(CliError::input)?;
    candles::parse_csv(&text)
        .with_context(|| format!("invalid candles in {}", path.display()))
        .map_err(CliError::input)
}
