// The fill mirror (guest-side planning): the engine's market fills
// (host/engine/src/broker.rs, sdk/src/fills.rs) against fills computed by
// hand, through Harness.fillMarket; then the runtime's planning through the
// WIT interface, as the host drives it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Strategy, Column, Order, Side, Quantity, Action, Harness, exportStrategy } from '../src/index.js';

class Idle extends Strategy {
  static describe() {
    return { name: 'idle', version: '1', summary: '', columns: [Column.Close] };
  }
  onBar() {}
}

/** A harness whose account is `account` (commission, leverage, cash, ...). */
function harness(account) {
  const h = new Harness(Idle);
  Object.assign(h.portfolio, account);
  return h;
}

const units = (side, q) => Action.submit(Order.market(side, Quantity.units(q)));
const equity = (side, f) => Action.submit(Order.market(side, Quantity.equity(f)));
const BUY_ALL = equity(Side.Buy, 1);
const SELL_ALL = equity(Side.Sell, 1);

function account(h) {
  const { cash, position, entryPrice, fillCount, lastFill } = h.portfolio;
  return { cash, position, entryPrice, fillCount, lastFill };
}

test('all in from flat: equity / (price * (1 + commission))', () => {
  const h = harness({ cash: 10000, commission: 0.001 });
  assert.equal(h.fillMarket([BUY_ALL], 100), true);
  // 10000 / 100.1; the whole cash goes: notional 9990.00999.. + fee 9.99000999..
  assert.deepEqual(account(h), {
    cash: 0, position: 99.9000999000999, entryPrice: 100, fillCount: 1,
    lastFill: { side: 'buy', qty: 99.9000999000999, price: 100, reason: 'market' },
  });
});

test('units: a partial reduce keeps the entry; a larger opposite order reverses', () => {
  const h = harness({ cash: 1000, position: 5, entryPrice: 100, commission: 0.001 });
  assert.equal(h.fillMarket([units(Side.Sell, 2)], 120), true);
  // + 240 - 0.24
  assert.deepEqual(account(h), {
    cash: 1239.76, position: 3, entryPrice: 100, fillCount: 1,
    lastFill: { side: 'sell', qty: 2, price: 120, reason: 'market' },
  });
  const r = harness({ cash: 1000, position: 5, entryPrice: 100, commission: 0.001 });
  assert.equal(r.fillMarket([units(Side.Sell, 8)], 120), true);
  // close 5: + 600 - 0.6 = 1599.4; open 3 short: + 360 - 0.36
  assert.deepEqual(account(r), {
    cash: 1959.04, position: -3, entryPrice: 120, fillCount: 2,
    lastFill: { side: 'sell', qty: 3, price: 120, reason: 'market' },
  });
});

test('units beyond the headroom are cut to it; adding averages the entry', () => {
  const h = harness({ cash: 1000, commission: 0.001 });
  assert.equal(h.fillMarket([units(Side.Buy, 100)], 100), true);
  assert.equal(h.portfolio.position, 9.990009990009991); // 1000 / 100.1
  assert.equal(h.portfolio.cash, -1.1368683772161603e-13); // the rounding of 1000 - (999.000.. + 0.999..)
  const g = harness({ cash: 1000, position: 1, entryPrice: 100, commission: 0 });
  assert.equal(g.fillMarket([units(Side.Buy, 1)], 110), true);
  assert.deepEqual(account(g), {
    cash: 890, position: 2, entryPrice: 105, fillCount: 1,
    lastFill: { side: 'buy', qty: 1, price: 110, reason: 'market' },
  });
});

