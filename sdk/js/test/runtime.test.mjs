// The WIT runtime (exportStrategy) driven as the host drives a component,
// with componentize-js conventions (s64 as BigInt, none as undefined).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Strategy, Column, ParamSpec, Order, Side, Quantity, exportStrategy } from '../src/index.js';

/** Acts on the bars listed in `plan` (index -> actions), records what it saw. */
function recorder(plan, columns) {
  const seen = [];
  class Rec extends Strategy {
    static describe() {
      return { name: 'rec', version: '1.0.0', summary: 'records', params: [ParamSpec.int('n', 3, { min: 1 })], columns };
    }
    constructor(params) {
      super(params);
      this.n = params.int('n');
      if (this.n === 99) throw new Error('n must not be 99');
    }
    onBar(bar, ctx) {
      seen.push({ ...bar, fillCount: ctx.fillCount, lastFill: ctx.lastFill, position: ctx.position, market: ctx.market, equity: ctx.equity() });
      for (const a of plan[bar.index] || []) a(ctx);
    }
  }
  return { Rec, seen };
}

/** Every schema param, as the host sends them. */
const N3 = [{ name: 'n', value: { tag: 'int', val: 3n } }];

const portfolio = (extra = {}) => ({
  cash: 1000, position: 0, entryPrice: 0, stopLoss: undefined, takeProfit: undefined,
  openOrders: 0, fillCount: 0, lastFill: undefined, ...extra,
});

function push(s, n, { first = 100n, columns = ['open', 'close'] } = {}) {
  const col = (f) => Float64Array.from({ length: n }, (_, i) => f(i));
  const empty = new Float64Array(0);
  s.pushBars(
    first, 0.001, 2, 5,
    columns.includes('ts') ? BigInt64Array.from({ length: n }, (_, i) => 1000n + BigInt(i)) : new BigInt64Array(0),
    col((i) => 10 + i),
    columns.includes('high') ? col((i) => 20 + i) : empty,
    columns.includes('low') ? col((i) => 5 + i) : empty,
    columns.includes('close') ? col((i) => 11 + i) : empty,
    columns.includes('volume') ? col(() => 7) : empty,
  );
}

test('describe lowers the schema the WIT way', () => {
  const { Rec } = recorder({}, [Column.Close]);
  const d = exportStrategy(Rec).describe();
  assert.deepEqual(d, {
    name: 'rec', version: '1.0.0', summary: 'records',
    params: [{ name: 'n', kind: 'int', default: { tag: 'int', val: 3n }, min: 1, max: undefined, step: undefined, help: '' }],
    columns: ['close'],
  });
});

test('init: params from WIT, a throwing constructor is an error string', () => {
  const { Rec } = recorder({}, [Column.Close]);
  const s = exportStrategy(Rec);
  assert.throws(() => s.init([{ name: 'n', value: { tag: 'int', val: 99n } }]), (e) => e === 'n must not be 99');
  s.init([{ name: 'n', value: { tag: 'int', val: 4n } }]);
});

test('run walks to the first bar with actions; next-action drains the rest', () => {
  const buy = (ctx) => ctx.buyAll();
  const limit = (ctx) => ctx.submit(Order.limit(Side.Sell, Quantity.units(2), 9.5).withStopLoss(12));
  const { Rec, seen } = recorder({ 102: [buy, limit, (c) => c.setStopLoss(null)] }, [Column.Close]);
  const s = exportStrategy(Rec);
  s.init([{ name: 'n', value: { tag: 'int', val: 3n } }]);
  push(s, 6);
  const step = s.run(portfolio(), 0, 6);
  assert.equal(step.consumed, 3);
  assert.equal(step.more, 2);
  assert.equal(step.planned, 0);
  assert.deepEqual(step.action, {
    tag: 'submit',
    val: { side: 'buy', quantity: { tag: 'equity', val: 1 }, kind: { tag: 'market' }, stopLoss: undefined, takeProfit: undefined },
  });
  assert.deepEqual(s.nextAction(), {
    tag: 'submit',
    val: { side: 'sell', quantity: { tag: 'units', val: 2 }, kind: { tag: 'limit', val: 9.5 }, stopLoss: 12, takeProfit: undefined },
  });
  assert.deepEqual(s.nextAction(), { tag: 'set-stop-loss', val: undefined });
  assert.equal(s.nextAction(), undefined);
  assert.deepEqual(s.takePlanned(), { actions: [], assumed: [] });
  // The host resumes after the bar; nothing else acts.
  const rest = s.run(portfolio({ position: 1 }), 3, 6);
  assert.equal(rest.consumed, 3);
  assert.equal(rest.action, undefined);
  assert.equal(rest.more, 0);
  assert.deepEqual(seen.map((b) => b.index), [100, 101, 102, 103, 104, 105]);
});

