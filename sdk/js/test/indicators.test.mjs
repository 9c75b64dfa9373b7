import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ema, Sma, Rsi, Atr, BollingerBands, Macd, crossedAbove, crossedBelow } from '../src/index.js';
import { series, same } from './helpers.mjs';

function assertBits(got, want, what) {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    if (!same(got[i], want[i])) assert.fail(`${what}[${i}]: got ${got[i]}, want ${want[i]}`);
  }
}

// ---------------------------------------------------------------- EMA

test('ema by hand', () => {
  // EMA(3): alpha = 0.5. [1, 2, 3] -> 1, 1.5, 2.25.
  const e = new Ema(3);
  assert.equal(e.value, null);
  assert.equal(e.isReady(), false);
  assert.equal(e.alpha, 0.5);
  assert.equal(e.update(1), 1);
  assert.equal(e.isReady(), true);
  assert.equal(e.update(2), 1.5);
  assert.equal(e.update(3), 2.25);
  assert.equal(e.value, 2.25);
});

test('ema matches a batch form bit for bit', () => {
  for (const n of [1, 2, 3, 5, 12, 26, 50]) {
    const xs = series(300, 42 + n);
    const alpha = 2 / (n + 1);
    const want = [];
    for (let i = 0; i < xs.length; i++) want.push(i === 0 ? xs[0] : alpha * xs[i] + (1 - alpha) * want[i - 1]);
    const e = new Ema(n);
    assertBits(xs.map((x) => e.update(x)), want, `ema(${n})`);
  }
});

test('ema period 0 is 1', () => {
  const e = new Ema(0);
  assert.equal(e.period, 1);
  assert.equal(e.alpha, 1);
  for (const x of [3.5, -1.25, 7]) assert.equal(e.update(x), x);
});

// ---------------------------------------------------------------- SMA

test('sma by hand', () => {
  const s = new Sma(3);
  assert.equal(s.update(1), null);
  assert.equal(s.update(2), null);
  assert.equal(s.isReady(), false);
  assert.equal(s.update(4), 7 / 3);
  assert.equal(s.isReady(), true);
  assert.equal(s.update(8), 14 / 3);
  assert.equal(s.update(16), 28 / 3);
  assert.equal(s.value, 28 / 3);
});

test('sma matches a batch form bit for bit (sum oldest to newest)', () => {
  for (const n of [1, 2, 3, 7, 20, 64]) {
    const xs = series(250, 7 * n + 1);
    const want = xs.map((_, i) => {
      if (i + 1 < n) return null;
      let s = 0;
      for (let j = i + 1 - n; j <= i; j++) s += xs[j];
      return s / n;
    });
    const s = new Sma(n);
    assertBits(xs.map((x) => s.update(x)), want, `sma(${n})`);
  }
});

test('sma period 0 is 1', () => {
  const s = new Sma(0);
  assert.equal(s.period, 1);
  assert.equal(s.update(2.5), 2.5);
  assert.equal(s.update(-4), -4);
});

// ---------------------------------------------------------------- RSI

test('rsi by hand', () => {
  // RSI(2) of [1, 2, 1.5, 2.5]: changes +1, -0.5, +1.
  // First averages: gain 0.5, loss 0.25, RS 2 -> 100 - 100/3.
  // Next: gain (0.5 + 1)/2 = 0.75, loss 0.25/2 = 0.125, RS 6 -> 100 - 100/7.
  const r = new Rsi(2);
  assert.equal(r.update(1), null);
  assert.equal(r.update(2), null);
  assert.equal(r.isReady(), false);
  assert.equal(r.update(1.5), 100 - 100 / 3);
  assert.equal(r.isReady(), true);
  assert.equal(r.update(2.5), 100 - 100 / 7);
  assert.equal(r.value, 100 - 100 / 7);
});

test('rsi flat is 50, only gains is 100, only losses is 0', () => {
  const flat = new Rsi(2);
  [5, 5, 5].forEach((x) => flat.update(x));
  assert.equal(flat.value, 50);
  const up = new Rsi(2);
  [1, 2, 3].forEach((x) => up.update(x));
  assert.equal(up.value, 100);
  const down = new Rsi(2);
  [3, 2, 1].forEach((x) => down.update(x));
  assert.equal(down.value, 0);
});

