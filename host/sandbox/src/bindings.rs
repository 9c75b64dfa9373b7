//! Host side of the `stratbox:strategy` WIT contract, in every version the
//! host still speaks (docs/conventions/contract.md#versioning).
//!
//! Each version gets its own `bindgen!` output, since the generated types
//! are distinct even where the WIT is the same. The rest of the sandbox
//! sees one [`Guest`] whose calls take and give engine types: a new
//! version is one more `bindgen!`, one more arm, and, when it only adds
//! to the one before (as 0.2.0 and 0.3.0 do), the same `dispatch!`
//! expansion. A strategy over several symbols (0.3.0's `portfolio-plugin`
//! world) is a [`PortfolioGuest`] of its own.

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::instance::StoreState;
use stratbox_engine::{
    self as engine, Action, Assumed, Column, Description, Market, ParamSpec, ParamType, ParamValue,
    Params, Plan, PortfolioView,
};

/// The package name; each version below appends `@<version>`.
pub const CONTRACT: &str = "stratbox:strategy";

/// The contract versions this host loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContractVersion {
    /// The first contract: no market state.
    V0_1_0,
    /// 0.1.0 plus `set-market-state` (market, liquidation price, funding).
    V0_2_0,
    /// 0.2.0 plus the `portfolio` interface (several symbols, one account).
    V0_3_0,
}

impl ContractVersion {
    /// Oldest first.
    pub const ALL: [ContractVersion; 3] = [
        ContractVersion::V0_1_0,
        ContractVersion::V0_2_0,
        ContractVersion::V0_3_0,
    ];
    /// What the SDK builds against and `stratbox plugin new` scaffolds.
    pub const CURRENT: ContractVersion = ContractVersion::V0_3_0;

    pub const fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
            ContractVersion::V0_2_0 => "0.2.0",
            ContractVersion::V0_3_0 => "0.3.0",
        }
    }

    pub fn parse(version: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == version)
    }

    /// Whether a component of this version can be told the market state
    /// (0.1.0 cannot: it runs as if on spot with neither value).
    pub fn has_market_state(self) -> bool {
        self >= ContractVersion::V0_2_0
    }

    /// Whether the version has the `portfolio` interface (several symbols).
    pub fn has_portfolio(self) -> bool {
        self >= ContractVersion::V0_3_0
    }
}

/// What a strategy component trades: one symbol (it exports `strategy`)
/// or several on one timeline (it exports `portfolio`, 0.3.0 on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StrategyKind {
    Single,
    Portfolio,
}

impl StrategyKind {
    /// The name of the interface a component of this kind exports.
    pub const fn interface(self) -> &'static str {
        match self {
            StrategyKind::Single => "strategy",
            StrategyKind::Portfolio => "portfolio",
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            StrategyKind::Single => "single",
            StrategyKind::Portfolio => "portfolio",
        }
    }
}

impl std::fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0/strategy.wit",
        world: "plugin",
        // Logging can trap: a guest that floods it is stopped.
        imports: { default: trappable },
    });
}

pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0/strategy.wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

pub(crate) mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/strategy.wit",
        world: "plugin",
        imports: { default: trappable },
    });
}

/// 0.3.0's world of a strategy over several symbols. Its imports are
/// never added to the linker: its only one, the log, is the one of
/// [`v0_3`] (the same name). The `portfolio` interface defines its own
/// types, so the world imports nothing of `strategy`.
pub(crate) mod v0_3p {
    wasmtime::component::bindgen!({
        path: "../../wit/strategy.wit",
        world: "portfolio-plugin",
        imports: { default: trappable },
    });
}

impl v0_1::stratbox::strategy::log::Host for StoreState {
    fn log(
        &mut self,
        level: v0_1::stratbox::strategy::log::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        use v0_1::stratbox::strategy::log::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, message)
    }
}

