//! Hostile test plugin: panics.
//!
//! Behaves on the first nine bars, then panics on the 10th with the message
//! `deliberate panic at bar 10`. The SDK's panic hook logs it through the
//! `log` import before the trap: the host must answer `strategy_trap` with
//! that message in it.

use stratbox_sdk::prelude::*;

pub struct Panic {
    bars: u64,
}

impl Strategy for Panic {
    fn describe() -> Description {
        Description::new(
            "hostile: panic",
            env!("CARGO_PKG_VERSION"),
            "Panics on the 10th bar; the host must answer strategy_trap with the panic message",
        )
    }

    fn new(_params: &Params) -> Result<Self, String> {
        Ok(Self { bars: 0 })
    }

    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut Context<'_>) {
        self.bars += 1;
        if self.bars == 10 {
            panic!("deliberate panic at bar {}", self.bars);
        }
    }
}

export_strategy!(Panic);
