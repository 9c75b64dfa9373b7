// The Rust example's tests (../src/lib.rs), against the JS strategy:
//   node --test plugins/ema-crossover/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../../sdk/js/register.mjs';

const { EmaCrossover } = await import('./strategy.js');
const { Harness, Action, Order, Side, Quantity } = await import('@stratbox/sdk');

const harness = (allowShort) => new Harness(EmaCrossover, { fast_period: 2, slow_period: 4, allow_short: allowShort });

test('describe matches the Rust strategy', () => {
  const d = EmaCrossover.describe();
  assert.equal(d.name, 'EMA Crossover');
  assert.equal(d.version, '0.1.0');
  assert.deepEqual(d.params.map((p) => [p.name, p.kind, p.default, p.min, p.max, p.step]), [
    ['fast_period', 'int', 12, 1, 1000, 1],
    ['slow_period', 'int', 26, 1, 5000, 1],
    ['allow_short', 'bool', false, null, null, null],
  ]);
  assert.deepEqual(d.columns, ['close']);
});

test('buys on bullish cross and closes on bearish', () => {
  const h = harness(false);
  // Falling prices keep fast below slow; a jump crosses it above.
  for (const close of [10, 9, 8, 7]) assert.deepEqual(h.feedClose(close), []);
  assert.deepEqual(h.feedClose(12), [Action.submit(Order.market(Side.Buy, Quantity.equity(1)))]);
  h.portfolio.position = 1;
  assert.deepEqual(h.feedClose(13), []);
  assert.deepEqual(h.feedClose(5), [Action.closePosition()]);
});

test('long only ignores a bearish cross when flat', () => {
  const h = harness(false);
  for (const close of [7, 8, 9, 10]) h.feedClose(close);
  assert.deepEqual(h.feedClose(2), []);
});

test('short mode reverses', () => {
  const h = harness(true);
  for (const close of [7, 8, 9, 10]) h.feedClose(close);
  assert.deepEqual(h.feedClose(2), [Action.submit(Order.market(Side.Sell, Quantity.equity(1)))]);
});

test('rejects a zero period', () => {
  assert.throws(() => new Harness(EmaCrossover, { fast_period: 0 }), /at least 1/);
});