impl v0_2::stratbox::strategy::log::Host for StoreState {
    fn log(
        &mut self,
        level: v0_2::stratbox::strategy::log::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        use v0_2::stratbox::strategy::log::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, message)
    }
}

impl v0_3::stratbox::strategy::log::Host for StoreState {
    fn log(
        &mut self,
        level: v0_3::stratbox::strategy::log::Level,
        message: String,
    ) -> wasmtime::Result<()> {
        use v0_3::stratbox::strategy::log::Level;
        let level = match level {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.log_line(level, message)
    }
}

/// Adds the log import of every version to `linker`.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<StoreState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)?;
    v0_2::Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)?;
    v0_3::Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |s| s)?;
    Ok(())
}

/// A component's pre-instantiated form, of the version it was built for.
pub(crate) enum Pre {
    V0_1(v0_1::PluginPre<StoreState>),
    V0_2(v0_2::PluginPre<StoreState>),
    V0_3(v0_3::PluginPre<StoreState>),
    /// A strategy over several symbols (0.3.0).
    Portfolio(v0_3p::PortfolioPluginPre<StoreState>),
}

impl Pre {
    pub(crate) fn new(
        version: ContractVersion,
        kind: StrategyKind,
        pre: InstancePre<StoreState>,
    ) -> wasmtime::Result<Self> {
        Ok(match (kind, version) {
            (StrategyKind::Single, ContractVersion::V0_1_0) => {
                Pre::V0_1(v0_1::PluginPre::new(pre)?)
            }
            (StrategyKind::Single, ContractVersion::V0_2_0) => {
                Pre::V0_2(v0_2::PluginPre::new(pre)?)
            }
            (StrategyKind::Single, ContractVersion::V0_3_0) => {
                Pre::V0_3(v0_3::PluginPre::new(pre)?)
            }
            (StrategyKind::Portfolio, ContractVersion::V0_3_0) => {
                Pre::Portfolio(v0_3p::PortfolioPluginPre::new(pre)?)
            }
            (StrategyKind::Portfolio, v) => wasmtime::bail!(
                "stratbox:strategy@{v} has no `portfolio` interface (it came with 0.3.0)"
            ),
        })
    }

    /// A single-symbol instance; the caller has checked the kind.
    pub(crate) fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Guest> {
        Ok(match self {
            Pre::V0_1(pre) => Guest::V0_1(pre.instantiate(store)?),
            Pre::V0_2(pre) => Guest::V0_2(pre.instantiate(store)?),
            Pre::V0_3(pre) => Guest::V0_3(pre.instantiate(store)?),
            Pre::Portfolio(_) => wasmtime::bail!("a portfolio strategy has no single-symbol calls"),
        })
    }

