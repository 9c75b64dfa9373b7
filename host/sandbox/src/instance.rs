//! One run of a component: its store (fuel, memory cap, deadline,
//! cancellation, log) and the engine's `Strategy` trait over the WIT calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};

use super::bindings::{wit, wit_log, Plugin as Bindings, PluginPre};
use super::config::SandboxConfig;
use super::error::RunError;
use super::limits::{Limiter, MemoryLimitHit};
use stratbox_engine as engine;
use stratbox_engine::candles::Candles;
use stratbox_engine::{
    self, Action, Assumed, Column, Description, ParamSpec, ParamType, ParamValue, Params, Plan,
    PortfolioView, Strategy, StrategyError,
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

impl wit_log::Host for StoreState {
    fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        self.log_bytes = self.log_bytes.saturating_add(message.len() as u64);
        if self.log_bytes > self.log_max_total_bytes {
            return Err(LogFlood {
                limit: self.log_max_total_bytes,
            }
            .into());
        }
        let level = match level {
            wit_log::Level::Debug => "debug",
            wit_log::Level::Info => "info",
            wit_log::Level::Warn => "warn",
            wit_log::Level::Error => "error",
        };
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
    pre: &PluginPre<StoreState>,
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
    let result = pre.instantiate(&mut store).and_then(|bindings| {
        bindings
            .stratbox_strategy_strategy()
            .call_describe(&mut store)
    });
    match result {
        Ok(d) => Ok(description_from_wit(d)),
        Err(e) => Err(classify(&e, store.data(), &settings)),
    }
}

/// A live instance driven by the engine.
pub struct WasmStrategy {
    store: Store<StoreState>,
    bindings: Bindings,
    settings: RunSettings,
    window_bars: usize,
    /// Run indices of the bars held by the guest.
    window: Option<(usize, usize)>,
    /// Set once a call failed: a trapped instance cannot be entered again.
    failed: Option<RunError>,
    /// Which bar fields to send, in `Column::ALL` order.
    send: [bool; 6],
}

impl WasmStrategy {
    pub(crate) fn start(
        engine: &Engine,
        pre: &PluginPre<StoreState>,
        config: &SandboxConfig,
        settings: RunSettings,
        params: &Params,
        columns: &[Column],
    ) -> Result<Self, RunError> {
        let mut store = new_store(engine, config, &settings);
        let bindings = pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, store.data(), &settings))?;
        let wit_params: Vec<wit::Param> = params
            .0
            .iter()
            .map(|(name, value)| wit::Param {
                name: name.clone(),
                value: param_value_to_wit(*value),
            })
            .collect();
        match bindings
            .stratbox_strategy_strategy()
            .call_init(&mut store, &wit_params)
        {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(RunError::InitFailed { message }),
            Err(e) => return Err(classify(&e, store.data(), &settings)),
        }
        Ok(Self {
            store,
            bindings,
            settings,
            window_bars: config.window_bars.max(1),
            window: None,
            failed: None,
            // Opens always cross: the guest fills simple market orders at them.
            send: Column::ALL.map(|c| c == Column::Open || columns.contains(&c)),
        })
    }

    /// Lines the strategy logged (bounded) and how many were dropped.
    pub fn log(&self) -> (&[LogLine], u64) {
        (&self.store.data().log, self.store.data().log_dropped)
    }

    pub fn fuel_budget(&self) -> u64 {
        self.settings.fuel_budget
    }

    fn fail(&mut self, err: &wasmtime::Error) -> RunError {
        let run_error = classify(err, self.store.data(), &self.settings);
        self.failed = Some(run_error.clone());
        run_error
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
        let call = self.bindings.stratbox_strategy_strategy().call_push_bars(
            &mut self.store,
            start as u64,
            portfolio.commission,
            portfolio.leverage,
            portfolio.slippage_bps,
            sent(ts, &candles.ts, r.clone()),
            sent(open, &candles.open, r.clone()),
            sent(high, &candles.high, r.clone()),
            sent(low, &candles.low, r.clone()),
            sent(close, &candles.close, r.clone()),
            sent(volume, &candles.volume, r),
        );
        call.map_err(|e| self.fail(&e))?;
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
        if let Some(failed) = &self.failed {
            return Err(Box::new(failed.clone()));
        }
        let (window_start, window_end) = match self.window {
            Some((ws, we)) if ws <= start && start < we => (ws, we),
            _ => self.push_window(candles, start, portfolio)?,
        };
        let end = end.min(window_end);
        let state = wit::Portfolio {
            cash: portfolio.cash,
            position: portfolio.position,
            entry_price: portfolio.entry_price,
            stop_loss: portfolio.stop_loss,
            take_profit: portfolio.take_profit,
            open_orders: portfolio.open_orders,
            fill_count: portfolio.fills.len() as u32,
            last_fill: portfolio.fills.last().map(fill_to_wit),
        };
        let step = self
            .bindings
            .stratbox_strategy_strategy()
            .call_run(
                &mut self.store,
                state,
                (start - window_start) as u32,
                (end - window_start) as u32,
            )
            .map_err(|e| self.fail(&e))?;
        let consumed = step.consumed as usize;
        if consumed == 0 || consumed > end - start {
            let error = RunError::Trap {
                message: format!(
                    "protocol violation: `run` reported {consumed} bars walked of {}",
                    end - start
                ),
            };
            self.failed = Some(error.clone());
            return Err(Box::new(error));
        }
        actions.extend(step.action.map(action_from_wit));
        if step.planned > 0 {
            let taken = self
                .bindings
                .stratbox_strategy_strategy()
                .call_take_planned(&mut self.store)
                .map_err(|e| self.fail(&e))?;
            plan.actions.extend(
                taken
                    .actions
                    .into_iter()
                    .map(|p| (window_start + p.bar as usize, action_from_wit(p.action))),
            );
            plan.assumed
                .extend(taken.assumed.into_iter().map(|a| Assumed {
                    bar: window_start + a.bar as usize,
                    cash: a.cash,
                    position: a.position,
                    entry_price: a.entry_price,
                }));
        }
        for _ in 0..step.more {
            let next = self
                .bindings
                .stratbox_strategy_strategy()
                .call_next_action(&mut self.store)
                .map_err(|e| self.fail(&e))?;
            actions.extend(next.map(action_from_wit));
        }
        Ok(consumed)
    }

    fn fuel_used(&self) -> u64 {
        self.settings
            .fuel_budget
            .saturating_sub(self.store.get_fuel().unwrap_or(0))
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

fn side_to_wit(side: engine::Side) -> wit::Side {
    match side {
        engine::Side::Buy => wit::Side::Buy,
        engine::Side::Sell => wit::Side::Sell,
    }
}

fn side_from_wit(side: wit::Side) -> engine::Side {
    match side {
        wit::Side::Buy => engine::Side::Buy,
        wit::Side::Sell => engine::Side::Sell,
    }
}

fn fill_to_wit(fill: &engine::Fill) -> wit::Fill {
    wit::Fill {
        side: side_to_wit(fill.side),
        qty: fill.qty,
        price: fill.price,
        reason: match fill.reason {
            engine::FillReason::Market => wit::FillReason::Market,
            engine::FillReason::Limit => wit::FillReason::Limit,
            engine::FillReason::Stop => wit::FillReason::Stop,
            engine::FillReason::StopLoss => wit::FillReason::StopLoss,
            engine::FillReason::TakeProfit => wit::FillReason::TakeProfit,
            engine::FillReason::ClosePosition => wit::FillReason::ClosePosition,
        },
    }
}

fn action_from_wit(action: wit::Action) -> Action {
    match action {
        wit::Action::Submit(order) => Action::Submit(engine::Order {
            side: side_from_wit(order.side),
            quantity: match order.quantity {
                wit::Quantity::Units(q) => engine::Quantity::Units(q),
                wit::Quantity::Equity(f) => engine::Quantity::Equity(f),
            },
            kind: match order.kind {
                wit::OrderKind::Market => engine::OrderKind::Market,
                wit::OrderKind::Limit(p) => engine::OrderKind::Limit(p),
                wit::OrderKind::Stop(p) => engine::OrderKind::Stop(p),
            },
            stop_loss: order.stop_loss,
            take_profit: order.take_profit,
        }),
        wit::Action::ClosePosition => Action::ClosePosition,
        wit::Action::CancelOrders => Action::CancelOrders,
        wit::Action::SetStopLoss(p) => Action::SetStopLoss(p),
        wit::Action::SetTakeProfit(p) => Action::SetTakeProfit(p),
    }
}

fn param_value_to_wit(value: ParamValue) -> wit::ParamValue {
    match value {
        ParamValue::Int(v) => wit::ParamValue::Int(v),
        ParamValue::Float(v) => wit::ParamValue::Float(v),
        ParamValue::Bool(v) => wit::ParamValue::Bool(v),
    }
}

fn description_from_wit(d: wit::Description) -> Description {
    Description {
        name: d.name,
        version: d.version,
        summary: d.summary,
        params: d
            .params
            .into_iter()
            .map(|p| ParamSpec {
                name: p.name,
                kind: match p.kind {
                    wit::ParamType::Int => ParamType::Int,
                    wit::ParamType::Float => ParamType::Float,
                    wit::ParamType::Bool => ParamType::Bool,
                },
                default: match p.default {
                    wit::ParamValue::Int(v) => ParamValue::Int(v),
                    wit::ParamValue::Float(v) => ParamValue::Float(v),
                    wit::ParamValue::Bool(v) => ParamValue::Bool(v),
                },
                min: p.min,
                max: p.max,
                step: p.step,
                help: p.help,
            })
            .collect(),
        columns: if d.columns.is_empty() {
            Column::ALL.to_vec()
        } else {
            let mut columns: Vec<Column> = d
                .columns
                .into_iter()
                .map(|c| match c {
                    wit::Column::Ts => Column::Ts,
                    wit::Column::Open => Column::Open,
                    wit::Column::High => Column::High,
                    wit::Column::Low => Column::Low,
                    wit::Column::Close => Column::Close,
                    wit::Column::Volume => Column::Volume,
                })
                .collect();
            columns.sort();
            columns.dedup();
            columns
        },
    }
}
