// Portfolio strategies (contract 0.3.0): the context's orders and account,
// the WIT `portfolio` runtime driven as the host drives a component
// (componentize-js conventions: s64 as BigInt, none as undefined), the
// PortfolioHarness's fill model, and a pairs and a rotation strategy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Action, Bar, Column, Order, ParamSpec, PortfolioContext, PortfolioHarness, PortfolioStrategy,
  Quantity, Side, Step, exportPortfolio,
} from '../src/index.js';

const SYMBOLS = ['BTCUSDT', 'ETHUSDT', 'SOLUSDT'];
const market = (symbol, side, quantity) => ({ symbol, action: Action.submit(Order.market(side, quantity)) });
const close = (symbol) => ({ symbol, action: Action.closePosition() });
const pos = (qty) => ({ qty, entryPrice: 0, stopLoss: null, takeProfit: null, openOrders: 0, liquidationPrice: null, fundingRate: null });

/** Runs the callables scripted for each step index; records the steps. */
class Scripted extends PortfolioStrategy {
  static describe() {
    return { name: 'scripted', version: '0.1.0', summary: '', params: [ParamSpec.int('n', 1)] };
  }
  constructor(params, symbols) {
    super(params, symbols);
    this.script = {};
    this.seen = [];
  }
  onStep(step, ctx) {
    this.seen.push({ index: step.index, closes: step.bars.map((b) => (b === null ? null : b.close)), fills: ctx.fills.slice(), equity: ctx.equity() });
    for (const f of this.script[step.index] || []) f(ctx);
  }
}

function scripted(script = {}) {
  const h = new PortfolioHarness(Scripted, SYMBOLS.slice(0, 2));
  h.commission = 0;
  h.strategy.script = script;
  return h;
}

// ---------------------------------------------------------------- context

test('context orders name their symbol, by index or name', () => {
  const actions = [];
  const ctx = new PortfolioContext(SYMBOLS, actions);
  ctx.positions = [pos(0), pos(2), pos(-1)];
  ctx.buy('BTCUSDT', 1.5);
  ctx.sell(2, 0.5);
  ctx.buyEquity(0, 0.25);
  ctx.sellEquity('SOLUSDT', 0.1);
  ctx.buyLimit(1, 1, 90);
  ctx.sellStop(1, 1, 80);
  ctx.submit(0, Order.market(Side.Buy, Quantity.units(1)).withStopLoss(5));
  ctx.cancelOrders('ETHUSDT');
  ctx.setStopLoss(1, 7);
  ctx.setTakeProfit(1, null);
  assert.deepEqual(actions, [
    market(0, 'buy', Quantity.units(1.5)),
    market(2, 'sell', Quantity.units(0.5)),
    market(0, 'buy', Quantity.equity(0.25)),
    market(2, 'sell', Quantity.equity(0.1)),
    { symbol: 1, action: Action.submit(Order.limit(Side.Buy, Quantity.units(1), 90)) },
    { symbol: 1, action: Action.submit(Order.stop(Side.Sell, Quantity.units(1), 80)) },
    { symbol: 0, action: Action.submit(Order.market(Side.Buy, Quantity.units(1)).withStopLoss(5)) },
    { symbol: 1, action: Action.cancelOrders() },
    { symbol: 1, action: Action.setStopLoss(7) },
    { symbol: 1, action: Action.setTakeProfit(null) },
  ]);
  actions.length = 0;
  ctx.closeAll();
  assert.deepEqual(actions, [close(1), close(2)]);
  assert.throws(() => ctx.buy('DOGEUSDT', 1), /not in the universe/);
  assert.throws(() => ctx.close(3), RangeError);
});