test('bars: declared columns and open; the others NaN, ts 0', () => {
  const { Rec, seen } = recorder({}, [Column.Close]);
  const s = exportStrategy(Rec);
  s.init(N3);
  push(s, 2, { columns: ['open', 'close'] });
  s.run(portfolio(), 0, 2);
  assert.deepEqual(
    seen.map(({ index, ts, open, high, low, close, volume }) => ({ index, ts, open, high, low, close, volume })),
    [
      { index: 100, ts: 0, open: 10, high: NaN, low: NaN, close: 11, volume: NaN },
      { index: 101, ts: 0, open: 11, high: NaN, low: NaN, close: 12, volume: NaN },
    ],
  );
});

test('bars: all six columns', () => {
  const { Rec, seen } = recorder({}, undefined);
  const s = exportStrategy(Rec);
  s.init(N3);
  push(s, 2, { columns: ['ts', 'open', 'high', 'low', 'close', 'volume'], first: 0n });
  s.run(portfolio(), 1, 2);
  const { index, ts, open, high, low, close, volume } = seen[0];
  assert.deepEqual({ index, ts, open, high, low, close, volume }, { index: 1, ts: 1001, open: 11, high: 21, low: 6, close: 12, volume: 7 });
});

test('fills show on the first bar of a call only; market state reaches ctx', () => {
  const { Rec, seen } = recorder({}, [Column.Close]);
  const s = exportStrategy(Rec);
  s.init(N3);
  s.setMarketState({ market: 'linear-perpetual', liquidationPrice: 5, fundingRate: undefined });
  push(s, 3);
  const fill = { side: 'buy', qty: 1, price: 10, reason: 'market' };
  s.run(portfolio({ fillCount: 1, lastFill: fill, position: 1 }), 0, 3);
  assert.deepEqual(seen.map((b) => [b.fillCount, b.lastFill]), [[1, fill], [0, null], [0, null]]);
  assert.equal(seen[0].market, 'linear-perpetual');
  assert.equal(seen[0].equity, 1000 + 1 * 11);
});

test('ranges are clamped to the window; an empty range consumes nothing', () => {
  const { Rec, seen } = recorder({}, [Column.Close]);
  const s = exportStrategy(Rec);
  s.init(N3);
  push(s, 3);
  assert.equal(s.run(portfolio(), 2, 10).consumed, 1);
  assert.equal(s.run(portfolio(), 5, 9).consumed, 0);
  assert.equal(seen.length, 1);
});

test('run before init throws', () => {
  const { Rec } = recorder({}, [Column.Close]);
  const s = exportStrategy(Rec);
  assert.throws(() => s.run(portfolio(), 0, 1), /before a successful `init`/);
});

test('an exception in onBar is logged, then rethrown (the component traps)', (t) => {
  class Boom extends Strategy {
    static describe() {
      return { name: 'b', version: '1', summary: '' };
    }
    onBar() {
      throw new Error('boom');
    }
  }
  const s = exportStrategy(Boom);
  s.init([]);
  push(s, 1, { columns: ['ts', 'open', 'high', 'low', 'close', 'volume'] });
  const errors = [];
  t.mock.method(console, 'error', (m) => errors.push(m));
  assert.throws(() => s.run(portfolio(), 0, 1), /boom/);
  assert.match(errors[0], /^\[Error\] exception in onBar at bar 100: boom/);
});
