//! The `data_fetch` task: Bybit's public market data into the store
//! (docs/conventions/market-data.md), queued through the API or run in
//! place by `stratbox data fetch bybit --redis`. Both go through
//! [`fetch_into_store`], so a queued fetch stores exactly what the CLI
//! would, and resumes the same way: only what the store lacks is asked.

use super::{SubmitError, SubmitOptions, TaskContext, Tasks};
use serde::{Deserialize, Serialize};
use stratbox_engine::candles::{format_timeframe, Candles};
use stratbox_engine::perp::Instrument;
use stratbox_engine::time::format_rfc3339_secs;
use stratbox_marketdata::instrument::fetch_instrument;
use stratbox_marketdata::{
    fetch_candles, fetch_funding, BybitClient, CandleRequest, CandleSink, Error, FetchOptions,
    FetchReport, Interval, KlineKind,
};
use stratbox_queue::{Queue, TaskError};
use stratbox_sandbox::CancelToken;
use stratbox_store::{CandleCache, Keys, Store, StoreError};

pub const KIND_DATA_FETCH: &str = "data_fetch";

/// A fetch takes as long as Bybit's pages and throttling make it: a year
/// of 1-minute bars is 526 pages, about a minute unthrottled, and a
/// throttled page may wait 15.5 s before giving up. An hour covers years
/// of minutes; the default task timeout (sized for backtests) would cut
/// it off and hand it to another worker mid-way.
pub const DATA_FETCH_TIMEOUT_MS: u64 = 60 * 60 * 1000;

/// What to fetch from Bybit into the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFetchRequest {
    pub symbol: String,
    /// `linear`, `spot` or `inverse`.
    pub category: String,
    /// Bybit's interval code (`60`, `D`).
    pub interval: String,
    /// Bars opening in `[start_ts, end_ts)`, unix seconds.
    pub start_ts: i64,
    pub end_ts: i64,
    #[serde(default)]
    pub mark: bool,
    #[serde(default)]
    pub funding: bool,
    #[serde(default)]
    pub instrument: bool,
}

impl DataFetchRequest {
    /// Everything that can be checked without asking Bybit; the error
    /// names the request field (`start_date` for the range).
    pub fn check(&self) -> Result<Interval, SubmitError> {
        let interval = Interval::parse(&self.interval).map_err(|e| field_error("interval", e))?;
        self.candle_request(interval, KlineKind::Trade)
            .check()
            .map_err(|e| field_error("start_date", e))?;
        if self.category == "spot" && (self.mark || self.funding) {
            let field = if self.mark { "mark" } else { "funding" };
            return Err(SubmitError::Invalid {
                field: field.into(),
                message: "spot has no mark prices or funding; use category linear".into(),
            });
        }
        Ok(interval)
    }

    fn candle_request(&self, interval: Interval, kind: KlineKind) -> CandleRequest {
        CandleRequest {
            category: self.category.clone(),
            symbol: self.symbol.clone(),
            interval,
            kind,
            start: self.start_ts,
            end: self.end_ts,
        }
    }
}

/// A marketdata parameter error as a request-field error: the fetcher's
/// own field when it names one (`symbol`, `category`), else `fallback`.
fn field_error(fallback: &str, e: Error) -> SubmitError {
    match e {
        Error::Invalid { field, message } => SubmitError::Invalid {
            field: match field {
                "start" | "end" => fallback.to_string(),
                other => other.to_string(),
            },
            message,
        },
        other => SubmitError::Invalid {
            field: fallback.into(),
            message: other.to_string(),
        },
    }
}

/// Checks the request and queues it; returns the task id. Nothing is
/// queued when a field is wrong.
/// The data goes into `store`: a tenant's fetch fills its own market data.
pub async fn submit_data_fetch(
    store: &Store,
    queue: &Queue,
    request: &DataFetchRequest,
    options: &SubmitOptions,
) -> Result<String, SubmitError> {
    request.check()?;
    let payload = serde_json::to_string(request).expect("a fetch request serialises");
    let mut spec = super::tenant_task(store, KIND_DATA_FETCH, payload);
    spec.priority = options.priority;
    spec.timeout_ms = Some(options.timeout_ms.unwrap_or(DATA_FETCH_TIMEOUT_MS));
    spec.max_attempts = options.max_attempts;
    let ids = queue.submit(&[spec]).await?;
    Ok(ids.into_iter().next().unwrap_or_default())
}

