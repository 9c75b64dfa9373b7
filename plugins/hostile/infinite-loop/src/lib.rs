//! Hostile test plugin: never returns from `on_bar`.
//!
//! Behaves on the first nine bars, then spins forever on the 10th in a loop
//! the optimiser cannot remove. Attacks the CPU budget: the host must stop
//! it with `fuel_exhausted` (or `deadline_exceeded` when fuel is unlimited).

use std::hint::black_box;
use stratbox_sdk::prelude::*;

pub struct InfiniteLoop {
    bars: u64,
}

impl Strategy for InfiniteLoop {
    fn describe() -> Description {
        Description::new(
            "hostile: infinite loop",
            env!("CARGO_PKG_VERSION"),
            "Spins forever on the 10th bar; the host must answer fuel_exhausted",
        )
    }

    fn new(_params: &Params) -> Result<Self, String> {
        Ok(Self { bars: 0 })
    }

    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut Context<'_>) {
        self.bars += 1;
        if self.bars != 10 {
            return;
        }
        // Starts at 1, so it only ends after 2^64 - 1 steps; `black_box`
        // keeps the compiler from computing that (or deleting the loop).
        let mut counter: u64 = 1;
        loop {
            counter = counter.wrapping_add(1);
            if black_box(counter) == 0 {
                break;
            }
        }
        log(Level::Error, "the infinite loop ended");
    }
}

export_strategy!(InfiniteLoop);
