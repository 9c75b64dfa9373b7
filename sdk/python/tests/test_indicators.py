"""Indicators by hand and against independent batch forms (the Rust SDK's
tests, ported)."""

from __future__ import annotations

import math

from stratbox import (
    Atr,
    Bands,
    BollingerBands,
    Ema,
    Macd,
    MacdValue,
    Rsi,
    Sma,
    crossed_above,
    crossed_below,
)

MASK = (1 << 64) - 1


def series(length: int, seed: int) -> list[float]:
    """The Rust tests' deterministic random walk (xorshift64)."""
    s = seed
    price = 100.0
    out = []
    for _ in range(length):
        s ^= (s << 13) & MASK
        s ^= s >> 7
        s ^= (s << 17) & MASK
        u = float(s >> 11) / float(1 << 53)
        price += (u - 0.5) * 3.7
        out.append(price)
    return out


def bars(length: int, seed: int) -> list[tuple[float, float, float]]:
    closes = series(length, seed)
    a = series(length, seed ^ 0x9E3779B97F4A7C15)
    b = series(length, (seed * 31 + 7) & MASK)
    return [
        (c + abs(x - 100.0) * 0.1 + 0.01, c - (abs(y - 100.0) * 0.1 + 0.01), c)
        for c, x, y in zip(closes, a, b)
    ]


def batch_ema(xs: list[float], n: int) -> list[float]:
    alpha = 2.0 / (float(n) + 1.0)
    out: list[float] = []
    for x in xs:
        out.append(x if not out else alpha * x + (1.0 - alpha) * out[-1])
    return out


def test_ema_by_hand() -> None:
    # EMA(3): alpha 0.5. 2 -> 2; 4 -> 3; 8 -> 5.5.
    e = Ema(3)
    assert e.value() is None and not e.is_ready()
    assert e.alpha() == 0.5
    assert e.update(2.0) == 2.0
    assert e.is_ready()
    assert e.update(4.0) == 3.0
    assert e.update(8.0) == 5.5
    assert e.value() == 5.5


def test_ema_matches_batch_bitwise() -> None:
    for n in (1, 2, 5, 12, 26, 200):
        xs = series(300, 5 + n)
        e = Ema(n)
        assert [e.update(x) for x in xs] == batch_ema(xs, n)


def test_ema_period_zero_is_one() -> None:
    e = Ema(0)
    assert e.period() == 1
    assert e.update(3.0) == 3.0
    assert e.update(7.0) == 7.0


def test_sma_by_hand() -> None:
    s = Sma(3)
    assert s.update(1.0) is None
    assert s.update(2.0) is None
    assert not s.is_ready() and s.value() is None
    assert s.update(4.0) == 7.0 / 3.0
    assert s.is_ready()
    assert s.update(8.0) == 14.0 / 3.0
    assert s.update(16.0) == 28.0 / 3.0
    assert s.value() == 28.0 / 3.0


def test_sma_sums_oldest_to_newest_not_compensated() -> None:
    # Plain left-to-right doubles: (1e16 + 1.0) + -1e16 == 0.0, while a
    # compensated sum (Python 3.12's sum(), math.fsum) would give 1.0.
    s = Sma(3)
    s.update(1e16)
    s.update(1.0)
    assert s.update(-1e16) == 0.0


def test_sma_matches_batch_bitwise() -> None:
    for n in (1, 2, 3, 7, 20, 64):
        xs = series(250, 7 * n + 1)
        s = Sma(n)
        got = [s.update(x) for x in xs]
        for i, g in enumerate(got):
            if i + 1 < n:
                assert g is None
            else:
                acc = 0.0
                for v in xs[i + 1 - n : i + 1]:
                    acc += v
                assert g == acc / float(n)


def test_sma_period_zero_is_one() -> None:
    s = Sma(0)
    assert s.period() == 1
    assert s.update(2.5) == 2.5
    assert s.update(-4.0) == -4.0


def test_rsi_by_hand() -> None:
    r = Rsi(2)
    assert r.update(1.0) is None
    assert r.update(2.0) is None
    assert not r.is_ready() and r.value() is None
    assert r.update(1.5) == 100.0 - 100.0 / 3.0
    assert r.is_ready()
    assert r.update(2.5) == 100.0 - 100.0 / 7.0
    assert r.value() == 100.0 - 100.0 / 7.0


def test_rsi_extremes() -> None:
    up, down, flat = Rsi(3), Rsi(3), Rsi(3)
    for i in range(20):
        x = 10.0 + float(i) * 0.3
        u, d, f = up.update(x), down.update(-x), flat.update(4.0)
        if i < 3:
            assert (u, d, f) == (None, None, None)
        else:
            assert (u, d, f) == (100.0, 0.0, 50.0)


def test_rsi_period_zero_is_one() -> None:
    r = Rsi(0)
    assert r.period() == 1
    assert r.update(5.0) is None
    assert r.update(6.0) == 100.0
    assert r.update(4.0) == 0.0
    assert r.update(4.0) == 50.0


