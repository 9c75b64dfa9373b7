"""EMA Crossover, the Python twin of ``plugins/ema-crossover/src/lib.rs``.

Long only: buy all in on a bullish cross when flat, close on a bearish
cross. With ``allow_short``, after the first cross it is always in the
market, reversing on each cross.
"""

from __future__ import annotations

import stratbox
from stratbox import Bar, Column, Context, Description, Ema, Params, ParamSpec


class EmaCrossover(stratbox.Strategy):
    @classmethod
    def describe(cls) -> Description:
        return Description(
            "EMA Crossover",
            "0.1.0",
            "Long (or reversing long/short) on crossings of a fast and a slow EMA of the close",
            params=[
                ParamSpec.int(
                    "fast_period", 12, range=(1.0, 1000.0), step=1.0, help="Bars in the fast EMA"
                ),
                ParamSpec.int(
                    "slow_period", 26, range=(1.0, 5000.0), step=1.0, help="Bars in the slow EMA"
                ),
                ParamSpec.bool(
                    "allow_short", False, help="Reverse into a short on a bearish cross"
                ),
            ],
            columns=[Column.CLOSE],
        )

    def __init__(self, params: Params) -> None:
        fast_period = params.int("fast_period")
        slow_period = params.int("slow_period")
        if fast_period < 1 or slow_period < 1:
            raise ValueError("fast_period and slow_period must be at least 1")
        self.fast = Ema(fast_period)
        self.slow = Ema(slow_period)
        self.allow_short = params.bool("allow_short")
        # The previous bar's (fast, slow), None before the first bar.
        self.prev_fast: float | None = None
        self.prev_slow = 0.0

    def on_bar(self, bar: Bar, ctx: Context) -> None:
        close = bar.close
        fast = self.fast.update(close)
        slow = self.slow.update(close)
        prev_fast = self.prev_fast
        self.prev_fast = fast
        prev_slow = self.prev_slow
        self.prev_slow = slow
        if prev_fast is None:
            return
        # crossed_above / crossed_below, inlined (the same comparisons).
        if prev_fast < prev_slow and fast > slow:
            if self.allow_short:
                if not ctx.is_long():
                    ctx.buy_all()
            elif ctx.is_flat():
                ctx.buy_all()
        elif prev_fast > prev_slow and fast < slow:
            if self.allow_short:
                if not ctx.is_short():
                    ctx.sell_all()
            elif ctx.is_long():
                ctx.close_position()


Strategy = stratbox.export(EmaCrossover)
