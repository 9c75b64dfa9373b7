"""Portfolio strategies natively: the context's orders and account, the
PortfolioHarness's fill model, and a pairs and a rotation strategy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

import stratbox
from stratbox import (
    Action,
    Bar,
    Column,
    Description,
    FillReason,
    Order,
    OrderKind,
    Params,
    ParamSpec,
    PortfolioContext,
    Position,
    Quantity,
    Side,
    Step,
    SymbolAction,
    SymbolFill,
)
from stratbox.portfolio import _Account
from stratbox.testing import PortfolioHarness

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def market(side: Side, quantity: Quantity) -> Action:
    return Action.submit(Order.market(side, quantity))


class Scripted(stratbox.PortfolioStrategy):
    """Runs the callables scripted for each step index; records the steps."""

    def __init__(self, params: Params, symbols: Sequence[str]) -> None:
        super().__init__(params, symbols)
        self.script: dict[int, list[object]] = {}
        self.seen: list[tuple[int, list[float | None], list[SymbolFill], float]] = []

    @classmethod
    def describe(cls) -> Description:
        return Description("scripted", "0.1.0", "", params=[ParamSpec.int("n", 1)])

    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        self.seen.append(
            (step.index, [None if b is None else b.close for b in step.bars], ctx.fills(), ctx.equity())
        )
        for f in self.script.get(step.index, []):
            f(ctx)  # type: ignore[operator]


def scripted(**script: list[object]) -> PortfolioHarness[Scripted]:
    h = PortfolioHarness(Scripted, SYMBOLS[:2])
    h.commission = 0.0
    h.strategy.script = {int(k[1:]): v for k, v in script.items()}
    return h


# ---------------------------------------------------------------- context


def test_context_orders_name_their_symbol() -> None:
    actions: list[SymbolAction] = []
    ctx = PortfolioContext(SYMBOLS, actions)
    ctx._account = _Account(1000.0, 1000.0, [Position(), Position(qty=2.0), Position(qty=-1.0)], [])
    ctx.buy("BTCUSDT", 1.5)
    ctx.sell(2, 0.5)
    ctx.buy_equity(0, 0.25)
    ctx.sell_equity("SOLUSDT", 0.1)
    ctx.buy_limit(1, 1.0, 90.0)
    ctx.sell_limit(1, 1.0, 110.0)
    ctx.buy_stop(1, 1.0, 120.0)
    ctx.sell_stop(1, 1.0, 80.0)
    ctx.submit(0, Order.market(Side.BUY, Quantity.units(1.0)).with_stop_loss(5.0))
    ctx.cancel_orders("ETHUSDT")
    ctx.set_stop_loss(1, 7.0)
    ctx.set_take_profit(1, None)
    assert ctx.pending_actions() == [
        SymbolAction(0, market(Side.BUY, Quantity.units(1.5))),
        SymbolAction(2, market(Side.SELL, Quantity.units(0.5))),
        SymbolAction(0, market(Side.BUY, Quantity.equity(0.25))),
        SymbolAction(2, market(Side.SELL, Quantity.equity(0.1))),
        SymbolAction(1, Action.submit(Order(Side.BUY, Quantity.units(1.0), OrderKind.limit(90.0)))),
        SymbolAction(1, Action.submit(Order(Side.SELL, Quantity.units(1.0), OrderKind.limit(110.0)))),
        SymbolAction(1, Action.submit(Order(Side.BUY, Quantity.units(1.0), OrderKind.stop(120.0)))),
        SymbolAction(1, Action.submit(Order(Side.SELL, Quantity.units(1.0), OrderKind.stop(80.0)))),
        SymbolAction(0, Action.submit(Order.market(Side.BUY, Quantity.units(1.0)).with_stop_loss(5.0))),
        SymbolAction(1, Action.cancel_orders()),
        SymbolAction(1, Action.set_stop_loss(7.0)),
        SymbolAction(1, Action.set_take_profit(None)),
    ]
    actions.clear()
    ctx.close_all()
    assert actions == [SymbolAction(1, Action.close_position()), SymbolAction(2, Action.close_position())]
    with pytest.raises(KeyError, match="not in the universe"):
        ctx.buy("DOGEUSDT", 1.0)
    with pytest.raises(IndexError):
        ctx.close(3)


def test_target_enters_reverses_keeps_and_closes() -> None:
    actions: list[SymbolAction] = []
    ctx = PortfolioContext(SYMBOLS, actions)
    ctx._account = _Account(0.0, 0.0, [Position(), Position(qty=2.0), Position(qty=-1.0)], [])
    ctx.target(0, 0.5)  # flat: enters
    ctx.target(1, 0.5)  # already long: kept
    ctx.target(2, 0.5)  # short: reversed by the order itself
    ctx.target(1, -0.2)
    ctx.target(2, 0.0)
    ctx.target(0, 0.0)  # flat already: nothing
    assert actions == [
        SymbolAction(0, market(Side.BUY, Quantity.equity(0.5))),
        SymbolAction(2, market(Side.BUY, Quantity.equity(0.5))),
        SymbolAction(1, market(Side.SELL, Quantity.equity(0.2))),
        SymbolAction(2, Action.close_position()),
    ]


def test_account_reads() -> None:
    ctx = PortfolioContext(SYMBOLS, [])
    ctx._account = _Account(500.0, 700.0, [Position(qty=2.0, entry_price=90.0), Position(), Position(qty=-1.0)], [
        SymbolFill(0, Side.BUY, 2.0, 90.0, FillReason.MARKET)
    ])
    ctx._ref = [100.0, math.nan, 10.0]
    ctx._last = [103.0, 5.0, 12.0]
    assert ctx.cash() == 500.0
    # 700 + 2 * 3 - 1 * 2
    assert ctx.equity() == 704.0
    assert ctx.is_long(0) and ctx.is_flat("ETHUSDT") and ctx.is_short(2)
    assert ctx.position_info("BTCUSDT").entry_price == 90.0
    assert [p.qty for p in ctx.positions()] == [2.0, 0.0, -1.0]
    assert ctx.fills() == [SymbolFill(0, Side.BUY, 2.0, 90.0, FillReason.MARKET)]
    ctx._first = False
    assert ctx.fills() == []
    assert ctx.symbols() == SYMBOLS and ctx.symbol("SOLUSDT") == 2


def test_step_helpers() -> None:
    s = Step(3, 99, [Bar(3, 99, 1.0, 2.0, 0.5, 1.5, 10.0), None])
    assert s.bar(0) is not None and s.close(0) == 1.5
    assert s.bar(1) is None and math.isnan(s.close(1))


# ---------------------------------------------------------------- harness


def test_harness_feeds_steps_with_missing_bars() -> None:
    h = scripted()
    assert h.step([100.0, None]) == []
    assert h.step([Bar(close=101.0, open=100.5), 50.0], ts=1_700_000_000) == []
    assert [(i, closes) for i, closes, _, _ in h.strategy.seen] == [
        (0, [100.0, None]),
        (1, [101.0, 50.0]),
    ]
    with pytest.raises(ValueError, match="3 bars for 2 symbols"):
        h.step([1.0, 2.0, 3.0])


def test_market_orders_fill_at_the_next_open_in_order() -> None:
    h = scripted(
        s0=[lambda c: c.buy(0, 10.0), lambda c: c.sell_equity(1, 0.5)],
    )
    h.step([100.0, 50.0])
    assert h.positions[0].qty == 0.0  # not yet
    h.step([Bar(open=101.0, high=101.0, low=101.0, close=102.0), Bar(open=49.0, high=49.0, low=49.0, close=48.0)])
    assert h.positions[0].qty == 10.0 and h.positions[0].entry_price == 101.0
    # Half the equity at the fill: cash 10,000 - 1,010 plus the first
    # symbol marked at its latest close (100), over the second's open.
    assert h.positions[1].qty == pytest.approx(-(10_000.0 - 1_010.0 + 1_000.0) * 0.5 / 49.0)
    assert [f.symbol for _, f in h.fills] == [0, 1]
    seen_fills = h.strategy.seen[1][2]
    assert [(f.symbol, f.side, f.price, f.reason) for f in seen_fills] == [
        (0, Side.BUY, 101.0, FillReason.MARKET),
        (1, Side.SELL, 49.0, FillReason.MARKET),
    ]
    # Equity marks every position at its latest close.
    assert h.equity() == pytest.approx(h.cash + 10.0 * 102.0 + h.positions[1].qty * 48.0)
    assert h.strategy.seen[1][3] == pytest.approx(h.equity())


def test_an_order_waits_for_its_symbols_next_bar() -> None:
    h = scripted(s0=[lambda c: c.buy(1, 2.0)])
    h.step([100.0, 50.0])
    h.step([101.0, None])
    assert h.positions[1].qty == 0.0
    h.step([102.0, 52.0])
    assert h.positions[1].qty == 2.0 and h.positions[1].entry_price == 52.0


def test_equity_orders_reverse_and_commission_is_charged() -> None:
    h = scripted(s0=[lambda c: c.buy_equity(0, 1.0)], s1=[lambda c: c.sell_equity(0, 1.0)])
    h.commission = 0.001
    h.step([100.0, 50.0])
    h.step([100.0, 50.0])
    qty = 10_000.0 / (100.0 * 1.001)
    assert h.positions[0].qty == pytest.approx(qty)
    h.step([100.0, 50.0])
    assert h.positions[0].qty < 0.0
    assert [f.reason for _, f in h.fills] == [FillReason.MARKET] * 3  # buy, close, open short
    # The headroom: two all-in orders do not double the exposure.
    h2 = scripted(s0=[lambda c: c.buy_equity(0, 1.0), lambda c: c.buy_equity(1, 1.0)])
    h2.step([100.0, 50.0])
    h2.step([100.0, 50.0])
    assert h2.positions[1].qty == pytest.approx(0.0, abs=1e-9)
    assert h2.cash >= -1e-9


def test_resting_orders_exits_and_cancels() -> None:
    h = scripted(
        s0=[lambda c: c.buy_limit(0, 1.0, 95.0), lambda c: c.sell_stop(1, 1.0, 45.0)],
        s2=[lambda c: c.set_stop_loss(0, 90.0), lambda c: c.cancel_orders(1)],
    )
    h.step([100.0, 50.0])
    assert [p.open_orders for p in h.positions] == [1, 1]
    h.step([Bar(open=99.0, high=99.0, low=94.0, close=96.0), Bar(open=50.0, high=50.0, low=46.0, close=47.0)])
    assert h.positions[0].qty == 1.0 and h.positions[0].entry_price == 95.0
    assert h.positions[1].qty == 0.0 and h.positions[1].open_orders == 1
    h.step([96.0, 47.0])
    h.step([Bar(open=92.0, high=93.0, low=89.0, close=91.0), Bar(open=44.0, high=44.0, low=40.0, close=41.0)])
    assert h.positions[0].qty == 0.0
    assert h.positions[1].qty == 0.0  # cancelled before it could trigger
    assert [(i, f.reason, f.price) for i, f in h.fills] == [
        (1, FillReason.LIMIT, 95.0),
        (3, FillReason.STOP_LOSS, 90.0),
    ]


def test_run_takes_columns_by_name() -> None:
    h = scripted(s1=[lambda c: c.buy(1, 1.0)], s3=[lambda c: c.close("ETHUSDT")])
    out = h.run({"BTCUSDT": [1.0, 2.0, 3.0, 4.0, 5.0], "ETHUSDT": [10.0, 11.0, None, 13.0, 14.0]})
    assert len(out) == 5 and out[1] == [SymbolAction(1, market(Side.BUY, Quantity.units(1.0)))]
    # Bought at step 3 (its next bar), closed at step 4.
    assert [(i, f.reason, f.price) for i, f in h.fills] == [
        (3, FillReason.MARKET, 13.0),
        (4, FillReason.CLOSE_POSITION, 14.0),
    ]
    assert h.cash == 10_000.0 + 1.0


# ---------------------------------------------------------------- strategies


class Pairs(stratbox.PortfolioStrategy):
    """Long/short the price ratio of symbols 0 and 1 on its z-score."""

    @classmethod
    def describe(cls) -> Description:
        return Description(
            "pairs", "0.1.0", "",
            params=[ParamSpec.int("lookback", 5), ParamSpec.float("entry", 1.5), ParamSpec.float("exit", 0.3)],
            columns=[Column.CLOSE],
        )

    def init(self, params: Params) -> None:
        if len(self.symbols) != 2:
            raise ValueError("two symbols, please")
        self.n = params.int("lookback")
        self.entry = params.float("entry")
        self.exit = params.float("exit")
        self.window: list[float] = []

    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        a, b = step.bars
        if a is None or b is None:
            return
        self.window = (self.window + [a.close / b.close])[-self.n:]
        if len(self.window) < self.n:
            return
        mean = math.fsum(self.window) / self.n
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in self.window) / self.n)
        if std == 0.0:
            return
        z = (self.window[-1] - mean) / std
        if abs(z) < self.exit:
            ctx.target(0, 0.0)
            ctx.target(1, 0.0)
        elif z > self.entry:
            ctx.target(0, -0.5)
            ctx.target(1, 0.5)
        elif z < -self.entry:
            ctx.target(0, 0.5)
            ctx.target(1, -0.5)


def test_pairs_opens_on_a_wide_spread_and_closes_when_it_reverts() -> None:
    with pytest.raises(ValueError, match="two symbols"):
        PortfolioHarness(Pairs, SYMBOLS)
    h = PortfolioHarness(Pairs, SYMBOLS[:2])
    a = [100.0, 101.0, 100.0, 101.0, 100.0, 110.0, 110.0, 104.0, 104.0]
    b = [50.0] * len(a)
    out = h.run([a, b])
    # Step 5: the ratio jumps: short the first, long the second.
    assert out[5] == [
        SymbolAction(0, market(Side.SELL, Quantity.equity(0.5))),
        SymbolAction(1, market(Side.BUY, Quantity.equity(0.5))),
    ]
    assert out[6] == []  # already in
    assert h.fills[0][0] == 6
    # Step 7: back near the mean: flat.
    assert out[7] == [SymbolAction(0, Action.close_position()), SymbolAction(1, Action.close_position())]
    assert [p.qty for p in h.positions] == [0.0, 0.0]
    # Sold the first high and bought it back lower: a profit, less fees.
    assert h.cash > 10_000.0


class Rotation(stratbox.PortfolioStrategy):
    """Every `every` steps, hold the best `k` symbols by `lookback`-step return."""

    @classmethod
    def describe(cls) -> Description:
        return Description(
            "rotation", "0.1.0", "",
            params=[ParamSpec.int("lookback", 2), ParamSpec.int("every", 2), ParamSpec.int("k", 1)],
            columns=[Column.CLOSE],
        )

    def init(self, params: Params) -> None:
        self.lookback = params.int("lookback")
        self.every = params.int("every")
        self.k = params.int("k")
        self.history: list[list[float]] = [[] for _ in self.symbols]

    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        for i in range(len(self.symbols)):
            self.history[i].append(step.close(i))
        t = step.index
        if t < self.lookback or (t - self.lookback) % self.every:
            return
        returns = [
            (h[-1] / h[-1 - self.lookback] - 1.0, i)
            for i, h in enumerate(self.history)
            if not math.isnan(h[-1]) and not math.isnan(h[-1 - self.lookback])
        ]
        top = [i for _, i in sorted(returns, key=lambda r: (-r[0], r[1]))[: self.k]]
        for i in range(len(self.symbols)):
            if i not in top and not ctx.is_flat(i):
                ctx.close(i)
        for i in top:
            if ctx.is_flat(i):
                ctx.buy_equity(i, 1.0 / self.k)


def test_rotation_holds_the_leader_and_rotates() -> None:
    h = PortfolioHarness(Rotation, SYMBOLS)
    h.commission = 0.0
    out = h.run({
        "BTCUSDT": [100.0, 101.0, 102.0, 102.0, 102.0, 102.0, 102.0],
        "ETHUSDT": [10.0, 10.0, 10.0, 11.0, 12.0, 12.0, 12.0],
        "SOLUSDT": [1.0, None, 1.0, 1.0, 1.0, 1.0, 1.0],
    })
    # Step 2: BTC leads (+2 %), SOL's return counts (steps 0 and 2 have bars).
    assert out[2] == [SymbolAction(0, market(Side.BUY, Quantity.equity(1.0)))]
    assert out[3] == []
    # Step 4: ETH leads (+20 %): BTC is closed first, then ETH bought.
    assert out[4] == [
        SymbolAction(0, Action.close_position()),
        SymbolAction(1, market(Side.BUY, Quantity.equity(1.0))),
    ]
    assert [f.symbol for i, f in h.fills if i == 5] == [0, 1]
    assert h.positions[0].qty == 0.0 and h.positions[1].qty == pytest.approx(10_000.0 / 12.0)
    # Step 6: every return is 0, a tie: the first listed wins.
    assert out[6] == [
        SymbolAction(1, Action.close_position()),
        SymbolAction(0, market(Side.BUY, Quantity.equity(1.0))),
    ]


def test_symbols_fill_in_the_order_of_their_first_order() -> None:
    h = scripted(s0=[lambda c: c.buy(1, 1.0), lambda c: c.buy(0, 1.0), lambda c: c.buy(1, 2.0)])
    h.run([[10.0, 10.0], [20.0, 20.0]])
    assert [(f.symbol, f.qty) for _, f in h.fills] == [(1, 1.0), (1, 2.0), (0, 1.0)]
