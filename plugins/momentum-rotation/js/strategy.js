// "Momentum rotation" in JavaScript: the same strategy as ../python/app.py
// and ../src (world `portfolio-plugin`).
//
// Every `rebalance` steps (on step t when (t + 1) % rebalance === 0 and
// t >= lookback, t the step's index in the run: steps rebalance - 1,
// 2 * rebalance - 1, ...; as the engine's native reference,
// host/engine/src/reference/momentum_rotation.rs) it ranks the symbols by
// their return over the last `lookback` steps,
// close[t] / close[t - lookback] - 1 (only symbols with a bar at both
// steps; ties go to the symbol listed first), and holds the `top_k` best,
// equal weight, with market orders: first it closes every position outside
// the new top (universe order), then it buys each top symbol it does not
// hold, 1 / top_k of the equity each (best first). Positions it keeps are
// left as they are.

import { PortfolioStrategy, Column, ParamSpec, exportPortfolio } from '@stratbox/sdk';

export class MomentumRotation extends PortfolioStrategy {
  /** @returns {import('@stratbox/sdk').Description} */
  static describe() {
    return {
      name: 'Momentum rotation',
      version: '0.1.0',
      summary: 'Every `rebalance` steps, hold the `top_k` symbols with the best return over `lookback` steps, equal weight',
      params: [
        ParamSpec.int('lookback', 72, { min: 1, max: 5000, step: 1, help: 'Steps over which the return is measured' }),
        ParamSpec.int('rebalance', 24, { min: 1, max: 5000, step: 1, help: 'Steps between two rebalances' }),
        ParamSpec.int('top_k', 2, { min: 1, max: 20, step: 1, help: 'Symbols held, equal weight' }),
      ],
      columns: [Column.Close],
    };
  }

  /**
   * @param {import('@stratbox/sdk').Params} params
   * @param {string[]} symbols
   */
  constructor(params, symbols) {
    super(params, symbols);
    this.lookback = params.int('lookback');
    this.rebalance = params.int('rebalance');
    this.topK = params.int('top_k');
    if (this.lookback < 1 || this.rebalance < 1 || this.topK < 1) {
      throw new Error('lookback, rebalance and top_k must be at least 1');
    }
    /** Each symbol's closes over the last lookback + 1 steps (NaN: no bar). @type {number[][]} */
    this.closes = this.symbols.map(() => []);
  }

  /**
   * @param {import('@stratbox/sdk').Step} step
   * @param {import('@stratbox/sdk').PortfolioContext} ctx
   */
  onStep(step, ctx) {
    const keep = this.lookback + 1;
    for (let i = 0; i < this.closes.length; i++) {
      const bar = step.bars[i];
      const closes = this.closes[i];
      closes.push(bar === null ? NaN : bar.close);
      if (closes.length > keep) closes.shift();
    }
    const t = step.index;
    if (t < this.lookback || (t + 1) % this.rebalance !== 0) return;
    /** @type {[number, number][]} */
    const ranked = [];
    for (let i = 0; i < this.closes.length; i++) {
      const closes = this.closes[i];
      if (closes.length < keep) continue;
      const now = closes[closes.length - 1];
      const then = closes[0];
      if (now === now && then === then) ranked.push([now / then - 1.0, i]);
    }
    // Best return first; ties in universe order.
    ranked.sort((x, y) => (x[0] > y[0] ? -1 : x[0] < y[0] ? 1 : x[1] - y[1]));
    const top = ranked.slice(0, this.topK).map((r) => r[1]);
    for (let i = 0; i < this.symbols.length; i++) {
      if (ctx.position(i) !== 0.0 && !top.includes(i)) ctx.close(i);
    }
    const weight = 1.0 / this.topK;
    for (const i of top) {
      if (ctx.position(i) === 0.0) ctx.buyEquity(i, weight);
    }
  }
}

export const portfolio = exportPortfolio(MomentumRotation);