    /// A portfolio instance; the caller has checked the kind.
    pub(crate) fn instantiate_portfolio(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<PortfolioGuest> {
        match self {
            Pre::Portfolio(pre) => Ok(PortfolioGuest(pre.instantiate(store)?)),
            _ => wasmtime::bail!("a single-symbol strategy has no portfolio calls"),
        }
    }

    /// Instantiates either kind and calls its `describe`.
    pub(crate) fn describe(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Description> {
        match self {
            Pre::Portfolio(_) => self.instantiate_portfolio(store)?.describe(store),
            _ => self.instantiate(store)?.describe(store),
        }
    }
}

/// A live single-symbol instance, of the version it was built for.
pub(crate) enum Guest {
    V0_1(v0_1::Plugin),
    V0_2(v0_2::Plugin),
    V0_3(v0_3::Plugin),
}

/// What a `run` call did, in engine types.
pub(crate) struct Step {
    pub consumed: u32,
    pub action: Option<Action>,
    pub more: u32,
    pub planned: u32,
}

/// The bar columns of one `push-bars` call.
pub(crate) struct Window<'a> {
    pub first_index: u64,
    pub commission: f64,
    pub leverage: f64,
    pub slippage_bps: f64,
    pub ts: &'a [i64],
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
}

/// One version's `action` as the engine's.
macro_rules! action_from_wit {
    ($wit:ident, $action:expr) => {
        match $action {
            $wit::Action::Submit(order) => Action::Submit(engine::Order {
                side: match order.side {
                    $wit::Side::Buy => engine::Side::Buy,
                    $wit::Side::Sell => engine::Side::Sell,
                },
                quantity: match order.quantity {
                    $wit::Quantity::Units(q) => engine::Quantity::Units(q),
                    $wit::Quantity::Equity(f) => engine::Quantity::Equity(f),
                },
                kind: match order.kind {
                    $wit::OrderKind::Market => engine::OrderKind::Market,
                    $wit::OrderKind::Limit(p) => engine::OrderKind::Limit(p),
                    $wit::OrderKind::Stop(p) => engine::OrderKind::Stop(p),
                },
                stop_loss: order.stop_loss,
                take_profit: order.take_profit,
            }),
            $wit::Action::ClosePosition => Action::ClosePosition,
            $wit::Action::CancelOrders => Action::CancelOrders,
            $wit::Action::SetStopLoss(p) => Action::SetStopLoss(p),
            $wit::Action::SetTakeProfit(p) => Action::SetTakeProfit(p),
        }
    };
}

/// One version's `description` as the engine's.
macro_rules! description_from_wit {
    ($wit:ident, $d:expr) => {{
        let d = $d;
        Description {
            name: d.name,
            version: d.version,
            summary: d.summary,
            params: d
                .params
                .into_iter()
                .map(|p| ParamSpec {
                    name: p.name,
                    kind: match p.kind {
                        $wit::ParamType::Int => ParamType::Int,
                        $wit::ParamType::Float => ParamType::Float,
                        $wit::ParamType::Bool => ParamType::Bool,
                    },
                    default: match p.default {
                        $wit::ParamValue::Int(v) => ParamValue::Int(v),
                        $wit::ParamValue::Float(v) => ParamValue::Float(v),
                        $wit::ParamValue::Bool(v) => ParamValue::Bool(v),
                    },
                    min: p.min,
                    max: p.max,
                    step: p.step,
                    help: p.help,
                })
                .collect(),
            columns: if d.columns.is_empty() {
                Column::ALL.to_vec()
            } else {
                let mut columns: Vec<Column> = d
                    .columns
                    .into_iter()
                    .map(|c| match c {
                        $wit::Column::Ts => Column::Ts,
                        $wit::Column::Open => Column::Open,
                        $wit::Column::High => Column::High,
                        $wit::Column::Low => Column::Low,
                        $wit::Column::Close => Column::Close,
                        $wit::Column::Volume => Column::Volume,
                    })
                    .collect();
                columns.sort();
                columns.dedup();
                columns
            },
        }
    }};
}

/// Engine params as one version's `param` list.
macro_rules! params_to_wit {
    ($wit:ident, $params:expr) => {
        $params
            .0
            .iter()
            .map(|(name, value)| $wit::Param {
                name: name.clone(),
                value: match *value {
                    ParamValue::Int(v) => $wit::ParamValue::Int(v),
                    ParamValue::Float(v) => $wit::ParamValue::Float(v),
                    ParamValue::Bool(v) => $wit::ParamValue::Bool(v),
                },
            })
            .collect::<Vec<$wit::Param>>()
    };
}

/// An engine fill's side and reason as one version's.
macro_rules! side_to_wit {
    ($wit:ident, $side:expr) => {
        match $side {
            engine::Side::Buy => $wit::Side::Buy,
            engine::Side::Sell => $wit::Side::Sell,
        }
    };
}

macro_rules! fill_reason_to_wit {
    ($wit:ident, $reason:expr) => {
        match $reason {
            engine::FillReason::Market => $wit::FillReason::Market,
            engine::FillReason::Limit => $wit::FillReason::Limit,
            engine::FillReason::Stop => $wit::FillReason::Stop,
            engine::FillReason::StopLoss => $wit::FillReason::StopLoss,
            engine::FillReason::TakeProfit => $wit::FillReason::TakeProfit,
            engine::FillReason::ClosePosition => $wit::FillReason::ClosePosition,
        }
    };
}

/// Calls one version's exports; `$wit` is that version's `strategy`
/// interface. Every version so far has 0.1.0's functions unchanged.
macro_rules! dispatch {
    ($self:ident, $bindings:ident, $store:ident => $call:expr) => {
        match $self {
            Guest::V0_1($bindings) => {
                #[allow(unused_imports)]
                use v0_1::exports::stratbox::strategy::strategy as wit;
                let $bindings = $bindings.stratbox_strategy_strategy();
                $call
            }
            Guest::V0_2($bindings) => {
                #[allow(unused_imports)]
                use v0_2::exports::stratbox::strategy::strategy as wit;
                let $bindings = $bindings.stratbox_strategy_strategy();
                $call
            }
            Guest::V0_3($bindings) => {
                #[allow(unused_imports)]
                use v0_3::exports::stratbox::strategy::strategy as wit;
                let $bindings = $bindings.stratbox_strategy_strategy();
                $call
            }
        }
    };
}

impl Guest {
    pub(crate) fn describe(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Description> {
        dispatch!(self, b, store => {
            let d = b.call_describe(&mut *store)?;
            Ok(description_from_wit!(wit, d))
        })
    }

    pub(crate) fn init(
        &self,
        store: &mut Store<StoreState>,
        params: &Params,
    ) -> wasmtime::Result<Result<(), String>> {
        dispatch!(self, b, store => {
            let params = params_to_wit!(wit, params);
            b.call_init(&mut *store, &params)
        })
    }

    pub(crate) fn push_bars(
        &self,
        store: &mut Store<StoreState>,
        w: &Window<'_>,
    ) -> wasmtime::Result<()> {
        dispatch!(self, b, store => b.call_push_bars(
            &mut *store,
            w.first_index,
            w.commission,
            w.leverage,
            w.slippage_bps,
            w.ts,
            w.open,
            w.high,
            w.low,
            w.close,
            w.volume,
        ))
    }

    pub(crate) fn run(
        &self,
        store: &mut Store<StoreState>,
        portfolio: &PortfolioView<'_>,
        start: u32,
        end: u32,
    ) -> wasmtime::Result<Step> {
        dispatch!(self, b, store => {
            let state = wit::Portfolio {
                cash: portfolio.cash,
                position: portfolio.position,
                entry_price: portfolio.entry_price,
                stop_loss: portfolio.stop_loss,
                take_profit: portfolio.take_profit,
                open_orders: portfolio.open_orders,
                fill_count: portfolio.fills.len() as u32,
                last_fill: portfolio.fills.last().map(|fill| wit::Fill {
                    side: side_to_wit!(wit, fill.side),
                    qty: fill.qty,
                    price: fill.price,
                    reason: fill_reason_to_wit!(wit, fill.reason),
                }),
            };
            let step = b.call_run(&mut *store, state, start, end)?;
            Ok(Step {
                consumed: step.consumed,
                action: step.action.map(|a| action_from_wit!(wit, a)),
                more: step.more,
                planned: step.planned,
            })
        })
    }

    /// Appends the last `run`'s plan to `plan`, bars as run indices.
    pub(crate) fn take_planned(
        &self,
        store: &mut Store<StoreState>,
        window_start: usize,
        plan: &mut Plan,
    ) -> wasmtime::Result<()> {
        dispatch!(self, b, store => {
            let taken = b.call_take_planned(&mut *store)?;
            plan.actions.extend(
                taken
                    .actions
                    .into_iter()
                    .map(|p| (window_start + p.bar as usize, action_from_wit!(wit, p.action))),
            );
            plan.assumed.extend(taken.assumed.into_iter().map(|a| Assumed {
                bar: window_start + a.bar as usize,
                cash: a.cash,
                position: a.position,
                entry_price: a.entry_price,
            }));
            Ok(())
        })
    }

    pub(crate) fn next_action(
        &self,
        store: &mut Store<StoreState>,
    ) -> wasmtime::Result<Option<Action>> {
        dispatch!(self, b, store => {
            Ok(b.call_next_action(&mut *store)?.map(|a| action_from_wit!(wit, a)))
        })
    }

    /// Tells a 0.2.0+ guest the market state; a 0.1.0 guest has no way to
    /// hear it, so nothing is sent.
    pub(crate) fn set_market_state(
        &self,
        store: &mut Store<StoreState>,
        state: MarketState,
    ) -> wasmtime::Result<()> {
        macro_rules! send {
            ($b:ident, $wit:path) => {{
                use $wit as wit;
                $b.stratbox_strategy_strategy().call_set_market_state(
                    store,
                    wit::MarketState {
                        market: match state.market {
                            Market::Spot => wit::Market::Spot,
                            Market::LinearPerpetual => wit::Market::LinearPerpetual,
                        },
                        liquidation_price: state.liquidation_price,
                        funding_rate: state.funding_rate,
                    },
                )
            }};
        }
        match self {
            Guest::V0_1(_) => Ok(()),
            Guest::V0_2(b) => send!(b, v0_2::exports::stratbox::strategy::strategy),
            Guest::V0_3(b) => send!(b, v0_3::exports::stratbox::strategy::strategy),
        }
    }
}

/// A live instance of a strategy over several symbols (0.3.0).
pub(crate) struct PortfolioGuest(v0_3p::PortfolioPlugin);

/// 0.3.0's `portfolio` interface, with its own copies of the types it
/// shares with `strategy` (description, param, action, ...).
pub(crate) use v0_3p::exports::stratbox::strategy::portfolio as pwit;

/// The columns of one portfolio `push-bars` call; `bars` has one entry
/// per symbol, undeclared columns empty.
pub(crate) struct PortfolioWindow<'a> {
    pub first_index: u64,
    pub commission: f64,
    pub leverage: f64,
    pub slippage_bps: f64,
    pub ts: &'a [i64],
    pub bars: &'a [pwit::SymbolBars],
}

/// What a portfolio `run` call did, in engine types.
pub(crate) struct PortfolioStep {
    pub consumed: u32,
    pub actions: Vec<engine::portfolio::SymbolAction>,
}

impl PortfolioGuest {
    fn exports(&self) -> &pwit::Guest {
        self.0.stratbox_strategy_portfolio()
    }

