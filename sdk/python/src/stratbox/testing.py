"""Native unit testing of a strategy, without building a component: feed
bars one at a time, set the account the strategy should see, and check the
actions it takes. Fills are the test's job (the engine is the host's)."""

from __future__ import annotations

from typing import Generic, TypeVar

from .context import Context
from .params import ParamValue, Params
from .strategy import Strategy
from .types import Action, Bar, Market, Portfolio

__all__ = ["Harness"]

S = TypeVar("S", bound=Strategy)


class Harness(Generic[S]):
    """``Harness(MyStrategy, fast_period=2)`` builds the strategy from its
    schema defaults with the keyword overrides applied (an exception from
    the strategy's ``__init__`` propagates). The account starts with cash
    10,000, commission 0.0006, leverage 1, flat, on spot."""

    def __init__(self, cls: type[S], /, **overrides: ParamValue) -> None:
        params = Params.defaults(cls.describe())
        for name, value in overrides.items():
            params = params.with_(name, value)
        self.params = params
        self._strategy: S = cls(params)
        self.portfolio = Portfolio(cash=10_000.0, commission=0.0006, leverage=1.0)
        self._next_index = 0

    @property
    def strategy(self) -> S:
        return self._strategy

    def set_market(self, market: Market) -> None:
        """The market the strategy sees from the next bar on (spot by default)."""
        self.portfolio.market = market

    def set_liquidation_price(self, price: float | None) -> None:
        self.portfolio.liquidation_price = price

    def set_funding_rate(self, rate: float | None) -> None:
        self.portfolio.funding_rate = rate

    def feed_close(self, close: float) -> list[Action]:
        """Feeds one bar (ts is the bar index, OHLC all equal to ``close``,
        volume 0) and returns the actions taken on it."""
        i = self._next_index
        return self.feed(Bar(i, i, close, close, close, close, 0.0))

    def feed(self, bar: Bar) -> list[Action]:
        """Feeds one bar and returns the actions taken on it. ``fill_count``
        and ``last_fill`` of ``portfolio`` are seen on this bar only."""
        self._next_index = bar.index + 1
        actions: list[Action] = []
        ctx = Context(self.portfolio, bar, True, actions)
        self._strategy.on_bar(bar, ctx)
        self.portfolio.fill_count = 0
        self.portfolio.last_fill = None
        return actions
