"""The plain values a strategy reads and writes.

The runtime converts them to and from the component's WIT types, so
authors never see the generated bindings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Literal

__all__ = [
    "Action",
    "Bar",
    "Fill",
    "FillReason",
    "Market",
    "Order",
    "OrderKind",
    "Portfolio",
    "Quantity",
    "Side",
]

_NAN = math.nan


class Bar:
    """One bar, as the strategy sees it in ``on_bar``.

    Inside the sandbox the runtime reuses one ``Bar`` object for every bar
    (it only rewrites its fields): copy the values you want to keep, not
    the object. Fields the strategy did not declare read NaN (``ts`` 0);
    ``open`` is always sent.
    """

    __slots__ = ("index", "ts", "open", "high", "low", "close", "volume")

    index: int
    """Index of the bar in the whole run (0 is the first bar)."""
    ts: int
    """Bar open time, unix seconds UTC."""
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __init__(
        self,
        index: int = 0,
        ts: int = 0,
        open: float = _NAN,
        high: float = _NAN,
        low: float = _NAN,
        close: float = _NAN,
        volume: float = _NAN,
    ) -> None:
        self.index = index
        self.ts = ts
        self.open = open
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

    def copy(self) -> Bar:
        return Bar(
            self.index, self.ts, self.open, self.high, self.low, self.close, self.volume
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bar):
            return NotImplemented
        return (
            self.index == other.index
            and self.ts == other.ts
            and self.open == other.open
            and self.high == other.high
            and self.low == other.low
            and self.close == other.close
            and self.volume == other.volume
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Bar(index={self.index}, ts={self.ts}, open={self.open}, high={self.high}, "
            f"low={self.low}, close={self.close}, volume={self.volume})"
        )


class Side(Enum):
    BUY = "buy"
    SELL = "sell"


@dataclass(frozen=True, slots=True)
class Quantity:
    """How much an order trades: ``Quantity.units(q)`` base units (fractional
    allowed) or ``Quantity.equity(f)``, a fraction of equity times leverage
    (1.0 is all in; reverses an opposite position, closing it first)."""

    kind: Literal["units", "equity"]
    value: float

    @staticmethod
    def units(qty: float) -> Quantity:
        return Quantity("units", qty)

    @staticmethod
    def equity(fraction: float) -> Quantity:
        return Quantity("equity", fraction)


@dataclass(frozen=True, slots=True)
class OrderKind:
    """``OrderKind.market()`` fills at the next bar's open; ``limit(p)`` rests
    until the price trades at ``p`` or better; ``stop(p)`` until it trades
    through ``p`` (filling at the open on a gap)."""

    type: Literal["market", "limit", "stop"]
    price: float | None = None

    @staticmethod
    def market() -> OrderKind:
        return _MARKET_KIND

    @staticmethod
    def limit(price: float) -> OrderKind:
        return OrderKind("limit", price)

    @staticmethod
    def stop(price: float) -> OrderKind:
        return OrderKind("stop", price)


_MARKET_KIND = OrderKind("market")


@dataclass(frozen=True, slots=True)
class Order:
    side: Side
    quantity: Quantity
    kind: OrderKind
    stop_loss: float | None = None
    """Protective stop attached to the position this order opens."""
    take_profit: float | None = None
    """Take-profit attached to the position this order opens."""

    @staticmethod
    def market(side: Side, quantity: Quantity) -> Order:
        """Fills at the next bar's open."""
        return Order(side, quantity, _MARKET_KIND)

    @staticmethod
    def limit(side: Side, quantity: Quantity, price: float) -> Order:
        """Rests until the price trades at ``price`` or better."""
        return Order(side, quantity, OrderKind("limit", price))

    @staticmethod
    def stop(side: Side, quantity: Quantity, price: float) -> Order:
        """Rests until the price trades through ``price``."""
        return Order(side, quantity, OrderKind("stop", price))

    def with_stop_loss(self, price: float) -> Order:
        """This order with a stop-loss attached to the position it opens."""
        return Order(self.side, self.quantity, self.kind, price, self.take_profit)

    def with_take_profit(self, price: float) -> Order:
        """This order with a take-profit attached to the position it opens."""
        return Order(self.side, self.quantity, self.kind, self.stop_loss, price)


ActionKind = Literal[
    "submit", "close_position", "cancel_orders", "set_stop_loss", "set_take_profit"
]


@dataclass(frozen=True, slots=True)
class Action:
    """What a strategy does on a bar. Build with ``Action.submit(order)``,
    ``Action.close_position()``, ``Action.cancel_orders()``,
    ``Action.set_stop_loss(p)``, ``Action.set_take_profit(p)`` (or through
    the ``Context`` methods)."""

    kind: ActionKind
    order: Order | None = None
    """The order of a ``submit``."""
    price: float | None = None
    """The new level of ``set_stop_loss``/``set_take_profit`` (None clears)."""

    @staticmethod
    def submit(order: Order) -> Action:
        return Action("submit", order)

    @staticmethod
    def close_position() -> Action:
        return _CLOSE_POSITION

    @staticmethod
    def cancel_orders() -> Action:
        return _CANCEL_ORDERS

    @staticmethod
    def set_stop_loss(price: float | None) -> Action:
        return Action("set_stop_loss", None, price)

    @staticmethod
    def set_take_profit(price: float | None) -> Action:
        return Action("set_take_profit", None, price)


_CLOSE_POSITION = Action("close_position")
_CANCEL_ORDERS = Action("cancel_orders")


class FillReason(Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    CLOSE_POSITION = "close_position"


@dataclass(slots=True)
class Fill:
    """The last fill on the current bar."""

    side: Side
    qty: float
    price: float
    reason: FillReason


class Market(Enum):
    """What a run trades."""

    SPOT = "spot"
    LINEAR_PERPETUAL = "linear_perpetual"
    """A USDT-margined linear perpetual (isolated margin): the account can
    be liquidated and pays or receives funding."""


@dataclass(slots=True)
class Portfolio:
    """The account before the current bar's decision."""

    cash: float = 0.0
    position: float = 0.0
    """Signed quantity: > 0 long, < 0 short."""
    entry_price: float = 0.0
    stop_loss: float | None = None
    take_profit: float | None = None
    open_orders: int = 0
    commission: float = 0.0
    leverage: float = 0.0
    fill_count: int = 0
    """Fills on the first bar of the host call (a reversal makes two)."""
    last_fill: Fill | None = None
    market: Market = Market.SPOT
    liquidation_price: float | None = None
    funding_rate: float | None = None
