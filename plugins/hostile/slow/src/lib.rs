//! Test plugin: a legitimate strategy that is slow on purpose.
//!
//! Burns `work` loop steps per bar (about one fuel each), so a test can
//! make a backtest last seconds: long tasks, worker crashes mid-run,
//! shutdown grace periods, priorities behind busy slots. It trades (long
//! every `period` bars, flat the next `period`), so the report is not empty.

use std::hint::black_box;
use stratbox_sdk::prelude::*;

pub struct Slow {
    work: u64,
    period: u64,
    bars: u64,
    state: u64,
}

impl Strategy for Slow {
    fn describe() -> Description {
        Description::new(
            "test: slow",
            env!("CARGO_PKG_VERSION"),
            "Burns `work` steps per bar; alternates long and flat every `period` bars",
        )
        .param(
            ParamSpec::int("work", 1_000)
                .range(0.0, 1e9)
                .help("Loop steps per bar"),
        )
        .param(
            ParamSpec::int("period", 100)
                .range(1.0, 1e9)
                .help("Bars per long or flat stretch"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params) -> Result<Self, String> {
        Ok(Self {
            work: params.int("work")? as u64,
            period: params.int("period")? as u64,
            bars: 0,
            state: 1,
        })
    }

    fn on_bar(&mut self, _bar: &Bar, ctx: &mut Context<'_>) {
        // An LCG the optimiser cannot fold away (`black_box`).
        for _ in 0..self.work {
            self.state = black_box(
                self.state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407),
            );
        }
        self.bars += 1;
        if self.bars.is_multiple_of(self.period) {
            if ctx.is_flat() {
                ctx.buy_all();
            } else {
                ctx.close_position();
            }
        }
    }
}

export_strategy!(Slow);
