//! stratbox-sdk: write a trading strategy as a plain Rust type, export it
//! as a WebAssembly component with one macro line.
//!
//! ```ignore
//! use stratbox_sdk::prelude::*;
//!
//! struct Buy;
//! impl Strategy for Buy {
//!     fn describe() -> Description {
//!         Description::new("buy", "0.1.0", "buys on the first bar")
//!     }
//!     fn new(_params: &Params) -> Result<Self, String> { Ok(Buy) }
//!     fn on_bar(&mut self, _bar: &Bar, ctx: &mut Context<'_>) {
//!         if ctx.is_flat() { ctx.buy_all(); }
//!     }
//! }
//! export_strategy!(Buy);
//! ```
//!
//! The SDK owns the component bindings and the batching: the host hands
//! over windows of bars as columns and the SDK walks them, calling
//! [`Strategy::on_bar`] once per bar and returning to the host right after
//! a bar that placed orders, so the strategy always sees its own fills.
//!
//! A strategy over several symbols on one timeline implements
//! [`PortfolioStrategy`] instead and is exported with
//! [`export_portfolio!`] (contract 0.3.0's `portfolio-plugin` world):
//!
//! ```ignore
//! use stratbox_sdk::prelude::*;
//!
//! struct FirstOnly;
//! impl PortfolioStrategy for FirstOnly {
//!     fn describe() -> Description {
//!         Description::new("first", "0.1.0", "buys symbol 0").columns(&[Column::Close])
//!     }
//!     fn new(_params: &Params, _symbols: &[String]) -> Result<Self, String> { Ok(FirstOnly) }
//!     fn on_step(&mut self, step: &StepBars<'_>, ctx: &mut PortfolioContext<'_>) {
//!         if step.bar(0).is_some() && ctx.is_flat(0) { ctx.buy(0, Quantity::Equity(1.0)); }
//!     }
//! }
//! export_portfolio!(FirstOnly);
//! ```

mod context;
mod fills;
pub mod indicators;
mod log;
mod params;
mod portfolio;
#[doc(hidden)]
pub mod portfolio_runtime;
#[doc(hidden)]
pub mod runtime;
pub mod testing;
mod types;

pub use context::Context;
pub use log::{log, Level};
pub use params::{Column, Description, ParamSpec, ParamType, ParamValue, Params};
pub use portfolio::{
    PortfolioAccount, PortfolioContext, PortfolioStrategy, Position, StepBars, SymbolAction,
    SymbolFill,
};
pub use types::{
    Action, Bar, Fill, FillReason, Market, Order, OrderKind, Portfolio, Quantity, Side,
};

/// What an author implements. One value of this type lives for a whole run.
pub trait Strategy: Sized + 'static {
    /// Name, version, summary and parameter schema. Called without params.
    fn describe() -> Description;
    /// Builds the strategy from params the host has already checked against
    /// the schema. An `Err` ends the run with that message.
    fn new(params: &Params) -> Result<Self, String>;
    /// Called for every bar, oldest first, after the fills of that bar.
    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>);
}

/// dlmalloc, as std uses on this target, but a release that first hands
/// out the free part of the module's initial memory (`__heap_base` to
/// `__heap_end`) before it grows memory. `stratbox plugin build` links
/// plugins with 512 KiB of initial memory, so a short run never grows it:
/// a pooled instance then skips the `mprotect` of each growth and of its
/// reset, and the TLB flush that comes with it.
#[cfg(all(target_arch = "wasm32", target_os = "unknown", feature = "allocator"))]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

pub mod prelude {
    //! Everything a strategy usually needs.
    pub use crate::indicators::*;
    pub use crate::{
        export_portfolio, export_strategy, log, Action, Bar, Column, Context, Description, Fill,
        FillReason, Level, Market, Order, OrderKind, ParamSpec, ParamType, ParamValue, Params,
        PortfolioContext, PortfolioStrategy, Position, Quantity, Side, StepBars, Strategy,
        SymbolAction, SymbolFill,
    };
}

#[doc(hidden)]
#[allow(unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        // The current contract; `wit/v0.1.0/` is kept for the host only.
        path: "../wit/strategy.wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_bindings",
        default_bindings_module: "stratbox_sdk::bindings",
    });
}

/// The `portfolio-plugin` world (0.3.0), generated apart from `plugin` so
/// the two sets of types do not meet: a crate exports one world or the
/// other, through [`export_strategy!`] or [`export_portfolio!`].
#[doc(hidden)]
#[allow(unsafe_code, clippy::all)]
pub mod portfolio_bindings {
    wit_bindgen::generate!({
        path: "../wit/strategy.wit",
        world: "portfolio-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_portfolio_plugin_bindings",
        default_bindings_module: "stratbox_sdk::portfolio_bindings",
    });
}

