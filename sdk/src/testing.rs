//! Native unit testing of a strategy, without building wasm: feed bars one
//! at a time, set the account the strategy should see, and check the
//! actions it takes. Fills are the test's job (the engine is the host's).
//! [`PortfolioHarness`] does the same for strategies over several symbols.

use crate::context::Context;
use crate::params::{ParamValue, Params};
use crate::portfolio::{
    PortfolioAccount, PortfolioContext, PortfolioStrategy, Position, StepBars, SymbolAction,
};
use crate::types::{Action, Bar, Market, Portfolio};
use crate::Strategy;

pub struct Harness<S> {
    strategy: S,
    portfolio: Portfolio,
    next_index: u64,
}

impl<S: Strategy> Harness<S> {
    /// Builds the strategy from its schema defaults with `overrides` applied.
    pub fn new(overrides: &[(&str, ParamValue)]) -> Result<Self, String> {
        let mut params = Params::defaults(&S::describe());
        for (name, value) in overrides {
            params = params.with(name, *value);
        }
        Ok(Self {
            strategy: S::new(&params)?,
            portfolio: Portfolio {
                cash: 10_000.0,
                commission: 0.0006,
                leverage: 1.0,
                ..Portfolio::default()
            },
            next_index: 0,
        })
    }

    /// The account the strategy sees from the next bar on.
    pub fn portfolio_mut(&mut self) -> &mut Portfolio {
        &mut self.portfolio
    }

    /// The market the strategy sees from the next bar on (spot by default).
    pub fn set_market(&mut self, market: Market) {
        self.portfolio.market = market;
    }

    /// The liquidation price the strategy sees from the next bar on.
    pub fn set_liquidation_price(&mut self, price: Option<f64>) {
        self.portfolio.liquidation_price = price;
    }

    /// The latest funding rate the strategy sees from the next bar on.
    pub fn set_funding_rate(&mut self, rate: Option<f64>) {
        self.portfolio.funding_rate = rate;
    }

    /// Feeds one bar (ts is the bar index, OHLC all equal to `close`).
    pub fn feed_close(&mut self, close: f64) -> Vec<Action> {
        let bar = Bar {
            index: self.next_index,
            ts: self.next_index as i64,
            open: close,
            high: close,
            low: close,
            close,
            volume: 0.0,
        };
        self.feed(bar)
    }

    /// Feeds one bar and returns the actions taken on it.
    pub fn feed(&mut self, bar: Bar) -> Vec<Action> {
        self.next_index = bar.index + 1;
        let mut actions = Vec::new();
        let mut ctx = Context::new(&self.portfolio, bar.close, true, &mut actions);
        self.strategy.on_bar(&bar, &mut ctx);
        self.portfolio.fill_count = 0;
        self.portfolio.last_fill = None;
        actions
    }

    pub fn strategy(&self) -> &S {
        &self.strategy
    }
}

/// Native unit testing of a [`PortfolioStrategy`]: feed steps of bars
/// (`None` where a symbol has none), set the account it should see, and
/// check the actions it takes. Fills are the test's job.
pub struct PortfolioHarness<S> {
    strategy: S,
    account: PortfolioAccount,
    symbols: Vec<String>,
    next_index: u64,
}

impl<S: PortfolioStrategy> PortfolioHarness<S> {
    /// Builds the strategy over `symbols` from its schema defaults with
    /// `overrides` applied; every symbol starts flat.
    pub fn new(symbols: &[&str], overrides: &[(&str, ParamValue)]) -> Result<Self, String> {
        let mut params = Params::defaults(&S::describe());
        for (name, value) in overrides {
            params = params.with(name, *value);
        }
        let symbols: Vec<String> = symbols.iter().map(|s| s.to_string()).collect();
        Ok(Self {
            strategy: S::new(&params, &symbols)?,
            account: PortfolioAccount {
                cash: 10_000.0,
                equity: 10_000.0,
                positions: vec![Position::default(); symbols.len()],
                commission: 0.0006,
                leverage: 1.0,
                ..PortfolioAccount::default()
            },
            symbols,
            next_index: 0,
        })
    }

    /// The account the strategy sees from the next step on.
    pub fn account_mut(&mut self) -> &mut PortfolioAccount {
        &mut self.account
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// Feeds one step of closes (ts is the step index, OHLC all equal to
    /// the close; `None`: no bar for that symbol).
    pub fn feed_closes(&mut self, closes: &[Option<f64>]) -> Vec<SymbolAction> {
        let index = self.next_index;
        let bars: Vec<Option<Bar>> = closes
            .iter()
            .map(|c| {
                c.map(|close| Bar {
                    index,
                    ts: index as i64,
                    open: close,
                    high: close,
                    low: close,
                    close,
                    volume: 0.0,
                })
            })
            .collect();
        self.feed(index as i64, &bars)
    }

    /// Feeds one step and returns the actions taken on it. The fills in
    /// the account show on this step only.
    pub fn feed(&mut self, ts: i64, bars: &[Option<Bar>]) -> Vec<SymbolAction> {
        let step = StepBars::new(self.next_index, ts, bars);
        self.next_index += 1;
        let mut actions = Vec::new();
        let mut ctx = PortfolioContext::new(&self.account, true, &mut actions);
        self.strategy.on_step(&step, &mut ctx);
        self.account.fills.clear();
        actions
    }

    pub fn strategy(&self) -> &S {
        &self.strategy
    }
}
