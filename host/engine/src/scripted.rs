//! A strategy for the engine's tests (spot and perpetual): it takes
//! scripted actions at given bars' closes and records what it saw at the
//! start of every `on_bars` call.

use std::collections::BTreeMap;

use crate::candles::Candles;
use crate::strategy::{Action, Fill, Market, Plan, PortfolioView, Strategy, StrategyError};

/// What the strategy saw at the start of one `on_bars` call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen {
    pub start: usize,
    pub end: usize,
    pub cash: f64,
    pub position: f64,
    pub entry_price: f64,
    pub fills: Vec<Fill>,
    pub market: Market,
    pub liquidation_price: Option<f64>,
    pub funding_rate: Option<f64>,
}

#[derive(Debug, Default)]
pub(crate) struct Scripted {
    script: BTreeMap<usize, Vec<Action>>,
    pub seen: Vec<Seen>,
}

impl Scripted {
    pub(crate) fn new(script: impl IntoIterator<Item = (usize, Vec<Action>)>) -> Self {
        Self {
            script: script.into_iter().collect(),
            seen: Vec::new(),
        }
    }

    /// The call whose range started at `bar`.
    #[track_caller]
    pub(crate) fn seen_at(&self, bar: usize) -> &Seen {
        self.seen
            .iter()
            .find(|s| s.start == bar)
            .unwrap_or_else(|| panic!("no call started at bar {bar}: {:?}", self.seen))
    }
}

impl Strategy for Scripted {
    fn on_bars(
        &mut self,
        _candles: &Candles,
        start: usize,
        end: usize,
        portfolio: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        _plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        self.seen.push(Seen {
            start,
            end,
            cash: portfolio.cash,
            position: portfolio.position,
            entry_price: portfolio.entry_price,
            fills: portfolio.fills.to_vec(),
            market: portfolio.market,
            liquidation_price: portfolio.liquidation_price,
            funding_rate: portfolio.funding_rate,
        });
        // The range ends at the first scripted bar: its actions are taken
        // at that bar's close.
        for i in start..end {
            if let Some(scripted) = self.script.get(&i) {
                actions.extend_from_slice(scripted);
                return Ok(i + 1 - start);
            }
        }
        Ok(end - start)
    }
}
