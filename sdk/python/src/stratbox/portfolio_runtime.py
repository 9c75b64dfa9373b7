"""Glue between the generated bindings of world ``portfolio-plugin``
(``wit_world.exports.portfolio``, which defines its own copies of the
types it shares with ``strategy``) and a ``PortfolioStrategy``. Authors call
``stratbox.export``, which comes here for a portfolio strategy.

The host fills every order (the interface has no plans): each call walks
steps and returns after the first one with actions, reporting how many
steps it walked (``consumed``), so the next call's first step sees the
fills. As in ``runtime.py``, the bindings are imported lazily.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .params import Params
from .portfolio import PortfolioContext, PortfolioStrategy, Position, Step, SymbolAction, SymbolFill
from .runtime import _convert_action, _describe, _guard_sandbox, _params_from_wit, _refuse_init, _report
from .types import _CANCEL_ORDERS, _CLOSE_POSITION, Bar, FillReason, Market, Side

__all__ = ["export_portfolio"]

_NAN = math.nan
_FIELDS = ("open", "high", "low", "close", "volume")

# `wit_world.exports.portfolio`, once imported, twice: as the interface and
# as the module of its types (description, param, action, ...), which it
# defines itself (a `use` of `strategy` in the WIT would make every
# portfolio component import that interface).
_pw: Any = None


def _wit() -> tuple[Any, Any]:
    global _pw
    if _pw is None:
        from wit_world.exports import portfolio  # type: ignore[import-not-found,unused-ignore]

        _pw = portfolio
    return _pw, _pw


# A walker calls `on_step` for window steps start..end and returns the
# first one with actions, or -1. One is generated per set of columns sent
# (the same for every symbol), so the loop touches only those; the others
# stay NaN on the reused bars. A symbol has no bar at a step where its
# first column sent (open, which the host always sends) is NaN.
Walker = Callable[..., int]
_walkers: dict[tuple[tuple[str, ...], bool, bool], Walker] = {}


def _walker(fields: tuple[str, ...], has_ts: bool) -> Walker:
    track_close = "close" in fields
    key = (fields, has_ts, track_close)
    walker = _walkers.get(key)
    if walker is not None:
        return walker
    lines = [
        "def walk(on_step, step, ctx, actions, base, start, end, ts, sbars, cur, cols, last):",
        "    n = len(sbars)",
        "    for i in range(start, end):",
        "        index = base + i",
        f"        t = {'ts[i]' if has_ts else '0'}",
        "        step.index = index",
        "        step.ts = t",
        "        for k in range(n):",
    ]
    if fields:
        names = ", ".join(f"c_{f}" for f in fields)
        lines.append(f"            {names}, = cols[k]")
        lines.append(f"            x = c_{fields[0]}[i]")
        lines.append("            if x != x:")
        lines.append("                cur[k] = None")
        lines.append("                continue")
    lines.append("            b = sbars[k]")
    lines.append("            b.index = index")
    lines.append("            b.ts = t")
    for j, f in enumerate(fields):
        lines.append(f"            b.{f} = {'x' if j == 0 else f'c_{f}[i]'}")
    if track_close:
        lines.append("            last[k] = b.close")
    lines += [
        "            cur[k] = b",
        "        on_step(step, ctx)",
        "        if actions:",
        "            return i",
        "        ctx._first = False",
        "    return -1",
    ]
    namespace: dict[str, Any] = {}
    exec(compile("\n".join(lines) + "\n", f"<stratbox step walk {'/'.join(fields)}>", "exec"), namespace)
    made: Walker = namespace["walk"]
    _walkers[key] = made
    return made


class _PortfolioRuntime:
    def __init__(self, cls: type[PortfolioStrategy]) -> None:
        self.cls = cls
        self.strategy: PortfolioStrategy | None = None
        self.actions: list[SymbolAction] = []
        self.ctx = PortfolioContext((), self.actions)
        self.step = Step()
        self.sbars: list[Bar] = []
        self.first_index = 0
        self.len = 0
        self.ts: list[int] = []
        self.cols: list[tuple[list[float], ...]] = []
        self.walk: Walker = _walker((), False)
        # The WIT forms of the constant actions, by id() of the SDK's constant.
        self.constants: dict[int, Any] = {}
        self.reasons: dict[int, FillReason] = {}

    def describe(self) -> Any:
        _, t = _wit()
        return _describe(t, self.cls)

    def init(self, params: list[Any], symbols: list[str], market: Any) -> None:
        _, t = _wit()
        _guard_sandbox()
        values = _params_from_wit(t, params)
        ctx = PortfolioContext(symbols, self.actions)
        ctx._market = Market.LINEAR_PERPETUAL if market == t.Market.LINEAR_PERPETUAL else Market.SPOT
        self.ctx = ctx
        self.sbars = [Bar() for _ in symbols]
        self.step.bars = [None] * len(symbols)
        try:
            self.strategy = self.cls(Params(values), tuple(symbols))
        except BaseException as e:  # the run ends with the message
            _refuse_init(e)

    def push_bars(
        self,
        first_index: int,
        commission: float,
        leverage: float,
        slippage_bps: float,
        ts: list[int],
        bars: list[Any],
    ) -> None:
        ctx = self.ctx
        ctx._commission = commission
        ctx._leverage = leverage
        self.first_index = first_index
        length = len(ts)
        sent: set[str] = set()
        for b in bars:
            for f in _FIELDS:
                column = getattr(b, f)
                if column:
                    sent.add(f)
                    length = max(length, len(column))
        self.len = length
        fields = tuple(f for f in _FIELDS if f in sent)
        nan_column: list[float] = [_NAN] * length
        self.cols = [
            tuple(getattr(b, f) or nan_column for f in fields) for b in bars[: len(self.sbars)]
        ]
        while len(self.cols) < len(self.sbars):  # a symbol without columns: no bar anywhere
            self.cols.append(tuple(nan_column for _ in fields))
        for bar in self.sbars:
            for f in _FIELDS:
                if f not in sent:
                    setattr(bar, f, _NAN)
        self.ts = ts
        self.walk = _walker(fields, bool(ts))

    def run(self, account: Any, start: int, end: int) -> Any:
        strategy = self.strategy
        if strategy is None:
            raise RuntimeError("`run` called before a successful `init`")
        pw, t = _wit()
        ctx = self.ctx
        acct = ctx._account
        acct.cash = account.cash
        acct.equity = account.equity
        acct.positions = [
            Position(
                p.qty, p.entry_price, p.stop_loss, p.take_profit, p.open_orders,
                p.liquidation_price, p.funding_rate,
            )
            for p in account.positions
        ]
        while len(acct.positions) < len(self.sbars):
            acct.positions.append(Position())
        acct.fills = [self._fill_from_wit(t, f) for f in account.fills]
        # The host marked the account at the closes seen so far.
        ctx._ref = list(ctx._last)
        end = min(end, self.len)
        start = min(start, end)
        actions = self.actions
        actions.clear()
        hit = -1
        if start < end:
            ctx._first = True
            try:
                hit = self.walk(
                    strategy.on_step, self.step, ctx, actions, self.first_index, start, end,
                    self.ts, self.sbars, self.step.bars, self.cols, ctx._last,
                )
            except BaseException as e:
                _report(e)
                raise
        if hit < 0:
            return pw.Step(end - start, [])
        converted = [pw.SymbolAction(a.symbol, self._action_to_wit(t, a)) for a in actions]
        return pw.Step(hit + 1 - start, converted)

    def _action_to_wit(self, t: Any, a: SymbolAction) -> Any:
        action = a.action
        if action is _CLOSE_POSITION or action is _CANCEL_ORDERS:
            converted = self.constants.get(id(action))
            if converted is None:
                converted = self.constants[id(action)] = _convert_action(t, action)
            return converted
        return _convert_action(t, action)

    def _fill_from_wit(self, t: Any, f: Any) -> SymbolFill:
        reasons = self.reasons
        if not reasons:
            for name in ("MARKET", "LIMIT", "STOP", "STOP_LOSS", "TAKE_PROFIT", "CLOSE_POSITION"):
                reasons[id(getattr(t.FillReason, name))] = FillReason[name]
        side = Side.BUY if f.side is t.Side.BUY else Side.SELL
        return SymbolFill(f.symbol, side, f.qty, f.price, reasons[id(f.reason)])


def export_portfolio(cls: type[PortfolioStrategy]) -> type:
    """The class ``componentize-py`` exports for the ``portfolio``
    interface: ``Portfolio = stratbox.export(MyPortfolioStrategy)`` in
    ``app.py`` (``stratbox.export`` calls this for a ``PortfolioStrategy``)."""
    rt = _PortfolioRuntime(cls)

    class Export:
        def describe(self) -> Any:
            return rt.describe()

        def init(self, params: list[Any], symbols: list[str], market: Any) -> None:
            rt.init(params, symbols, market)

        def push_bars(
            self,
            first_index: int,
            commission: float,
            leverage: float,
            slippage_bps: float,
            ts: list[int],
            bars: list[Any],
        ) -> None:
            rt.push_bars(first_index, commission, leverage, slippage_bps, ts, bars)

        def run(self, account: Any, start: int, end: int) -> Any:
            return rt.run(account, start, end)

    Export.__name__ = "Portfolio"
    Export.__qualname__ = "Portfolio"
    Export.__module__ = cls.__module__
    return Export