    pub(crate) fn describe(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Description> {
        let d = self.exports().call_describe(store)?;
        Ok(description_from_wit!(pwit, d))
    }

    pub(crate) fn init(
        &self,
        store: &mut Store<StoreState>,
        params: &Params,
        symbols: &[String],
        market: Market,
    ) -> wasmtime::Result<Result<(), String>> {
        let params = params_to_wit!(pwit, params);
        let market = match market {
            Market::Spot => pwit::Market::Spot,
            Market::LinearPerpetual => pwit::Market::LinearPerpetual,
        };
        self.exports().call_init(store, &params, symbols, market)
    }

    pub(crate) fn push_bars(
        &self,
        store: &mut Store<StoreState>,
        w: &PortfolioWindow<'_>,
    ) -> wasmtime::Result<()> {
        self.exports().call_push_bars(
            store,
            w.first_index,
            w.commission,
            w.leverage,
            w.slippage_bps,
            w.ts,
            w.bars,
        )
    }

    pub(crate) fn run(
        &self,
        store: &mut Store<StoreState>,
        account: &pwit::Account,
        start: u32,
        end: u32,
    ) -> wasmtime::Result<PortfolioStep> {
        let step = self.exports().call_run(store, account, start, end)?;
        Ok(PortfolioStep {
            consumed: step.consumed,
            actions: step
                .actions
                .into_iter()
                .map(|a| engine::portfolio::SymbolAction {
                    // An index beyond the universe reaches the engine as
                    // is: it refuses it as an invalid order.
                    symbol: usize::try_from(a.symbol).unwrap_or(usize::MAX),
                    action: action_from_wit!(pwit, a.action),
                })
                .collect(),
        })
    }
}

/// Fills `account` (its lists reused between calls) from the engine's view.
pub(crate) fn account_to_wit(
    view: &engine::portfolio::AccountView<'_>,
    account: &mut pwit::Account,
) {
    account.cash = view.cash;
    account.equity = view.equity;
    account.positions.clear();
    account
        .positions
        .extend(view.positions.iter().map(|p| pwit::Position {
            qty: p.qty,
            entry_price: p.entry_price,
            stop_loss: p.stop_loss,
            take_profit: p.take_profit,
            open_orders: p.open_orders,
            liquidation_price: p.liquidation_price,
            funding_rate: p.funding_rate,
        }));
    account.fills.clear();
    account
        .fills
        .extend(view.fills.iter().map(|f| pwit::SymbolFill {
            symbol: f.symbol as u32,
            side: side_to_wit!(pwit, f.fill.side),
            qty: f.fill.qty,
            price: f.fill.price,
            reason: fill_reason_to_wit!(pwit, f.fill.reason),
        }));
}

/// The market state a guest was last told. Compared bit for bit, so a
/// change of a NaN's payload or of a zero's sign is still sent.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MarketState {
    pub market: Market,
    pub liquidation_price: Option<f64>,
    pub funding_rate: Option<f64>,
}

impl MarketState {
    pub(crate) fn of(portfolio: &PortfolioView<'_>) -> Self {
        Self {
            market: portfolio.market,
            liquidation_price: portfolio.liquidation_price,
            funding_rate: portfolio.funding_rate,
        }
    }

