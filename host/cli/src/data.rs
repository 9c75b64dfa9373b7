//! `stratbox data fetch bybit`: Bybit v5 public market data
//! (docs/conventions/market-data.md) into a candle CSV (with
//! `.funding.csv`, `.mark.csv` and `.instrument.json` beside it) or into
//! the Redis store, resumably: what the destination already holds is not
//! asked for again.

use super::settings::RedisArgs;
use super::{write_atomically, CliError, CliResult};
use anyhow::{anyhow, Context};
use clap::{ArgGroup, Args, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use stratbox_engine::candles::{self, format_timeframe, Candles};
use stratbox_engine::perp::{parse_funding_csv, Funding};
use stratbox_engine::time::{format_rfc3339_secs, parse_rfc3339_secs};
use stratbox_marketdata::instrument::fetch_instrument;
use stratbox_marketdata::{
    fetch_candles, fetch_funding, BybitClient, CandleRequest, CandleSink, ClientConfig, Error,
    FetchOptions, Interval, KlineKind, DEFAULT_BASE_URL,
};
use stratbox_service::tasks::data_fetch::{
    fetch_into_store, DataFetchRequest, FetchSummary, KlineSummary, Stage,
};
use stratbox_service::tasks::SubmitError;
use stratbox_store::Store;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Fetch market data from an exchange into a CSV file or Redis.
    #[command(subcommand)]
    Fetch(FetchCommand),
}

#[derive(Debug, Subcommand)]
pub enum FetchCommand {
    /// Bybit v5 public market data (no API key): candles, and optionally
    /// mark prices, funding history and the instrument. Resumable.
    Bybit(Box<BybitArgs>),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("destination").required(true).args(["out", "redis"])))]
pub struct BybitArgs {
    /// Bybit symbol, e.g. BTCUSDT.
    #[arg(long)]
    symbol: String,
    /// Bybit category: linear (USDT perpetuals, what the perpetual model
    /// backtests), spot or inverse.
    #[arg(long, default_value = "linear")]
    category: String,
    /// Bar length: Bybit's code (1 3 5 15 30 60 120 240 360 720 D W) or
    /// 1m, 1h, 1d, 1w.
    #[arg(long)]
    interval: String,
    /// First bar's open time: RFC 3339 or YYYY-MM-DD (UTC).
    #[arg(long)]
    start: String,
    /// End of the range, exclusive: RFC 3339 or YYYY-MM-DD; now when
    /// absent (the still-forming bar is never fetched).
    #[arg(long)]
    end: Option<String>,
    /// Also fetch mark-price candles (`<stem>.mark.csv`, or the
    /// `SYMBOL.MARK` series in Redis).
    #[arg(long)]
    mark: bool,
    /// Also fetch the funding history (`<stem>.funding.csv`: ts,rate).
    #[arg(long)]
    funding: bool,
    /// Also fetch the instrument: tick size, qty step, min qty, max
    /// leverage and margin tiers (`<stem>.instrument.json`). Fees are the
    /// perpetual defaults: Bybit's answers do not carry them.
    #[arg(long)]
    instrument: bool,
    /// Candle CSV to fill (rows already in it are not fetched again).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Store into Redis beside the candles instead of a file.
    #[arg(long)]
    redis: bool,
    #[command(flatten)]
    redis_args: RedisArgs,
    /// Bybit's API (testnet: https://api-testnet.bybit.com).
    #[arg(long, env = "BYBIT_BASE_URL", default_value = DEFAULT_BASE_URL)]
    base_url: String,
    /// No progress on standard error (it is off anyway when standard
    /// error is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// Exit 1 when bars are missing inside the range (always reported).
    #[arg(long)]
    fail_on_gap: bool,
}

pub fn run(cmd: DataCommand) -> CliResult {
    match cmd {
        DataCommand::Fetch(FetchCommand::Bybit(args)) => bybit(&args),
    }
}

