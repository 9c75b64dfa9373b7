"""Native tests of the Python EMA Crossover (the Rust example's tests)."""

from __future__ import annotations

import pytest

from app import EmaCrossover
from stratbox import Action, Order, Quantity, Side
from stratbox.testing import Harness


def harness(allow_short: bool) -> Harness[EmaCrossover]:
    return Harness(EmaCrossover, fast_period=2, slow_period=4, allow_short=allow_short)


def test_buys_on_bullish_cross_and_closes_on_bearish() -> None:
    h = harness(False)
    # Falling prices keep fast below slow; a jump crosses it above.
    for close in [10.0, 9.0, 8.0, 7.0]:
        assert h.feed_close(close) == []
    assert h.feed_close(12.0) == [
        Action.submit(Order.market(Side.BUY, Quantity.equity(1.0)))
    ]
    h.portfolio.position = 1.0
    assert h.feed_close(13.0) == []
    assert h.feed_close(5.0) == [Action.close_position()]


def test_long_only_ignores_bearish_cross_when_flat() -> None:
    h = harness(False)
    for close in [7.0, 8.0, 9.0, 10.0]:
        h.feed_close(close)
    assert h.feed_close(2.0) == []


def test_short_mode_reverses() -> None:
    h = harness(True)
    for close in [7.0, 8.0, 9.0, 10.0]:
        h.feed_close(close)
    assert h.feed_close(2.0) == [
        Action.submit(Order.market(Side.SELL, Quantity.equity(1.0)))
    ]


def test_rejects_zero_period() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Harness(EmaCrossover, fast_period=0)


def test_describe_matches_the_rust_example() -> None:
    d = EmaCrossover.describe()
    assert (d.name, d.version) == ("EMA Crossover", "0.1.0")
    assert [(p.name, p.default, p.min, p.max, p.step) for p in d.params] == [
        ("fast_period", 12, 1.0, 1000.0, 1.0),
        ("slow_period", 26, 1.0, 5000.0, 1.0),
        ("allow_short", False, None, None, None),
    ]
