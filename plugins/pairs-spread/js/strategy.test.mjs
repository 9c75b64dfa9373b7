// The pairs spread's tests (as ../python/test_app.py), against the JS strategy:
//   node --test plugins/pairs-spread/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../../sdk/js/register.mjs';

const { PairsSpread } = await import('./strategy.js');
const { PortfolioHarness, Action, Order, Quantity } = await import('@stratbox/sdk');

const PAIR = ['BTCUSDT', 'ETHUSDT'];
const market = (symbol, side, fraction) => ({ symbol, action: Action.submit(Order.market(side, Quantity.equity(fraction))) });
const close = (symbol) => ({ symbol, action: Action.closePosition() });
const harness = () => new PortfolioHarness(PairsSpread, PAIR, { lookback: 5, entry_z: 1.5, exit_z: 0.3 });

test('describe matches the Rust and Python strategies', () => {
  const d = PairsSpread.describe();
  assert.equal(d.name, 'Pairs spread');
  assert.equal(d.version, '0.1.0');
  assert.deepEqual((d.params || []).map((p) => [p.name, p.kind, p.default, p.min, p.max]), [
    ['lookback', 'int', 48, 2, 1000],
    ['entry_z', 'float', 2.0, 0.1, 10],
    ['exit_z', 'float', 0.5, 0, 10],
  ]);
  assert.deepEqual(d.columns, ['close']);
});

test('needs two symbols', () => {
  assert.throws(() => new PortfolioHarness(PairsSpread, ['BTCUSDT']), /needs two symbols, got 1/);
});

test('shorts the rich leg, then goes flat when the spread reverts', () => {
  const h = harness();
  const btc = [100, 101, 100, 101, 100, 110, 110];
  const out = h.run({ BTCUSDT: btc, ETHUSDT: btc.map(() => 50) });
  assert.deepEqual(out.slice(0, 5), [[], [], [], [], []]);
  assert.deepEqual(out[5], [market(0, 'sell', 0.5), market(1, 'buy', 0.5)]);
  assert.deepEqual(out[6], []);
  assert.ok(h.positions[0].qty < 0 && h.positions[1].qty > 0);
  assert.deepEqual(h.step([104, 50]), [close(0), close(1)]);
  h.step([104, 50]);
  assert.deepEqual(h.positions.map((p) => p.qty), [0, 0]);
  assert.ok(h.cash > 10000);
});

test('longs the cheap leg and reverses', () => {
  const h = harness();
  const btc = [100, 101, 100, 101, 100, 90, 90, 90, 130];
  const out = h.run([btc, btc.map(() => 50)]);
  assert.deepEqual(out[5], [market(0, 'buy', 0.5), market(1, 'sell', 0.5)]);
  assert.deepEqual(out[8], [market(0, 'sell', 0.5), market(1, 'buy', 0.5)]);
});

test('steps without both bars are skipped', () => {
  const h = harness();
  const out = h.run([[100, 101, null, 100, 101, 100, 110], [50, 50, 50, null, 50, 50, 50]]);
  assert.equal(h.strategy.spreads.length, 5);
  assert.deepEqual(out[6], [market(0, 'sell', 0.5), market(1, 'buy', 0.5)]);
});

test('a flat spread never trades', () => {
  const h = harness();
  const out = h.run([Array(20).fill(100), Array(20).fill(50)]);
  assert.ok(out.every((a) => a.length === 0));
});