test('close-position with slippage: the close moves against the trader; flat, it does nothing', () => {
  const h = harness({ cash: 1000, position: 5, entryPrice: 100, commission: 0.001 });
  assert.equal(h.fillMarket([Action.closePosition()], 120, 3), true);
  // 120 * (1 - 3 / 10000) = 119.964; + 599.82 - 0.59982
  assert.deepEqual(account(h), {
    cash: 1599.2201799999998, position: 0, entryPrice: 0, fillCount: 1,
    lastFill: { side: 'sell', qty: 5, price: 119.964, reason: 'close-position' },
  });
  const flat = harness({ cash: 1000, commission: 0.001, fillCount: 1 });
  assert.equal(flat.fillMarket([Action.closePosition()], 110), true);
  assert.deepEqual(account(flat), { cash: 1000, position: 0, entryPrice: 0, fillCount: 0, lastFill: null });
});

test('reversals with leverage and slippage: the old position closes first, the new is sized from the equity after', () => {
  const h = harness({ cash: 10000, commission: 0.0006, leverage: 2 });
  assert.equal(h.fillMarket([BUY_ALL], 100, 3), true);
  assert.deepEqual(account(h), {
    cash: -10000, position: 199.82012591905018, entryPrice: 100.03, fillCount: 1,
    lastFill: { side: 'buy', qty: 199.82012591905018, price: 100.03, reason: 'market' },
  });
  assert.equal(h.fillMarket([SELL_ALL], 90, 3), true);
  assert.deepEqual(account(h), {
    cash: 23883.77657537436, position: -177.0053555787596, entryPrice: 89.973, fillCount: 2,
    lastFill: { side: 'sell', qty: 177.0053555787596, price: 89.973, reason: 'market' },
  });
  const j = harness({ cash: 1000, position: 2, entryPrice: 100, commission: 0.001 });
  assert.equal(j.fillMarket([Action.closePosition(), SELL_ALL], 120, 5), true);
  assert.deepEqual(account(j), {
    cash: 2476.8034365634367, position: -10.325176907468053, entryPrice: 119.94000000000001, fillCount: 2,
    lastFill: { side: 'sell', qty: 10.325176907468053, price: 119.94000000000001, reason: 'market' },
  });
});

test('two orders on one bar: the second is sized after the first', () => {
  const h = harness({ cash: 1000, commission: 0.001 });
  assert.equal(h.fillMarket([equity(Side.Buy, 0.5), equity(Side.Buy, 0.5)], 100), true);
  assert.deepEqual(account(h), {
    cash: 0.24975024975015003, position: 9.98751498251998, entryPrice: 100, fillCount: 2,
    lastFill: { side: 'buy', qty: 4.992509987514983, price: 100, reason: 'market' },
  });
});

test('what the engine must fill is refused, and nothing changes', () => {
  const base = { cash: 1000, position: 1, entryPrice: 100, commission: 0.001 };
  const cases = [
    [{ stopLoss: 90 }, [BUY_ALL], 100],
    [{ takeProfit: 120 }, [BUY_ALL], 100],
    [{ openOrders: 1 }, [BUY_ALL], 100],
    [{ market: 'linear-perpetual' }, [BUY_ALL], 100],
    [{}, [Action.submit(Order.limit(Side.Buy, Quantity.units(1), 99))], 100],
    [{}, [Action.submit(Order.stop(Side.Buy, Quantity.units(1), 101))], 100],
    [{}, [Action.submit(Order.market(Side.Buy, Quantity.units(1)).withStopLoss(90))], 100],
    [{}, [Action.submit(Order.market(Side.Buy, Quantity.units(1)).withTakeProfit(110))], 100],
    [{}, [BUY_ALL, Action.setStopLoss(90)], 100],
    [{}, [Action.setTakeProfit(null)], 100],
    [{}, [Action.cancelOrders()], 100],
    [{}, [units(Side.Buy, 0)], 100],
    [{}, [units(Side.Buy, -1)], 100],
    [{}, [units(Side.Buy, NaN)], 100],
    [{}, [equity(Side.Buy, Infinity)], 100],
    [{}, [BUY_ALL], NaN],
    [{}, [BUY_ALL], 0],
    [{}, [BUY_ALL], -5],
    [{}, [BUY_ALL], Infinity],
    [{}, [Action.submit({ side: 'hold', quantity: Quantity.units(1), kind: { tag: 'market' } })], 100],
  ];
  for (const [extra, actions, open] of cases) {
    const h = harness({ ...base, ...extra });
    const before = JSON.stringify(h.portfolio);
    assert.equal(h.fillMarket(actions, open), false, JSON.stringify([extra, actions, open]));
    assert.equal(JSON.stringify(h.portfolio), before);
  }
});

