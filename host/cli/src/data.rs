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
use stratbox_engine::time::{format_rfc3339_secs, parse_rfc3339_secs};
use stratbox_marketdata::instrument::fetch_instrument;
use stratbox_marketdata::{
    fetch_candles, fetch_funding, BybitClient, CandleRequest, CandleSink, ClientConfig, Error,
    FetchOptions, FetchReport, FundingRate, Instrument, Interval, KlineKind, DEFAULT_BASE_URL,
};
use stratbox_store::{CandleCache, InstrumentSpec, Store, StoreError};

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
    let interval = Interval::parse(&args.interval).map_err(fetch_error)?;
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
    let symbol = args.symbol.trim().to_string();
    let req = CandleRequest {
        category: args.category.clone(),
        symbol: symbol.clone(),
        interval,
        kind: KlineKind::Trade,
        start,
        end,
    };
    req.check().map_err(fetch_error)?;
    if args.category == "spot" && (args.mark || args.funding) {
        let flag = if args.mark { "--mark" } else { "--funding" };
        return Err(CliError::input(anyhow!(
            "{flag}: spot has no mark prices or funding; use --category linear"
        )));
    }
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
    let redis = if args.redis {
        Some(RedisDest::connect(&args.redis_args)?)
    } else {
        None
    };
    let show = !args.quiet && std::io::stderr().is_terminal();
    let tf = format_timeframe(interval.secs());
    let mut gaps = 0usize;

    let mut kinds = vec![KlineKind::Trade];
    if args.mark {
        kinds.push(KlineKind::Mark);
    }
    for kind in kinds {
        let req = CandleRequest {
            kind,
            ..req.clone()
        };
        let what = match kind {
            KlineKind::Trade => "candles",
            KlineKind::Mark => "mark candles",
        };
        let mut sink: Box<dyn CandleSink> = match (&redis, &args.out) {
            (Some(r), _) => Box::new(r.candle_sink(&symbol, interval.secs(), kind)),
            (None, Some(out)) => {
                let path = match kind {
                    KlineKind::Trade => out.clone(),
                    KlineKind::Mark => beside(out, "mark.csv"),
                };
                let sink = CsvSink::open(path)?;
                if let Some(tf_held) = sink.all.timeframe_secs() {
                    if tf_held != interval.secs() {
                        return Err(CliError::input(anyhow!(
                            "--out {}: holds {} bars, not {tf}; fetch into another file",
                            sink.path.display(),
                            format_timeframe(tf_held)
                        )));
                    }
                }
                Box::new(sink)
            }
            (None, None) => unreachable!("clap requires --out or --redis"),
        };
        let mut opts = FetchOptions::new(now);
        if redis.is_none() {
            // A CSV is rewritten whole on every store: store less often
            // (a year of 1-minute bars is 6 rewrites).
            opts.flush_bars = 100 * stratbox_marketdata::fetch::KLINE_PAGE;
        }
        let mut progress = |done: u64, total: u64| {
            if show {
                eprint!("\rfetched {done}/{total} {what}");
            }
        };
        let report = fetch_candles(&client, &req, opts, sink.as_mut(), &mut progress);
        if show {
            eprintln!();
        }
        let report = report.map_err(fetch_error)?;
        gaps += report_gaps(&symbol, &tf, what, &report);
        let held = report.expected.saturating_sub(report.fetched);
        outln!(
            "{symbol} {tf} {what}: {} fetched in {} pages ({} ranges asked, {} gaps){}",
            report.fetched,
            report.pages,
            report.ranges.len(),
            report.gaps.len(),
            if report.ranges.is_empty() {
                ", all held already".to_string()
            } else if held > 0 {
                format!(", {held} bars missing at the exchange")
            } else {
                String::new()
            }
        );
    }

    if args.funding {
        let held: Vec<i64> = match (&redis, &args.out) {
            (Some(r), _) => r.funding_ts(&symbol)?,
            (None, Some(out)) => read_funding_csv(&beside(out, "funding.csv"))?
                .iter()
                .map(|r| r.ts)
                .collect(),
            (None, None) => unreachable!("clap requires --out or --redis"),
        };
        let rates = fetch_funding(&client, &args.category, &symbol, start, end, &held)
            .map_err(fetch_error)?;
        match (&redis, &args.out) {
            (Some(r), _) if !rates.is_empty() => r.store_funding(&symbol, &rates)?,
            (None, Some(out)) => {
                let path = beside(out, "funding.csv");
                let mut all = read_funding_csv(&path)?;
                all.extend(rates.iter().copied());
                all.sort_by_key(|r| r.ts);
                // The newer fetch wins on a repeated timestamp.
                all.reverse();
                all.dedup_by_key(|r| r.ts);
                all.reverse();
                write_funding_csv(&path, &all)?;
            }
            _ => {}
        }
        outln!("{symbol} funding: {} settlements fetched", rates.len());
    }

    if args.instrument {
        let inst = fetch_instrument(&client, &args.category, &symbol).map_err(fetch_error)?;
        match (&redis, &args.out) {
            (Some(r), _) => r.store_instrument(&inst)?,
            (None, Some(out)) => {
                let mut json = serde_json::to_vec_pretty(&inst).map_err(CliError::run)?;
                json.push(b'\n');
                write_atomically(&beside(out, "instrument.json"), &json).map_err(CliError::run)?;
            }
            (None, None) => unreachable!("clap requires --out or --redis"),
        }
        outln!(
            "{symbol} instrument: tick {} step {} min {} max leverage {} ({} margin tiers; fees are the defaults, Bybit's answers carry none)",
            inst.tick_size,
            inst.qty_step,
            inst.min_qty,
            inst.max_leverage,
            inst.tiers.len()
        );
    }

    if gaps > 0 && args.fail_on_gap {
        return Err(CliError::run(anyhow!(
            "{gaps} gaps in the data (see the warnings above); nothing was filled"
        )));
    }
    Ok(())
}

