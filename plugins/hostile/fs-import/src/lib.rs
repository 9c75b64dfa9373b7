//! Hostile test plugin: reads the host's filesystem.
//!
//! On the first bar it tries `std::fs::read_to_string("/etc/passwd")` and
//! logs the length. Built for `wasm32-wasip2`, std then imports the WASI
//! filesystem interfaces: the host must refuse the component at load with a
//! forbidden-import error naming them. (For `wasm32-unknown-unknown` and
//! native builds the read simply fails.)

use stratbox_sdk::prelude::*;

pub struct FsImport {
    tried: bool,
}

impl Strategy for FsImport {
    fn describe() -> Description {
        Description::new(
            "hostile: fs import",
            env!("CARGO_PKG_VERSION"),
            "Reads /etc/passwd on the first bar; the host must refuse its WASI imports at load",
        )
    }

    fn new(_params: &Params) -> Result<Self, String> {
        Ok(Self { tried: false })
    }

    fn on_bar(&mut self, _bar: &Bar, _ctx: &mut Context<'_>) {
        if self.tried {
            return;
        }
        self.tried = true;
        let message = match std::fs::read_to_string("/etc/passwd") {
            Ok(text) => format!("read /etc/passwd: {} bytes", text.len()),
            Err(e) => format!("cannot read /etc/passwd: {e}"),
        };
        log(Level::Warn, &message);
    }
}

export_strategy!(FsImport);
