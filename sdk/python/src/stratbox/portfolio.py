"""Strategies over several symbols on one timeline (contract 0.3.0, the
``portfolio`` interface, world ``portfolio-plugin``).

The timeline is the union of the symbols' bar times. ``on_step`` runs once
per step, oldest first, with one entry per symbol: that symbol's bar at the
step, or None where it has none (nothing is filled forward). Orders name
their symbol (its index in the run's universe, or its name); one account
holds every position, and the host fills every order: the step after one
on which the strategy acted sees the fills.

.. code-block:: python

    class Hold(stratbox.PortfolioStrategy):
        @classmethod
        def describe(cls) -> Description:
            return Description("hold", "0.1.0", "buys every symbol once")

        def on_step(self, step: Step, ctx: PortfolioContext) -> None:
            for i, bar in enumerate(step.bars):
                if bar is not None and ctx.is_flat(i):
                    ctx.buy_equity(i, 1.0 / len(step.bars))

    Portfolio = stratbox.export(Hold)  # componentize-py exports `app.Portfolio`
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from .params import Description, Params
from .types import (
    _CANCEL_ORDERS,
    _CLOSE_POSITION,
    _MARKET_KIND,
    Action,
    Bar,
    FillReason,
    Market,
    Order,
    OrderKind,
    Quantity,
    Side,
)

__all__ = [
    "PortfolioContext",
    "PortfolioStrategy",
    "Position",
    "Step",
    "SymbolAction",
    "SymbolFill",
    "SymbolRef",
]

SymbolRef = int | str
"""A symbol: its index in the run's universe, or its name."""


class Step:
    """One step of the timeline, as ``on_step`` sees it.

    ``bars[i]`` is symbol ``i``'s bar at this step, or None where it has
    none. Each bar's ``index`` and ``ts`` are the step's. Inside the sandbox
    the runtime reuses the ``Step``, its list and one ``Bar`` per symbol:
    copy the values you keep, not the objects.
    """

    __slots__ = ("index", "ts", "bars")

    index: int
    """Index of the step in the whole run (0 is the first)."""
    ts: int
    """The step's time, unix seconds UTC (0 when not sent)."""
    bars: list[Bar | None]

    def __init__(self, index: int = 0, ts: int = 0, bars: list[Bar | None] | None = None) -> None:
        self.index = index
        self.ts = ts
        self.bars = [] if bars is None else bars

    def bar(self, symbol: int) -> Bar | None:
        """Symbol ``symbol``'s bar at this step, or None."""
        return self.bars[symbol]

    def close(self, symbol: int) -> float:
        """Symbol ``symbol``'s close at this step; NaN where it has no bar."""
        b = self.bars[symbol]
        return math.nan if b is None else b.close

    def __repr__(self) -> str:
        return f"Step(index={self.index}, ts={self.ts}, bars={self.bars!r})"


@dataclass(slots=True)
class Position:
    """One symbol's position before the step's decision."""

    qty: float = 0.0
    """Signed quantity: > 0 long, < 0 short, 0 flat."""
    entry_price: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None
    open_orders: int = 0
    """Resting limit and stop entries of this symbol."""
    liquidation_price: float | None = None
    """Perpetuals: the open position's liquidation price."""
    funding_rate: float | None = None
    """Perpetuals: the latest funding rate known for this symbol."""


@dataclass(frozen=True, slots=True)
class SymbolFill:
    """A fill, seen on the step it happened on."""

    symbol: int
    side: Side
    qty: float
    price: float
    reason: FillReason


@dataclass(frozen=True, slots=True)
class SymbolAction:
    """An action on one symbol (its index in the universe)."""

    symbol: int
    action: Action


@dataclass(slots=True)
class _Account:
    """The account before a call's first step (internal: the runtime and
    the harness fill it in)."""

    cash: float = 0.0
    equity: float = 0.0
    positions: list[Position] = field(default_factory=list)
    fills: list[SymbolFill] = field(default_factory=list)


