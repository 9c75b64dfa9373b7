//! One run of a component: its store (fuel, memory cap, deadline,
//! cancellation, log) and the engine's `Strategy` trait over the WIT calls,
//! or its `PortfolioStrategy` trait for a strategy over several symbols.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{
    self, pwit, ContractVersion, Guest, MarketState, PortfolioGuest, PortfolioWindow, Pre, Window,
};
use super::config::SandboxConfig;
use super::error::RunError;
use super::limits::{Limiter, MemoryLimitHit};
use stratbox_engine::candles::Candles;
use stratbox_engine::portfolio::{AccountView, PortfolioStrategy, SymbolAction, Universe};
use stratbox_engine::{
    Action, Column, Description, Market, Params, Plan, PortfolioView, Strategy, StrategyError,
};

/// Stops a run from another thread (checked at every epoch tick).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

pub(crate) struct RunSettings {
    pub fuel_budget: u64,
    pub memory_limit: usize,
    pub deadline: Duration,
    pub started: Instant,
    pub cancel: CancelToken,
}

#[derive(Debug, thiserror::Error)]
#[error("deadline exceeded")]
struct DeadlineHit;

#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
struct CancelledHit;

#[derive(Debug, thiserror::Error)]
#[error("log flood: the strategy handed more than {limit} bytes to `log`")]
struct LogFlood {
    limit: u64,
}

pub struct StoreState {
    limiter: Limiter,
    log: Vec<LogLine>,
    log_dropped: u64,
    log_max_lines: usize,
    log_max_line_bytes: usize,
    log_bytes: u64,
    log_max_total_bytes: u64,
    last_panic: Option<String>,
}

impl StoreState {
    /// The log import, whatever the contract version that called it.
    pub(crate) fn log_line(
        &mut self,
        level: &'static str,
        message: String,
    ) -> wasmtime::Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(message.len() as u64);
        if self.log_bytes > self.log_max_total_bytes {
            return Err(LogFlood {
                limit: self.log_max_total_bytes,
            }
            .into());
        }
        let mut message = message;
        if message.len() > self.log_max_line_bytes {
            let mut cut = self.log_max_line_bytes;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        if let Some(panic) = message.strip_prefix("panic: ") {
            self.last_panic = Some(panic.to_string());
        }
        if self.log.len() < self.log_max_lines {
            self.log.push(LogLine { level, message });
        } else {
            self.log_dropped += 1;
        }
        Ok(())
    }
}

fn new_store(engine: &Engine, config: &SandboxConfig, settings: &RunSettings) -> Store<StoreState> {
    let mut store = Store::new(
        engine,
        StoreState {
            limiter: Limiter {
                memory_limit_bytes: settings.memory_limit,
                memory_limit_hit: false,
            },
            log: Vec::new(),
            log_dropped: 0,
            log_max_lines: config.log_max_lines,
            log_max_line_bytes: config.log_max_line_bytes,
            log_bytes: 0,
            log_max_total_bytes: config.log_max_total_bytes,
            last_panic: None,
        },
    );
    store.limiter(|state| &mut state.limiter);
    let _ = store.set_fuel(settings.fuel_budget);
    let deadline_at = settings.started + settings.deadline;
    let cancel = settings.cancel.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if cancel.is_cancelled() {
            return Err(CancelledHit.into());
        }
        if Instant::now() >= deadline_at {
            return Err(DeadlineHit.into());
        }
        Ok(UpdateDeadline::Continue(1))
    });
    store
}

