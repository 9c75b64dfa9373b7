"""Native tests of the Python momentum rotation (the Rust example's cases)."""

from __future__ import annotations

import pytest

from app import MomentumRotation
from stratbox import Action, Order, Quantity, Side, SymbolAction
from stratbox.testing import PortfolioHarness

UNIVERSE = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]


def buy(symbol: int, fraction: float) -> SymbolAction:
    return SymbolAction(symbol, Action.submit(Order.market(Side.BUY, Quantity.equity(fraction))))


def close(symbol: int) -> SymbolAction:
    return SymbolAction(symbol, Action.close_position())


def test_describe_matches_the_rust_example() -> None:
    d = MomentumRotation.describe()
    assert (d.name, d.version) == ("Momentum rotation", "0.1.0")
    assert [(p.name, p.kind.value, p.default, p.min, p.max) for p in d.params] == [
        ("lookback", "int", 72, 1.0, 5000.0),
        ("rebalance", "int", 24, 1.0, 5000.0),
        ("top_k", "int", 2, 1.0, 20.0),
    ]


def test_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PortfolioHarness(MomentumRotation, UNIVERSE, top_k=0)


def test_holds_the_top_k_and_rotates_closing_first() -> None:
    h = PortfolioHarness(MomentumRotation, UNIVERSE, lookback=2, rebalance=3, top_k=2)
    h.commission = 0.0
    out = h.run({
        #           0      1      2      3      4      5      6
        "BTCUSDT": [100.0, 101.0, 103.0, 103.0, 103.0, 100.0, 100.0],
        "ETHUSDT": [10.0, 10.0, 10.5, 10.5, 10.5, 12.0, 12.0],
        "SOLUSDT": [1.0, 1.0, 0.9, 1.0, 1.0, 1.5, 1.5],
        "XRPUSDT": [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0],
    })
    # Step 2 (the first with 2 steps of history): BTC +3 %, ETH +5 %: ETH
    # then BTC, a half each.
    assert out[2] == [buy(1, 0.5), buy(0, 0.5)]
    assert out[3] == [] and out[4] == []
    # Step 5: SOL +50 %, ETH +14 %, BTC -3 %: BTC closed first, then SOL
    # bought; ETH is kept as it is.
    assert out[5] == [close(0), buy(2, 0.5)]
    assert [p.qty > 0.0 for p in h.positions] == [False, True, True, False]


def test_symbols_without_a_bar_are_not_ranked() -> None:
    h = PortfolioHarness(MomentumRotation, UNIVERSE[:2], lookback=1, rebalance=1, top_k=1)
    out = h.run([[100.0, 110.0, None, 300.0], [10.0, 12.0, 13.0, 14.0]])
    # Step 1: ETH +20 % beats BTC +10 %.
    assert out[1] == [buy(1, 1.0)]
    # Step 2: BTC has no bar; step 3: none one step back (its +173 % does
    # not count): ETH stays.
    assert out[2] == [] and out[3] == []


def test_fewer_than_top_k_eligible() -> None:
    h = PortfolioHarness(MomentumRotation, UNIVERSE[:1], lookback=1, rebalance=1, top_k=3)
    out = h.run([[1.0, 2.0, 3.0]])
    assert out[1] == [buy(0, 1.0 / 3.0)] and out[2] == []


def test_rebalances_on_steps_rebalance_minus_one_then_every_rebalance() -> None:
    # As the engine's native reference: steps 2, 5, 8, ... (t + 1 a multiple
    # of rebalance), once lookback steps of history exist.
    h = PortfolioHarness(MomentumRotation, UNIVERSE[:2], lookback=1, rebalance=3, top_k=1)
    out = h.run([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0], [1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0]])
    assert [i for i, a in enumerate(out) if a] == [2, 5]
    assert out[2] == [buy(0, 1.0)]
    assert out[5] == [close(0), buy(1, 1.0)]
