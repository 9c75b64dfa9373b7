"""Glue between the component's generated bindings (``wit_world``) and a
``Strategy``. Authors only call ``export``.

The bindings exist only inside ``componentize-py``'s build, so they are
imported lazily, on the first call from the host: a native test imports an
``app.py`` (and calls ``export``) without them.

This runtime never fills orders in the guest (the contract's optional
planning): every bar with actions goes back to the host, which fills every
order. ``take-planned`` is always empty.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from .context import _BUY_ALL, _SELL_ALL, Context
from .log import Level, log
from .params import Column, ParamType, ParamValue, Params
from .portfolio import PortfolioStrategy
from .strategy import Strategy
from .types import _CANCEL_ORDERS, _CLOSE_POSITION, Action, Bar, Fill, FillReason, Market, Portfolio, Side

__all__ = ["export"]

_NAN = math.nan

# The generated module `wit_world.exports.strategy`, once imported.
_w: Any = None


def _wit() -> Any:
    global _w
    if _w is None:
        from wit_world.exports import strategy  # type: ignore[import-not-found,unused-ignore]

        _w = strategy
    return _w


# A walker calls `on_bar` for window bars start..end and returns the first
# one with actions, or -1. One is generated per set of columns the host
# sends, so the loop only touches those (the others stay NaN / 0 on the
# reused Bar) and binds everything to locals.
Walker = Callable[..., int]
_walkers: dict[tuple[str, ...], Walker] = {}


def _walker(fields: tuple[str, ...]) -> Walker:
    walker = _walkers.get(fields)
    if walker is None:
        params = "".join(f", c_{f}" for f in fields)
        body = "".join(f"        bar.{f} = c_{f}[i]\n" for f in fields)
        source = (
            f"def walk(on_bar, bar, ctx, actions, base, start, end{params}):\n"
            f"    for i in range(start, end):\n"
            f"        bar.index = base + i\n"
            f"{body}"
            f"        on_bar(bar, ctx)\n"
            f"        if actions:\n"
            f"            return i\n"
            f"    return -1\n"
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<stratbox walk {'/'.join(fields)}>", "exec"), namespace)
        walker = namespace["walk"]
        _walkers[fields] = walker
    return walker


_FIELDS = ("ts", "open", "high", "low", "close", "volume")


class _Runtime:
    def __init__(self, cls: type[Strategy]) -> None:
        self.cls = cls
        self.strategy: Strategy | None = None
        self.bar = Bar()
        self.portfolio = Portfolio(leverage=1.0)
        self.actions: list[Action] = []
        self.ctx = Context(self.portfolio, self.bar, True, self.actions)
        self.next = 0
        self.first_index = 0
        self.len = 0
        self.walk: Walker = _walker(())
        self.columns: tuple[list[Any], ...] = ()

    def describe(self) -> Any:
        return _describe(_wit(), self.cls)

    def init(self, params: list[Any]) -> None:
        w = _wit()
        _guard_sandbox()
        values = _params_from_wit(w, params)
        try:
            self.strategy = self.cls(Params(values))
        except BaseException as e:  # the run ends with the message
            _refuse_init(e)

    def push_bars(
        self,
        first_index: int,
        commission: float,
        leverage: float,
        slippage_bps: float,
        ts: list[int],
        open: list[float],
        high: list[float],
        low: list[float],
        close: list[float],
        volume: list[float],
    ) -> None:
        self.portfolio.commission = commission
        self.portfolio.leverage = leverage
        self.first_index = first_index
        columns: tuple[list[Any], ...] = (ts, open, high, low, close, volume)
        self.len = max(len(c) for c in columns)
        bar = self.bar
        fields: list[str] = []
        sent: list[list[Any]] = []
        for name, column in zip(_FIELDS, columns):
            if column:
                fields.append(name)
                sent.append(column)
            else:
                setattr(bar, name, 0 if name == "ts" else _NAN)
        self.walk = _walker(tuple(fields))
        self.columns = tuple(sent)

    def set_market_state(self, state: Any) -> None:
        w = _wit()
        p = self.portfolio
        p.market = (
            Market.LINEAR_PERPETUAL
            if state.market == w.Market.LINEAR_PERPETUAL
            else Market.SPOT
        )
        p.liquidation_price = state.liquidation_price
        p.funding_rate = state.funding_rate

    def run(self, portfolio: Any, start: int, end: int) -> Any:
        strategy = self.strategy
        if strategy is None:
            raise RuntimeError("`run` called before a successful `init`")
        p = self.portfolio
        p.cash = portfolio.cash
        p.position = portfolio.position
        p.entry_price = portfolio.entry_price
        p.stop_loss = portfolio.stop_loss
        p.take_profit = portfolio.take_profit
        p.open_orders = portfolio.open_orders
        p.fill_count = portfolio.fill_count
        f = portfolio.last_fill
        p.last_fill = None if f is None else _fill_from_wit(_wit(), f)
        end = min(end, self.len)
        start = min(start, end)
        actions = self.actions
        actions.clear()
        self.next = 0
        hit = -1
        if start < end:
            ctx = self.ctx
            walk = self.walk
            on_bar = strategy.on_bar
            try:
                # Fills show on the first bar of a call only.
                ctx._first = True
                hit = walk(
                    on_bar, self.bar, ctx, actions, self.first_index, start, start + 1,
                    *self.columns,
                )
                if hit < 0:
                    ctx._first = False
                    hit = walk(
                        on_bar, self.bar, ctx, actions, self.first_index, start + 1, end,
                        *self.columns,
                    )
            except BaseException as e:
                _report(e)
                raise
        w = _wit()
        if hit < 0:
            return w.Step(end - start, None, 0, 0)
        self.next = 1
        return w.Step(hit + 1 - start, _action_to_wit(w, actions[0]), len(actions) - 1, 0)

    def next_action(self) -> Any:
        i = self.next
        if i >= len(self.actions):
            return None
        self.next = i + 1
        return _action_to_wit(_wit(), self.actions[i])

    def take_planned(self) -> Any:
        w = _wit()
        return w.Plan([], [])


def _describe(w: Any, cls: type[Strategy] | type[PortfolioStrategy]) -> Any:
    """``cls.describe()`` as the WIT ``description`` of module ``w``."""
    try:
        d = cls.describe()
    except BaseException as e:
        _report(e)
        raise
    kinds = {
        ParamType.INT: w.ParamType.INT,
        ParamType.FLOAT: w.ParamType.FLOAT,
        ParamType.BOOL: w.ParamType.BOOL,
    }
    columns = {c: getattr(w.Column, c.name) for c in Column}
    return w.Description(
        name=d.name,
        version=d.version,
        summary=d.summary,
        params=[
            w.ParamSpec(
                name=p.name,
                kind=kinds[p.kind],
                default=_param_value_to_wit(w, p.kind, p.default),
                min=p.min,
                max=p.max,
                step=p.step,
                help=p.help,
            )
            for p in d.params
        ],
        columns=[columns[c] for c in d.columns],
    )


def _params_from_wit(w: Any, params: list[Any]) -> list[tuple[str, ParamValue]]:
    values: list[tuple[str, ParamValue]] = []
    for p in params:
        v = p.value
        if isinstance(v, w.ParamValue_Int):
            values.append((p.name, int(v.value)))
        elif isinstance(v, w.ParamValue_Float):
            values.append((p.name, float(v.value)))
        else:
            values.append((p.name, bool(v.value)))
    return values


def _refuse_init(e: BaseException) -> None:
    """A strategy that refused its params: the WIT ``init`` returns the
    error (its message), which ends the run."""
    from componentize_py_types import Err  # type: ignore[import-not-found,unused-ignore]

    message = str(e) or type(e).__name__
    raise Err(message) from None


def _report(e: BaseException) -> None:
    """An exception traps the guest and the host sees only the trap, so it
    goes to the run's log first: the traceback, then a ``panic: `` line,
    which the host names in the run's error (as the Rust SDK's panic hook).
    Formatted without source lines: reading them would touch the
    filesystem, which the sandbox does not have."""
    try:
        frames: list[str] = []
        where = ""
        tb = e.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            # The innermost frame outside the SDK names the culprit.
            if not where or "/stratbox/" not in code.co_filename:
                where = f"{code.co_filename}:{tb.tb_lineno} in {code.co_name}"
            frames.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
            tb = tb.tb_next
        what = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        if len(frames) > 40:
            frames = frames[:20] + [f"  ... {len(frames) - 40} more frames ..."] + frames[-20:]
        log(Level.ERROR, "Traceback (most recent call last):\n" + "\n".join(frames) + "\n" + what)
        log(Level.ERROR, f"panic: {what}" + (f" (at {where})" if where else ""))
    except BaseException:
        pass


def _refuse(what: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(f"{what} is not available in the stratbox sandbox")

    return refused


_guarded = False


def _guard_sandbox() -> None:
    """Inside the component, WASI is stubbed: a file open, a clock read or
    entropy would trap with a bare ``unreachable``. These raise a
    ``PermissionError`` naming the call instead, so the run's error says
    what the strategy tried (and the strategy may catch it)."""
    global _guarded
    if _guarded or sys.platform != "wasi":
        return
    _guarded = True
    import builtins
    import io
    import os
    import time

    builtins.open = io.open = _refuse("open (the filesystem)")
    os.open = _refuse("os.open (the filesystem)")
    os.urandom = _refuse("os.urandom (entropy)")
    for name in (
        "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
        "perf_counter_ns", "process_time", "process_time_ns", "thread_time",
        "thread_time_ns", "sleep",
    ):
        if hasattr(time, name):
            setattr(time, name, _refuse(f"time.{name} (the clock)"))


def _param_value_to_wit(w: Any, kind: ParamType, value: ParamValue) -> Any:
    if kind is ParamType.INT:
        return w.ParamValue_Int(int(value))
    if kind is ParamType.FLOAT:
        return w.ParamValue_Float(float(value))
    return w.ParamValue_Bool(bool(value))


# Keyed by id() of the wit enum members: an Enum's own hash is Python code.
_reasons: dict[int, FillReason] = {}
# The wit form of the constant actions (buy_all, sell_all, close_position,
# cancel_orders), by id() of the SDK's constant: built once, not per trade.
_constants: dict[int, Any] = {}


def _fill_from_wit(w: Any, f: Any) -> Fill:
    if not _reasons:
        for name in ("MARKET", "LIMIT", "STOP", "STOP_LOSS", "TAKE_PROFIT", "CLOSE_POSITION"):
            _reasons[id(getattr(w.FillReason, name))] = FillReason[name]
    side = Side.BUY if f.side is w.Side.BUY else Side.SELL
    return Fill(side, f.qty, f.price, _reasons[id(f.reason)])


def _action_to_wit(w: Any, a: Action) -> Any:
    if not _constants:
        for const in (_BUY_ALL, _SELL_ALL, _CLOSE_POSITION, _CANCEL_ORDERS):
            _constants[id(const)] = _convert_action(w, const)
    converted = _constants.get(id(a))
    if converted is None:
        converted = _convert_action(w, a)
    return converted


def _convert_action(w: Any, a: Action) -> Any:
    kind = a.kind
    if kind == "submit":
        o = a.order
        assert o is not None
        q = o.quantity
        quantity = (
            w.Quantity_Equity(q.value) if q.kind == "equity" else w.Quantity_Units(q.value)
        )
        k = o.kind
        if k.type == "market":
            order_kind = w.OrderKind_Market()
        elif k.type == "limit":
            order_kind = w.OrderKind_Limit(k.price)
        else:
            order_kind = w.OrderKind_Stop(k.price)
        side = w.Side.BUY if o.side is Side.BUY else w.Side.SELL
        return w.Action_Submit(w.Order(side, quantity, order_kind, o.stop_loss, o.take_profit))
    if kind == "close_position":
        return w.Action_ClosePosition()
    if kind == "cancel_orders":
        return w.Action_CancelOrders()
    if kind == "set_stop_loss":
        return w.Action_SetStopLoss(a.price)
    return w.Action_SetTakeProfit(a.price)


def export(cls: type[Strategy] | type[PortfolioStrategy]) -> type:
    """The class ``componentize-py`` exports: for a ``Strategy``, the
    ``strategy`` interface (world ``plugin``); for a ``PortfolioStrategy``,
    the ``portfolio`` interface (world ``portfolio-plugin``).

    An ``app.py`` ends with ``Strategy = export(MyStrategy)``, or for a
    portfolio strategy ``Portfolio = export(MyPortfolioStrategy)``: the
    build looks up ``app.Strategy`` or ``app.Portfolio`` (the interface's
    name). It holds no state of its own (one runtime per module), so
    however often the bindings instantiate it is fine.
    """
    if isinstance(cls, type) and issubclass(cls, PortfolioStrategy):
        from .portfolio_runtime import export_portfolio

        return export_portfolio(cls)
    rt = _Runtime(cls)

    class Export:
        def describe(self) -> Any:
            return rt.describe()

        def init(self, params: list[Any]) -> None:
            rt.init(params)

        def push_bars(
            self,
            first_index: int,
            commission: float,
            leverage: float,
            slippage_bps: float,
            ts: list[int],
            open: list[float],
            high: list[float],
            low: list[float],
            close: list[float],
            volume: list[float],
        ) -> None:
            rt.push_bars(
                first_index, commission, leverage, slippage_bps, ts, open, high, low, close, volume
            )

        def run(self, portfolio: Any, start: int, end: int) -> Any:
            return rt.run(portfolio, start, end)

        def next_action(self) -> Any:
            return rt.next_action()

        def take_planned(self) -> Any:
            return rt.take_planned()

        def set_market_state(self, state: Any) -> None:
            rt.set_market_state(state)

    Export.__name__ = "Strategy"
    Export.__qualname__ = "Strategy"
    Export.__module__ = cls.__module__
    return Export