/// Warns about each gap on standard error; returns how many.
fn report_gaps(symbol: &str, tf: &str, what: &str, report: &FetchReport) -> usize {
    for g in &report.gaps {
        eprintln!(
            "warning: {symbol} {tf} {what}: {} bars missing at Bybit from {} to {} (not filled)",
            g.bars,
            format_rfc3339_secs(g.first_missing),
            format_rfc3339_secs(g.last_missing)
        );
    }
    report.gaps.len()
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

fn read_funding_csv(path: &Path) -> Result<Vec<FundingRate>, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CliError::input(
                anyhow::Error::new(e).context(format!("cannot read {}", path.display())),
            ))
        }
    };
    let bad = |line: usize, msg: String| {
        CliError::input(anyhow!("{} line {line}: {msg}", path.display()))
    };
    let mut out: Vec<FundingRate> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if i == 0 {
            if line != "ts,rate" {
                return Err(bad(
                    line_no,
                    format!("expected the header `ts,rate`, found `{line}`"),
                ));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (ts, rate) = line
            .split_once(',')
            .ok_or_else(|| bad(line_no, "expected two fields ts,rate".into()))?;
        let ts: i64 = ts
            .trim()
            .parse()
            .map_err(|_| bad(line_no, format!("ts `{ts}` is not unix seconds")))?;
        let rate: f64 = match rate.trim().parse::<f64>() {
            Ok(r) if r.is_finite() => r,
            _ => return Err(bad(line_no, format!("rate `{rate}` is not a number"))),
        };
        if out.last().is_some_and(|p| p.ts >= ts) {
            return Err(bad(
                line_no,
                format!("ts {ts} is not after the previous row's; rows must be in time order"),
            ));
        }
        out.push(FundingRate { ts, rate });
    }
    Ok(out)
}

fn write_funding_csv(path: &Path, rates: &[FundingRate]) -> Result<(), CliError> {
    let mut text = String::with_capacity(16 + rates.len() * 24);
    text.push_str("ts,rate\n");
    for r in rates {
        text.push_str(&format!("{},{}\n", r.ts, r.rate));
    }
    write_atomically(path, text.as_bytes()).map_err(CliError::run)
}

/// The Redis store, driven from this (blocking) thread.
struct RedisDest {
    rt: std::rc::Rc<tokio::runtime::Runtime>,
    store: Store,
}

impl RedisDest {
    fn connect(args: &RedisArgs) -> Result<RedisDest, CliError> {
        let rt = super::settings::runtime(None)?;
        let store = rt
            .block_on(Store::connect(&args.redis_url, &args.prefix))
            .with_context(|| format!("cannot connect to {}", args.redis_url))
            .map_err(CliError::run)?;
        Ok(RedisDest {
            rt: std::rc::Rc::new(rt),
            store,
        })
    }

    fn candle_sink(&self, symbol: &str, timeframe_secs: i64, kind: KlineKind) -> RedisSink {
        RedisSink {
            rt: self.rt.clone(),
            store: self.store.clone(),
            symbol: symbol.to_string(),
            timeframe_secs,
            mark: kind == KlineKind::Mark,
        }
    }

    fn funding_ts(&self, symbol: &str) -> Result<Vec<i64>, CliError> {
        let rows = self
            .rt
            .block_on(self.store.load_funding(symbol, i64::MIN, i64::MAX))
            .context("cannot read the stored funding")
            .map_err(CliError::run)?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    fn store_funding(&self, symbol: &str, rates: &[FundingRate]) -> Result<(), CliError> {
        let rows: Vec<(i64, f64)> = rates.iter().map(|r| (r.ts, r.rate)).collect();
        self.rt
            .block_on(self.store.import_funding(symbol, &rows))
            .context("cannot store the funding")
            .map_err(CliError::run)?;
        Ok(())
    }

    fn store_instrument(&self, inst: &Instrument) -> Result<(), CliError> {
        // The same field names on both sides (docs/conventions/market-data.md, "Instrument").
        let spec: InstrumentSpec = serde_json::to_value(inst)
            .and_then(serde_json::from_value)
            .context("cannot convert the instrument")
            .map_err(CliError::run)?;
        self.rt
            .block_on(self.store.put_instrument(&inst.symbol, &spec))
            .context("cannot store the instrument")
            .map_err(CliError::run)
    }
}

struct RedisSink {
    rt: std::rc::Rc<tokio::runtime::Runtime>,
    store: Store,
    symbol: String,
    timeframe_secs: i64,
    mark: bool,
}

impl CandleSink for RedisSink {
    fn held(&mut self, start: i64, end: i64) -> Result<Vec<i64>, String> {
        let cache = CandleCache::new(0);
        let symbol = if self.mark {
            stratbox_store::Keys::mark_symbol(&self.symbol)
        } else {
            self.symbol.clone()
        };
        let loaded = self.rt.block_on(self.store.load_candles(
            &cache,
            &symbol,
            self.timeframe_secs,
            start,
            end - 1,
            0,
        ));
        match loaded {
            Ok((c, _)) => Ok(c.ts),
            Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn store(&mut self, bars: &Candles) -> Result<(), String> {
        let done = if self.mark {
            self.rt.block_on(
                self.store
                    .import_mark(&self.symbol, self.timeframe_secs, bars),
            )
        } else {
            self.rt.block_on(
                self.store
                    .import_candles(&self.symbol, self.timeframe_secs, bars),
            )
        };
        done.map(|_| ()).map_err(|e| e.to_string())
    }
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
