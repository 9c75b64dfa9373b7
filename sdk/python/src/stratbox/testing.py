"""Native unit testing of a strategy, without building a component.

``Harness``: feed bars one at a time, set the account the strategy should
see, and check the actions it takes; fills are the test's job (the engine
is the host's). ``PortfolioHarness``: run a portfolio strategy over several
symbols' bars with a simple, approximate fill model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .context import Context
from .params import ParamValue, Params
from .portfolio import PortfolioContext, PortfolioStrategy, Position, Step, SymbolAction, SymbolFill
from .strategy import Strategy
from .types import Action, Bar, FillReason, Market, Order, Portfolio, Side

__all__ = ["Harness", "PortfolioHarness"]

S = TypeVar("S", bound=Strategy)


class Harness(Generic[S]):
    """``Harness(MyStrategy, fast_period=2)`` builds the strategy from its
    schema defaults with the keyword overrides applied (an exception from
    the strategy's ``__init__`` propagates). The account starts with cash
    10,000, commission 0.0006, leverage 1, flat, on spot."""

    def __init__(self, cls: type[S], /, **overrides: ParamValue) -> None:
        params = Params.defaults(cls.describe())
        for name, value in overrides.items():
            params = params.with_(name, value)
        self.params = params
        self._strategy: S = cls(params)
        self.portfolio = Portfolio(cash=10_000.0, commission=0.0006, leverage=1.0)
        self._next_index = 0

    @property
    def strategy(self) -> S:
        return self._strategy

    def set_market(self, market: Market) -> None:
        """The market the strategy sees from the next bar on (spot by default)."""
        self.portfolio.market = market

    def set_liquidation_price(self, price: float | None) -> None:
        self.portfolio.liquidation_price = price

    def set_funding_rate(self, rate: float | None) -> None:
        self.portfolio.funding_rate = rate

    def feed_close(self, close: float) -> list[Action]:
        """Feeds one bar (ts is the bar index, OHLC all equal to ``close``,
        volume 0) and returns the actions taken on it."""
        i = self._next_index
        return self.feed(Bar(i, i, close, close, close, close, 0.0))

    def feed(self, bar: Bar) -> list[Action]:
        """Feeds one bar and returns the actions taken on it. ``fill_count``
        and ``last_fill`` of ``portfolio`` are seen on this bar only."""
        self._next_index = bar.index + 1
        actions: list[Action] = []
        ctx = Context(self.portfolio, bar, True, actions)
        self._strategy.on_bar(bar, ctx)
        self.portfolio.fill_count = 0
        self.portfolio.last_fill = None
        return actions


# ---------------------------------------------------------------- portfolio

P = TypeVar("P", bound=PortfolioStrategy)

_BarInput = Bar | float | None


@dataclass(slots=True)
class _Resting:
    symbol: int
    order: Order


class PortfolioHarness(Generic[P]):
    """Runs a ``PortfolioStrategy`` natively over several symbols' bars,
    with a simple fill model, for unit tests:

    ``PortfolioHarness(Pairs, ["BTCUSDT", "ETHUSDT"], lookback=10)`` builds
    the strategy from its schema defaults with the keyword overrides
    applied. ``step([bar_or_close_or_None, ...])`` feeds one step (one entry
    per symbol: a ``Bar``, a close, which makes a bar with OHLC all equal to
    it and volume 0, or None for no bar) and returns the actions taken on
    it; ``run({"BTCUSDT": [...], "ETHUSDT": [...]})`` feeds columns of
    closes. The account starts with ``cash`` 10,000, ``commission`` 0.0006,
    ``leverage`` 1, ``slippage_bps`` 0 (attributes: change them before the
    first step).

    The fill model is approximate, not the engine's (the host's broker is
    the reference; docs/conventions/engine.md, "Several symbols"): the
    actions of a step take effect from the next step on. Market orders and
    closes fill at the symbol's next open (when it has no bar there, at its
    next bar's), symbols in the order of their first such order, slipped by
    ``slippage_bps``; an equity
    fraction is of ``cash`` plus every position marked at its latest close,
    times leverage, over ``price * (1 + commission)``, an opposite position
    closed first, and no order opens beyond that headroom. Limit and stop
    orders rest until the bar trades through their price (at the open on a
    gap). Stop-loss before take-profit, checked after the fills of each
    step. Commission on every fill's notional. Shorts credit the cash, as
    on spot; perpetuals' margin, funding and liquidation are not modelled.
    """

    def __init__(self, cls: type[P], symbols: Sequence[str], /, **overrides: ParamValue) -> None:
        params = Params.defaults(cls.describe())
        for name, value in overrides.items():
            params = params.with_(name, value)
        self.params = params
        self.symbols = tuple(symbols)
        self._strategy: P = cls(params, self.symbols)
        self.cash = 10_000.0
        self.commission = 0.0006
        self.leverage = 1.0
        self.slippage_bps = 0.0
        self.market = Market.SPOT
        n = len(self.symbols)
        self.positions: list[Position] = [Position() for _ in range(n)]
        """Every symbol's position now (after the last step's fills)."""
        self.fills: list[tuple[int, SymbolFill]] = []
        """Every fill so far, with the index of the step it happened on."""
        self._marks = [math.nan] * n
        self._pending: list[SymbolAction] = []
        self._resting: list[_Resting] = []
        self._actions: list[SymbolAction] = []
        self._ctx = PortfolioContext(self.symbols, self._actions)
        self._next_index = 0

    @property
    def strategy(self) -> P:
        return self._strategy

    def equity(self) -> float:
        """Cash plus every position marked at its symbol's latest close."""
        e = self.cash
        for i, p in enumerate(self.positions):
            if p.qty != 0.0:
                e += p.qty * self._marks[i]
        return e

    def run(
        self, closes: Mapping[str, Sequence[float | None]] | Sequence[Sequence[float | None]]
    ) -> list[list[SymbolAction]]:
        """Feeds columns of closes (by symbol name, or one per symbol in
        universe order; None where a symbol has no bar) and returns each
        step's actions."""
        columns = (
            [closes[s] for s in self.symbols] if isinstance(closes, Mapping) else list(closes)
        )
        if len(columns) != len(self.symbols):
            raise ValueError(f"{len(columns)} columns for {len(self.symbols)} symbols")
        steps = max((len(c) for c in columns), default=0)
        return [
            self.step([c[i] if i < len(c) else None for c in columns]) for i in range(steps)
        ]

    def step(self, bars: Sequence[_BarInput], ts: int | None = None) -> list[SymbolAction]:
        """Feeds one step (one entry per symbol) and returns its actions."""
        if len(bars) != len(self.symbols):
            raise ValueError(f"{len(bars)} bars for {len(self.symbols)} symbols")
        index = self._next_index
        self._next_index = index + 1
        t = index if ts is None else ts
        step_bars: list[Bar | None] = []
        for b in bars:
            if b is None:
                step_bars.append(None)
            elif isinstance(b, Bar):
                c = b.copy()
                c.index, c.ts = index, t
                step_bars.append(c)
            else:
                x = float(b)
                step_bars.append(Bar(index, t, x, x, x, x, 0.0))
        fills = self._fill(index, step_bars)
        ctx = self._ctx
        acct = ctx._account
        acct.cash = self.cash
        acct.equity = self.equity()
        acct.positions = [
            Position(p.qty, p.entry_price, p.stop_loss, p.take_profit, p.open_orders)
            for p in self.positions
        ]
        acct.fills = fills
        ctx._ref = list(self._marks)
        for i, b in enumerate(step_bars):
            if b is not None and b.close == b.close:
                self._marks[i] = b.close
        ctx._last = list(self._marks)
        ctx._market = self.market
        ctx._commission = self.commission
        ctx._leverage = self.leverage
        ctx._first = True
        self._actions.clear()
        self._strategy.on_step(Step(index, t, step_bars), ctx)
        actions = list(self._actions)
        for a in actions:
            self._accept(a)
        return actions

    # ------------------------------------------------------------ fills

    def _accept(self, a: SymbolAction) -> None:
        kind = a.action.kind
        p = self.positions[a.symbol]
        if kind == "submit":
            order = a.action.order
            assert order is not None
            if order.kind.type == "market":
                self._pending.append(a)
            else:
                self._resting.append(_Resting(a.symbol, order))
                p.open_orders += 1
        elif kind == "close_position":
            self._pending.append(a)
        elif kind == "cancel_orders":
            self._resting = [r for r in self._resting if r.symbol != a.symbol]
            p.open_orders = 0
        elif kind == "set_stop_loss":
            p.stop_loss = a.action.price
        else:
            p.take_profit = a.action.price

    def _fill(self, index: int, bars: list[Bar | None]) -> list[SymbolFill]:
        fills: list[SymbolFill] = []
        waiting: list[SymbolAction] = []
        # Symbols fill in the order of their first market order or close.
        first: dict[int, int] = {}
        for k, a in enumerate(self._pending):
            first.setdefault(a.symbol, k)
        for a in sorted(self._pending, key=lambda a: first[a.symbol]):
            bar = bars[a.symbol]
            if bar is None or bar.open != bar.open:
                waiting.append(a)
                continue
            order = a.action.order
            if order is None:  # close_position
                q = self.positions[a.symbol].qty
                if q != 0.0:
                    price = self._slipped(bar.open, Side.SELL if q > 0.0 else Side.BUY)
                    self._close(a.symbol, abs(q), price, FillReason.CLOSE_POSITION, fills)
            else:
                price = self._slipped(bar.open, order.side)
                self._execute(a.symbol, order, price, FillReason.MARKET, fills)
        self._pending = waiting
        resting: list[_Resting] = []
        for r in self._resting:
            bar = bars[r.symbol]
            at = None if bar is None else _trigger(r.order, bar)
            if at is None:
                resting.append(r)
                continue
            self.positions[r.symbol].open_orders -= 1
            reason = FillReason.LIMIT if r.order.kind.type == "limit" else FillReason.STOP
            self._execute(r.symbol, r.order, at, reason, fills)
        self._resting = resting
        for i, bar in enumerate(bars):
            p = self.positions[i]
            if bar is None or p.qty == 0.0:
                continue
            long = p.qty > 0.0
            sl, tp = p.stop_loss, p.take_profit
            if sl is not None and (bar.low <= sl if long else bar.high >= sl):
                price = min(bar.open, sl) if long else max(bar.open, sl)
                self._close(i, abs(p.qty), price, FillReason.STOP_LOSS, fills)
            elif tp is not None and (bar.high >= tp if long else bar.low <= tp):
                price = max(bar.open, tp) if long else min(bar.open, tp)
                self._close(i, abs(p.qty), price, FillReason.TAKE_PROFIT, fills)
        self.fills.extend((index, f) for f in fills)
        return fills

    def _slipped(self, price: float, side: Side) -> float:
        sign = 1.0 if side is Side.BUY else -1.0
        return price * (1.0 + sign * self.slippage_bps / 10_000.0)

    def _execute(
        self, symbol: int, order: Order, price: float, reason: FillReason, fills: list[SymbolFill]
    ) -> None:
        p = self.positions[symbol]
        sign = 1.0 if order.side is Side.BUY else -1.0
        if math.isnan(self._marks[symbol]):
            self._marks[symbol] = price
        q = order.quantity
        if q.kind == "equity":
            if p.qty * sign < 0.0:
                self._close(symbol, abs(p.qty), price, reason, fills)
            wanted = self._equity_at(symbol, price) * self.leverage * q.value / (
                price * (1.0 + self.commission)
            )
        else:
            wanted = q.value
            if p.qty * sign < 0.0:
                reduce = min(abs(p.qty), wanted)
                self._close(symbol, reduce, price, reason, fills)
                wanted -= reduce
        used = 0.0
        for i, other in enumerate(self.positions):
            used += abs(other.qty) * (price if i == symbol else self._marks[i])
        room = (self._equity_at(symbol, price) * self.leverage - used) / (
            price * (1.0 + self.commission)
        )
        qty = min(wanted, max(room, 0.0))
        if qty > 0.0:
            notional = qty * price
            self.cash -= sign * notional + notional * self.commission
            held = abs(p.qty)
            p.entry_price = price if p.qty == 0.0 else (p.entry_price * held + price * qty) / (held + qty)
            p.qty += sign * qty
            if order.stop_loss is not None:
                p.stop_loss = order.stop_loss
            if order.take_profit is not None:
                p.take_profit = order.take_profit
            fills.append(SymbolFill(symbol, order.side, qty, price, reason))

    def _equity_at(self, symbol: int, price: float) -> float:
        e = self.cash
        for i, p in enumerate(self.positions):
            if p.qty != 0.0:
                e += p.qty * (price if i == symbol else self._marks[i])
        return e

    def _close(
        self, symbol: int, qty: float, price: float, reason: FillReason, fills: list[SymbolFill]
    ) -> None:
        p = self.positions[symbol]
        qty = min(qty, abs(p.qty))
        if qty <= 0.0:
            return
        long = p.qty > 0.0
        notional = qty * price
        self.cash += (notional if long else -notional) - notional * self.commission
        if qty == abs(p.qty):
            p.qty = 0.0
            p.entry_price = 0.0
            p.stop_loss = None
            p.take_profit = None
        else:
            p.qty -= qty if long else -qty
        fills.append(SymbolFill(symbol, Side.SELL if long else Side.BUY, qty, price, reason))


def _trigger(order: Order, bar: Bar) -> float | None:
    """Where a resting order fills on ``bar``, or None."""
    price = order.kind.price
    assert price is not None
    buy = order.side is Side.BUY
    if order.kind.type == "limit":
        if buy:
            return bar.open if bar.open <= price else price if bar.low <= price else None
        return bar.open if bar.open >= price else price if bar.high >= price else None
    if buy:
        return bar.open if bar.open >= price else price if bar.high >= price else None
    return bar.open if bar.open <= price else price if bar.low <= price else None
