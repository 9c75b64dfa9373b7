// A TypeScript strategy: long while a fast SMA is above a slow one, with a
// stop-loss ATR multiples below the entry. Build it like a JS one:
//   node sdk/js/build.mjs --wit wit --src sdk/js/examples/sma-cross.ts --out sma-cross.wasm
// (types are stripped with the toolchain's `typescript`).
import { Strategy, Column, ParamSpec, Sma, Atr, Order, Side, Quantity, exportStrategy } from '@stratbox/sdk';
import type { Bar, Context, Description, Params } from '@stratbox/sdk';

export class SmaCross extends Strategy {
  private fast: Sma;
  private slow: Sma;
  private atr: Atr;
  private stopAtr: number;

  static describe(): Description {
    return {
      name: 'SMA Cross (TS)',
      version: '0.1.0',
      summary: 'Long while the fast SMA is above the slow one, ATR stop-loss',
      params: [
        ParamSpec.int('fast', 10, { min: 1, max: 500, step: 1, help: 'Bars in the fast SMA' }),
        ParamSpec.int('slow', 30, { min: 2, max: 2000, step: 1, help: 'Bars in the slow SMA' }),
        ParamSpec.float('stop_atr', 2, { min: 0.5, max: 10, step: 0.5, help: 'Stop-loss distance in ATRs' }),
      ],
      columns: [Column.High, Column.Low, Column.Close],
    };
  }

  constructor(params: Params) {
    super(params);
    this.fast = new Sma(params.int('fast'));
    this.slow = new Sma(params.int('slow'));
    this.atr = new Atr(14);
    this.stopAtr = params.float('stop_atr');
  }

  onBar(bar: Bar, ctx: Context): void {
    const fast = this.fast.update(bar.close);
    const slow = this.slow.update(bar.close);
    const atr = this.atr.update(bar.high, bar.low, bar.close);
    if (fast === null || slow === null || atr === null) return;
    if (fast > slow && ctx.isFlat() && ctx.openOrders === 0) {
      const stop = bar.close - this.stopAtr * atr;
      if (stop > 0) ctx.submit(Order.market(Side.Buy, Quantity.equity(1)).withStopLoss(stop));
    } else if (fast < slow && ctx.isLong()) {
      ctx.closePosition();
    }
  }
}

export const strategy = exportStrategy(SmaCross);
