//! Named failures of loading and running a component.

use std::time::Duration;

/// Why a component was refused at load (upload, inspect, backtest).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    #[error("this is a core WebAssembly module, not a component; build it with `stratbox plugin build` (which wraps it as a component) or target wasm32-wasip2")]
    CoreModule,
    #[error("unsupported WebAssembly binary layer/version {0:#x}")]
    UnknownLayer(u32),
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error("contract version mismatch: the component was built against {found}, this host speaks {expected}")]
    ContractVersion { found: String, expected: String },
    #[error("not a stratbox strategy: it does not export `{expected}`")]
    MissingExport { expected: String },
    #[error("forbidden import{}: {}; a strategy may import only `{allowed}`; {hint}", if .imports.len() > 1 { "s" } else { "" }, .imports.join(", "))]
    ForbiddenImports {
        imports: Vec<String>,
        allowed: String,
        /// How to build without them, for the component's runtime.
        hint: &'static str,
    },
    #[error("the strategy's `describe` failed: {0}")]
    Describe(RunError),
    #[error("the strategy describes an invalid parameter schema: {0}")]
    BadSchema(String),
}

/// How a run ended when it did not complete. `code()` is the stable name
/// clients match on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("fuel_exhausted: the strategy used its whole budget of {budget} fuel")]
    FuelExhausted { budget: u64 },
    #[error("memory_limit: the strategy tried to grow its memory past {limit_bytes} bytes")]
    MemoryLimit { limit_bytes: usize },
    #[error("deadline_exceeded: the run was stopped after its wall-clock limit of {deadline:?}")]
    DeadlineExceeded { deadline: Duration },
    #[error("cancelled: the run was cancelled")]
    Cancelled,
    #[error("strategy_trap: {message}")]
    Trap { message: String },
    #[error("strategy_error: {message}")]
    InitFailed { message: String },
    #[error("sandbox_error: {message}")]
    Host { message: String },
}

impl RunError {
    pub fn code(&self) -> &'static str {
        match self {
            RunError::FuelExhausted { .. } => "fuel_exhausted",
            RunError::MemoryLimit { .. } => "memory_limit",
            RunError::DeadlineExceeded { .. } => "deadline_exceeded",
            RunError::Cancelled => "cancelled",
            RunError::Trap { .. } => "strategy_trap",
            RunError::InitFailed { .. } => "strategy_error",
            RunError::Host { .. } => "sandbox_error",
        }
    }
}
