//! Test plugin: reads the bits of a NaN it computes.
//!
//! On the first bar it divides zero by zero at run time (zeros made from
//! the bar's prices, so the compiler cannot fold them), logs the NaN's bits
//! and buys when the NaN's sign bit is set. x86-64 makes that NaN negative
//! and aarch64 positive; the sandbox makes it canonical, so every machine
//! gives the same report: the line `nan bits 7ff8000000000000`, no trade.

use stratbox_sdk::prelude::*;

pub struct NanBits {
    probed: bool,
}

impl Strategy for NanBits {
    fn describe() -> Description {
        Description::new(
            "probe: nan bits",
            env!("CARGO_PKG_VERSION"),
            "Logs the bits of a NaN computed at run time; buys when its sign bit is set",
        )
    }

    fn new(_params: &Params) -> Result<Self, String> {
        Ok(Self { probed: false })
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>) {
        if self.probed {
            return;
        }
        self.probed = true;
        let nan = (bar.close * 0.0) / (bar.open * 0.0);
        log(Level::Info, &format!("nan bits {:016x}", nan.to_bits()));
        if nan.is_sign_negative() && ctx.is_flat() {
            ctx.buy_all();
        }
    }
}

export_strategy!(NanBits);