test('target enters, reverses, keeps and closes', () => {
  const actions = [];
  const ctx = new PortfolioContext(SYMBOLS, actions);
  ctx.positions = [pos(0), pos(2), pos(-1)];
  ctx.target(0, 0.5);
  ctx.target(1, 0.5);
  ctx.target(2, 0.5);
  ctx.target(1, -0.2);
  ctx.target(2, 0);
  ctx.target(0, 0);
  assert.deepEqual(actions, [
    market(0, 'buy', Quantity.equity(0.5)),
    market(2, 'buy', Quantity.equity(0.5)),
    market(1, 'sell', Quantity.equity(0.2)),
    close(2),
  ]);
});

test('equity marks positions at the latest closes; fills on the first step only', () => {
  const ctx = new PortfolioContext(SYMBOLS, []);
  ctx.positions = [pos(2), pos(0), pos(-1)];
  ctx._equity = 700;
  ctx._ref = [100, NaN, 10];
  ctx._last = [103, 5, 12];
  ctx._fills = [{ symbol: 0, side: 'buy', qty: 2, price: 90, reason: 'market' }];
  assert.equal(ctx.equity(), 704);
  assert.ok(ctx.isLong(0) && ctx.isFlat('ETHUSDT') && ctx.isShort(2));
  assert.equal(ctx.fills.length, 1);
  ctx._first = false;
  assert.deepEqual(ctx.fills, []);
  const s = new Step(3, 99, [new Bar(3, 99, 1, 2, 0.5, 1.5, 10), null]);
  assert.equal(s.close(0), 1.5);
  assert.ok(Number.isNaN(s.close(1)) && s.bar(1) === null);
});

// ---------------------------------------------------------------- runtime

class Probe extends PortfolioStrategy {
  static describe() {
    return { name: 'probe', version: '1.0.0', summary: 'records', params: [ParamSpec.int('n', 3, { min: 1 })], columns: [Column.Close, Column.High] };
  }
  constructor(params, symbols) {
    super(params, symbols);
    if (params.int('n') === 7) throw new Error('seven is refused');
    Probe.seen = [];
  }
  onStep(step, ctx) {
    Probe.seen.push({
      index: step.index, ts: step.ts, fills: ctx.fills.length, equity: ctx.equity(), market: ctx.market,
      bars: step.bars.map((b) => (b === null ? null : { open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume })),
    });
    const what = (Probe.actOn || {})[step.index];
    if (what === 'pair') {
      ctx.sellEquity('BTCUSDT', 0.5);
      ctx.buy(1, 2);
    } else if (what === 'close') {
      ctx.close(0);
      ctx.submit(1, Order.limit(Side.Buy, Quantity.units(1), 9).withStopLoss(8));
      ctx.setTakeProfit(1, null);
    } else if (what === 'throw') {
      throw new Error('boom');
    }
  }
}

const witPosition = (qty) => ({ qty, entryPrice: 0, stopLoss: undefined, takeProfit: undefined, openOrders: 0, liquidationPrice: undefined, fundingRate: undefined });
const account = ({ qtys = [0, 0], fills = 0, equity = 1000 } = {}) => ({
  cash: 1000, equity, positions: qtys.map(witPosition),
  fills: Array.from({ length: fills }, () => ({ symbol: 1, side: 'buy', qty: 2, price: 10, reason: 'market' })),
});

function started(actOn = {}, mkt = 'spot') {
  Probe.actOn = actOn;
  const p = exportPortfolio(Probe);
  p.init([{ name: 'n', value: { tag: 'int', val: 3n } }], ['BTCUSDT', 'ETHUSDT'], mkt);
  return p;
}

function push(p, steps = 6, first = 100n) {
  const a = Float64Array.from({ length: steps }, (_, i) => 100 + i);
  // The second symbol has no bar at steps 1 and 2.
  const b = Float64Array.from({ length: steps }, (_, i) => (i === 1 || i === 2 ? NaN : 10 + i));
  const sym = (c) => ({ open: c.map((x) => x - 0.5), high: c.map((x) => x + 1), low: new Float64Array(0), close: c, volume: new Float64Array(0) });
  p.pushBars(first, 0.001, 1, 0, BigInt64Array.from({ length: steps }, (_, i) => 1000n + BigInt(i)), [sym(a), sym(b)]);
}

