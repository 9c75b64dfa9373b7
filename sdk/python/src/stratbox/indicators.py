"""Streaming technical indicators: feed one value (or bar) at a time.

The same indicators as the Rust SDK (``stratbox_sdk::indicators``), with
the same floating-point expressions in the same order, so a strategy gives
bit-identical numbers in either language (Python floats are IEEE-754
doubles and CPython never fuses ``a * b + c``).

* ``Xxx(period)`` builds one; a period below 1 is treated as 1.
* ``update(...)`` consumes the next value and returns None while the
  indicator warms up, the value afterwards (``Ema`` and ``Macd`` are ready
  from the first value, so theirs never return None).
* ``value()`` is the value of the last ``update``; ``is_ready()`` tells
  whether the warm-up is over; ``period()`` the effective period.

Window sums are accumulated as ``s = 0.0; for v in window: s += v``,
oldest to newest: never with ``sum()`` (CPython 3.12+ compensates its
rounding) or ``math.fsum``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = [
    "Atr",
    "Bands",
    "BollingerBands",
    "Ema",
    "Macd",
    "MacdValue",
    "Rsi",
    "Sma",
    "crossed_above",
    "crossed_below",
]


def _period(n: int) -> int:
    return n if n >= 1 else 1


def _fmax(a: float, b: float) -> float:
    """Rust's ``f64::max``: a NaN operand is ignored."""
    if a != a:
        return b
    if b != b:
        return a
    return a if a >= b else b


class Ema:
    """Exponential moving average.

    ``alpha = 2.0 / (n + 1.0)``; the first update sets ``ema = x``, every
    later one ``ema = alpha * x + (1.0 - alpha) * ema``. Ready from the
    first value.
    """

    __slots__ = ("_period", "_alpha", "_beta", "_value")

    def __init__(self, period: int) -> None:
        self._period = _period(period)
        self._alpha = 2.0 / (float(self._period) + 1.0)
        # (1.0 - alpha) is the same double every time: computed once.
        self._beta = 1.0 - self._alpha
        self._value: float | None = None

    def update(self, x: float) -> float:
        """Feeds ``x``; returns the new EMA (never None: seeded with ``x``)."""
        v = self._value
        if v is None:
            v = x
        else:
            v = self._alpha * x + self._beta * v
        self._value = v
        return v

    def value(self) -> float | None:
        return self._value

    def is_ready(self) -> bool:
        return self._value is not None

    def period(self) -> int:
        return self._period

    def alpha(self) -> float:
        return self._alpha


class Sma:
    """Simple moving average of the last ``n`` values: the window is re-summed
    oldest to newest on every update, then divided by ``n``. None until ``n``
    values have been seen."""

    __slots__ = ("_period", "_n", "_window", "_value")

    def __init__(self, period: int) -> None:
        self._period = _period(period)
        self._n = float(self._period)
        self._window: deque[float] = deque(maxlen=self._period)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        w = self._window
        w.append(x)
        if len(w) == self._period:
            s = 0.0
            for v in w:
                s += v
            self._value = s / self._n
        return self._value

    def value(self) -> float | None:
        return self._value

    def is_ready(self) -> bool:
        return self._value is not None

    def period(self) -> int:
        return self._period


class Rsi:
    """Wilder's relative strength index.

    Per change ``d = x - prev``: ``gain = d if d > 0 else 0``, ``loss = -d if
    d < 0 else 0``. The first averages are the means of the first ``n`` gains
    and losses; then ``avg = (avg * (n - 1) + current) / n``.
    ``rsi = 100 - 100 / (1 + avg_gain / avg_loss)``, 100 when ``avg_loss`` is
    0 (50 when both are). None until ``n + 1`` prices have been seen.
    """

    __slots__ = ("_period", "_n", "_n1", "_prev", "_changes", "_gain", "_loss", "_value")

    def __init__(self, period: int) -> None:
        self._period = _period(period)
        self._n = float(self._period)
        self._n1 = float(self._period - 1)
        self._prev: float | None = None
        self._changes = 0
        self._gain = 0.0
        self._loss = 0.0
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        prev = self._prev
        self._prev = x
        if prev is None:
            return None
        d = x - prev
        gain = d if d > 0.0 else 0.0
        loss = -d if d < 0.0 else 0.0
        n = self._n
        if self._changes < self._period:
            self._gain += gain
            self._loss += loss
            self._changes += 1
            if self._changes < self._period:
                return None
            self._gain /= n
            self._loss /= n
        else:
            n1 = self._n1
            self._gain = (self._gain * n1 + gain) / n
            self._loss = (self._loss * n1 + loss) / n
        g = self._gain
        lo = self._loss
        if lo == 0.0:
            value = 50.0 if g == 0.0 else 100.0
        else:
            value = 100.0 - 100.0 / (1.0 + g / lo)
        self._value = value
        return value

    def value(self) -> float | None:
        return self._value

    def is_ready(self) -> bool:
        return self._value is not None

    def period(self) -> int:
        return self._period