fn classify(err: &wasmtime::Error, state: &StoreState, settings: &RunSettings) -> RunError {
    if state.limiter.memory_limit_hit || err.downcast_ref::<MemoryLimitHit>().is_some() {
        return RunError::MemoryLimit {
            limit_bytes: state.limiter.memory_limit_bytes,
        };
    }
    if err.downcast_ref::<CancelledHit>().is_some() {
        return RunError::Cancelled;
    }
    if let Some(flood) = err.downcast_ref::<LogFlood>() {
        return RunError::Trap {
            message: flood.to_string(),
        };
    }
    if err.downcast_ref::<DeadlineHit>().is_some() {
        return RunError::DeadlineExceeded {
            deadline: settings.deadline,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunError::FuelExhausted {
            budget: settings.fuel_budget,
        },
        Some(Trap::Interrupt) => RunError::DeadlineExceeded {
            deadline: settings.deadline,
        },
        Some(Trap::StackOverflow) => RunError::Trap {
            message: "stack overflow (unbounded recursion?)".into(),
        },
        // Compiled Rust and C keep a second stack in linear memory, placed
        // first: overflowing it runs below address 0.
        Some(Trap::MemoryOutOfBounds) if state.last_panic.is_none() => RunError::Trap {
            message: "out of bounds memory access (most likely a stack overflow in the \
                      strategy's own stack: unbounded recursion?)"
                .into(),
        },
        Some(trap) => RunError::Trap {
            message: match &state.last_panic {
                // One line: "panicked at src/lib.rs:30:13: the message".
                Some(panic) => panic
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
                None => trap.to_string(),
            },
        },
        None => RunError::Trap {
            message: format!("{err:#}"),
        },
    }
}

/// Calls `describe` in a throwaway instance.
pub(crate) fn describe(
    engine: &Engine,
    pre: &Pre,
    config: &SandboxConfig,
) -> Result<Description, RunError> {
    let settings = RunSettings {
        fuel_budget: config.describe_fuel,
        memory_limit: config.memory_limit_bytes,
        deadline: config.deadline.min(Duration::from_secs(10)),
        started: Instant::now(),
        cancel: CancelToken::default(),
    };
    let mut store = new_store(engine, config, &settings);
    let result = pre.describe(&mut store);
    match result {
        Ok(d) => Ok(d),
        Err(e) => Err(classify(&e, store.data(), &settings)),
    }
}

/// What every live instance holds: its store, its limits, and the error
/// that ended it (a trapped instance cannot be entered again).
struct Session {
    store: Store<StoreState>,
    settings: RunSettings,
    failed: Option<RunError>,
}

impl Session {
    fn new(engine: &Engine, config: &SandboxConfig, settings: RunSettings) -> Self {
        Self {
            store: new_store(engine, config, &settings),
            settings,
            failed: None,
        }
    }

    fn classify(&self, err: &wasmtime::Error) -> RunError {
        classify(err, self.store.data(), &self.settings)
    }

    /// A call failed: the run ends with its typed error.
    fn fail(&mut self, err: &wasmtime::Error) -> RunError {
        let run_error = self.classify(err);
        self.failed = Some(run_error.clone());
        run_error
    }

    /// The guest broke the protocol: the run ends, as a trap would end it.
    fn violation(&mut self, message: &str) -> Box<RunError> {
        let error = RunError::Trap {
            message: format!("protocol violation: {message}"),
        };
        self.failed = Some(error.clone());
        Box::new(error)
    }

    fn log(&self) -> (&[LogLine], u64) {
        (&self.store.data().log, self.store.data().log_dropped)
    }

    fn fuel_used(&self) -> u64 {
        self.settings
            .fuel_budget
            .saturating_sub(self.store.get_fuel().unwrap_or(0))
    }
}

/// A live instance driven by the engine.
pub struct WasmStrategy {
    session: Session,
    guest: Guest,
    version: ContractVersion,
    /// What the guest was last told with `set-market-state` (it starts on
    /// spot with neither value, so a spot run never sends it).
    market_state: MarketState,
    window_bars: usize,
    /// Run indices of the bars held by the guest.
    window: Option<(usize, usize)>,
    /// Which bar fields to send, in `Column::ALL` order.
    send: [bool; 6],
}

impl WasmStrategy {
    pub(crate) fn start(
        engine: &Engine,
        pre: &Pre,
        version: ContractVersion,
        config: &SandboxConfig,
        settings: RunSettings,
        params: &Params,
        columns: &[Column],
    ) -> Result<Self, RunError> {
        let mut session = Session::new(engine, config, settings);
        let guest = pre
            .instantiate(&mut session.store)
            .map_err(|e| session.classify(&e))?;
        match guest.init(&mut session.store, params) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(RunError::InitFailed { message }),
            Err(e) => return Err(session.classify(&e)),
        }
        Ok(Self {
            session,
            guest,
            version,
            market_state: MarketState::default(),
            window_bars: config.window_bars.max(1),
            window: None,
            // Opens always cross: the guest fills simple market orders at them.
            send: Column::ALL.map(|c| c == Column::Open || columns.contains(&c)),
        })
    }

    /// Lines the strategy logged (bounded) and how many were dropped.
    pub fn log(&self) -> (&[LogLine], u64) {
        self.session.log()
    }

    pub fn fuel_budget(&self) -> u64 {
        self.session.settings.fuel_budget
    }

    /// The contract version of the running component.
    pub fn contract_version(&self) -> ContractVersion {
        self.version
    }

    fn push_window(
        &mut self,
        candles: &Candles,
        start: usize,
        portfolio: &PortfolioView<'_>,
    ) -> Result<(usize, usize), RunError> {
        let end = candles.len().min(start + self.window_bars);
        let r = start..end;
        // Undeclared columns cross as empty lists.
        let [ts, open, high, low, close, volume] = self.send;
        let window = Window {
            first_index: start as u64,
            commission: portfolio.commission,
            leverage: portfolio.leverage,
            slippage_bps: portfolio.slippage_bps,
            ts: sent(ts, &candles.ts, r.clone()),
            open: sent(open, &candles.open, r.clone()),
            high: sent(high, &candles.high, r.clone()),
            low: sent(low, &candles.low, r.clone()),
            close: sent(close, &candles.close, r.clone()),
            volume: sent(volume, &candles.volume, r),
        };
        let call = self.guest.push_bars(&mut self.session.store, &window);
        call.map_err(|e| self.session.fail(&e))?;
        self.window = Some((start, end));
        Ok((start, end))
    }
}

