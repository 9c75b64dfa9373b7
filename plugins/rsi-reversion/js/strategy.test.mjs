// The Rust example's tests (../src/lib.rs), against the JS strategy:
//   node --test plugins/rsi-reversion/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../../sdk/js/register.mjs';

const { RsiReversion } = await import('./strategy.js');
const { Harness, Action, Order, Side, Quantity } = await import('@stratbox/sdk');

/** RSI(2) with the default 30/70 levels, 1% discount, 5% stop. */
const harness = (allowShort) =>
  new Harness(RsiReversion, { rsi_period: 2, entry_discount_pct: 1.0, allow_short: allowShort });

/** Warms RSI(2) up on a rise (RSI 100), then drops: 90 takes it below 30. */
function feedDrop(h) {
  for (const close of [100, 101, 102]) assert.deepEqual(h.feedClose(close), []);
  return h.feedClose(90);
}

const buyLimit = (limit, stop) => Action.submit(Order.limit(Side.Buy, Quantity.equity(1), limit).withStopLoss(stop));

test('oversold cross places a discounted buy limit with a stop', () => {
  const h = harness(false);
  const limit = 90 * (1 - 0.01);
  assert.deepEqual(feedDrop(h), [buyLimit(limit, limit * (1 - 0.05))]);
  // Resting: no second order while it waits.
  h.portfolio.openOrders = 1;
  assert.deepEqual(h.feedClose(85), []);
});

test('an unfilled limit is cancelled after five bars', () => {
  const h = harness(false);
  assert.equal(feedDrop(h).length, 1);
  h.portfolio.openOrders = 1;
  for (const close of [91, 92, 93, 94]) assert.deepEqual(h.feedClose(close), []);
  assert.deepEqual(h.feedClose(95), [Action.cancelOrders()]);
  // Cancelled, flat, RSI high: nothing new until the next cross.
  h.portfolio.openOrders = 0;
  assert.deepEqual(h.feedClose(96), []);
});

test('a long is closed when the RSI is overbought', () => {
  const h = harness(false);
  assert.equal(feedDrop(h).length, 1);
  Object.assign(h.portfolio, { openOrders: 0, position: 1, entryPrice: 89.1, stopLoss: 89.1 * 0.95 });
  assert.deepEqual(h.feedClose(89.5), []);
  assert.deepEqual(h.feedClose(99), [Action.closePosition()]);
});

test('long only ignores an overbought cross; short mode sells above', () => {
  const rise = [100, 99, 98, 110];
  const longOnly = harness(false);
  for (const close of rise) assert.deepEqual(longOnly.feedClose(close), []);
  const both = harness(true);
  for (const close of rise.slice(0, 3)) assert.deepEqual(both.feedClose(close), []);
  const limit = 110 * 1.01;
  assert.deepEqual(both.feedClose(110), [
    Action.submit(Order.limit(Side.Sell, Quantity.equity(1), limit).withStopLoss(limit * 1.05)),
  ]);
  both.portfolio.position = -1;
  assert.deepEqual(both.feedClose(95), [Action.closePosition()]);
});

test('rejects inverted levels and a bad period, with the Rust messages', () => {
  assert.throws(() => new Harness(RsiReversion, { oversold: 50, overbought: 50 }), {
    message: 'oversold (50) must be below overbought (50)',
  });
  assert.throws(() => new Harness(RsiReversion, { rsi_period: 1 }), { message: 'rsi_period must be between 2 and 100, got 1' });
  assert.throws(() => new Harness(RsiReversion, { stop_loss_pct: NaN }), {
    message: 'stop_loss_pct must be between 0.1 and 50, got NaN',
  });
});
