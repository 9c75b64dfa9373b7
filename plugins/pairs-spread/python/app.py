"""Pairs spread, the Python twin of ``plugins/pairs-spread/src`` (world
``portfolio-plugin``).

The spread is the ratio of the first two symbols' closes (say BTCUSDT /
ETHUSDT: ``--symbols BTCUSDT,ETHUSDT``; further symbols are ignored), a
division, so the three languages agree bit for bit (no ``log``). Its
z-score over the last ``lookback`` steps on which both symbols have a bar:
``mean = sum / n``, ``std = sqrt(sum((s - mean)^2) / n)`` (population,
summed oldest first), ``z = (spread - mean) / std``. Then, on each such
step, in this order:

* ``|z| < exit_z``: flat (close whichever leg is open);
* ``z > entry_z``: the first symbol is rich: short it and long the second,
  half the equity each (unless already so);
* ``z < -entry_z``: long the first, short the second, likewise.

Legs are market orders for half the equity each (an opposite leg is
closed first, by the order itself). Steps where either symbol has no bar
are skipped, and so is a window whose std is 0.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import stratbox
from stratbox import Column, Description, Params, ParamSpec, PortfolioContext, Step


class PairsSpread(stratbox.PortfolioStrategy):
    @classmethod
    def describe(cls) -> Description:
        return Description(
            "Pairs spread",
            "0.1.0",
            "Long one symbol and short the other when their price ratio's z-score leaves "
            "+/-entry_z; flat when it is back within exit_z",
            params=[
                ParamSpec.int(
                    "lookback", 48, range=(2.0, 1000.0), step=1.0,
                    help="Steps in the spread's mean and standard deviation",
                ),
                ParamSpec.float(
                    "entry_z", 2.0, range=(0.1, 10.0), step=0.1,
                    help="Open the pair when |z| is above this",
                ),
                ParamSpec.float(
                    "exit_z", 0.5, range=(0.0, 10.0), step=0.1,
                    help="Close the pair when |z| is below this",
                ),
            ],
            columns=[Column.CLOSE],
        )

    def __init__(self, params: Params, symbols: Sequence[str]) -> None:
        super().__init__(params, symbols)
        if len(self.symbols) < 2:
            raise ValueError(f"pairs spread needs two symbols, got {len(self.symbols)}")
        self.lookback = params.int("lookback")
        if self.lookback < 2:
            raise ValueError("lookback must be at least 2")
        self.entry_z = params.float("entry_z")
        self.exit_z = params.float("exit_z")
        self.spreads: deque[float] = deque(maxlen=self.lookback)

    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        a = step.bars[0]
        b = step.bars[1]
        if a is None or b is None:
            return
        spread = a.close / b.close
        window = self.spreads
        window.append(spread)
        n = len(window)
        if n < self.lookback:
            return
        total = 0.0
        for s in window:
            total += s
        mean = total / n
        var = 0.0
        for s in window:
            d = s - mean
            var += d * d
        std = math.sqrt(var / n)
        if not std > 0.0:
            return
        z = (spread - mean) / std
        first = ctx.position(0)
        second = ctx.position(1)
        if abs(z) < self.exit_z:
            if first != 0.0:
                ctx.close(0)
            if second != 0.0:
                ctx.close(1)
        elif z > self.entry_z:
            if not (first < 0.0 and second > 0.0):
                ctx.target(0, -0.5)
                ctx.target(1, 0.5)
        elif z < -self.entry_z:
            if not (first > 0.0 and second < 0.0):
                ctx.target(0, 0.5)
                ctx.target(1, -0.5)


Portfolio = stratbox.export(PairsSpread)
