// "EMA Crossover" in JavaScript: the same strategy as ../src/lib.rs, bit
// for bit.
//
// Long only: buy all in on a bullish cross when flat, close on a bearish
// cross. With `allow_short`, after the first cross it is always in the
// market, reversing on each cross.

import { Strategy, Column, ParamSpec, Ema, exportStrategy } from '@stratbox/sdk';

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
    // The previous bar's EMAs; NaN before the first bar, so no comparison
    // with them is true (Rust: `previous: Option<(f64, f64)>`).
    this.prevFast = NaN;
    this.prevSlow = NaN;
  }

  /**
   * @param {import('@stratbox/sdk').Bar} bar
   * @param {import('@stratbox/sdk').Context} ctx
   */
  onBar(bar, ctx) {
    const close = bar.close;
    const fast = this.fast.update(close);
    const slow = this.slow.update(close);
    const prevFast = this.prevFast;
    const prevSlow = this.prevSlow;
    this.prevFast = fast;
    this.prevSlow = slow;
    // crossedAbove / crossedBelow, written out with early exits: this runs
    // on every bar and the engine interprets every operation. NaN before
    // the first bar: neither cross.
    let bullish;
    if (prevFast < prevSlow) {
      if (!(fast > slow)) return;
      bullish = true;
    } else if (prevFast > prevSlow) {
      if (!(fast < slow)) return;
      bullish = false;
    } else {
      return;
    }
    const bearish = !bullish;
    const position = ctx.position;
    if (this.allowShort) {
      if (bullish && !(position > 0)) {
        ctx.buyAll();
      } else if (bearish && !(position < 0)) {
        ctx.sellAll();
      }
    } else if (bullish && position === 0) {
      ctx.buyAll();
    } else if (bearish && position > 0) {
      ctx.closePosition();
    }
  }
}

export const strategy = exportStrategy(EmaCrossover);
