//! Task kinds the workers run: `backtest`, `optimization` (fan-out) and
//! `optimization_chunk`, `data_fetch` (Bybit market data into the store),
//! and `noop` (health probes and queue benchmarks). Each turns a queue delivery into a result or a
//! classified error; the worker decides about retries from the class.

pub mod backtest;
pub mod data_fetch;
pub mod optimization;
pub mod strategies;

pub use backtest::{
    resubmit_backtest, submit_backtest, submit_backtest_for_plugin, submit_backtest_guarded,
    submit_backtest_with, submit_backtests, validate_backtest, BacktestPayload, BacktestRequest,
    LimitCaps, SubmitError, SubmitOptions,
};

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stratbox_marketdata::ClientConfig;
use stratbox_queue::{Delivery, TaskError, TaskSpec};
use stratbox_sandbox::{CancelToken, Sandbox};
use stratbox_store::Store;
use stratbox_store::{CandleCache, TenantName};

pub const KIND_BACKTEST: &str = "backtest";
pub const KIND_NOOP: &str = "noop";

/// What a running task gets from its worker.
#[derive(Clone)]
pub struct TaskContext {
    /// Set on cancellation or shutdown; a strategy run stops at the next
    /// epoch tick.
    pub cancel: CancelToken,
    /// Wall-clock limit of this attempt.
    pub timeout: Duration,
    /// Progress in 1/10,000ths, read by the worker's progress reporter.
    pub progress: Arc<AtomicU32>,
}

impl TaskContext {
    pub fn set_progress(&self, fraction: f64) {
        let scaled = (fraction.clamp(0.0, 1.0) * 10_000.0) as u32;
        self.progress.store(scaled, Ordering::Relaxed);
    }
}

/// Everything the handlers need; shared by all task slots of a worker.
pub struct Tasks {
    pub store: Store,
    pub sandbox: Arc<Sandbox>,
    pub candles: Arc<CandleCache>,
    /// Where `data_fetch` tasks ask (the worker's `--bybit-base-url`).
    pub bybit: ClientConfig,
    /// Tenants' stores, kept: a store reserves ids in blocks.
    tenants: std::sync::Mutex<std::collections::BTreeMap<TenantName, Arc<Tasks>>>,
}

/// A task of `store`'s tenant: it waits in the tenant's lane (so one
/// tenant's backlog cannot starve another's tasks), and the lane tells
/// the worker whose store it runs against.
pub fn tenant_task(store: &Store, kind: &str, payload: String) -> TaskSpec {
    let mut spec = TaskSpec::new(kind, payload);
    spec.lane = store.tenant().map(|t| t.to_string());
    spec
}

impl Tasks {
    pub fn new(store: Store, sandbox: Arc<Sandbox>, candles: Arc<CandleCache>) -> Self {
        Self {
            store,
            sandbox,
            candles,
            bybit: ClientConfig::default(),
            tenants: Default::default(),
        }
    }

    /// The same handlers over `tenant`'s store.
    fn for_tenant(&self, tenant: &TenantName) -> Arc<Tasks> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants
            .entry(tenant.clone())
            .or_insert_with(|| {
                Arc::new(Tasks {
                    store: self.store.for_tenant(tenant),
                    sandbox: self.sandbox.clone(),
                    candles: self.candles.clone(),
                    bybit: self.bybit.clone(),
                    tenants: Default::default(),
                })
            })
            .clone()
    }

    /// Fetches market data from this Bybit (a testnet, a proxy, a test's
    /// local server) instead of the public mainnet host.
    pub fn with_bybit(mut self, bybit: ClientConfig) -> Self {
        self.bybit = bybit;
        self
    }

    /// Runs one delivery to its result (a JSON string) on the calling
    /// thread, which must be a blocking thread (a worker's task slot), never
    /// an async worker: strategy runs are CPU work. Redis reads go through
    /// `rt`.
    pub fn run(
        &self,
        rt: &tokio::runtime::Handle,
        delivery: &Delivery,
        ctx: &TaskContext,
    ) -> Result<String, TaskError> {
        if let (Some(lane), None) = (&delivery.lane, self.store.tenant()) {
            let tenant: TenantName = lane
                .parse()
                .map_err(|e| TaskError::permanent("bad_lane", format!("{e}")))?;
            return self.for_tenant(&tenant).run(rt, delivery, ctx);
        }
        match delivery.kind.as_str() {
            KIND_BACKTEST => backtest::run(self, rt, &delivery.payload, &delivery.task_id, ctx),
            KIND_NOOP => Ok(String::from("{}")),
            data_fetch::KIND_DATA_FETCH => data_fetch::run(self, rt, &delivery.payload, ctx),
            optimization::KIND_OPTIMIZATION => {
                optimization::run_fanout(self, rt, &delivery.payload)
            }
            optimization::KIND_OPTIMIZATION_CHUNK => {
                optimization::run_chunk(self, rt, delivery, ctx)
            }
            other => Err(TaskError::permanent(
                "unknown_task_kind",
                format!("no handler for task kind `{other}`"),
            )),
        }
    }
}
