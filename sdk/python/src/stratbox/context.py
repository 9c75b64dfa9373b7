"""What ``on_bar`` sees of the account and where it places its orders."""

from __future__ import annotations

from .types import (
    _CANCEL_ORDERS,
    _CLOSE_POSITION,
    _MARKET_KIND,
    Action,
    Bar,
    Fill,
    Market,
    Order,
    Portfolio,
    Quantity,
    Side,
)

__all__ = ["Context"]

_ALL_IN = Quantity("equity", 1.0)
_BUY_ALL = Action("submit", Order(Side.BUY, _ALL_IN, _MARKET_KIND))
_SELL_ALL = Action("submit", Order(Side.SELL, _ALL_IN, _MARKET_KIND))


class Context:
    """The strategy's view of its account on one bar, and where it places
    orders. Inside the sandbox one ``Context`` serves every bar: do not keep
    it past ``on_bar``."""

    __slots__ = ("_portfolio", "_bar", "_first", "_actions")

    def __init__(
        self,
        portfolio: Portfolio,
        bar: Bar,
        first_bar_of_call: bool,
        actions: list[Action],
    ) -> None:
        self._portfolio = portfolio
        self._bar = bar
        self._first = first_bar_of_call
        self._actions = actions

    def position(self) -> float:
        """Signed position size: > 0 long, < 0 short, 0 flat."""
        return self._portfolio.position

    def is_flat(self) -> bool:
        return self._portfolio.position == 0.0

    def is_long(self) -> bool:
        return self._portfolio.position > 0.0

    def is_short(self) -> bool:
        return self._portfolio.position < 0.0

    def cash(self) -> float:
        return self._portfolio.cash

    def equity(self) -> float:
        """Cash plus the position marked at this bar's close (on a perpetual
        ``cash`` is the free balance, so this is not the exchange's equity)."""
        p = self._portfolio
        return p.cash + p.position * self._bar.close

    def entry_price(self) -> float:
        """Average entry price of the open position (0 when flat)."""
        return self._portfolio.entry_price

    def stop_loss(self) -> float | None:
        return self._portfolio.stop_loss

    def take_profit(self) -> float | None:
        return self._portfolio.take_profit

    def open_orders(self) -> int:
        """Resting limit and stop entry orders."""
        return self._portfolio.open_orders

    def commission(self) -> float:
        return self._portfolio.commission

    def leverage(self) -> float:
        return self._portfolio.leverage

    def market(self) -> Market:
        """What the run trades: ``Market.SPOT`` unless the host runs a perpetual."""
        return self._portfolio.market

    def liquidation_price(self) -> float | None:
        """Liquidation price of the open perpetual position; None when flat or on spot."""
        return self._portfolio.liquidation_price

    def funding_rate(self) -> float | None:
        """The latest funding rate known (> 0: longs pay shorts); None on spot or unknown."""
        return self._portfolio.funding_rate

    def fill_count(self) -> int:
        """Fills on this bar (0 on most bars; a reversal makes two)."""
        return self._portfolio.fill_count if self._first else 0

    def last_fill(self) -> Fill | None:
        """The last fill on this bar, if any."""
        return self._portfolio.last_fill if self._first else None

    def pending_actions(self) -> list[Action]:
        """Actions placed so far on this bar (a copy)."""
        return list(self._actions)

    def submit(self, order: Order) -> None:
        self._actions.append(Action("submit", order))

    def buy_all(self) -> None:
        """Market buy with all the equity (reverses a short)."""
        self._actions.append(_BUY_ALL)

    def sell_all(self) -> None:
        """Market sell with all the equity (reverses a long into a short)."""
        self._actions.append(_SELL_ALL)

    def close_position(self) -> None:
        """Closes the position at the next bar's open."""
        self._actions.append(_CLOSE_POSITION)

    def cancel_orders(self) -> None:
        """Cancels every resting entry order."""
        self._actions.append(_CANCEL_ORDERS)

    def set_stop_loss(self, price: float | None) -> None:
        self._actions.append(Action("set_stop_loss", None, price))

    def set_take_profit(self, price: float | None) -> None:
        self._actions.append(Action("set_take_profit", None, price))