/// Exports a [`Strategy`] type as the component's `strategy` interface.
#[macro_export]
macro_rules! export_strategy {
    ($ty:ty) => {
        // Only wasm builds export: native builds (unit tests) of a cdylib
        // cannot link symbol names with `:` in them.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __stratbox_export {
            use super::*;
            use $crate::bindings::exports::stratbox::strategy::strategy as wit;

            struct Export;

            ::std::thread_local! {
                static RUNTIME: ::std::cell::RefCell<$crate::runtime::Runtime<$ty>> =
                    ::std::cell::RefCell::new($crate::runtime::Runtime::new());
            }

            impl wit::Guest for Export {
                fn describe() -> wit::Description {
                    $crate::runtime::describe::<$ty>()
                }
                fn init(params: ::std::vec::Vec<wit::Param>) -> ::std::result::Result<(), ::std::string::String> {
                    RUNTIME.with(|rt| rt.borrow_mut().init(params))
                }
                #[allow(clippy::too_many_arguments)]
                fn push_bars(
                    first_index: u64,
                    commission: f64,
                    leverage: f64,
                    slippage_bps: f64,
                    ts: ::std::vec::Vec<i64>,
                    open: ::std::vec::Vec<f64>,
                    high: ::std::vec::Vec<f64>,
                    low: ::std::vec::Vec<f64>,
                    close: ::std::vec::Vec<f64>,
                    volume: ::std::vec::Vec<f64>,
                ) {
                    RUNTIME.with(|rt| {
                        rt.borrow_mut()
                            .push_bars(first_index, commission, leverage, slippage_bps, ts, open, high, low, close, volume)
                    })
                }
                fn run(portfolio: wit::Portfolio, start: u32, end: u32) -> wit::Step {
                    RUNTIME.with(|rt| rt.borrow_mut().run(portfolio, start, end))
                }
                fn next_action() -> ::std::option::Option<wit::Action> {
                    RUNTIME.with(|rt| rt.borrow_mut().next_action())
                }
                fn take_planned() -> wit::Plan {
                    RUNTIME.with(|rt| rt.borrow_mut().take_planned())
                }
                fn set_market_state(state: wit::MarketState) {
                    RUNTIME.with(|rt| rt.borrow_mut().set_market_state(state))
                }
            }

            $crate::bindings::__export_plugin_bindings!(Export with_types_in $crate::bindings);
        }
    };
}

/// Exports a [`PortfolioStrategy`] type as the component's `portfolio`
/// interface (world `portfolio-plugin`, contract 0.3.0).
#[macro_export]
macro_rules! export_portfolio {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        #[allow(unsafe_code)]
        mod __stratbox_export_portfolio {
            use super::*;
            use $crate::portfolio_bindings::exports::stratbox::strategy::portfolio as pwit;

            struct Export;

            ::std::thread_local! {
                static RUNTIME: ::std::cell::RefCell<$crate::portfolio_runtime::PortfolioRuntime<$ty>> =
                    ::std::cell::RefCell::new($crate::portfolio_runtime::PortfolioRuntime::new());
            }

            impl pwit::Guest for Export {
                fn describe() -> pwit::Description {
                    $crate::portfolio_runtime::describe::<$ty>()
                }
                fn init(
                    params: ::std::vec::Vec<pwit::Param>,
                    symbols: ::std::vec::Vec<::std::string::String>,
                    market: pwit::Market,
                ) -> ::std::result::Result<(), ::std::string::String> {
                    RUNTIME.with(|rt| rt.borrow_mut().init(params, &symbols, market))
                }
                fn push_bars(
                    first_index: u64,
                    commission: f64,
                    leverage: f64,
                    slippage_bps: f64,
                    ts: ::std::vec::Vec<i64>,
                    bars: ::std::vec::Vec<pwit::SymbolBars>,
                ) {
                    RUNTIME.with(|rt| {
                        rt.borrow_mut()
                            .push_bars(first_index, commission, leverage, slippage_bps, ts, bars)
                    })
                }
                fn run(account: pwit::Account, start: u32, end: u32) -> pwit::Step {
                    RUNTIME.with(|rt| rt.borrow_mut().run(account, start, end))
                }
            }

            $crate::portfolio_bindings::__export_portfolio_plugin_bindings!(
                Export with_types_in $crate::portfolio_bindings
            );
        }
    };
}
