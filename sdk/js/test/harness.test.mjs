import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, Strategy, ParamSpec, Action, Order, Side, Quantity, Bar } from '../src/index.js';

class Probe extends Strategy {
  static describe() {
    return {
      name: 'probe', version: '0.1.0', summary: '',
      params: [ParamSpec.int('n', 2, { min: 1, max: 5 }), ParamSpec.float('f', 0.5), ParamSpec.bool('b', false)],
    };
  }
  constructor(params) {
    super(params);
    if (params.int('n') === 0) throw new Error('n must be at least 1');
    this.params = params.toObject();
    this.seen = [];
  }
  onBar(bar, ctx) {
    this.seen.push({ index: bar.index, ts: bar.ts, close: bar.close, fills: ctx.fillCount, position: ctx.position, market: ctx.market });
    if (bar.close > 100) ctx.buyAll();
    if (bar.close < 0) {
      ctx.submit(Order.stop(Side.Sell, Quantity.units(1), 5).withTakeProfit(1));
      ctx.closePosition();
    }
  }
}

test('defaults, overrides, and bounds left to the strategy', () => {
  const h = new Harness(Probe, { n: 3, b: true });
  assert.deepEqual(h.strategy.params, { n: 3, f: 0.5, b: true });
  assert.throws(() => new Harness(Probe, { n: 0 }), /at least 1/);
  assert.throws(() => new Harness(Probe, { n: 1.5 }), /must be int/);
  assert.throws(() => new Harness(Probe, { b: 1 }), /must be bool/);
});

test('feedClose numbers bars and returns their actions', () => {
  const h = new Harness(Probe);
  assert.deepEqual(h.feedClose(10), []);
  assert.deepEqual(h.feedClose(101), [Action.submit(Order.market(Side.Buy, Quantity.equity(1)))]);
  assert.deepEqual(h.feedClose(-1), [
    Action.submit(Order.stop(Side.Sell, Quantity.units(1), 5).withTakeProfit(1)),
    Action.closePosition(),
  ]);
  assert.deepEqual(h.strategy.seen.map((b) => [b.index, b.ts, b.close]), [[0, 0, 10], [1, 1, 101], [2, 2, -1]]);
});

test('the account is the test\'s: position, fills (one bar), market', () => {
  const h = new Harness(Probe);
  h.portfolio.position = 2;
  h.portfolio.fillCount = 1;
  h.setMarket('linear-perpetual');
  h.feedClose(1);
  h.feedClose(1);
  assert.deepEqual(h.strategy.seen.map((b) => [b.position, b.fills, b.market]), [[2, 1, 'linear-perpetual'], [2, 0, 'linear-perpetual']]);
});

test('feed takes a full bar', () => {
  const h = new Harness(Probe);
  h.feed(new Bar(41, 1700000000, 1, 2, 0.5, 1.5, 10));
  h.feed({ close: 3 });
  assert.deepEqual(h.strategy.seen.map((b) => [b.index, b.ts, b.close]), [[41, 1700000000, 1.5], [42, 42, 3]]);
});