impl Strategy for WasmStrategy {
    fn on_bars(
        &mut self,
        candles: &Candles,
        start: usize,
        end: usize,
        portfolio: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        if let Some(failed) = &self.session.failed {
            return Err(Box::new(failed.clone()));
        }
        let (window_start, window_end) = match self.window {
            Some((ws, we)) if ws <= start && start < we => (ws, we),
            _ => self.push_window(candles, start, portfolio)?,
        };
        let mut end = end.min(window_end);
        let perpetual = portfolio.market != Market::Spot;
        if self.version.has_market_state() {
            let state = MarketState::of(portfolio);
            if !state.same(&self.market_state) {
                let call = self.guest.set_market_state(&mut self.session.store, state);
                call.map_err(|e| self.session.fail(&e))?;
                self.market_state = state;
            }
        } else if perpetual {
            // A 0.1.0 guest cannot be told it trades a perpetual, and may
            // fill market orders itself on the bars after the one it acted
            // on. A range of one bar leaves it no such bar: the host fills
            // every order, at the cost of a call per bar.
            end = end.min(start + 1);
        }
        let step = self
            .guest
            .run(
                &mut self.session.store,
                portfolio,
                (start - window_start) as u32,
                (end - window_start) as u32,
            )
            .map_err(|e| self.session.fail(&e))?;
        let consumed = step.consumed as usize;
        if consumed == 0 || consumed > end - start {
            return Err(self.session.violation(&format!(
                "`run` reported {consumed} bars walked of {}",
                end - start
            )));
        }
        if perpetual && step.planned > 0 {
            return Err(self.session.violation(&format!(
                "the strategy filled {} orders itself under {}; the host fills every order there",
                step.planned,
                portfolio.market.as_str()
            )));
        }
        actions.extend(step.action);
        if step.planned > 0 {
            self.guest
                .take_planned(&mut self.session.store, window_start, plan)
                .map_err(|e| self.session.fail(&e))?;
        }
        for _ in 0..step.more {
            let next = self
                .guest
                .next_action(&mut self.session.store)
                .map_err(|e| self.session.fail(&e))?;
            actions.extend(next);
        }
        Ok(consumed)
    }

    fn fuel_used(&self) -> u64 {
        self.session.fuel_used()
    }
}

/// The window of a column the strategy reads, or nothing.
fn sent<T>(send: bool, column: &[T], r: std::ops::Range<usize>) -> &[T] {
    if send {
        &column[r]
    } else {
        &[]
    }
}

/// What a portfolio instance is started with.
#[derive(Clone, Copy)]
pub(crate) struct PortfolioSetup<'a> {
    pub params: &'a Params,
    /// The universe's symbols, in its order: every index refers to them.
    pub symbols: &'a [String],
    pub market: Market,
    pub columns: &'a [Column],
}

/// A live instance of a strategy over several symbols, driven by
/// `engine::portfolio::run_portfolio`: the same store, limits and typed
/// errors as [`WasmStrategy`]; windows of the universe's aligned columns
/// (only the declared ones) go over with `push-bars`, and each `run`
/// returns after the first step with actions.
pub struct WasmPortfolioStrategy {
    session: Session,
    guest: PortfolioGuest,
    symbols: usize,
    window_steps: usize,
    /// Steps of the timeline held by the guest.
    window: Option<(usize, usize)>,
    /// Which fields to send, in `Column::ALL` order (ts, open, high, low,
    /// close, volume).
    send: [bool; 6],
    /// Reused between calls: the columns of a push, the account of a run.
    bars: Vec<pwit::SymbolBars>,
    account: pwit::Account,
}

