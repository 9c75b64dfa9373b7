// "Pairs spread" in JavaScript: the same strategy as ../python/app.py and
// ../src (world `portfolio-plugin`).
//
// The spread is the ratio of the first two symbols' closes (say BTCUSDT /
// ETHUSDT; further symbols are ignored), a division, so the three
// languages agree bit for bit (no log). Its z-score over the last
// `lookback` steps on which both symbols have a bar: mean = sum / n,
// std = sqrt(sum((s - mean)^2) / n) (population, summed oldest first),
// z = (spread - mean) / std. Then, on each such step, in this order:
// |z| < exit_z: flat; z > entry_z: short the first, long the second, half
// the equity each (unless already so); z < -entry_z: the reverse. Steps
// where either symbol has no bar are skipped, and so is a window whose std
// is 0.

import { PortfolioStrategy, Column, ParamSpec, exportPortfolio } from '@stratbox/sdk';

export class PairsSpread extends PortfolioStrategy {
  /** @returns {import('@stratbox/sdk').Description} */
  static describe() {
    return {
      name: 'Pairs spread',
      version: '0.1.0',
      summary:
        "Long one symbol and short the other when their price ratio's z-score leaves " +
        '+/-entry_z; flat when it is back within exit_z',
      params: [
        ParamSpec.int('lookback', 48, { min: 2, max: 1000, step: 1, help: "Steps in the spread's mean and standard deviation" }),
        ParamSpec.float('entry_z', 2.0, { min: 0.1, max: 10, step: 0.1, help: 'Open the pair when |z| is above this' }),
        ParamSpec.float('exit_z', 0.5, { min: 0, max: 10, step: 0.1, help: 'Close the pair when |z| is below this' }),
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
    if (this.symbols.length < 2) throw new Error(`pairs spread needs two symbols, got ${this.symbols.length}`);
    this.lookback = params.int('lookback');
    if (this.lookback < 2) throw new Error('lookback must be at least 2');
    this.entryZ = params.float('entry_z');
    this.exitZ = params.float('exit_z');
    /** The last `lookback` spreads, oldest first. @type {number[]} */
    this.spreads = [];
  }

  /**
   * @param {import('@stratbox/sdk').Step} step
   * @param {import('@stratbox/sdk').PortfolioContext} ctx
   */
  onStep(step, ctx) {
    const a = step.bars[0];
    const b = step.bars[1];
    if (a === null || b === null) return;
    const spread = a.close / b.close;
    const window = this.spreads;
    window.push(spread);
    if (window.length > this.lookback) window.shift();
    const n = window.length;
    if (n < this.lookback) return;
    let total = 0.0;
    for (let i = 0; i < n; i++) total += window[i];
    const mean = total / n;
    let variance = 0.0;
    for (let i = 0; i < n; i++) {
      const d = window[i] - mean;
      variance += d * d;
    }
    const std = Math.sqrt(variance / n);
    if (!(std > 0.0)) return;
    const z = (spread - mean) / std;
    const first = ctx.position(0);
    const second = ctx.position(1);
    if (Math.abs(z) < this.exitZ) {
      if (first !== 0.0) ctx.close(0);
      if (second !== 0.0) ctx.close(1);
    } else if (z > this.entryZ) {
      if (!(first < 0.0 && second > 0.0)) {
        ctx.target(0, -0.5);
        ctx.target(1, 0.5);
      }
    } else if (z < -this.entryZ) {
      if (!(first > 0.0 && second < 0.0)) {
        ctx.target(0, 0.5);
        ctx.target(1, -0.5);
      }
    }
  }
}

export const portfolio = exportPortfolio(PairsSpread);
