//! Hostile test plugin: floods the log.
//!
//! Logs one line of `line_bytes` bytes on every bar. With small lines the
//! host keeps the first lines, truncates long ones and counts the rest as
//! dropped; with large ones (the default, 1 MiB) the run must be stopped
//! with `strategy_trap: log flood` once the run's log volume passes its
//! limit, instead of the host copying gigabytes out of the guest.

use stratbox_sdk::prelude::*;

pub struct LogFlood {
    line: String,
}

impl Strategy for LogFlood {
    fn describe() -> Description {
        Description::new(
            "hostile: log flood",
            env!("CARGO_PKG_VERSION"),
            "Logs a line of line_bytes bytes on every bar",
        )
        .param(
            ParamSpec::int("line_bytes", 1 << 20)
                .range(1.0, (32 << 20) as f64)
                .help("Bytes per log line"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params) -> Result<Self, String> {
        let bytes = params.int("line_bytes")?.max(1) as usize;
        Ok(Self {
            line: "x".repeat(bytes),
        })
    }

    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut Context<'_>) {
        log(Level::Info, &self.line);
    }
}

export_strategy!(LogFlood);
