//! Hostile test plugin: a portfolio strategy that orders a symbol beyond
//! its universe. The SDK passes the index through as the guest gave it;
//! the host must end the run with an invalid order naming the index,
//! never index out of bounds itself.

use stratbox_sdk::prelude::*;

pub struct BadSymbol {
    /// The first index beyond the universe, plus `offset`.
    index: usize,
    at: u64,
}

impl PortfolioStrategy for BadSymbol {
    fn describe() -> Description {
        Description::new(
            "hostile: portfolio bad symbol",
            env!("CARGO_PKG_VERSION"),
            "Buys a symbol index beyond the universe; the host must refuse the order",
        )
        .param(
            ParamSpec::int("offset", 0)
                .range(0.0, 4_000_000_000.0)
                .help("How far beyond the last symbol"),
        )
        .param(
            ParamSpec::int("at", 3)
                .range(0.0, 1_000_000.0)
                .help("The step on which it orders"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params, symbols: &[String]) -> Result<Self, String> {
        Ok(Self {
            index: symbols.len() + params.int("offset")? as usize,
            at: params.int("at")? as u64,
        })
    }

    fn on_step(&mut self, step: &StepBars<'_>, ctx: &mut PortfolioContext<'_>) {
        if step.index == self.at {
            ctx.buy(self.index, Quantity::Equity(0.5));
        }
    }
}

export_portfolio!(BadSymbol);
