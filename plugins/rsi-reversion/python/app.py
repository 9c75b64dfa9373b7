"""RSI Reversion, the Python twin of ``plugins/rsi-reversion/src/lib.rs``:
buy the dip with a resting limit order.

When flat with no resting order and the RSI of the close crosses below
``oversold``, it places an all-in buy limit ``entry_discount_pct`` below the
close, with a stop-loss ``stop_loss_pct`` below the limit price attached to
the position it opens. A limit still unfilled after five bars is cancelled.
A long is closed at the next open once the RSI is above ``overbought``.
With ``allow_short`` the mirror image also trades: a sell limit above the
close when the RSI crosses above ``overbought``, a stop-loss above it,
covered once the RSI is below ``oversold``.
"""

from __future__ import annotations

import math

import stratbox
from stratbox import (
    Bar,
    Column,
    Context,
    Description,
    Order,
    Params,
    ParamSpec,
    Quantity,
    Rsi,
    Side,
)
from stratbox.params import format_float

# Bars a resting entry limit may wait for a fill before it is cancelled.
ENTRY_TTL_BARS = 5


def check_range(name: str, value: float, lo: float, hi: float) -> None:
    """Raises naming the param unless ``lo <= value <= hi`` (NaN fails)."""
    if not lo <= value <= hi:
        raise ValueError(
            f"{name} must be between {format_float(lo)} and {format_float(hi)}, "
            f"got {format_float(value)}"
        )


def valid(price: float) -> bool:
    """The host rejects non-positive prices, which would end the run."""
    return math.isfinite(price) and price > 0.0


class RsiReversion(stratbox.Strategy):
    @classmethod
    def describe(cls) -> Description:
        return Description(
            "RSI Reversion",
            "0.1.0",
            "Buys (or sells short) an RSI extreme with a resting limit order and a stop-loss, "
            "exits when the RSI reaches the other extreme",
            params=[
                ParamSpec.int(
                    "rsi_period",
                    14,
                    range=(2.0, 100.0),
                    step=1.0,
                    help="Price changes in the RSI (Wilder smoothing)",
                ),
                ParamSpec.float(
                    "oversold",
                    30.0,
                    range=(1.0, 50.0),
                    step=1.0,
                    help="Enter long when the RSI crosses below this; cover a short below it",
                ),
                ParamSpec.float(
                    "overbought",
                    70.0,
                    range=(50.0, 99.0),
                    step=1.0,
                    help="Close a long above this; enter short when the RSI crosses above it",
                ),
                ParamSpec.float(
                    "entry_discount_pct",
                    0.5,
                    range=(0.0, 10.0),
                    step=0.1,
                    help="The entry limit rests this percent better than the signal close",
                ),
                ParamSpec.float(
                    "stop_loss_pct",
                    5.0,
                    range=(0.1, 50.0),
                    help="Stop-loss distance from the entry limit price, in percent",
                ),
                ParamSpec.bool(
                    "allow_short",
                    False,
                    help="Also sell short when the RSI crosses above overbought",
                ),
            ],
            columns=[Column.CLOSE],
        )

    def __init__(self, params: Params) -> None:
        rsi_period = params.int("rsi_period")
        oversold = params.float("oversold")
        overbought = params.float("overbought")
        entry_discount_pct = params.float("entry_discount_pct")
        stop_loss_pct = params.float("stop_loss_pct")
        allow_short = params.bool("allow_short")
        if not 2 <= rsi_period <= 100:
            raise ValueError(f"rsi_period must be between 2 and 100, got {rsi_period}")
        check_range("oversold", oversold, 1.0, 50.0)
        check_range("overbought", overbought, 50.0, 99.0)
        if oversold >= overbought:
            raise ValueError(
                f"oversold ({format_float(oversold)}) must be below overbought "
                f"({format_float(overbought)})"
            )
        check_range("entry_discount_pct", entry_discount_pct, 0.0, 10.0)
        check_range("stop_loss_pct", stop_loss_pct, 0.1, 50.0)
        self.rsi = Rsi(rsi_period)
        self.oversold = oversold
        self.overbought = overbought
        self.discount = entry_discount_pct / 100.0
        self.stop_loss = stop_loss_pct / 100.0
        self.allow_short = allow_short
        self.previous: float | None = None
        # Index of the bar on whose close the resting entry was placed.
        self.entry_placed_at: int | None = None

    def on_bar(self, bar: Bar, ctx: Context) -> None:
        rsi = self.rsi.update(bar.close)
        if rsi is None:
            return
        previous = self.previous
        self.previous = rsi

        if not ctx.is_flat():
            # The entry filled: it no longer rests (anything else that does
            # is not ours to keep).
            self.entry_placed_at = None
            if ctx.open_orders() > 0:
                ctx.cancel_orders()
            if (ctx.is_long() and rsi > self.overbought) or (
                ctx.is_short() and rsi < self.oversold
            ):
                ctx.close_position()
            return

        if ctx.open_orders() > 0:
            placed = self.entry_placed_at
            fresh = placed is not None and bar.index < placed + ENTRY_TTL_BARS
            if not fresh:
                ctx.cancel_orders()
                self.entry_placed_at = None
            return
        self.entry_placed_at = None

        if previous is None:
            return
        if previous >= self.oversold and rsi < self.oversold:
            limit = bar.close * (1.0 - self.discount)
            stop = limit * (1.0 - self.stop_loss)
            order = Order.limit(Side.BUY, Quantity.equity(1.0), limit).with_stop_loss(stop)
        elif self.allow_short and previous <= self.overbought and rsi > self.overbought:
            limit = bar.close * (1.0 + self.discount)
            stop = limit * (1.0 + self.stop_loss)
            order = Order.limit(Side.SELL, Quantity.equity(1.0), limit).with_stop_loss(stop)
        else:
            return
        if valid(limit) and valid(stop):
            ctx.submit(order)
            self.entry_placed_at = bar.index


Strategy = stratbox.export(RsiReversion)
