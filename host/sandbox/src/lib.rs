//! The WebAssembly sandbox: a narrow wrapper over wasmtime's component
//! model that loads, checks, caches and runs strategy components under
//! fuel, memory, stack and wall-clock limits. It implements the engine's
//! [`stratbox_engine::Strategy`] for components, and its
//! [`stratbox_engine::portfolio::PortfolioStrategy`] for components over
//! several symbols; it knows nothing of Redis.

mod bindings;
mod cache;
mod config;
mod error;
mod factory;
mod instance;
mod limits;
mod nan;
mod plugin;
mod runtime;

pub use bindings::{ContractVersion, StrategyKind};

pub use config::{default_cache_dir, NanCanonicalization, RunLimits, SandboxConfig};
pub use error::{LoadError, RunError};
pub use factory::{is_fatal, PluginFactory};
pub use instance::{CancelToken, LogLine, WasmPortfolioStrategy, WasmStrategy};
pub use plugin::{precheck, Plugin, Prechecked, Sandbox, CONTRACT, CONTRACT_VERSION};
pub use runtime::GuestRuntime;
