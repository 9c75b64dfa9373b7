//! Hostile test plugin: recurses without bound.
//!
//! Behaves on the first nine bars, then on the 10th calls a non-tail
//! recursive function with a stack array in every frame. Attacks the stack
//! limit: the host must stop it with `strategy_trap` (stack overflow).

use std::hint::black_box;
use stratbox_sdk::prelude::*;

pub struct DeepRecursion {
    bars: u64,
}

/// Never returns in practice: the only way out is a depth of `u64::MAX`.
/// The work after the call keeps it from becoming a loop, and the array
/// passed through `black_box` gives each frame real stack.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let mut frame = [0u8; 256];
    frame[(depth % 256) as usize] = depth as u8;
    black_box(&mut frame);
    let below = descend(depth + 1);
    below.wrapping_add(u64::from(frame[(below % 256) as usize]))
}

impl Strategy for DeepRecursion {
    fn describe() -> Description {
        Description::new(
            "hostile: deep recursion",
            env!("CARGO_PKG_VERSION"),
            "Recurses without bound on the 10th bar; the host must answer strategy_trap",
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
        let depth = descend(black_box(0));
        log(Level::Error, &format!("the recursion ended: {depth}"));
    }
}

export_strategy!(DeepRecursion);
