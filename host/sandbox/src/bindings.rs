//! Host side of the `stratbox:strategy` WIT contract.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "plugin",
    // Logging can trap: a guest that floods it is stopped.
    imports: { default: trappable },
});

pub use self::exports::stratbox::strategy::strategy as wit;
pub use self::stratbox::strategy::log as wit_log;