/// RFC 3339, or a bare date meaning its midnight UTC.
fn parse_date(flag: &str, text: &str) -> Result<i64, CliError> {
    let t = text.trim();
    let full = if t.len() == 10 {
        format!("{t}T00:00:00Z")
    } else {
        t.to_string()
    };
    parse_rfc3339_secs(&full)
        .map_err(|e| CliError::input(anyhow!("{flag} `{text}`: {e} (or YYYY-MM-DD)")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Bad parameters are the user's (exit 2, naming the flag); the rest is a
/// failed run (exit 1).
fn fetch_error(e: Error) -> CliError {
    match e {
        Error::Invalid { field, message } => {
            CliError::input(anyhow!("--{}: {message}", field.replace('_', "-")))
        }
        other => CliError::run(anyhow::Error::new(other)),
    }
}

/// `<stem>.<suffix>` beside the candle CSV.
fn beside(out: &Path, suffix: &str) -> PathBuf {
    out.with_extension(suffix)
}

fn bybit(args: &BybitArgs) -> CliResult {
    let start = parse_date("--start", &args.start)?;
    let now = now_ms();
    let end = match &args.end {
        Some(e) => parse_date("--end", e)?,
        None => now.div_euclid(1000),
    };
    if start >= end {
        return Err(CliError::input(anyhow!(
            "--start {} must be before --end {}",
            format_rfc3339_secs(start),
            format_rfc3339_secs(end)
        )));
    }
    let request = DataFetchRequest {
        symbol: args.symbol.trim().to_string(),
        category: args.category.clone(),
        interval: args.interval.clone(),
        start_ts: start,
        end_ts: end,
        mark: args.mark,
        funding: args.funding,
        instrument: args.instrument,
    };
    let interval = request.check().map_err(|e| match e {
        SubmitError::Invalid { field, message } => {
            let flag = match field.as_str() {
                "start_date" => "start".to_string(),
                other => other.replace('_', "-"),
            };
            CliError::input(anyhow!("--{flag}: {message}"))
        }
        other => CliError::input(anyhow::Error::new(other)),
    })?;
    if let Some(out) = &args.out {
        if out.is_dir() {
            return Err(CliError::input(anyhow!(
                "--out {}: is a directory",
                out.display()
            )));
        }
    }
    let client = BybitClient::new(&ClientConfig {
        base_url: args.base_url.clone(),
        ..ClientConfig::default()
    })
    .map_err(fetch_error)?;
    let show = !args.quiet && std::io::stderr().is_terminal();
    let mut shown = None;
    let mut progress = |stage: Stage, done: u64, total: u64| {
        if !show || matches!(stage, Stage::Funding | Stage::Instrument) {
            return;
        }
        if shown.is_some_and(|s| s != stage) {
            eprintln!();
        }
        shown = Some(stage);
        eprint!("\rfetched {done}/{total} {}", stage.label());
    };
    let fetched = match &args.out {
        None => {
            // A runtime with its own thread: the fetch drives it through
            // a handle, which cannot run a current-thread runtime's IO.
            let rt = super::settings::runtime(Some(1))?;
            let store = rt
                .block_on(Store::connect(
                    &args.redis_args.redis_url,
                    &args.redis_args.prefix,
                ))
                .with_context(|| {
                    format!(
                        "cannot connect to {}",
                        stratbox_redis::connection::redact(&args.redis_args.redis_url)
                    )
                })
                .map_err(CliError::run)?;
            fetch_into_store(
                &client,
                &store,
                rt.handle(),
                &request,
                now,
                None,
                &mut progress,
            )
        }
        Some(out) => fetch_into_files(&client, &request, interval, out, now, &mut progress)?,
    };
    if shown.is_some() {
        eprintln!();
    }
    let summary = fetched.map_err(fetch_error)?;
    let gaps = print_summary(&summary);
    if gaps > 0 && args.fail_on_gap {
        return Err(CliError::run(anyhow!(
            "{gaps} gaps in the data (see the warnings above); nothing was filled"
        )));
    }
    Ok(())
}

/// The CSV destination: `out` for candles, `.mark.csv`, `.funding.csv`
/// and `.instrument.json` beside it. The outer error is the user's (a
/// file that is not what it should be), the inner one the fetch's.
fn fetch_into_files(
    client: &BybitClient,
    request: &DataFetchRequest,
    interval: Interval,
    out: &Path,
    now: i64,
    progress: &mut dyn FnMut(Stage, u64, u64),
) -> Result<Result<FetchSummary, Error>, CliError> {
    let tf = format_timeframe(interval.secs());
    let mut walk =
        |kind: KlineKind, stage: Stage| -> Result<Result<KlineSummary, Error>, CliError> {
            let path = match kind {
                KlineKind::Trade => out.to_path_buf(),
                KlineKind::Mark => beside(out, "mark.csv"),
            };
            let mut sink = CsvSink::open(path)?;
            if let Some(tf_held) = sink.all.timeframe_secs() {
                if tf_held != interval.secs() {
                    return Err(CliError::input(anyhow!(
                        "--out {}: holds {} bars, not {tf}; fetch into another file",
                        sink.path.display(),
                        format_timeframe(tf_held)
                    )));
                }
            }
            let req = CandleRequest {
                category: request.category.clone(),
                symbol: request.symbol.clone(),
                interval,
                kind,
                start: request.start_ts,
                end: request.end_ts,
            };
            let mut opts = FetchOptions::new(now);
            // A CSV is rewritten whole on every store: store less often (a
            // year of 1-minute bars is 6 rewrites).
            opts.flush_bars = 100 * stratbox_marketdata::fetch::KLINE_PAGE;
            Ok(fetch_candles(client, &req, opts, &mut sink, &mut |d, t| {
                progress(stage, d, t)
            })
            .map(|r| KlineSummary::from(&r)))
        };
    let candles = match walk(KlineKind::Trade, Stage::Candles)? {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let mark = if request.mark {
        match walk(KlineKind::Mark, Stage::Mark)? {
            Ok(m) => Some(m),
            Err(e) => return Ok(Err(e)),
        }
    } else {
        None
    };
    let funding = if request.funding {
        let path = beside(out, "funding.csv");
        let mut all = read_funding_csv(&path)?;
        let held: Vec<i64> = all.iter().map(|r| r.0).collect();
        let rates = match fetch_funding(
            client,
            &request.category,
            &request.symbol,
            request.start_ts,
            request.end_ts,
            &held,
        ) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        // The fetch asks only outside what is held: no repeated times.
        all.extend(rates.iter().map(|r| (r.ts, r.rate)));
        all.sort_by_key(|r| r.0);
        write_funding_csv(&path, &all)?;
        Some(rates.len() as u64)
    } else {
        None
    };
    let instrument = if request.instrument {
        let inst = match fetch_instrument(client, &request.category, &request.symbol) {
            Ok(i) => i,
            Err(e) => return Ok(Err(e)),
        };
        let mut json = serde_json::to_vec_pretty(&inst).map_err(CliError::run)?;
        json.push(b'\n');
        write_atomically(&beside(out, "instrument.json"), &json).map_err(CliError::run)?;
        Some(inst)
    } else {
        None
    };
    Ok(Ok(FetchSummary {
        symbol: request.symbol.clone(),
        timeframe: tf,
        candles,
        mark,
        funding,
        instrument,
    }))
}

/// Prints what was fetched, and each gap as a warning on standard error;
/// returns how many gaps.
fn print_summary(summary: &FetchSummary) -> usize {
    let (symbol, tf) = (&summary.symbol, &summary.timeframe);
    let mut gaps = 0;
    let klines = [
        ("candles", Some(&summary.candles)),
        ("mark candles", summary.mark.as_ref()),
    ];
    for (what, kline) in klines {
        let Some(k) = kline else { continue };
        for g in &k.gaps {
            eprintln!(
                "warning: {symbol} {tf} {what}: {} bars missing at Bybit from {} to {} (not filled)",
                g.bars, g.first_missing, g.last_missing
            );
        }
        gaps += k.gaps.len();
        let held = k.expected.saturating_sub(k.fetched);
        outln!(
            "{symbol} {tf} {what}: {} fetched in {} pages ({} ranges asked, {} gaps){}",
            k.fetched,
            k.pages,
            k.ranges,
            k.gaps.len(),
            if k.ranges == 0 {
                ", all held already".to_string()
            } else if held > 0 {
                format!(", {held} bars missing at the exchange")
            } else {
                String::new()
            }
        );
    }
    if let Some(n) = summary.funding {
        outln!("{symbol} funding: {n} settlements fetched");
    }
    if let Some(inst) = &summary.instrument {
        outln!(
            "{symbol} instrument: tick {} step {} min {} max leverage {} ({} margin tiers; fees are the defaults, Bybit's answers carry none)",
            inst.tick_size,
            inst.qty_step,
            inst.min_qty,
            inst.max_leverage,
            inst.risk_tiers.len()
        );
    }
    gaps
}

/// A candle CSV: read once, merged in memory, rewritten atomically on
/// every store so a kill leaves a whole file.
struct CsvSink {
    path: PathBuf,
    all: Candles,
}

impl CsvSink {
    fn open(path: PathBuf) -> Result<CsvSink, CliError> {
        let all = match std::fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Candles::new(),
            Ok(text) => candles::parse_csv(&text)
                .with_context(|| {
                    format!("{} already exists and is not a candle CSV", path.display())
                })
                .map_err(CliError::input)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Candles::new(),
            Err(e) => {
                return Err(CliError::input(
                    anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
                ))
            }
        };
        Ok(CsvSink { path, all })
    }
}

/// Merges two ascending series; `new` wins on equal timestamps.
fn merge(old: &Candles, new: &Candles) -> Candles {
    let mut out = Candles::with_capacity(old.len() + new.len());
    let (mut i, mut j) = (0, 0);
    let row = |c: &Candles, k: usize| {
        (
            c.ts[k],
            c.open[k],
            c.high[k],
            c.low[k],
            c.close[k],
            c.volume[k],
        )
    };
    while i < old.len() || j < new.len() {
        let take_new = j < new.len() && (i == old.len() || new.ts[j] <= old.ts[i]);
        let (t, o, h, l, c, v) = if take_new {
            if i < old.len() && old.ts[i] == new.ts[j] {
                i += 1;
            }
            j += 1;
            row(new, j - 1)
        } else {
            i += 1;
            row(old, i - 1)
        };
        out.push(t, o, h, l, c, v);
    }
    out
}

impl CandleSink for CsvSink {
    fn held(&mut self, start: i64, end: i64) -> Result<Vec<i64>, String> {
        Ok(self
            .all
            .ts
            .iter()
            .copied()
            .filter(|t| *t >= start && *t < end)
            .collect())
    }

    fn store(&mut self, bars: &Candles) -> Result<(), String> {
        self.all = merge(&self.all, bars);
        let mut bytes = Vec::with_capacity(self.all.len() * 64);
        candles::write_csv(&self.all, &mut bytes).map_err(|e| e.to_string())?;
        write_atomically(&self.path, &bytes).map_err(|e| format!("{e:#}"))
    }
}

/// The `.funding.csv` beside the candles (empty when there is none yet).
fn read_funding_csv(path: &Path) -> Result<Vec<(i64, f64)>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CliError::input(
                anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
            ))
        }
    };
    match parse_funding_csv(&text) {
        Ok(Funding::History(rows)) => Ok(rows.to_vec()),
        Ok(_) => Ok(Vec::new()),
        Err(e) => Err(CliError::input(anyhow!("{}: {e}", path.display()))),
    }
}

