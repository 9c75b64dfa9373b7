"""The indicators against golden vectors generated from the Rust SDK's
indicators (sdk/vectors/indicators.json): every value must be equal bit
for bit."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from stratbox import Atr, BollingerBands, Ema, Macd, Rsi, Sma

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "indicators.json"


def load() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.skip(f"golden vectors absent: {VECTORS} (generated from the Rust indicators)")
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def bits(x: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", x))[0])


def same(got: float, want: float) -> bool:
    """Equal as IEEE values (``==``), and also the same bits (so ``-0.0`` vs
    ``0.0`` would show); NaN only matches NaN."""
    if math.isnan(want):
        return math.isnan(got)
    return got == want and bits(got) == bits(want)


def outputs(case: dict[str, Any], series: dict[str, list[float]]) -> list[Any]:
    kind = case["indicator"]
    args = case["args"]
    close = series["close"]
    if kind == "ema":
        e = Ema(int(args[0]))
        return [e.update(x) for x in close]
    if kind == "sma":
        s = Sma(int(args[0]))
        return [s.update(x) for x in close]
    if kind == "rsi":
        r = Rsi(int(args[0]))
        return [r.update(x) for x in close]
    if kind == "atr":
        a = Atr(int(args[0]))
        return [a.update(h, lo, c) for h, lo, c in zip(series["high"], series["low"], close)]
    if kind == "bollinger":
        b = BollingerBands(int(args[0]), float(args[1]))
        out: list[Any] = []
        for x in close:
            v = b.update(x)
            out.append(None if v is None else {"upper": v.upper, "middle": v.middle, "lower": v.lower})
        return out
    if kind == "macd":
        m = Macd(int(args[0]), int(args[1]), int(args[2]))
        out = []
        for x in close:
            mv = m.update(x)
            out.append({"macd": mv.macd, "signal": mv.signal, "histogram": mv.histogram})
        return out
    raise AssertionError(f"unknown indicator {kind}")


def test_every_case_is_bit_identical() -> None:
    data = load()
    series = data["series"]
    assert data["cases"], "no cases in the vectors"
    checked = 0
    for case in data["cases"]:
        got = outputs(case, series)
        want = case["output"]
        label = f"{case['indicator']}{tuple(case['args'])}"
        assert len(got) == len(want), label
        for i, (g, w) in enumerate(zip(got, want)):
            if w is None:
                assert g is None, f"{label} bar {i}: want None, got {g}"
            elif isinstance(w, dict):
                assert isinstance(g, dict), f"{label} bar {i}: want {w}, got {g}"
                for key, wv in w.items():
                    assert same(g[key], float(wv)), f"{label} bar {i} {key}: {g[key]!r} != {wv!r}"
            else:
                assert g is not None and same(g, float(w)), f"{label} bar {i}: {g!r} != {w!r}"
            checked += 1
    assert checked > 0