    pub(crate) fn same(&self, other: &Self) -> bool {
        self.market == other.market
            && self.liquidation_price.map(f64::to_bits) == other.liquidation_price.map(f64::to_bits)
            && self.funding_rate.map(f64::to_bits) == other.funding_rate.map(f64::to_bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        for v in ContractVersion::ALL {
            assert_eq!(ContractVersion::parse(v.as_str()), Some(v));
        }
        assert_eq!(ContractVersion::parse("0.99.0"), None);
        assert_eq!(
            ContractVersion::CURRENT,
            *ContractVersion::ALL.last().unwrap()
        );
        assert!(!ContractVersion::V0_1_0.has_market_state());
        assert!(ContractVersion::V0_2_0.has_market_state());
        assert!(ContractVersion::V0_3_0.has_market_state());
        assert!(!ContractVersion::V0_2_0.has_portfolio());
        assert!(ContractVersion::V0_3_0.has_portfolio());
    }

    #[test]
    fn market_state_changes_are_seen_to_the_bit() {
        let spot = MarketState::default();
        assert!(spot.same(&MarketState::default()));
        let perp = |lp: Option<f64>, rate: Option<f64>| MarketState {
            market: Market::LinearPerpetual,
            liquidation_price: lp,
            funding_rate: rate,
        };
        assert!(!spot.same(&perp(None, None)));
        assert!(perp(Some(87.8), Some(0.0001)).same(&perp(Some(87.8), Some(0.0001))));
        assert!(!perp(Some(87.8), None).same(&perp(Some(87.8), Some(0.0))));
        // -0.0 == 0.0 as floats, but the guest could tell them apart.
        assert!(!perp(None, Some(0.0)).same(&perp(None, Some(-0.0))));
        // NaN != NaN as floats, yet the same bits need no call.
        assert!(perp(Some(f64::NAN), None).same(&perp(Some(f64::NAN), None)));
    }
}