class Atr:
    """Wilder's average true range.

    ``tr = max(high - low, |high - prev_close|, |low - prev_close|)`` (``high -
    low`` on the first bar; a NaN term is skipped, as Rust's ``f64::max``
    does). The first ATR is the mean of the first ``n`` true ranges, then
    ``atr = (atr * (n - 1) + tr) / n``. None until ``n`` bars have been seen.
    """

    __slots__ = ("_period", "_n", "_n1", "_prev_close", "_bars", "_acc", "_value")

    def __init__(self, period: int) -> None:
        self._period = _period(period)
        self._n = float(self._period)
        self._n1 = float(self._period - 1)
        self._prev_close: float | None = None
        self._bars = 0
        self._acc = 0.0
        self._value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        pc = self._prev_close
        self._prev_close = close
        if pc is None:
            tr = high - low
        else:
            tr = _fmax(_fmax(high - low, abs(high - pc)), abs(low - pc))
        if self._bars < self._period:
            self._acc += tr
            self._bars += 1
            if self._bars < self._period:
                return None
            self._acc /= self._n
        else:
            self._acc = (self._acc * self._n1 + tr) / self._n
        self._value = self._acc
        return self._acc

    def value(self) -> float | None:
        return self._value

    def is_ready(self) -> bool:
        return self._value is not None

    def period(self) -> int:
        return self._period


@dataclass(frozen=True, slots=True)
class Bands:
    """Output of ``BollingerBands``."""

    upper: float
    """``middle + k * std``."""
    middle: float
    """The SMA of the window."""
    lower: float
    """``middle - k * std``."""


class BollingerBands:
    """Bollinger bands over the last ``n`` values.

    ``middle`` is the ``Sma`` form; the population variance is summed in a
    second pass (``d = v - middle; var += d * d``), ``std = sqrt(var / n)``,
    ``upper = middle + k * std``, ``lower = middle - k * std``. None until
    ``n`` values have been seen.
    """

    __slots__ = ("_period", "_n", "_k", "_window", "_value")

    def __init__(self, period: int, k: float) -> None:
        self._period = _period(period)
        self._n = float(self._period)
        self._k = k
        self._window: deque[float] = deque(maxlen=self._period)
        self._value: Bands | None = None

    def update(self, x: float) -> Bands | None:
        w = self._window
        w.append(x)
        if len(w) == self._period:
            n = self._n
            s = 0.0
            for v in w:
                s += v
            middle = s / n
            var = 0.0
            for v in w:
                d = v - middle
                var += d * d
            std = math.sqrt(var / n)
            k = self._k
            self._value = Bands(middle + k * std, middle, middle - k * std)
        return self._value

    def value(self) -> Bands | None:
        return self._value

    def is_ready(self) -> bool:
        return self._value is not None

    def period(self) -> int:
        return self._period

    def k(self) -> float:
        return self._k


@dataclass(frozen=True, slots=True)
class MacdValue:
    """Output of ``Macd``."""

    macd: float
    """``ema_fast - ema_slow``."""
    signal: float
    """``EMA(signal)`` of ``macd``."""
    histogram: float
    """``macd - signal``."""


class Macd:
    """Moving average convergence/divergence: ``macd = ema_fast(x) -
    ema_slow(x)``, ``signal = ema_signal(macd)``, ``histogram = macd -
    signal``. Ready from the first update (all zeros)."""

    __slots__ = ("_fast", "_slow", "_signal", "_value")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self._fast = Ema(fast)
        self._slow = Ema(slow)
        self._signal = Ema(signal)
        self._value: MacdValue | None = None

    @staticmethod
    def default_periods() -> tuple[int, int, int]:
        """The conventional ``(fast, slow, signal)`` periods: ``(12, 26, 9)``."""
        return (12, 26, 9)

    def update(self, x: float) -> MacdValue:
        """Feeds ``x``; returns the new MACD (never None)."""
        macd = self._fast.update(x) - self._slow.update(x)
        signal = self._signal.update(macd)
        value = MacdValue(macd, signal, macd - signal)
        self._value = value
        return value

    def value(self) -> MacdValue | None:
        return self._value

    def is_ready(self) -> bool:
        return self._value is not None

    def periods(self) -> tuple[int, int, int]:
        return (self._fast.period(), self._slow.period(), self._signal.period())


def crossed_above(prev_fast: float, prev_slow: float, fast: float, slow: float) -> bool:
    """``prev_fast < prev_slow and fast > slow`` (strict; any NaN gives False)."""
    return prev_fast < prev_slow and fast > slow


def crossed_below(prev_fast: float, prev_slow: float, fast: float, slow: float) -> bool:
    """``prev_fast > prev_slow and fast < slow`` (strict; any NaN gives False)."""
    return prev_fast > prev_slow and fast < slow