test('runtime: describe and init the WIT way', () => {
  const p = exportPortfolio(Probe);
  assert.deepEqual(p.describe().params, [{ name: 'n', kind: 'int', default: { tag: 'int', val: 3n }, min: 1, max: undefined, step: undefined, help: '' }]);
  assert.deepEqual(p.describe().columns, ['close', 'high']);
  assert.throws(() => p.init([{ name: 'n', value: { tag: 'int', val: 7n } }], ['A'], 'spot'), (e) => e === 'seven is refused');
  assert.throws(() => exportPortfolio(Probe).run(account(), 0, 1), /before a successful `init`/);
});

test('runtime: walks steps with missing bars and returns at the first with actions', () => {
  const p = started({ 103: 'pair' }, 'linear-perpetual');
  push(p);
  const step = p.run(account({ fills: 1 }), 0, 6);
  assert.equal(step.consumed, 4);
  assert.deepEqual(step.actions, [
    { symbol: 0, action: { tag: 'submit', val: { side: 'sell', quantity: { tag: 'equity', val: 0.5 }, kind: { tag: 'market' }, stopLoss: undefined, takeProfit: undefined } } },
    { symbol: 1, action: { tag: 'submit', val: { side: 'buy', quantity: { tag: 'units', val: 2 }, kind: { tag: 'market' }, stopLoss: undefined, takeProfit: undefined } } },
  ]);
  const seen = Probe.seen;
  assert.deepEqual(seen.map((s) => [s.index, s.ts]), [[100, 1000], [101, 1001], [102, 1002], [103, 1003]]);
  assert.deepEqual(seen[0].bars[0], { open: 99.5, high: 101, low: NaN, close: 100, volume: NaN });
  assert.deepEqual(seen.map((s) => s.bars[1] === null), [false, true, true, false]);
  assert.deepEqual(seen.map((s) => s.fills), [1, 0, 0, 0]);
  assert.equal(seen[0].market, 'linear-perpetual');
  assert.deepEqual(p.run(account(), 4, 6), { consumed: 2, actions: [] });
  assert.deepEqual(p.run(account(), 6, 6), { consumed: 0, actions: [] });
});

test('runtime: equity moves with the latest closes; other actions lower', () => {
  const p = started({ 104: 'close' });
  push(p);
  assert.equal(p.run(account(), 0, 2).consumed, 2);
  const step = p.run(account({ qtys: [2, -1], equity: 500 }), 2, 6);
  assert.deepEqual(Probe.seen.slice(2).map((s) => s.equity), [502, 501, 502]);
  assert.equal(step.consumed, 3);
  assert.deepEqual(step.actions, [
    { symbol: 0, action: { tag: 'close-position' } },
    { symbol: 1, action: { tag: 'submit', val: { side: 'buy', quantity: { tag: 'units', val: 1 }, kind: { tag: 'limit', val: 9 }, stopLoss: 8, takeProfit: undefined } } },
    { symbol: 1, action: { tag: 'set-take-profit', val: undefined } },
  ]);
});

test('runtime: an exception is logged, then rethrown', () => {
  const p = started({ 100: 'throw' });
  push(p);
  const errors = [];
  const original = console.error;
  console.error = (line) => errors.push(line);
  try {
    assert.throws(() => p.run(account(), 0, 6), /boom/);
  } finally {
    console.error = original;
  }
  assert.match(errors[0], /exception in onStep at step 100: boom/);
});

// ---------------------------------------------------------------- harness