test('rsi matches a batch form bit for bit', () => {
  const rsi = (g, l) => (l === 0 ? (g === 0 ? 50 : 100) : 100 - 100 / (1 + g / l));
  for (const n of [1, 2, 3, 14, 30]) {
    const xs = series(300, 1000 + n);
    const want = xs.map(() => null);
    const gains = [];
    const losses = [];
    for (let i = 1; i < xs.length; i++) {
      const d = xs[i] - xs[i - 1];
      gains.push(d > 0 ? d : 0);
      losses.push(d < 0 ? -d : 0);
    }
    let g = 0;
    let l = 0;
    for (let j = 0; j < n; j++) {
      g += gains[j];
      l += losses[j];
    }
    g /= n;
    l /= n;
    want[n] = rsi(g, l);
    for (let j = n; j < gains.length; j++) {
      g = (g * (n - 1) + gains[j]) / n;
      l = (l * (n - 1) + losses[j]) / n;
      want[j + 1] = rsi(g, l);
    }
    const r = new Rsi(n);
    const got = xs.map((x) => r.update(x));
    assertBits(got, want, `rsi(${n})`);
    assert.equal(got.findIndex((v) => v !== null), n);
  }
});

test('rsi: a NaN change is neither gain nor loss', () => {
  const r = new Rsi(1);
  r.update(1);
  assert.equal(r.update(NaN), 50);
});

// ---------------------------------------------------------------- ATR

test('atr by hand', () => {
  // ATR(2): TR1 = 12-8 = 4; TR2 = max(13-11, |13-10|, |11-10|) = 3 -> (4+3)/2 = 3.5;
  // TR3 = max(10-7, |10-12|, |7-12|) = 5 -> (3.5*1 + 5)/2 = 4.25.
  const a = new Atr(2);
  assert.equal(a.update(12, 8, 10), null);
  assert.equal(a.update(13, 11, 12), 3.5);
  assert.equal(a.update(10, 7, 8), 4.25);
  assert.equal(a.value, 4.25);
  assert.equal(a.isReady(), true);
});

test('atr: a NaN in the true range is skipped like Rust f64::max', () => {
  const a = new Atr(1);
  a.update(10, 9, 9.5);
  // high - low NaN: max(NaN, |h - pc|) = |h - pc|.
  assert.equal(a.update(11, NaN, 10), 1.5);
});

// ---------------------------------------------------------------- Bollinger

test('bollinger by hand', () => {
  // [2, 4, 6], k = 2: middle 4, population variance (4+0+4)/3, std sqrt(8/3).
  const b = new BollingerBands(3, 2);
  assert.equal(b.update(2), null);
  assert.equal(b.update(4), null);
  const v = b.update(6);
  const std = Math.sqrt(8 / 3);
  assert.deepEqual(v, { upper: 4 + 2 * std, middle: 4, lower: 4 - 2 * std });
  assert.equal(b.period, 3);
  assert.equal(b.k, 2);
});

test('bollinger of a constant has zero width', () => {
  const b = new BollingerBands(4, 2.5);
  let v;
  for (let i = 0; i < 6; i++) v = b.update(7.25);
  assert.deepEqual(v, { upper: 7.25, middle: 7.25, lower: 7.25 });
});

// ---------------------------------------------------------------- MACD

test('macd by hand', () => {
  // MACD(1, 3, 1): fast = x, slow EMA(3) alpha 0.5, signal = macd.
  const m = new Macd(1, 3, 1);
  assert.deepEqual(m.update(1), { macd: 0, signal: 0, histogram: 0 });
  // slow = 0.5*3 + 0.5*1 = 2; macd = 1.
  assert.deepEqual(m.update(3), { macd: 1, signal: 1, histogram: 0 });
  assert.deepEqual(Macd.defaultPeriods(), [12, 26, 9]);
  assert.deepEqual(new Macd().periods, [12, 26, 9]);
});

test('macd equals its EMAs', () => {
  const xs = series(200, 3);
  const m = new Macd(12, 26, 9);
  const f = new Ema(12);
  const s = new Ema(26);
  const g = new Ema(9);
  for (const x of xs) {
    const v = m.update(x);
    const macd = f.update(x) - s.update(x);
    const sig = g.update(macd);
    assert.ok(same(v.macd, macd) && same(v.signal, sig) && same(v.histogram, macd - sig));
  }
});

// ---------------------------------------------------------------- crosses

test('crossed above and below', () => {
  assert.equal(crossedAbove(1, 2, 3, 2), true);
  assert.equal(crossedAbove(2, 2, 3, 2), false);
  assert.equal(crossedBelow(3, 2, 1, 2), true);
  assert.equal(crossedBelow(3, 2, 2, 2), false);
  assert.equal(crossedAbove(NaN, 2, 3, 2), false);
});