fn write_funding_csv(path: &Path, rates: &[(i64, f64)]) -> Result<(), CliError> {
    let mut text = String::with_capacity(16 + rates.len() * 24);
    text.push_str("ts,rate\n");
    for (ts, rate) in rates {
        text.push_str(&format!("{ts},{rate}\n"));
    }
    write_atomically(path, text.as_bytes()).map_err(CliError::run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_prefers_new_rows() {
        let mut a = Candles::new();
        for t in [0, 60, 120] {
            a.push(t, 1.0, 1.0, 1.0, 1.0, 1.0);
        }
        let mut b = Candles::new();
        for t in [-60, 60, 180] {
            b.push(t, 2.0, 2.0, 2.0, 2.0, 2.0);
        }
        let m = merge(&a, &b);
        assert_eq!(m.ts, [-60, 0, 60, 120, 180]);
        assert_eq!(m.open, [2.0, 1.0, 2.0, 1.0, 2.0]);
    }

    #[test]
    fn dates_take_two_forms() {
        assert_eq!(
            parse_date("--start", "2024-01-01").ok(),
            Some(1_704_067_200)
        );
        assert_eq!(
            parse_date("--start", "2024-01-01T01:00:00Z").ok(),
            Some(1_704_070_800)
        );
        let e = parse_date("--end", "2024-13-01").err().unwrap();
        assert_eq!(e.status, 2);
        assert!(
            e.error.to_string().starts_with("--end `2024-13-01`"),
            "{}",
            e.error
        );
    }
}
