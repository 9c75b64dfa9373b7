//! Host side of the `stratbox:strategy` WIT contract.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
});

pub use exports::stratbox::strategy::strategy as wit;
pub use stratbox::strategy::log as wit_log;
