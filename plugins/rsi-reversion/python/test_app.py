"""Native tests of the Python RSI Reversion (the Rust example's tests)."""

from __future__ import annotations

import math

import pytest

from app import RsiReversion
from stratbox import Action, Order, Quantity, Side
from stratbox.testing import Harness


def harness(allow_short: bool) -> Harness[RsiReversion]:
    """RSI(2) with the default 30/70 levels, 1% discount, 5% stop."""
    return Harness(RsiReversion, rsi_period=2, entry_discount_pct=1.0, allow_short=allow_short)


def feed_drop(h: Harness[RsiReversion]) -> list[Action]:
    """Warms RSI(2) up on a rise (RSI 100), then drops below 30."""
    for close in [100.0, 101.0, 102.0]:
        assert h.feed_close(close) == []
    return h.feed_close(90.0)


def buy_limit(limit: float, stop: float) -> Action:
    return Action.submit(Order.limit(Side.BUY, Quantity.equity(1.0), limit).with_stop_loss(stop))


def test_oversold_cross_places_discounted_buy_limit_with_stop() -> None:
    h = harness(False)
    limit = 90.0 * (1.0 - 0.01)
    assert feed_drop(h) == [buy_limit(limit, limit * (1.0 - 0.05))]
    # Resting: no second order while it waits.
    h.portfolio.open_orders = 1
    assert h.feed_close(85.0) == []


def test_unfilled_limit_is_cancelled_after_five_bars() -> None:
    h = harness(False)
    assert len(feed_drop(h)) == 1
    h.portfolio.open_orders = 1
    for close in [91.0, 92.0, 93.0, 94.0]:
        assert h.feed_close(close) == []
    assert h.feed_close(95.0) == [Action.cancel_orders()]
    # Cancelled, flat, RSI high: nothing new until the next cross.
    h.portfolio.open_orders = 0
    assert h.feed_close(96.0) == []


def test_long_is_closed_when_rsi_is_overbought() -> None:
    h = harness(False)
    assert len(feed_drop(h)) == 1
    # The limit filled on the next bar, as the engine reports it.
    p = h.portfolio
    p.open_orders = 0
    p.position = 1.0
    p.entry_price = 89.1
    p.stop_loss = 89.1 * 0.95
    # A small bounce keeps the RSI below 70; a strong one exits.
    assert h.feed_close(89.5) == []
    assert h.feed_close(99.0) == [Action.close_position()]


def test_long_only_ignores_overbought_cross_and_short_mode_sells_above() -> None:
    rise = [100.0, 99.0, 98.0, 110.0]
    long_only = harness(False)
    for close in rise:
        assert long_only.feed_close(close) == []
    both = harness(True)
    for close in rise[:3]:
        assert both.feed_close(close) == []
    limit = 110.0 * 1.01
    assert both.feed_close(110.0) == [
        Action.submit(
            Order.limit(Side.SELL, Quantity.equity(1.0), limit).with_stop_loss(limit * 1.05)
        )
    ]
    # Filled short; covered once the RSI falls below oversold.
    both.portfolio.position = -1.0
    assert both.feed_close(95.0) == [Action.close_position()]


def test_rejects_inverted_levels_and_bad_period() -> None:
    with pytest.raises(ValueError, match="must be below overbought"):
        Harness(RsiReversion, oversold=50.0, overbought=50.0)
    with pytest.raises(ValueError, match="rsi_period"):
        Harness(RsiReversion, rsi_period=1)
    with pytest.raises(ValueError, match="stop_loss_pct"):
        Harness(RsiReversion, stop_loss_pct=math.nan)
