"""The component runtime driven natively, with the generated binding types
(copied into tests/bindings) standing in for the component's."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "bindings"))

import componentize_py_types  # noqa: E402
from wit_world.exports import strategy as w  # noqa: E402

import stratbox  # noqa: E402
from stratbox import Bar, Column, Context, Description, Level, ParamSpec, Params  # noqa: E402

Seen = tuple[int, int, float, float, float, float, float, int, bool]


class Probe(stratbox.Strategy):
    """Records what it sees; acts on the bars listed in `act_on`."""

    seen: list[Seen] = []

    @classmethod
    def describe(cls) -> Description:
        return Description(
            "probe",
            "1.2.3",
            "records bars",
            params=[
                ParamSpec.int("n", 3, range=(1.0, 10.0), step=1.0, help="a number"),
                ParamSpec.float("x", 0.5),
                ParamSpec.bool("twice", False),
            ],
            columns=[Column.CLOSE, Column.HIGH],
        )

    def __init__(self, params: Params) -> None:
        if params.int("n") == 7:
            raise ValueError("seven is refused")
        self.twice = params.bool("twice")
        self.x = params.float("x")
        Probe.seen = []

    def on_bar(self, bar: Bar, ctx: Context) -> None:
        Probe.seen.append(
            (bar.index, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume,
             ctx.fill_count(), ctx.last_fill() is not None)
        )
        if bar.close < 0:
            raise RuntimeError("negative close")
        if bar.index % 4 == 3:
            ctx.buy_all()
            if self.twice:
                ctx.set_stop_loss(1.5)
                ctx.close_position()


Export = stratbox.export(Probe)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Level, str]]]:
    lines: list[tuple[Level, str]] = []
    monkeypatch.setattr(sys.modules["stratbox.log"], "_sink", lambda level, msg: lines.append((level, msg)))
    yield lines


def portfolio(fills: int = 0) -> Any:
    fill = w.Fill(w.Side.BUY, 2.0, 10.0, w.FillReason.MARKET) if fills else None
    return w.Portfolio(1000.0, 0.0, 0.0, None, None, 0, fills, fill)


def params(n: int = 3, twice: bool = False) -> list[Any]:
    return [
        w.Param("n", w.ParamValue_Int(n)),
        w.Param("x", w.ParamValue_Float(0.5)),
        w.Param("twice", w.ParamValue_Bool(twice)),
    ]


def push(e: Any, bars: int = 10, first_index: int = 100) -> None:
    closes = [float(i) for i in range(bars)]
    e.push_bars(
        first_index, 0.001, 1.0, 0.0, [], [c + 0.5 for c in closes],
        [c + 1.0 for c in closes], [], closes, [],
    )


def test_export_is_named_strategy() -> None:
    assert Export.__name__ == "Strategy"


def test_describe() -> None:
    d = Export().describe()
    assert d == w.Description(
        "probe",
        "1.2.3",
        "records bars",
        [
            w.ParamSpec("n", w.ParamType.INT, w.ParamValue_Int(3), 1.0, 10.0, 1.0, "a number"),
            w.ParamSpec("x", w.ParamType.FLOAT, w.ParamValue_Float(0.5), None, None, None, ""),
            w.ParamSpec("twice", w.ParamType.BOOL, w.ParamValue_Bool(False), None, None, None, ""),
        ],
        [w.Column.CLOSE, w.Column.HIGH],
    )


def test_init_error_is_an_err_with_the_message() -> None:
    with pytest.raises(componentize_py_types.Err) as err:
        Export().init(params(n=7))
    assert err.value.value == "seven is refused"


def test_run_stops_after_the_first_bar_with_actions() -> None:
    e = Export()
    e.init(params())
    push(e)
    step = e.run(portfolio(fills=1), 0, 10)
    # Window bar 3 is run bar 103: 103 % 4 == 3.
    assert step == w.Step(4, w.Action_Submit(
        w.Order(w.Side.BUY, w.Quantity_Equity(1.0), w.OrderKind_Market(), None, None)
    ), 0, 0)
    assert e.next_action() is None
    assert e.take_planned() == w.Plan([], [])
    seen = Probe.seen
    assert [s[0] for s in seen] == [100, 101, 102, 103]
    # ts and the undeclared columns read 0 / NaN; open is always sent.
    index, ts, open_, high, low, close, volume, fills, last = seen[1]
    assert (ts, open_, high, close) == (0, 1.5, 2.0, 1.0)
    assert math.isnan(low) and math.isnan(volume)
    # Fills show on the first bar of the call only.
    assert [(s[7], s[8]) for s in seen] == [(1, True), (0, False), (0, False), (0, False)]
    # The next call walks on to the end of the range.
    step = e.run(portfolio(), 4, 7)
    assert step == w.Step(3, None, 0, 0)
    step = e.run(portfolio(), 7, 100)
    assert step.consumed == 1 and step.action is not None


def test_more_actions_are_drained_with_next_action() -> None:
    e = Export()
    e.init(params(twice=True))
    push(e)
    step = e.run(portfolio(), 0, 10)
    assert step.consumed == 4 and step.more == 2
    assert e.next_action() == w.Action_SetStopLoss(1.5)
    assert e.next_action() == w.Action_ClosePosition()
    assert e.next_action() is None


def test_empty_range_and_market_state() -> None:
    e = Export()
    e.init(params())
    push(e, bars=3)
    assert e.run(portfolio(), 3, 3) == w.Step(0, None, 0, 0)
    assert e.run(portfolio(), 1, 99) == w.Step(2, None, 0, 0)
    e.set_market_state(w.MarketState(w.Market.LINEAR_PERPETUAL, 5.0, 0.0001))


def test_an_exception_is_logged_then_traps(logged: list[tuple[Level, str]]) -> None:
    e = Export()
    e.init(params())
    e.push_bars(0, 0.0, 1.0, 0.0, [], [1.0], [1.0], [], [-1.0], [])
    with pytest.raises(RuntimeError, match="negative close"):
        e.run(portfolio(), 0, 1)
    assert logged and logged[0][0] is Level.ERROR
    assert "negative close" in logged[0][1] and "Traceback" in logged[0][1]
    assert logged[-1][1].startswith("panic: RuntimeError: negative close (at ")
    assert "in on_bar" in logged[-1][1]
