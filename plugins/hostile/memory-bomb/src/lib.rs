//! Hostile test plugin: allocates without end.
//!
//! Behaves on the first nine bars, then on the 10th keeps allocating 1 MiB
//! blocks, filling each one and keeping them all. Attacks the memory cap:
//! the host must stop it with `memory_limit`.

use std::hint::black_box;
use stratbox_sdk::prelude::*;

const BLOCK: usize = 1 << 20;

pub struct MemoryBomb {
    bars: u64,
    hoard: Vec<Vec<u8>>,
}

impl Strategy for MemoryBomb {
    fn describe() -> Description {
        Description::new(
            "hostile: memory bomb",
            env!("CARGO_PKG_VERSION"),
            "Allocates 1 MiB blocks forever on the 10th bar; the host must answer memory_limit",
        )
    }

    fn new(_params: &Params) -> Result<Self, String> {
        Ok(Self {
            bars: 0,
            hoard: Vec::new(),
        })
    }

    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut Context<'_>) {
        self.bars += 1;
        if self.bars != 10 {
            return;
        }
        loop {
            // A non-zero fill writes every page; `black_box` keeps the
            // block from being optimised away.
            let block = black_box(vec![0xA5u8; BLOCK]);
            self.hoard.push(block);
            black_box(&self.hoard);
        }
    }
}

export_strategy!(MemoryBomb);
