// "EMA Crossover" in JavaScript: the same strategy as ../src/lib.rs, bit
// for bit.
//
// Long only: buy all in on a bullish cross when flat, close on a bearish
// cross. With `allow_short`, after the first cross it is always in the
// market, reversing on each cross.

import { Strategy, Column, ParamSpec, Ema, crossedAbove, crossedBelow, exportStrategy } from '@stratbox/sdk';

export class EmaCrossover extends Strategy {
  /** @returns {import('@stratbox/sdk').Description} */
  static describe() {
    return {
      name: 'EMA Crossover',
      version: '0.1.0',
      summary: 'Long (or reversing long/short) on crossings of a fast and a slow EMA of the close',
      params: [
        ParamSpec.int('fast_period', 12, { min: 1, max: 1000, step: 1, help: 'Bars in the fast EMA' }),
        ParamSpec.int('slow_period', 26, { min: 1, max: 5000, step: 1, help: 'Bars in the slow EMA' }),
        ParamSpec.bool('allow_short', false, { help: 'Reverse into a short on a bearish cross' }),
      ],
      columns: [Column.Close],
    };
  }

  /** @param {import('@stratbox/sdk').Params} params */
  constructor(params) {
    super(params);
    const fastPeriod = params.int('fast_period');
    const slowPeriod = params.int('slow_period');
    if (fastPeriod < 1 || slowPeriod < 1) {
      throw new Error('fast_period and slow_period must be at least 1');
    }
    this.fast = new Ema(fastPeriod);
    this.slow = new Ema(slowPeriod);
    this.allowShort = params.bool('allow_short');
    // The previous bar's EMAs (hasPrevious false before the first).
    this.hasPrevious = false;
    this.prevFast = 0;
    this.prevSlow = 0;
  }

  /**
   * @param {import('@stratbox/sdk').Bar} bar
   * @param {import('@stratbox/sdk').Context} ctx
   */
  onBar(bar, ctx) {
    const fast = this.fast.update(bar.close);
    const slow = this.slow.update(bar.close);
    if (this.hasPrevious) {
      const bullish = crossedAbove(this.prevFast, this.prevSlow, fast, slow);
      const bearish = crossedBelow(this.prevFast, this.prevSlow, fast, slow);
      if (this.allowShort) {
        if (bullish && !ctx.isLong()) {
          ctx.buyAll();
        } else if (bearish && !ctx.isShort()) {
          ctx.sellAll();
        }
      } else if (bullish && ctx.isFlat()) {
        ctx.buyAll();
      } else if (bearish && ctx.isLong()) {
        ctx.closePosition();
      }
    }
    this.hasPrevious = true;
    this.prevFast = fast;
    this.prevSlow = slow;
  }
}

export const strategy = exportStrategy(EmaCrossover);