test('the next bar fed sees the fills, the one after does not', () => {
  const seen = [];
  class Watch extends Idle {
    onBar(bar, ctx) {
      seen.push([ctx.position, ctx.fillCount, ctx.lastFill && ctx.lastFill.reason]);
    }
  }
  const h = new Harness(Watch);
  h.portfolio.commission = 0;
  h.fillMarket([units(Side.Buy, 2)], 10);
  h.feedClose(10);
  h.feedClose(11);
  assert.deepEqual(seen, [[2, 1, 'market'], [2, 0, null]]);
});

// ---------------------------------------------------------------- the runtime

/** Acts on the bars listed in `plan` (window index -> ctx => void), records what it saw. */
function recorder(plan) {
  const seen = [];
  class Rec extends Strategy {
    static describe() {
      return { name: 'rec', version: '1', summary: '', columns: [Column.Close] };
    }
    onBar(bar, ctx) {
      seen.push({ index: bar.index, cash: ctx.cash, position: ctx.position, entryPrice: ctx.entryPrice, fillCount: ctx.fillCount, lastFill: ctx.lastFill });
      for (const a of plan[bar.index] || []) a(ctx);
    }
  }
  return { Rec, seen };
}

const portfolio = (extra = {}) => ({
  cash: 1000, position: 0, entryPrice: 0, stopLoss: undefined, takeProfit: undefined,
  openOrders: 0, fillCount: 0, lastFill: undefined, ...extra,
});

/** Window of n bars from index 0: open 10 + i, close 10.5 + i; commission 0.001, leverage 1. */
function start(Rec, n, { slippage = 0, market } = {}) {
  const s = exportStrategy(Rec);
  s.init([]);
  if (market) s.setMarketState({ market, liquidationPrice: undefined, fundingRate: undefined });
  const col = (f) => Float64Array.from({ length: n }, (_, i) => f(i));
  const e = new Float64Array(0);
  s.pushBars(0n, 0.001, 1, slippage, new BigInt64Array(0), col((i) => 10 + i), e, e, col((i) => 10.5 + i), e);
  return s;
}

const buyAll = (ctx) => ctx.buyAll();
const close = (ctx) => ctx.closePosition();

test('market orders on spot are filled in the guest; the walk goes on to the end', () => {
  const { Rec, seen } = recorder({ 1: [buyAll], 3: [close] });
  const s = start(Rec, 6);
  const step = s.run(portfolio(), 0, 6);
  assert.deepEqual({ ...step }, { consumed: 6, action: undefined, more: 0, planned: 2 });
  const qty = 1000 / (12 * 1.001);
  const cashAfterBuy = 1000 - (qty * 12 + qty * 12 * 0.001);
  const cashAfterClose = cashAfterBuy + (qty * 14 - qty * 14 * 0.001);
  const plan = s.takePlanned();
  assert.deepEqual(plan.actions, [
    { bar: 1, action: { tag: 'submit', val: { side: 'buy', quantity: { tag: 'equity', val: 1 }, kind: { tag: 'market' }, stopLoss: undefined, takeProfit: undefined } } },
    { bar: 3, action: { tag: 'close-position' } },
  ]);
  assert.deepEqual(plan.assumed, [
    { bar: 2, cash: cashAfterBuy, position: qty, entryPrice: 12 },
    { bar: 4, cash: cashAfterClose, position: 0, entryPrice: 0 },
  ]);
  // What the strategy saw: the fills on the bar after, then not.
  assert.deepEqual(seen.map((b) => [b.index, b.position, b.fillCount, b.lastFill && b.lastFill.reason]), [
    [0, 0, 0, null], [1, 0, 0, null], [2, qty, 1, 'market'], [3, qty, 0, null], [4, 0, 1, 'close-position'], [5, 0, 0, null],
  ]);
  assert.equal(seen[2].cash, cashAfterBuy);
  // Taken once; the next run starts empty.
  assert.deepEqual(s.takePlanned(), { actions: [], assumed: [] });
});

