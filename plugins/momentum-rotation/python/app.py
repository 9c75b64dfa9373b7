"""Momentum rotation, the Python twin of ``plugins/momentum-rotation/src``
(world ``portfolio-plugin``).

Every ``rebalance`` steps (on step ``t`` when ``(t + 1) % rebalance == 0``
and ``t >= lookback``, ``t`` the step's index in the run: steps
``rebalance - 1``, ``2 * rebalance - 1``, ...; as the engine's native
reference, ``host/engine/src/reference/momentum_rotation.rs``) it ranks the
symbols by their return over the last ``lookback`` steps,
``close[t] / close[t - lookback] - 1`` (only symbols with a bar at both
steps; ties go to the symbol listed first), and holds the ``top_k`` best,
equal weight, with market orders: first it closes every position outside
the new top (universe order), then it buys each top symbol it does not
hold, ``1 / top_k`` of the equity each (best first). Positions it keeps
are left as they are.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import stratbox
from stratbox import Column, Description, Params, ParamSpec, PortfolioContext, Step


class MomentumRotation(stratbox.PortfolioStrategy):
    @classmethod
    def describe(cls) -> Description:
        return Description(
            "Momentum rotation",
            "0.1.0",
            "Every `rebalance` steps, hold the `top_k` symbols with the best return over "
            "`lookback` steps, equal weight",
            params=[
                ParamSpec.int(
                    "lookback", 72, range=(1.0, 5000.0), step=1.0,
                    help="Steps over which the return is measured",
                ),
                ParamSpec.int(
                    "rebalance", 24, range=(1.0, 5000.0), step=1.0,
                    help="Steps between two rebalances",
                ),
                ParamSpec.int(
                    "top_k", 2, range=(1.0, 20.0), step=1.0,
                    help="Symbols held, equal weight",
                ),
            ],
            columns=[Column.CLOSE],
        )

    def __init__(self, params: Params, symbols: Sequence[str]) -> None:
        super().__init__(params, symbols)
        self.lookback = params.int("lookback")
        self.rebalance = params.int("rebalance")
        self.top_k = params.int("top_k")
        if self.lookback < 1 or self.rebalance < 1 or self.top_k < 1:
            raise ValueError("lookback, rebalance and top_k must be at least 1")
        # Each symbol's closes over the last lookback + 1 steps (NaN: no bar).
        self.closes: list[deque[float]] = [
            deque(maxlen=self.lookback + 1) for _ in self.symbols
        ]

    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        for i, bar in enumerate(step.bars):
            self.closes[i].append(math.nan if bar is None else bar.close)
        t = step.index
        if t < self.lookback or (t + 1) % self.rebalance != 0:
            return
        ranked: list[tuple[float, int]] = []
        for i, closes in enumerate(self.closes):
            if len(closes) <= self.lookback:
                continue
            now, then = closes[-1], closes[0]
            if now == now and then == then:
                ranked.append((now / then - 1.0, i))
        # Best return first; ties in universe order.
        ranked.sort(key=lambda r: (-r[0], r[1]))
        top = [i for _, i in ranked[: self.top_k]]
        for i in range(len(self.symbols)):
            if ctx.position(i) != 0.0 and i not in top:
                ctx.close(i)
        weight = 1.0 / self.top_k
        for i in top:
            if ctx.position(i) == 0.0:
                ctx.buy_equity(i, weight)


Portfolio = stratbox.export(MomentumRotation)