class PortfolioContext:
    """The strategy's view of the account on one step, and where it places
    orders. Inside the sandbox one context serves every step: do not keep
    it past ``on_step``.

    Every ``symbol`` argument is an index into the universe (``symbols()``)
    or a symbol's name.
    """

    __slots__ = (
        "_symbols", "_index", "_account", "_ref", "_last", "_first", "_actions",
        "_market", "_commission", "_leverage",
    )

    def __init__(self, symbols: Sequence[str], actions: list[SymbolAction]) -> None:
        self._symbols = tuple(symbols)
        self._index = {name: i for i, name in enumerate(self._symbols)}
        self._account = _Account(positions=[Position() for _ in self._symbols])
        # Each symbol's latest close: at the account's marking (the call's
        # start), and now. NaN while unknown.
        self._ref = [math.nan] * len(self._symbols)
        self._last = [math.nan] * len(self._symbols)
        self._first = True
        self._actions = actions
        self._market = Market.SPOT
        self._commission = 0.0
        self._leverage = 1.0

    # ------------------------------------------------------------ symbols

    def symbols(self) -> tuple[str, ...]:
        """The universe, in the order the host gave it."""
        return self._symbols

    def symbol(self, ref: SymbolRef) -> int:
        """The index of a symbol (given by name or index); raises KeyError
        or IndexError for one outside the universe."""
        if isinstance(ref, str):
            try:
                return self._index[ref]
            except KeyError:
                raise KeyError(f"symbol `{ref}` is not in the universe {list(self._symbols)}") from None
        if isinstance(ref, bool) or not 0 <= ref < len(self._symbols):
            raise IndexError(f"symbol index {ref} is outside the universe of {len(self._symbols)}")
        return ref

    # ------------------------------------------------------------ account

    def cash(self) -> float:
        """Spot: the cash every position shares. Perpetuals: the wallet
        (what is not margin of a position)."""
        return self._account.cash

    def equity(self) -> float:
        """The host's equity before this call (cash plus every position
        marked at its symbol's last close), plus each open position's price
        move since, to its symbol's latest close up to this step (summed in
        symbol order). Without the ``close`` column: the host's figure."""
        e = self._account.equity
        positions = self._account.positions
        ref = self._ref
        last = self._last
        for i in range(len(positions)):
            q = positions[i].qty
            if q != 0.0:
                d = last[i] - ref[i]
                if d == d:  # both closes known
                    e += q * d
        return e

    def position(self, symbol: SymbolRef) -> float:
        """Signed position of a symbol: > 0 long, < 0 short, 0 flat."""
        return self._account.positions[self.symbol(symbol)].qty

    def position_info(self, symbol: SymbolRef) -> Position:
        """A symbol's whole position record (entry price, exits, orders...)."""
        return self._account.positions[self.symbol(symbol)]

    def positions(self) -> list[Position]:
        """Every symbol's position, in universe order (flat ones included)."""
        return self._account.positions

    def is_flat(self, symbol: SymbolRef) -> bool:
        return self.position(symbol) == 0.0

    def is_long(self, symbol: SymbolRef) -> bool:
        return self.position(symbol) > 0.0

    def is_short(self, symbol: SymbolRef) -> bool:
        return self.position(symbol) < 0.0

    def fills(self) -> list[SymbolFill]:
        """The fills at this step (empty on most steps)."""
        return self._account.fills if self._first else []

    def market(self) -> Market:
        return self._market

    def commission(self) -> float:
        return self._commission

    def leverage(self) -> float:
        return self._leverage

    def pending_actions(self) -> list[SymbolAction]:
        """Actions placed so far on this step (a copy)."""
        return list(self._actions)

    # ------------------------------------------------------------ orders

    def submit(self, symbol: SymbolRef, order: Order) -> None:
        self._actions.append(SymbolAction(self.symbol(symbol), Action("submit", order)))

    def buy(self, symbol: SymbolRef, qty: float) -> None:
        """Market buy of ``qty`` base units, at the symbol's next open."""
        self.submit(symbol, Order(Side.BUY, Quantity("units", qty), _MARKET_KIND))

    def sell(self, symbol: SymbolRef, qty: float) -> None:
        """Market sell of ``qty`` base units (reduces a long, then shorts)."""
        self.submit(symbol, Order(Side.SELL, Quantity("units", qty), _MARKET_KIND))

    def buy_equity(self, symbol: SymbolRef, fraction: float) -> None:
        """Market buy committing ``fraction`` of equity (times leverage);
        a short of the symbol is closed first."""
        self.submit(symbol, Order(Side.BUY, Quantity("equity", fraction), _MARKET_KIND))

    def sell_equity(self, symbol: SymbolRef, fraction: float) -> None:
        """Market sell committing ``fraction`` of equity (times leverage);
        a long of the symbol is closed first."""
        self.submit(symbol, Order(Side.SELL, Quantity("equity", fraction), _MARKET_KIND))

    def target(self, symbol: SymbolRef, fraction: float) -> None:
        """Holds the symbol at ``fraction`` of equity: > 0 long, < 0 short,
        0 flat. From flat or the other side it places one market order for
        ``|fraction|`` of equity (the other side closed first); a position
        already on that side is left as it is (resize it with ``buy`` /
        ``sell``); 0 closes the position."""
        i = self.symbol(symbol)
        q = self._account.positions[i].qty
        if fraction > 0.0:
            if not q > 0.0:
                self.buy_equity(i, fraction)
        elif fraction < 0.0:
            if not q < 0.0:
                self.sell_equity(i, -fraction)
        elif q != 0.0:
            self.close(i)

    def buy_limit(self, symbol: SymbolRef, qty: float, price: float) -> None:
        """Rests until the symbol trades at ``price`` or lower."""
        self.submit(symbol, Order(Side.BUY, Quantity("units", qty), OrderKind("limit", price)))

    def sell_limit(self, symbol: SymbolRef, qty: float, price: float) -> None:
        """Rests until the symbol trades at ``price`` or higher."""
        self.submit(symbol, Order(Side.SELL, Quantity("units", qty), OrderKind("limit", price)))

    def buy_stop(self, symbol: SymbolRef, qty: float, price: float) -> None:
        """Rests until the symbol trades up through ``price``."""
        self.submit(symbol, Order(Side.BUY, Quantity("units", qty), OrderKind("stop", price)))

    def sell_stop(self, symbol: SymbolRef, qty: float, price: float) -> None:
        """Rests until the symbol trades down through ``price``."""
        self.submit(symbol, Order(Side.SELL, Quantity("units", qty), OrderKind("stop", price)))

    def close(self, symbol: SymbolRef) -> None:
        """Closes the symbol's whole position at its next open."""
        self._actions.append(SymbolAction(self.symbol(symbol), _CLOSE_POSITION))

    def close_all(self) -> None:
        """Closes every open position, in universe order."""
        positions = self._account.positions
        for i in range(len(positions)):
            if positions[i].qty != 0.0:
                self._actions.append(SymbolAction(i, _CLOSE_POSITION))

    def cancel_orders(self, symbol: SymbolRef) -> None:
        """Cancels the symbol's resting limit and stop entries."""
        self._actions.append(SymbolAction(self.symbol(symbol), _CANCEL_ORDERS))

    def set_stop_loss(self, symbol: SymbolRef, price: float | None) -> None:
        self._actions.append(SymbolAction(self.symbol(symbol), Action("set_stop_loss", None, price)))

    def set_take_profit(self, symbol: SymbolRef, price: float | None) -> None:
        self._actions.append(SymbolAction(self.symbol(symbol), Action("set_take_profit", None, price)))


class PortfolioStrategy(ABC):
    """What an author implements for several symbols. One instance lives
    for a whole run.

    * ``describe()`` (a classmethod or staticmethod): as for ``Strategy``;
      ``columns`` applies to every symbol.
    * ``__init__(self, params, symbols)``: the base one keeps ``symbols``
      (the universe, a tuple of names) as ``self.symbols`` and calls
      ``init(params)``. Raising (e.g. ``ValueError``) ends the run with
      that message.
    * ``on_step(self, step, ctx)``: once per step of the timeline, oldest
      first, after that step's fills.
    """

    symbols: tuple[str, ...]

    @classmethod
    @abstractmethod
    def describe(cls) -> Description:
        raise NotImplementedError

    def __init__(self, params: Params, symbols: Sequence[str]) -> None:
        self.symbols = tuple(symbols)
        self.init(params)

    def init(self, params: Params) -> None:
        """Set-up from params (``self.symbols`` is set); does nothing by default."""

    @abstractmethod
    def on_step(self, step: Step, ctx: PortfolioContext) -> None:
        raise NotImplementedError
