//! [`StrategyFactory`] for a sandboxed component: one compiled plugin,
//! instantiated afresh per run from its `InstancePre`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{CancelToken, Plugin, RunError, RunLimits, Sandbox};
use stratbox_engine::optimize::StrategyFactory;
use stratbox_engine::portfolio::{PortfolioStrategy, Universe};
use stratbox_engine::{Description, EngineError, Market, Params, Strategy, StrategyInfo};

pub struct PluginFactory<'a> {
    pub sandbox: &'a Sandbox,
    pub plugin: Arc<Plugin>,
    pub limits: RunLimits,
    pub cancel: CancelToken,
    /// Every run ends by then (a queue task's own deadline).
    pub until: Option<Instant>,
}

impl<'a> PluginFactory<'a> {
    pub fn new(sandbox: &'a Sandbox, plugin: Arc<Plugin>) -> Self {
        Self {
            sandbox,
            plugin,
            limits: RunLimits::default(),
            cancel: CancelToken::default(),
            until: None,
        }
    }
}

impl PluginFactory<'_> {
    /// The run's limits, its deadline no later than `until`.
    fn limits_now(&self) -> RunLimits {
        let mut limits = self.limits;
        if let Some(until) = self.until {
            let left = until.saturating_duration_since(Instant::now());
            limits.deadline = Some(
                limits
                    .deadline
                    .map_or(left, |d| d.min(left))
                    .max(Duration::from_millis(1)),
            );
        }
        limits
    }
}

impl StrategyFactory for PluginFactory<'_> {
    fn description(&self) -> &Description {
        &self.plugin.description
    }

    fn build(&self, params: &Params, bars: usize) -> Result<Box<dyn Strategy + '_>, EngineError> {
        let strategy = self
            .sandbox
            .instantiate(
                &self.plugin,
                params,
                bars,
                self.limits_now(),
                self.cancel.clone(),
            )
            .map_err(|e: RunError| EngineError::Strategy(Box::new(e)))?;
        Ok(Box::new(strategy))
    }

    fn build_portfolio(
        &self,
        params: &Params,
        universe: &Universe,
        market: Market,
    ) -> Result<Box<dyn PortfolioStrategy + '_>, EngineError> {
        let strategy = self
            .sandbox
            .instantiate_portfolio(
                &self.plugin,
                params,
                universe,
                market,
                self.limits_now(),
                self.cancel.clone(),
            )
            .map_err(|e: RunError| EngineError::Strategy(Box::new(e)))?;
        Ok(Box::new(strategy))
    }

    fn info(&self, params: &Params) -> StrategyInfo {
        self.plugin.info(params)
    }
}

/// Whether a failed run should stop a whole evaluation rather than be
/// kept as the row's error: cancellation, deadlines and host failures say
/// nothing about the params.
pub fn is_fatal(e: &EngineError) -> bool {
    match e {
        EngineError::Strategy(inner) => matches!(
            inner.downcast_ref::<RunError>(),
            Some(RunError::Cancelled | RunError::DeadlineExceeded { .. } | RunError::Host { .. })
        ),
        _ => false,
    }
}
