// The momentum rotation's tests (as ../python/test_app.py), against the JS
// strategy:
//   node --test plugins/momentum-rotation/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../../sdk/js/register.mjs';

const { MomentumRotation } = await import('./strategy.js');
const { PortfolioHarness, Action, Order, Quantity } = await import('@stratbox/sdk');

const UNIVERSE = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT', 'XRPUSDT'];
const buy = (symbol, fraction) => ({ symbol, action: Action.submit(Order.market('buy', Quantity.equity(fraction))) });
const close = (symbol) => ({ symbol, action: Action.closePosition() });

test('describe matches the Rust and Python strategies', () => {
  const d = MomentumRotation.describe();
  assert.equal(d.name, 'Momentum rotation');
  assert.equal(d.version, '0.1.0');
  assert.deepEqual((d.params || []).map((p) => [p.name, p.kind, p.default, p.min, p.max]), [
    ['lookback', 'int', 72, 1, 5000],
    ['rebalance', 'int', 24, 1, 5000],
    ['top_k', 'int', 2, 1, 20],
  ]);
});

test('rejects zero', () => {
  assert.throws(() => new PortfolioHarness(MomentumRotation, UNIVERSE, { top_k: 0 }), /at least 1/);
});

test('holds the top k and rotates, closing first', () => {
  const h = new PortfolioHarness(MomentumRotation, UNIVERSE, { lookback: 2, rebalance: 3, top_k: 2 });
  h.commission = 0;
  const out = h.run({
    BTCUSDT: [100, 101, 103, 103, 103, 100, 100],
    ETHUSDT: [10, 10, 10.5, 10.5, 10.5, 12, 12],
    SOLUSDT: [1, 1, 0.9, 1, 1, 1.5, 1.5],
    XRPUSDT: [2, 2, 2, 2, 2, 2, 2],
  });
  assert.deepEqual(out[2], [buy(1, 0.5), buy(0, 0.5)]);
  assert.deepEqual(out[3], []);
  assert.deepEqual(out[4], []);
  assert.deepEqual(out[5], [close(0), buy(2, 0.5)]);
  assert.deepEqual(h.positions.map((p) => p.qty > 0), [false, true, true, false]);
});

test('symbols without a bar are not ranked', () => {
  const h = new PortfolioHarness(MomentumRotation, UNIVERSE.slice(0, 2), { lookback: 1, rebalance: 1, top_k: 1 });
  const out = h.run([[100, 110, null, 300], [10, 12, 13, 14]]);
  assert.deepEqual(out[1], [buy(1, 1)]);
  assert.deepEqual(out[2], []);
  assert.deepEqual(out[3], []);
});

test('fewer than top_k eligible', () => {
  const h = new PortfolioHarness(MomentumRotation, UNIVERSE.slice(0, 1), { lookback: 1, rebalance: 1, top_k: 3 });
  const out = h.run([[1, 2, 3]]);
  assert.deepEqual(out[1], [buy(0, 1 / 3)]);
  assert.deepEqual(out[2], []);
});

test('rebalances on steps rebalance - 1, then every rebalance', () => {
  // As the engine's native reference: steps 2, 5, 8, ... once lookback
  // steps of history exist.
  const h = new PortfolioHarness(MomentumRotation, UNIVERSE.slice(0, 2), { lookback: 1, rebalance: 3, top_k: 1 });
  const out = h.run([[1, 2, 3, 4, 5, 6, 7], [1, 1, 1, 1, 1, 2, 2]]);
  assert.deepEqual(out.flatMap((a, i) => (a.length ? [i] : [])), [2, 5]);
  assert.deepEqual(out[2], [buy(0, 1)]);
  assert.deepEqual(out[5], [close(0), buy(1, 1)]);
});
