"""Native checks of the hostile strategy's harmless modes."""

from __future__ import annotations

import pytest

from app import Hostile
from stratbox.testing import Harness


def test_mode_zero_behaves() -> None:
    h = Harness(Hostile)
    for i in range(20):
        assert h.feed_close(100.0 + i) == []


def test_mode_four_raises_on_the_tenth_bar() -> None:
    h = Harness(Hostile, mode=4)
    for _ in range(9):
        assert h.feed_close(1.0) == []
    with pytest.raises(RuntimeError, match="hostile"):
        h.feed_close(1.0)


def test_mode_six_trades_on_the_clock() -> None:
    h = Harness(Hostile, mode=6)
    for _ in range(9):
        h.feed_close(1.0)
    assert len(h.feed_close(1.0)) == 1