test('an action on the window\'s last bar goes to the host (its fill is at the next window\'s open)', () => {
  const { Rec } = recorder({ 1: [buyAll], 5: [close] });
  const s = start(Rec, 6);
  const step = s.run(portfolio(), 0, 6);
  assert.equal(step.consumed, 6);
  assert.equal(step.planned, 1);
  assert.deepEqual(step.action, { tag: 'close-position' });
  // So does one on the range's last bar before the window's end.
  const s2 = start(recorder({ 1: [buyAll] }).Rec, 6);
  assert.deepEqual([s2.run(portfolio(), 0, 2).consumed, s2.takePlanned().actions.length], [2, 0]);
});

test('a bar the mirror cannot fill ends the call, after the planned ones', () => {
  const stop = (ctx) => ctx.setStopLoss(5);
  const { Rec } = recorder({ 1: [buyAll], 3: [buyAll, stop] });
  const s = start(Rec, 6);
  const step = s.run(portfolio(), 0, 6);
  assert.equal(step.consumed, 4);
  assert.equal(step.planned, 1);
  assert.equal(step.more, 1);
  assert.equal(step.action.tag, 'submit');
  assert.deepEqual(s.nextAction(), { tag: 'set-stop-loss', val: 5 });
  assert.deepEqual(s.takePlanned().assumed.map((a) => a.bar), [2]);
});

test('no planning with a stop-loss, resting orders, or under a perpetual', () => {
  for (const [extra, market] of [[{ stopLoss: 5 }], [{ takeProfit: 50 }], [{ openOrders: 2 }], [{}, 'linear-perpetual']]) {
    const { Rec } = recorder({ 1: [buyAll], 3: [close] });
    const s = start(Rec, 6, { market });
    const step = s.run(portfolio(extra), 0, 6);
    assert.equal(step.consumed, 2, JSON.stringify(extra));
    assert.equal(step.planned, 0);
    assert.deepEqual(s.takePlanned(), { actions: [], assumed: [] });
  }
  // Back on spot, it plans again.
  const { Rec } = recorder({ 1: [buyAll], 3: [close] });
  const s = start(Rec, 6, { market: 'linear-perpetual' });
  s.setMarketState({ market: 'spot', liquidationPrice: undefined, fundingRate: undefined });
  assert.equal(s.run(portfolio(), 0, 6).planned, 2);
});

test('slippage applies to planned fills', () => {
  const { Rec } = recorder({ 1: [buyAll] });
  const s = start(Rec, 4, { slippage: 3 });
  s.run(portfolio(), 0, 4);
  const price = 12 * (1 + 1 * 3 / 10000);
  const qty = 1000 * 1 * 1 / (price * 1.001);
  assert.deepEqual(s.takePlanned().assumed, [{ bar: 2, cash: 1000 - (qty * price + qty * price * 0.001), position: qty, entryPrice: price }]);
});

test('a strategy writing to ctx cannot skew the account the mirror fills', () => {
  const tamper = (ctx) => {
    ctx.position = 1e9;
    ctx.cash = -1;
  };
  const { Rec } = recorder({ 0: [], 1: [tamper, buyAll] });
  const s = start(Rec, 4);
  s.run(portfolio(), 0, 4);
  const qty = 1000 / (12 * 1.001);
  assert.deepEqual(s.takePlanned().assumed, [{ bar: 2, cash: 1000 - (qty * 12 + qty * 12 * 0.001), position: qty, entryPrice: 12 }]);
});
