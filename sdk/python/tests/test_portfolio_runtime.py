"""The portfolio runtime driven natively as the host drives a
``portfolio-plugin`` component, with the generated binding types (copied
into tests/bindings) standing in for the component's."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

_bindings = str(Path(__file__).resolve().parent / "bindings")
if _bindings not in sys.path:
    sys.path.insert(0, _bindings)

import componentize_py_types  # noqa: E402
from wit_world.exports import portfolio as pw  # noqa: E402

import stratbox  # noqa: E402
from stratbox import (  # noqa: E402
    Column,
    Description,
    Level,
    Market,
    Order,
    Params,
    ParamSpec,
    PortfolioContext,
    Quantity,
    Side,
    Step,
)

Seen = tuple[int, int, list[tuple[float, float, float, float, float] | None], int, float, Market]


class Probe(stratbox.PortfolioStrategy):
    """Records what it sees; acts on the steps listed in `act_on`."""

    seen: list[Seen] = []
    act_on: dict[int, str] = {}

    @classmethod
    def describe(cls) -> Description:
        return Description(
            "probe", "1.0.0", "records steps",
            params=[ParamSpec.int("n", 3, range=(1.0, 10.0))],
            columns=[Column.CLOSE, Column.HIGH],
        )

    def __init__(self, params: Params, symbols: Sequence[str]) -> None:
        super().__init__(params, symbols)
        if params.int("n") == 7:
            raise ValueError("seven is refused")
        Probe.seen = []

    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        Probe.seen.append((
            step.index,
            step.ts,
            [None if b is None else (b.open, b.high, b.low, b.close, b.volume) for b in step.bars],
            len(ctx.fills()),
            ctx.equity(),
            ctx.market(),
        ))
        what = Probe.act_on.get(step.index)
        if what == "pair":
            ctx.sell_equity("BTCUSDT", 0.5)
            ctx.buy(1, 2.0)
        elif what == "close":
            ctx.close(0)
            ctx.submit(1, Order.limit(Side.BUY, Quantity.units(1.0), 9.0).with_stop_loss(8.0))
            ctx.set_take_profit(1, None)
            ctx.cancel_orders(0)
        elif what == "raise":
            raise RuntimeError("boom")


Export = stratbox.export(Probe)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Level, str]]]:
    lines: list[tuple[Level, str]] = []
    monkeypatch.setattr(sys.modules["stratbox.log"], "_sink", lambda level, msg: lines.append((level, msg)))
    yield lines


def position(qty: float = 0.0) -> Any:
    return pw.Position(qty, 0.0, None, None, 0, None, None)


def account(qtys: Sequence[float] = (0.0, 0.0), fills: int = 0, equity: float = 1000.0) -> Any:
    f = [pw.SymbolFill(1, pw.Side.BUY, 2.0, 10.0, pw.FillReason.MARKET)] * fills
    return pw.Account(1000.0, equity, [position(q) for q in qtys], f)


def start(act_on: dict[int, str] | None = None, market: Any = None) -> Any:
    Probe.act_on = act_on or {}
    e = Export()
    e.init([pw.Param("n", pw.ParamValue_Int(3))], ["BTCUSDT", "ETHUSDT"], market or pw.Market.SPOT)
    return e


def push(e: Any, steps: int = 6, first_index: int = 100) -> None:
    nan = math.nan
    closes_a = [100.0 + i for i in range(steps)]
    # The second symbol has no bar at steps 1 and 2.
    closes_b = [nan if i in (1, 2) else 10.0 + i for i in range(steps)]
    bars = [
        pw.SymbolBars([c - 0.5 for c in closes_a], [c + 1.0 for c in closes_a], [], closes_a, []),
        pw.SymbolBars([c - 0.5 for c in closes_b], [c + 1.0 for c in closes_b], [], closes_b, []),
    ]
    e.push_bars(first_index, 0.001, 1.0, 0.0, [1000 + i for i in range(steps)], bars)


def test_export_is_named_portfolio_and_describes() -> None:
    assert Export.__name__ == "Portfolio"
    assert Export().describe() == pw.Description(
        "probe", "1.0.0", "records steps",
        [pw.ParamSpec("n", pw.ParamType.INT, pw.ParamValue_Int(3), 1.0, 10.0, None, "")],
        [pw.Column.CLOSE, pw.Column.HIGH],
    )


def test_init_error_is_an_err_with_the_message() -> None:
    with pytest.raises(componentize_py_types.Err) as err:
        Export().init([pw.Param("n", pw.ParamValue_Int(7))], ["A"], pw.Market.SPOT)
    assert err.value.value == "seven is refused"


def test_run_walks_steps_with_missing_bars_and_stops_at_actions() -> None:
    e = start({103: "pair"}, pw.Market.LINEAR_PERPETUAL)
    push(e)
    step = e.run(account(fills=1), 0, 6)
    assert step == pw.Step(4, [
        pw.SymbolAction(0, pw.Action_Submit(
            pw.Order(pw.Side.SELL, pw.Quantity_Equity(0.5), pw.OrderKind_Market(), None, None))),
        pw.SymbolAction(1, pw.Action_Submit(
            pw.Order(pw.Side.BUY, pw.Quantity_Units(2.0), pw.OrderKind_Market(), None, None))),
    ])
    seen = Probe.seen
    assert [(s[0], s[1]) for s in seen] == [(100, 1000), (101, 1001), (102, 1002), (103, 1003)]
    # Undeclared columns read NaN; a symbol without a bar is None.
    o, h, low, c, v = seen[0][2][0]  # type: ignore[misc]
    assert (o, h, c) == (99.5, 101.0, 100.0) and math.isnan(low) and math.isnan(v)
    assert [s[2][1] is None for s in seen] == [False, True, True, False]
    # Fills show on the call's first step only.
    assert [s[3] for s in seen] == [1, 0, 0, 0]
    assert seen[0][5] is Market.LINEAR_PERPETUAL
    # The next call walks on to the end.
    assert e.run(account(), 4, 6) == pw.Step(2, [])


def test_equity_marks_positions_at_the_latest_close() -> None:
    e = start({104: "close"})
    push(e)
    assert e.run(account(), 0, 2).consumed == 2  # closes seen: 101 and 10
    step = e.run(account(qtys=(2.0, -1.0), equity=500.0), 2, 6)
    # Host equity 500, marked at closes (101, 10); then (102, none): +2 * 1;
    # (103, 13): +2 * 2 - 1 * 3; (104, 14): +2 * 3 - 1 * 4.
    assert [s[4] for s in Probe.seen[2:]] == [502.0, 501.0, 500.0 + 2 * 3 - 1 * 4]
    assert step.consumed == 3
    assert step.actions == [
        pw.SymbolAction(0, pw.Action_ClosePosition()),
        pw.SymbolAction(1, pw.Action_Submit(
            pw.Order(pw.Side.BUY, pw.Quantity_Units(1.0), pw.OrderKind_Limit(9.0), 8.0, None))),
        pw.SymbolAction(1, pw.Action_SetTakeProfit(None)),
        pw.SymbolAction(0, pw.Action_CancelOrders()),
    ]


def test_empty_and_clamped_ranges() -> None:
    e = start()
    push(e, steps=3)
    assert e.run(account(), 3, 3) == pw.Step(0, [])
    assert e.run(account(), 1, 99) == pw.Step(2, [])


def test_an_exception_is_logged_then_traps(logged: list[tuple[Level, str]]) -> None:
    e = start({100: "raise"})
    push(e)
    with pytest.raises(RuntimeError, match="boom"):
        e.run(account(), 0, 6)
    assert logged[-1][1].startswith("panic: RuntimeError: boom (at ")
    assert "in on_step" in logged[-1][1]


def test_run_before_init_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="before a successful `init`"):
        stratbox.export(Probe)().run(account(), 0, 1)