/// One gap inside a fetched range, as reported (never filled).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapSummary {
    /// RFC 3339 (UTC) open times of the first and last missing bar.
    pub first_missing: String,
    pub last_missing: String,
    pub bars: u64,
}

/// What one kline walk did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KlineSummary {
    /// Bars received and stored.
    pub fetched: u64,
    /// Bars the missing ranges should hold (0: all held already).
    pub expected: u64,
    pub pages: u64,
    /// Missing ranges asked for.
    pub ranges: usize,
    pub gaps: Vec<GapSummary>,
}

impl From<&FetchReport> for KlineSummary {
    fn from(report: &FetchReport) -> Self {
        KlineSummary {
            fetched: report.fetched,
            expected: report.expected,
            pages: report.pages,
            ranges: report.ranges.len(),
            gaps: report
                .gaps
                .iter()
                .map(|g| GapSummary {
                    first_missing: format_rfc3339_secs(g.first_missing),
                    last_missing: format_rfc3339_secs(g.last_missing),
                    bars: g.bars,
                })
                .collect(),
        }
    }
}

/// The result of a fetch: the task's result JSON, and what the CLI prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchSummary {
    pub symbol: String,
    pub timeframe: String,
    pub candles: KlineSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<KlineSummary>,
    /// Funding settlements fetched (not already held).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub funding: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument: Option<Instrument>,
}

/// Which part of a fetch is under way, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Candles,
    Mark,
    Funding,
    Instrument,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Candles => "candles",
            Stage::Mark => "mark candles",
            Stage::Funding => "funding",
            Stage::Instrument => "instrument",
        }
    }
}

/// Fetches what the store lacks of `request` and stores it beside the
/// candles: trade candles, then (as asked) mark candles, funding and the
/// instrument. Runs on a blocking thread (Bybit's client is blocking);
/// store calls go through `rt`. An interrupted fetch keeps every page it
/// stored. `progress` gets `(stage, done, total)`.
pub fn fetch_into_store(
    client: &BybitClient,
    store: &Store,
    rt: &tokio::runtime::Handle,
    request: &DataFetchRequest,
    now_ms: i64,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(Stage, u64, u64),
) -> Result<FetchSummary, Error> {
    let interval = request.check().map_err(|e| Error::Invalid {
        field: "request",
        message: e.to_string(),
    })?;
    let symbol = request.symbol.clone();
    let mut walk = |kind: KlineKind, stage: Stage| -> Result<KlineSummary, Error> {
        let mut sink = StoreSink {
            rt,
            store,
            symbol: &symbol,
            timeframe_secs: interval.secs(),
            mark: kind == KlineKind::Mark,
            cancel,
        };
        let report = fetch_candles(
            client,
            &request.candle_request(interval, kind),
            FetchOptions::new(now_ms),
            &mut sink,
            &mut |done, total| progress(stage, done, total),
        )?;
        Ok(KlineSummary::from(&report))
    };
    let candles = walk(KlineKind::Trade, Stage::Candles)?;
    let mark = if request.mark {
        Some(walk(KlineKind::Mark, Stage::Mark)?)
    } else {
        None
    };
    let funding = if request.funding {
        progress(Stage::Funding, 0, 1);
        let held: Vec<i64> = rt
            .block_on(store.load_funding(&symbol, i64::MIN, i64::MAX))
            .map_err(|e| sink_error(&e))?
            .into_iter()
            .map(|r| r.0)
            .collect();
        let rates = fetch_funding(
            client,
            &request.category,
            &symbol,
            request.start_ts,
            request.end_ts,
            &held,
        )?;
        if !rates.is_empty() {
            let rows: Vec<(i64, f64)> = rates.iter().map(|r| (r.ts, r.rate)).collect();
            rt.block_on(store.import_funding(&symbol, &rows))
                .map_err(|e| sink_error(&e))?;
        }
        progress(Stage::Funding, 1, 1);
        Some(rates.len() as u64)
    } else {
        None
    };
    let instrument = if request.instrument {
        progress(Stage::Instrument, 0, 1);
        let spec = fetch_instrument(client, &request.category, &symbol)?;
        rt.block_on(store.put_instrument(&symbol, &spec))
            .map_err(|e| sink_error(&e))?;
        progress(Stage::Instrument, 1, 1);
        Some(spec)
    } else {
        None
    };
    Ok(FetchSummary {
        symbol,
        timeframe: format_timeframe(interval.secs()),
        candles,
        mark,
        funding,
        instrument,
    })
}

