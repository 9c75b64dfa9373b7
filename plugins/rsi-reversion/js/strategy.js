// "RSI Reversion" in JavaScript: the same strategy as ../src/lib.rs, bit
// for bit.
//
// When flat with no resting order and the RSI of the close crosses below
// `oversold`, it places an all-in buy limit `entry_discount_pct` below the
// close, with a stop-loss `stop_loss_pct` below the limit price attached to
// the position it opens. A limit still unfilled after five bars is
// cancelled. A long is closed at the next open once the RSI is above
// `overbought`. With `allow_short` the mirror image also trades: a sell
// limit above the close when the RSI crosses above `overbought`, a
// stop-loss above it, covered once the RSI is below `oversold`.

import { Strategy, Column, ParamSpec, Rsi, Order, Side, Quantity, formatF64, exportStrategy } from '@stratbox/sdk';

/** Bars a resting entry limit may wait for a fill before it is cancelled. */
const ENTRY_TTL_BARS = 5;

/** Throws naming the param unless `min <= value <= max` (NaN fails). */
function checkRange(name, value, min, max) {
  if (!(min <= value && value <= max)) {
    throw new Error(`${name} must be between ${formatF64(min)} and ${formatF64(max)}, got ${formatF64(value)}`);
  }
}

/** The host rejects non-positive prices, which would end the run. */
function validPrice(p) {
  return Number.isFinite(p) && p > 0;
}

export class RsiReversion extends Strategy {
  /** @returns {import('@stratbox/sdk').Description} */
  static describe() {
    return {
      name: 'RSI Reversion',
      version: '0.1.0',
      summary:
        'Buys (or sells short) an RSI extreme with a resting limit order and a stop-loss, ' +
        'exits when the RSI reaches the other extreme',
      params: [
        ParamSpec.int('rsi_period', 14, { min: 2, max: 100, step: 1, help: 'Price changes in the RSI (Wilder smoothing)' }),
        ParamSpec.float('oversold', 30, {
          min: 1,
          max: 50,
          step: 1,
          help: 'Enter long when the RSI crosses below this; cover a short below it',
        }),
        ParamSpec.float('overbought', 70, {
          min: 50,
          max: 99,
          step: 1,
          help: 'Close a long above this; enter short when the RSI crosses above it',
        }),
        ParamSpec.float('entry_discount_pct', 0.5, {
          min: 0,
          max: 10,
          step: 0.1,
          help: 'The entry limit rests this percent better than the signal close',
        }),
        ParamSpec.float('stop_loss_pct', 5, {
          min: 0.1,
          max: 50,
          help: 'Stop-loss distance from the entry limit price, in percent',
        }),
        ParamSpec.bool('allow_short', false, { help: 'Also sell short when the RSI crosses above overbought' }),
      ],
      columns: [Column.Close],
    };
  }

  /** @param {import('@stratbox/sdk').Params} params */
  constructor(params) {
    super(params);
    const rsiPeriod = params.int('rsi_period');
    const oversold = params.float('oversold');
    const overbought = params.float('overbought');
    const entryDiscountPct = params.float('entry_discount_pct');
    const stopLossPct = params.float('stop_loss_pct');
    const allowShort = params.bool('allow_short');
    if (!(rsiPeriod >= 2 && rsiPeriod <= 100)) {
      throw new Error(`rsi_period must be between 2 and 100, got ${rsiPeriod}`);
    }
    checkRange('oversold', oversold, 1, 50);
    checkRange('overbought', overbought, 50, 99);
    if (oversold >= overbought) {
      throw new Error(`oversold (${formatF64(oversold)}) must be below overbought (${formatF64(overbought)})`);
    }
    checkRange('entry_discount_pct', entryDiscountPct, 0, 10);
    checkRange('stop_loss_pct', stopLossPct, 0.1, 50);
    this.rsi = new Rsi(rsiPeriod);
    this.oversold = oversold;
    this.overbought = overbought;
    /** entry_discount_pct / 100 */
    this.discount = entryDiscountPct / 100.0;
    /** stop_loss_pct / 100 */
    this.stopLoss = stopLossPct / 100.0;
    this.allowShort = allowShort;
    /** The previous bar's RSI (null before the first). */
    this.previous = null;
    /** Index of the bar on whose close the resting entry was placed, or null. */
    this.entryPlacedAt = null;
  }

  /**
   * @param {import('@stratbox/sdk').Bar} bar
   * @param {import('@stratbox/sdk').Context} ctx
   */
  onBar(bar, ctx) {
    const rsi = this.rsi.update(bar.close);
    if (rsi === null) return;
    const previous = this.previous;
    this.previous = rsi;

    if (ctx.position !== 0) {
      // The entry filled: it no longer rests (anything else that does is
      // not ours to keep).
      this.entryPlacedAt = null;
      if (ctx.openOrders > 0) ctx.cancelOrders();
      if ((ctx.position > 0 && rsi > this.overbought) || (ctx.position < 0 && rsi < this.oversold)) {
        ctx.closePosition();
      }
      return;
    }

    if (ctx.openOrders > 0) {
      const placed = this.entryPlacedAt;
      const fresh = placed !== null && bar.index < placed + ENTRY_TTL_BARS;
      if (!fresh) {
        ctx.cancelOrders();
        this.entryPlacedAt = null;
      }
      return;
    }
    this.entryPlacedAt = null;

    if (previous === null) return;
    let order;
    if (previous >= this.oversold && rsi < this.oversold) {
      const limit = bar.close * (1.0 - this.discount);
      const stop = limit * (1.0 - this.stopLoss);
      order = Order.limit(Side.Buy, Quantity.equity(1.0), limit).withStopLoss(stop);
    } else if (this.allowShort && previous <= this.overbought && rsi > this.overbought) {
      const limit = bar.close * (1.0 + this.discount);
      const stop = limit * (1.0 + this.stopLoss);
      order = Order.limit(Side.Sell, Quantity.equity(1.0), limit).withStopLoss(stop);
    } else {
      return;
    }
    if (validPrice(order.kind.val) && validPrice(order.stopLoss)) {
      ctx.submit(order);
      this.entryPlacedAt = bar.index;
    }
  }
}

export const strategy = exportStrategy(RsiReversion);