def test_rsi_nan_change_is_neither_gain_nor_loss() -> None:
    r = Rsi(1)
    r.update(1.0)
    assert r.update(math.nan) == 50.0


def test_atr_by_hand() -> None:
    a = Atr(2)
    assert a.update(10.0, 8.0, 9.0) is None
    assert not a.is_ready() and a.value() is None
    assert a.update(11.0, 9.0, 10.0) == 2.0
    assert a.is_ready()
    assert a.update(13.0, 10.0, 12.0) == 2.5
    assert a.update(9.0, 8.0, 8.5) == 3.25
    assert a.value() == 3.25


def test_atr_warmup_length() -> None:
    for n in (1, 2, 5, 14, 40):
        a = Atr(n)
        got = [a.update(h, lo, c) for h, lo, c in bars(300, 77 + n)]
        warm = 0
        for g in got:
            if g is not None:
                break
            warm += 1
        assert warm == n - 1


def test_atr_period_zero_is_one_and_nan_terms_are_skipped() -> None:
    a = Atr(0)
    assert a.period() == 1
    assert a.update(10.0, 8.0, 9.0) == 2.0
    assert a.update(12.0, 11.0, 11.5) == 3.0
    # A NaN low: |low - pc| and high - low are NaN; Rust's max skips them.
    assert a.update(12.5, math.nan, 12.0) == 1.0


def test_bollinger_by_hand() -> None:
    xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    bb = BollingerBands(8, 2.0)
    for x in xs[:7]:
        assert bb.update(x) is None
        assert not bb.is_ready()
    want = Bands(upper=9.0, middle=5.0, lower=1.0)
    assert bb.update(xs[7]) == want
    assert bb.is_ready() and bb.value() == want
    b = bb.update(4.0)
    assert b is not None and b.middle == 5.25


def test_bollinger_middle_is_the_sma() -> None:
    for n, k in ((1, 2.0), (2, 1.5), (5, 2.0), (20, 2.0), (33, 2.5)):
        xs = series(250, 3 + n)
        bb, s = BollingerBands(n, k), Sma(n)
        for x in xs:
            b, m = bb.update(x), s.update(x)
            assert (None if b is None else b.middle) == m


def test_bollinger_period_zero_is_one() -> None:
    bb = BollingerBands(0, 2.0)
    assert bb.period() == 1 and bb.k() == 2.0
    assert bb.update(3.25) == Bands(3.25, 3.25, 3.25)


def test_macd_by_hand() -> None:
    m = Macd(1, 3, 3)
    assert m.value() is None and not m.is_ready()
    assert m.update(1.0) == MacdValue(0.0, 0.0, 0.0)
    assert m.is_ready()
    assert m.update(2.0) == MacdValue(0.5, 0.25, 0.25)
    assert m.update(3.0) == MacdValue(0.75, 0.5, 0.25)
    assert m.value() == MacdValue(0.75, 0.5, 0.25)


def test_macd_matches_batch_bitwise() -> None:
    assert Macd.default_periods() == (12, 26, 9)
    for f, s, g in ((12, 26, 9), (3, 10, 16), (1, 2, 1)):
        xs = series(300, 11 + s)
        fast, slow = batch_ema(xs, f), batch_ema(xs, s)
        macd = [a - b for a, b in zip(fast, slow)]
        signal = batch_ema(macd, g)
        m = Macd(f, s, g)
        for i, x in enumerate(xs):
            v = m.update(x)
            assert (v.macd, v.signal, v.histogram) == (macd[i], signal[i], macd[i] - signal[i])


def test_macd_period_zero_is_one() -> None:
    m = Macd(0, 0, 0)
    assert m.periods() == (1, 1, 1)
    for x in (1.0, 5.0, -2.0):
        assert m.update(x) == MacdValue(0.0, 0.0, 0.0)


def test_crosses() -> None:
    assert crossed_above(1.0, 2.0, 3.0, 2.0)
    assert not crossed_above(2.0, 2.0, 3.0, 2.0)
    assert not crossed_above(1.0, 2.0, 2.0, 2.0)
    assert not crossed_above(3.0, 2.0, 4.0, 2.0)
    assert not crossed_above(math.nan, 2.0, 3.0, 2.0)
    assert crossed_below(3.0, 2.0, 1.0, 2.0)
    assert not crossed_below(2.0, 2.0, 1.0, 2.0)
    assert not crossed_below(3.0, 2.0, 2.0, 2.0)
    assert not crossed_below(1.0, 2.0, 0.0, 2.0)
    assert not crossed_below(3.0, 2.0, 1.0, math.nan)


def test_huge_period_does_not_allocate_up_front() -> None:
    s = Sma(1 << 60)
    assert s.update(1.0) is None
    bb = BollingerBands(1 << 59, 2.0)
    assert bb.update(1.0) is None