test('harness: market orders fill at the next open, in order', () => {
  const h = scripted({ 0: [(c) => c.buy(0, 10), (c) => c.sellEquity(1, 0.5)] });
  h.step([100, 50]);
  assert.equal(h.positions[0].qty, 0);
  h.step([{ open: 101, high: 101, low: 101, close: 102 }, { open: 49, high: 49, low: 49, close: 48 }]);
  assert.equal(h.positions[0].qty, 10);
  assert.equal(h.positions[0].entryPrice, 101);
  assert.equal(h.positions[1].qty, -((10000 - 1010 + 1000) * 0.5) / 49);
  assert.deepEqual(h.strategy.seen[1].fills.map((f) => [f.symbol, f.side, f.price, f.reason]), [[0, 'buy', 101, 'market'], [1, 'sell', 49, 'market']]);
  // The context's mark (host equity + moves) and the harness's own agree to rounding.
  assert.ok(Math.abs(h.strategy.seen[1].equity - h.equity()) < 1e-9);
});

test('harness: orders wait for their symbol\'s bar; resting orders and exits', () => {
  const h = scripted({ 0: [(c) => c.buy(1, 2)] });
  h.run([[100, 101, 102], [50, null, 52]]);
  assert.deepEqual(h.fills.map((f) => [f.step, f.symbol, f.price]), [[2, 1, 52]]);
  const r = scripted({
    0: [(c) => c.buyLimit(0, 1, 95), (c) => c.sellStop(1, 1, 45)],
    2: [(c) => c.setStopLoss(0, 90), (c) => c.cancelOrders(1)],
  });
  r.step([100, 50]);
  assert.deepEqual(r.positions.map((p) => p.openOrders), [1, 1]);
  r.step([{ open: 99, high: 99, low: 94, close: 96 }, { open: 50, high: 50, low: 46, close: 47 }]);
  r.step([96, 47]);
  r.step([{ open: 92, high: 93, low: 89, close: 91 }, { open: 44, high: 44, low: 40, close: 41 }]);
  assert.deepEqual(r.fills.map((f) => [f.step, f.reason, f.price]), [[1, 'limit', 95], [3, 'stop-loss', 90]]);
  assert.deepEqual(r.positions.map((p) => p.qty), [0, 0]);
});

test('harness: reversals, commission and the headroom', () => {
  const h = scripted({ 0: [(c) => c.buyEquity(0, 1)], 1: [(c) => c.sellEquity(0, 1)] });
  h.commission = 0.001;
  h.run([[100, 100, 100], [50, 50, 50]]);
  assert.ok(h.positions[0].qty < 0);
  assert.deepEqual(h.fills.map((f) => f.side), ['buy', 'sell', 'sell']);
  const both = scripted({ 0: [(c) => c.buyEquity(0, 1), (c) => c.buyEquity(1, 1)] });
  both.run([[100, 100], [50, 50]]);
  assert.ok(Math.abs(both.positions[1].qty) < 1e-9 && both.cash > -1e-9);
  assert.throws(() => both.step([1, 2, 3]), /3 bars for 2 symbols/);
});

test('harness: symbols fill in the order of their first order', () => {
  const h = scripted({ 0: [(c) => c.buy(1, 1), (c) => c.buy(0, 1), (c) => c.buy(1, 2)] });
  h.run([[10, 10], [20, 20]]);
  assert.deepEqual(h.fills.map((f) => [f.symbol, f.qty]), [[1, 1], [1, 2], [0, 1]]);
});

// ---------------------------------------------------------------- strategies

