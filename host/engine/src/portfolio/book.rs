//! One symbol's side of a portfolio account: the single-symbol brokers,
//! each filling its own symbol's bars by the existing rules, with the
//! account's cash (spot) or wallet (perpetuals) lent to the broker whose
//! bar is being filled.

use super::strategy::{PositionView, SymbolFill};
use crate::broker::{Broker, Costs, Others};
use crate::candles::Candles;
use crate::perp::{AlignedMarks, FundingClock, MarkView, PerpBroker, PerpConfig, ScanIndex};
use crate::report::{OpenPosition, Trade, TradeSide};
use crate::strategy::{Action, Fill, PortfolioView};

/// What the portfolio loop needs of one symbol's broker.
pub(crate) trait Book {
    /// Hands the account's cash to this broker before its bar fills.
    fn lend(&mut self, cash: f64, others: Others);
    /// The account's cash after this broker's fills.
    fn cash(&self) -> f64;
    fn fill(&mut self, candles: &Candles, bar: usize);
    /// First bar in `from..` at which this symbol's account could change.
    fn next_trigger(&self, candles: &Candles, from: usize, scan: usize) -> usize;
    /// Applies one action taken at the close of `bar` (the symbol's last
    /// bar at or before the step).
    fn apply(&mut self, action: Action, bar: usize) -> Result<(), String>;
    fn qty(&self) -> f64;
    /// The position's part of equity at price `close` (0 when flat).
    fn value_at(&self, close: f64) -> f64;
    /// The single-symbol view of this symbol's account.
    fn single_view(&self) -> PortfolioView<'_>;
    fn fills(&mut self) -> &mut Vec<Fill>;
    fn trades(&self) -> &[Trade];
    fn fees_paid(&self) -> f64;
    /// The open position: (side, qty, entry price, entry ts, entry fees).
    fn open(&self) -> Option<(TradeSide, f64, f64, i64, f64)>;

    fn view(&self) -> PositionView {
        let v = self.single_view();
        PositionView {
            qty: v.position,
            entry_price: v.entry_price,
            stop_loss: v.stop_loss,
            take_profit: v.take_profit,
            open_orders: v.open_orders,
            liquidation_price: v.liquidation_price,
            funding_rate: v.funding_rate,
        }
    }

    fn drain_fills(&mut self, symbol: usize, out: &mut Vec<SymbolFill>) {
        out.extend(
            self.fills()
                .drain(..)
                .map(|fill| SymbolFill { symbol, fill }),
        );
    }

    /// The open position, valued at `close` (the symbol's last close).
    fn open_position(&self, close: f64) -> Option<OpenPosition> {
        self.open().map(|(side, qty, entry_price, entry_ts, fees)| {
            OpenPosition::marked(side, qty, entry_ts, entry_price, fees, close)
        })
    }
}

/// A spot symbol: positions share the cash.
pub(crate) struct SpotBook {
    broker: Broker,
}

impl SpotBook {
    pub fn new(costs: Costs) -> Self {
        Self {
            broker: Broker::new(0.0, costs),
        }
    }
}

impl Book for SpotBook {
    fn lend(&mut self, cash: f64, others: Others) {
        self.broker.cash = cash;
        self.broker.others = others;
    }

    fn cash(&self) -> f64 {
        self.broker.cash
    }

    fn fill(&mut self, candles: &Candles, bar: usize) {
        self.broker.fill_bar(candles, bar);
    }

    fn next_trigger(&self, candles: &Candles, from: usize, scan: usize) -> usize {
        self.broker.next_trigger(candles, from, candles.len(), scan)
    }

    fn apply(&mut self, action: Action, _bar: usize) -> Result<(), String> {
        self.broker.apply(&[action])
    }

    fn qty(&self) -> f64 {
        self.broker.position
    }

    fn value_at(&self, close: f64) -> f64 {
        if self.broker.position == 0.0 {
            0.0
        } else {
            self.broker.position * close
        }
    }

    fn single_view(&self) -> PortfolioView<'_> {
        self.broker.view()
    }

    fn fills(&mut self) -> &mut Vec<Fill> {
        &mut self.broker.fills
    }

    fn trades(&self) -> &[Trade] {
        &self.broker.trades
    }

    fn fees_paid(&self) -> f64 {
        self.broker.fees_paid
    }

    fn open(&self) -> Option<(TradeSide, f64, f64, i64, f64)> {
        self.broker
            .open_position()
            .map(|(side, qty, entry_price, entry_ts, _, fees)| {
                (side, qty, entry_price, entry_ts, fees)
            })
    }
}

/// A perpetual symbol: isolated margin per position, one wallet.
pub(crate) struct PerpBook {
    pub broker: PerpBroker,
    /// Mark candles aligned to the symbol's bars, when given.
    aligned: Option<AlignedMarks>,
    extremes: ScanIndex,
}

impl PerpBook {
    pub fn new(candles: &Candles, perp: &PerpConfig, leverage: f64, slippage_bps: f64) -> Self {
        let aligned = perp
            .mark
            .as_deref()
            .map(|mark| AlignedMarks::new(candles, mark));
        let extremes = ScanIndex::new(candles, &marks_of(&aligned, candles));
        Self {
            broker: PerpBroker::new(
                0.0,
                perp.instrument(),
                leverage,
                slippage_bps,
                FundingClock::new(&perp.funding, candles.ts[0]),
            ),
            aligned,
            extremes,
        }
    }
}

/// The symbol's marks: the aligned mark candles, or its trade candles.
fn marks_of<'a>(aligned: &'a Option<AlignedMarks>, candles: &'a Candles) -> MarkView<'a> {
    aligned
        .as_ref()
        .map_or_else(|| MarkView::of(candles), AlignedMarks::view)
}

impl Book for PerpBook {
    fn lend(&mut self, cash: f64, _others: Others) {
        // Isolated margin: an order is sized from the wallet alone.
        self.broker.wallet = cash;
    }

    fn cash(&self) -> f64 {
        self.broker.wallet
    }

    fn fill(&mut self, candles: &Candles, bar: usize) {
        let mark = marks_of(&self.aligned, candles);
        self.broker.fill_bar(candles, &mark, bar);
    }

    fn next_trigger(&self, candles: &Candles, from: usize, scan: usize) -> usize {
        self.broker.next_trigger(
            candles,
            &marks_of(&self.aligned, candles),
            &self.extremes,
            from,
            candles.len(),
            scan,
        )
    }

    fn apply(&mut self, action: Action, bar: usize) -> Result<(), String> {
        self.broker.apply(&[action], bar)
    }

    fn qty(&self) -> f64 {
        self.broker.position
    }

    fn value_at(&self, close: f64) -> f64 {
        let b = &self.broker;
        if b.position == 0.0 {
            0.0
        } else {
            // Margin plus unrealised PnL; isolated, so never below zero.
            (b.pm + b.position * (close - b.entry_price)).max(0.0)
        }
    }

    fn single_view(&self) -> PortfolioView<'_> {
        self.broker.view()
    }

    fn fills(&mut self) -> &mut Vec<Fill> {
        &mut self.broker.fills
    }

    fn trades(&self) -> &[Trade] {
        &self.broker.trades
    }

    fn fees_paid(&self) -> f64 {
        self.broker.fees_paid
    }

    fn open(&self) -> Option<(TradeSide, f64, f64, i64, f64)> {
        self.broker.open_position()
    }
}
