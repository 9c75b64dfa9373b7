// Golden vectors from the Rust indicators (sdk/vectors/indicators.json):
// every output must match bit for bit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { Ema, Sma, Rsi, Atr, BollingerBands, Macd } from '../src/index.js';

const PATH = new URL('../../vectors/indicators.json', import.meta.url);
const present = existsSync(PATH);

function make(kind, args) {
  switch (kind) {
    case 'ema': return new Ema(...args);
    case 'sma': return new Sma(...args);
    case 'rsi': return new Rsi(...args);
    case 'atr': return new Atr(...args);
    case 'bollinger': return new BollingerBands(...args);
    case 'macd': return new Macd(...args);
    default: throw new Error(`unknown indicator ${kind}`);
  }
}

function sameValue(got, want) {
  if (want === null) return got === null;
  if (typeof want === 'number') return Object.is(got, want);
  if (got === null || typeof got !== 'object') return false;
  const keys = Object.keys(want);
  return keys.length === Object.keys(got).length && keys.every((k) => Object.is(got[k], want[k]));
}

test('golden indicator vectors (Rust) match bit for bit', { skip: present ? false : `${PATH.pathname} is absent` }, () => {
  const { series, cases } = JSON.parse(readFileSync(PATH, 'utf8'));
  assert.ok(cases.length > 0, 'no cases');
  const seen = new Set();
  for (const c of cases) {
    seen.add(c.indicator);
    const ind = make(c.indicator, c.args);
    const n = series.close.length;
    assert.equal(c.output.length, n, `${c.indicator}(${c.args}): one output per bar`);
    for (let i = 0; i < n; i++) {
      const got = c.indicator === 'atr' ? ind.update(series.high[i], series.low[i], series.close[i]) : ind.update(series.close[i]);
      if (!sameValue(got, c.output[i])) {
        assert.fail(`${c.indicator}(${c.args.join(', ')}) bar ${i}: got ${JSON.stringify(got)}, want ${JSON.stringify(c.output[i])}`);
      }
    }
  }
  for (const k of ['ema', 'sma', 'rsi', 'atr', 'bollinger', 'macd']) assert.ok(seen.has(k), `no ${k} case`);
});