impl WasmPortfolioStrategy {
    pub(crate) fn start(
        engine: &Engine,
        pre: &Pre,
        config: &SandboxConfig,
        settings: RunSettings,
        setup: PortfolioSetup<'_>,
    ) -> Result<Self, RunError> {
        let mut session = Session::new(engine, config, settings);
        let guest = pre
            .instantiate_portfolio(&mut session.store)
            .map_err(|e| session.classify(&e))?;
        match guest.init(
            &mut session.store,
            setup.params,
            setup.symbols,
            setup.market,
        ) {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(RunError::InitFailed { message }),
            Err(e) => return Err(session.classify(&e)),
        }
        let symbols = setup.symbols.len();
        Ok(Self {
            session,
            guest,
            symbols,
            window_steps: config.portfolio_window_steps(symbols),
            window: None,
            send: Column::ALL.map(|c| setup.columns.contains(&c)),
            bars: Vec::with_capacity(symbols),
            account: pwit::Account {
                cash: 0.0,
                equity: 0.0,
                positions: Vec::with_capacity(symbols),
                fills: Vec::new(),
            },
        })
    }

    /// Lines the strategy logged (bounded) and how many were dropped.
    pub fn log(&self) -> (&[LogLine], u64) {
        self.session.log()
    }

    pub fn fuel_budget(&self) -> u64 {
        self.session.settings.fuel_budget
    }

    fn push_window(
        &mut self,
        universe: &Universe,
        start: usize,
        account: &AccountView<'_>,
    ) -> Result<(usize, usize), RunError> {
        if universe.symbols.len() != self.symbols {
            let error = RunError::Host {
                message: format!(
                    "the instance was started for {} symbols, the run has {}",
                    self.symbols,
                    universe.symbols.len()
                ),
            };
            self.session.failed = Some(error.clone());
            return Err(error);
        }
        let end = universe.steps().min(start + self.window_steps);
        let r = start..end;
        let [ts, open, high, low, close, volume] = self.send;
        let column = |send: bool, values: &[f64], into: &mut Vec<f64>| {
            into.clear();
            if send {
                into.extend_from_slice(&values[r.clone()]);
            }
        };
        self.bars.resize_with(self.symbols, || pwit::SymbolBars {
            open: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            close: Vec::new(),
            volume: Vec::new(),
        });
        for (series, bars) in universe.symbols.iter().zip(&mut self.bars) {
            column(open, &series.open, &mut bars.open);
            column(high, &series.high, &mut bars.high);
            column(low, &series.low, &mut bars.low);
            column(close, &series.close, &mut bars.close);
            column(volume, &series.volume, &mut bars.volume);
        }
        let window = PortfolioWindow {
            first_index: start as u64,
            commission: account.commission,
            leverage: account.leverage,
            slippage_bps: account.slippage_bps,
            ts: sent(ts, &universe.ts, r.clone()),
            bars: &self.bars,
        };
        let call = self.guest.push_bars(&mut self.session.store, &window);
        call.map_err(|e| self.session.fail(&e))?;
        self.window = Some((start, end));
        Ok((start, end))
    }
}

impl PortfolioStrategy for WasmPortfolioStrategy {
    fn on_steps(
        &mut self,
        universe: &Universe,
        start: usize,
        end: usize,
        account: &AccountView<'_>,
        actions: &mut Vec<SymbolAction>,
    ) -> Result<usize, StrategyError> {
        if let Some(failed) = &self.session.failed {
            return Err(Box::new(failed.clone()));
        }
        let (window_start, window_end) = match self.window {
            Some((ws, we)) if ws <= start && start < we => (ws, we),
            _ => self.push_window(universe, start, account)?,
        };
        let end = end.min(window_end);
        bindings::account_to_wit(account, &mut self.account);
        let step = self
            .guest
            .run(
                &mut self.session.store,
                &self.account,
                (start - window_start) as u32,
                (end - window_start) as u32,
            )
            .map_err(|e| self.session.fail(&e))?;
        let consumed = step.consumed as usize;
        if consumed == 0 || consumed > end - start {
            return Err(self.session.violation(&format!(
                "`run` reported {consumed} steps walked of {}",
                end - start
            )));
        }
        actions.extend(step.actions);
        Ok(consumed)
    }

    fn fuel_used(&self) -> u64 {
        self.session.fuel_used()
    }
}
