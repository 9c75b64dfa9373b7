"""Params, descriptions, the order API and the native Harness."""

from __future__ import annotations

import math

import pytest

import stratbox
from stratbox import (
    Action,
    Bar,
    Column,
    Context,
    Description,
    Fill,
    FillReason,
    Market,
    Order,
    OrderKind,
    ParamError,
    ParamSpec,
    ParamType,
    Params,
    Portfolio,
    Quantity,
    Side,
)
from stratbox.params import check_params, format_float
from stratbox.testing import Harness


def test_param_specs() -> None:
    s = ParamSpec.int("n", 3, range=(1, 10), step=1, help="h")
    assert (s.name, s.kind, s.default, s.min, s.max, s.step, s.help) == (
        "n", ParamType.INT, 3, 1.0, 10.0, 1.0, "h",
    )
    f = ParamSpec.float("x", 2)
    assert f.default == 2.0 and isinstance(f.default, float)
    assert ParamSpec.bool("b", True).kind is ParamType.BOOL
    with pytest.raises(TypeError):
        ParamSpec.int("n", True)
    with pytest.raises(TypeError):
        ParamSpec.bool("b", 1)  # type: ignore[arg-type]


def test_description_defaults_to_every_column() -> None:
    d = Description("a", "1", "s")
    assert d.columns == list(Column) and d.params == []
    d.param(ParamSpec.int("n", 1)).with_columns([Column.CLOSE])
    assert d.columns == [Column.CLOSE] and len(d.params) == 1


def test_params_accessors() -> None:
    p = Params([("n", 3), ("x", 0.5), ("b", True)])
    assert p.int("n") == 3
    assert p.float("x") == 0.5
    assert p.float("n") == 3.0 and isinstance(p.float("n"), float)
    assert p.bool("b") is True
    with pytest.raises(ParamError, match="param `missing` is missing"):
        p.int("missing")
    with pytest.raises(ParamError, match=r"param `x` must be int, got Float\(0.5\)"):
        p.int("x")
    with pytest.raises(ParamError, match=r"param `b` must be int, got Bool\(true\)"):
        p.int("b")
    with pytest.raises(ParamError, match=r"param `n` must be bool, got Int\(3\)"):
        p.bool("n")
    assert p.with_("n", 4).int("n") == 4 and p.int("n") == 3
    assert dict(p.items()) == {"n": 3, "x": 0.5, "b": True}


def test_check_params_like_the_host() -> None:
    spec = [ParamSpec.int("n", 3, range=(1, 10)), ParamSpec.float("x", 0.5), ParamSpec.bool("b", False)]
    check_params(spec, Params([("n", 3), ("x", 1), ("b", True)]))
    with pytest.raises(ParamError, match="between 1 and 10"):
        check_params(spec, Params([("n", 11), ("x", 1.0), ("b", True)]))
    with pytest.raises(ParamError, match="unknown"):
        check_params(spec, Params([("n", 1), ("x", 1.0), ("b", True), ("z", 1)]))
    with pytest.raises(ParamError, match="must be bool"):
        check_params(spec, Params([("n", 1), ("x", 1.0), ("b", 1)]))
    assert format_float(1.0) == "1" and format_float(0.5) == "0.5" and format_float(math.nan) == "NaN"


def test_orders_and_actions() -> None:
    o = Order.limit(Side.BUY, Quantity.equity(1.0), 99.0).with_stop_loss(90.0).with_take_profit(120.0)
    assert o.kind == OrderKind.limit(99.0) and (o.stop_loss, o.take_profit) == (90.0, 120.0)
    assert Order.market(Side.SELL, Quantity.units(2.0)).kind == OrderKind.market()
    assert Order.stop(Side.SELL, Quantity.units(2.0), 5.0).kind.type == "stop"
    assert Action.submit(o).order is o
    assert Action.close_position() == Action("close_position")
    assert Action.set_stop_loss(None).price is None


def test_context_reads_the_portfolio() -> None:
    p = Portfolio(cash=100.0, position=-2.0, entry_price=10.0, open_orders=1, commission=0.001,
                  leverage=2.0, fill_count=2, last_fill=Fill(Side.SELL, 2.0, 10.0, FillReason.MARKET),
                  market=Market.LINEAR_PERPETUAL, liquidation_price=15.0, funding_rate=0.0001)
    actions: list[Action] = []
    bar = Bar(close=9.0)
    ctx = Context(p, bar, True, actions)
    assert ctx.is_short() and not ctx.is_long() and not ctx.is_flat()
    assert ctx.position() == -2.0 and ctx.cash() == 100.0
    assert ctx.equity() == 100.0 + -2.0 * 9.0
    assert ctx.entry_price() == 10.0 and ctx.open_orders() == 1
    assert (ctx.commission(), ctx.leverage()) == (0.001, 2.0)
    assert ctx.market() is Market.LINEAR_PERPETUAL
    assert (ctx.liquidation_price(), ctx.funding_rate()) == (15.0, 0.0001)
    assert ctx.fill_count() == 2 and ctx.last_fill() is not None
    later = Context(p, bar, False, actions)
    assert later.fill_count() == 0 and later.last_fill() is None
    ctx.buy_all()
    ctx.sell_all()
    ctx.close_position()
    ctx.cancel_orders()
    ctx.set_stop_loss(8.0)
    ctx.set_take_profit(None)
    ctx.submit(Order.market(Side.BUY, Quantity.units(1.0)))
    assert [a.kind for a in actions] == [
        "submit", "submit", "close_position", "cancel_orders", "set_stop_loss",
        "set_take_profit", "submit",
    ]
    assert ctx.pending_actions() == actions
    assert actions[0] == Action.submit(Order.market(Side.BUY, Quantity.equity(1.0)))
    assert actions[1] == Action.submit(Order.market(Side.SELL, Quantity.equity(1.0)))


class FillWatcher(stratbox.Strategy):
    @classmethod
    def describe(cls) -> Description:
        return Description("w", "0", "watches", params=[ParamSpec.float("k", 1.0)])

    def __init__(self, params: Params) -> None:
        self.k = params.float("k")
        self.fills: list[int] = []

    def on_bar(self, bar: Bar, ctx: Context) -> None:
        self.fills.append(ctx.fill_count())
        if ctx.market() is Market.LINEAR_PERPETUAL and ctx.funding_rate():
            ctx.close_position()


def test_harness() -> None:
    h = Harness(FillWatcher, k=2.5)
    assert h.strategy.k == 2.5
    assert h.portfolio.cash == 10_000.0 and h.portfolio.leverage == 1.0
    h.portfolio.fill_count = 1
    assert h.feed_close(1.0) == []
    assert h.feed(Bar(5, 5, 1.0, 1.0, 1.0, 1.0, 0.0)) == []
    assert h.strategy.fills == [1, 0]
    h.set_market(Market.LINEAR_PERPETUAL)
    h.set_funding_rate(0.001)
    h.set_liquidation_price(None)
    assert h.feed_close(1.0) == [Action.close_position()]


class InitStyle(stratbox.Strategy):
    @staticmethod
    def describe() -> Description:
        return Description("i", "0", "init style", params=[ParamSpec.int("n", 4)])

    def init(self, params: Params) -> None:
        self.n = params.int("n")

    def on_bar(self, bar: Bar, ctx: Context) -> None:
        if bar.index == self.n:
            ctx.close_position()


def test_init_hook_and_static_describe() -> None:
    h = Harness(InitStyle, n=1)
    assert h.strategy.n == 1
    assert h.feed_close(1.0) == []
    assert h.feed_close(1.0) == [Action.close_position()]