fn sink_error(e: &StoreError) -> Error {
    Error::Sink(e.to_string())
}

/// The store as a fetch's sink: trade candles under the symbol, mark
/// candles under `{SYMBOL}.MARK`.
struct StoreSink<'a> {
    rt: &'a tokio::runtime::Handle,
    store: &'a Store,
    symbol: &'a str,
    timeframe_secs: i64,
    mark: bool,
    cancel: Option<&'a CancelToken>,
}

impl CandleSink for StoreSink<'_> {
    fn held(&mut self, start: i64, end: i64) -> Result<Vec<i64>, String> {
        let symbol = if self.mark {
            Keys::mark_symbol(self.symbol)
        } else {
            self.symbol.to_string()
        };
        // No cache: the fetch reads each range once.
        let cache = CandleCache::new(0);
        let loaded = self.rt.block_on(self.store.load_candles(
            &cache,
            &symbol,
            self.timeframe_secs,
            start,
            end - 1,
            0,
        ));
        match loaded {
            Ok((candles, _)) => Ok(candles.ts),
            Err(StoreError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn store(&mut self, bars: &Candles) -> Result<(), String> {
        // Between pages is where a cancelled fetch stops: what is stored
        // stays, the next fetch resumes from it.
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(CANCELLED.into());
        }
        let stored = if self.mark {
            self.rt.block_on(
                self.store
                    .import_mark(self.symbol, self.timeframe_secs, bars),
            )
        } else {
            self.rt.block_on(
                self.store
                    .import_candles(self.symbol, self.timeframe_secs, bars),
            )
        };
        stored.map(|_| ()).map_err(|e| e.to_string())
    }
}

const CANCELLED: &str = "cancelled";

/// Runs a queued fetch on a worker's slot thread. Throttling that outlasts
/// the client's retries and lost connections are retried by the queue;
/// Bybit refusing the request or answering in another shape is final.
pub(super) fn run(
    tasks: &Tasks,
    rt: &tokio::runtime::Handle,
    payload: &str,
    ctx: &TaskContext,
) -> Result<String, TaskError> {
    let request: DataFetchRequest = serde_json::from_str(payload)
        .map_err(|e| TaskError::permanent("bad_payload", format!("data fetch payload: {e}")))?;
    let client = BybitClient::new(&tasks.bybit).map_err(|e| fetch_error(&e))?;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    // Candles weigh most; the other parts are a page or a few each.
    let stages = 1 + u32::from(request.mark) + u32::from(request.funding || request.instrument);
    let mut progress = |stage: Stage, done: u64, total: u64| {
        let index = match stage {
            Stage::Candles => 0,
            Stage::Mark => 1,
            Stage::Funding | Stage::Instrument => stages - 1,
        };
        let part = if total == 0 {
            1.0
        } else {
            done as f64 / total as f64
        };
        ctx.set_progress((f64::from(index) + part) / f64::from(stages));
    };
    let summary = fetch_into_store(
        &client,
        &tasks.store,
        rt,
        &request,
        now_ms,
        Some(&ctx.cancel),
        &mut progress,
    )
    .map_err(|e| fetch_error(&e))?;
    Ok(serde_json::to_string(&summary).expect("a fetch summary serialises"))
}

fn fetch_error(e: &Error) -> TaskError {
    match e {
        Error::Throttled { .. } => TaskError::transient("bybit_throttled", e.to_string()),
        Error::Transport { .. } => TaskError::transient("bybit_unreachable", e.to_string()),
        Error::Http { status, .. } if *status >= 500 => {
            TaskError::transient("bybit_unavailable", e.to_string())
        }
        Error::Sink(m) if m == CANCELLED => TaskError::permanent("cancelled", e.to_string()),
        Error::Sink(_) => TaskError::transient("store_error", e.to_string()),
        Error::Api { .. } => TaskError::permanent("bybit_error", e.to_string()),
        Error::Invalid { .. } => TaskError::permanent("invalid_request", e.to_string()),
        Error::Shape { .. } | Error::Stalled { .. } | Error::Http { .. } => {
            TaskError::permanent("bybit_bad_answer", e.to_string())
        }
    }
}