class Pairs extends PortfolioStrategy {
  static describe() {
    return {
      name: 'pairs', version: '0.1.0', summary: '', columns: [Column.Close],
      params: [ParamSpec.int('lookback', 5), ParamSpec.float('entry', 1.5), ParamSpec.float('exit', 0.3)],
    };
  }
  constructor(params, symbols) {
    super(params, symbols);
    if (this.symbols.length !== 2) throw new Error('two symbols, please');
    this.n = params.int('lookback');
    this.entry = params.float('entry');
    this.exit = params.float('exit');
    this.window = [];
  }
  onStep(step, ctx) {
    const [a, b] = step.bars;
    if (a === null || b === null) return;
    this.window = [...this.window, a.close / b.close].slice(-this.n);
    if (this.window.length < this.n) return;
    const mean = this.window.reduce((s, x) => s + x, 0) / this.n;
    const std = Math.sqrt(this.window.reduce((s, x) => s + (x - mean) ** 2, 0) / this.n);
    if (std === 0) return;
    const z = (this.window[this.n - 1] - mean) / std;
    if (Math.abs(z) < this.exit) {
      ctx.target(0, 0);
      ctx.target(1, 0);
    } else if (z > this.entry) {
      ctx.target(0, -0.5);
      ctx.target(1, 0.5);
    } else if (z < -this.entry) {
      ctx.target(0, 0.5);
      ctx.target(1, -0.5);
    }
  }
}

test('a pairs strategy opens on a wide spread and closes when it reverts', () => {
  assert.throws(() => new PortfolioHarness(Pairs, SYMBOLS), /two symbols/);
  const h = new PortfolioHarness(Pairs, SYMBOLS.slice(0, 2));
  const a = [100, 101, 100, 101, 100, 110, 110, 104, 104];
  const out = h.run([a, a.map(() => 50)]);
  assert.deepEqual(out[5], [market(0, 'sell', Quantity.equity(0.5)), market(1, 'buy', Quantity.equity(0.5))]);
  assert.deepEqual(out[6], []);
  assert.equal(h.fills[0].step, 6);
  assert.deepEqual(out[7], [close(0), close(1)]);
  assert.deepEqual(h.positions.map((p) => p.qty), [0, 0]);
  assert.ok(h.cash > 10000);
});

class Rotation extends PortfolioStrategy {
  static describe() {
    return { name: 'rotation', version: '0.1.0', summary: '', params: [ParamSpec.int('lookback', 2), ParamSpec.int('every', 2), ParamSpec.int('k', 1)] };
  }
  constructor(params, symbols) {
    super(params, symbols);
    this.lookback = params.int('lookback');
    this.every = params.int('every');
    this.k = params.int('k');
    this.history = this.symbols.map(() => []);
  }
  onStep(step, ctx) {
    this.history.forEach((h, i) => h.push(step.close(i)));
    const t = step.index;
    if (t < this.lookback || (t - this.lookback) % this.every) return;
    const returns = [];
    this.history.forEach((h, i) => {
      const now = h[h.length - 1];
      const then = h[h.length - 1 - this.lookback];
      if (!Number.isNaN(now) && !Number.isNaN(then)) returns.push([now / then - 1, i]);
    });
    returns.sort((x, y) => y[0] - x[0] || x[1] - y[1]);
    const top = returns.slice(0, this.k).map((r) => r[1]);
    this.symbols.forEach((_, i) => {
      if (!top.includes(i) && !ctx.isFlat(i)) ctx.close(i);
    });
    for (const i of top) if (ctx.isFlat(i)) ctx.buyEquity(i, 1 / this.k);
  }
}

test('a rotation strategy holds the leader and rotates, closing first', () => {
  const h = new PortfolioHarness(Rotation, SYMBOLS);
  h.commission = 0;
  const out = h.run({
    BTCUSDT: [100, 101, 102, 102, 102, 102, 102],
    ETHUSDT: [10, 10, 10, 11, 12, 12, 12],
    SOLUSDT: [1, null, 1, 1, 1, 1, 1],
  });
  assert.deepEqual(out[2], [market(0, 'buy', Quantity.equity(1))]);
  assert.deepEqual(out[3], []);
  assert.deepEqual(out[4], [close(0), market(1, 'buy', Quantity.equity(1))]);
  assert.deepEqual(h.fills.filter((f) => f.step === 5).map((f) => f.symbol), [0, 1]);
  assert.equal(h.positions[1].qty, 10000 / 12);
  assert.deepEqual(out[6], [close(1), market(0, 'buy', Quantity.equity(1))]);
});
