"""Native tests of the Python pairs spread (the Rust example's cases)."""

from __future__ import annotations

import pytest

from app import PairsSpread
from stratbox import Action, Order, Quantity, Side, SymbolAction
from stratbox.testing import PortfolioHarness

PAIR = ["BTCUSDT", "ETHUSDT"]


def market(symbol: int, side: Side, fraction: float) -> SymbolAction:
    return SymbolAction(symbol, Action.submit(Order.market(side, Quantity.equity(fraction))))


def harness() -> PortfolioHarness[PairsSpread]:
    return PortfolioHarness(PairsSpread, PAIR, lookback=5, entry_z=1.5, exit_z=0.3)


def test_describe_matches_the_rust_example() -> None:
    d = PairsSpread.describe()
    assert (d.name, d.version) == ("Pairs spread", "0.1.0")
    assert [(p.name, p.kind.value, p.default, p.min, p.max) for p in d.params] == [
        ("lookback", "int", 48, 2.0, 1000.0),
        ("entry_z", "float", 2.0, 0.1, 10.0),
        ("exit_z", "float", 0.5, 0.0, 10.0),
    ]
    assert [c.value for c in d.columns] == ["close"]


def test_needs_two_symbols() -> None:
    with pytest.raises(ValueError, match="needs two symbols, got 1"):
        PortfolioHarness(PairsSpread, ["BTCUSDT"])


def test_shorts_the_rich_leg_then_goes_flat_when_the_spread_reverts() -> None:
    h = harness()
    btc = [100.0, 101.0, 100.0, 101.0, 100.0, 110.0, 110.0]
    out = h.run({"BTCUSDT": btc, "ETHUSDT": [50.0] * len(btc)})
    assert out[:5] == [[]] * 5
    # Step 5: BTC/ETH jumps (z about 2): short BTC, long ETH, half each,
    # filled at step 6.
    assert out[5] == [market(0, Side.SELL, 0.5), market(1, Side.BUY, 0.5)]
    assert out[6] == []
    assert h.positions[0].qty < 0.0 < h.positions[1].qty
    # Step 7: back within exit_z: both legs closed.
    assert h.step([104.0, 50.0]) == [
        SymbolAction(0, Action.close_position()),
        SymbolAction(1, Action.close_position()),
    ]
    h.step([104.0, 50.0])
    assert [p.qty for p in h.positions] == [0.0, 0.0]
    assert h.cash > 10_000.0  # sold BTC at 110, bought it back at 104


def test_longs_the_cheap_leg_and_reverses() -> None:
    h = harness()
    btc = [100.0, 101.0, 100.0, 101.0, 100.0, 90.0, 90.0, 90.0, 130.0]
    out = h.run([btc, [50.0] * len(btc)])
    assert out[5] == [market(0, Side.BUY, 0.5), market(1, Side.SELL, 0.5)]
    # Step 8: the ratio shoots above: the same orders reverse both legs.
    assert out[8] == [market(0, Side.SELL, 0.5), market(1, Side.BUY, 0.5)]


def test_steps_without_both_bars_are_skipped() -> None:
    h = harness()
    btc: list[float | None] = [100.0, 101.0, None, 100.0, 101.0, 100.0, 110.0]
    eth: list[float | None] = [50.0, 50.0, 50.0, None, 50.0, 50.0, 50.0]
    out = h.run([btc, eth])
    # Five complete steps by step 6 (0, 1, 4, 5, 6): the window fills there.
    assert h.strategy.spreads.maxlen == 5 and len(h.strategy.spreads) == 5
    assert out[6] == [market(0, Side.SELL, 0.5), market(1, Side.BUY, 0.5)]


def test_a_flat_spread_never_trades() -> None:
    h = harness()
    out = h.run([[100.0] * 20, [50.0] * 20])
    assert all(a == [] for a in out)
