// Types of @stratbox/sdk (src/index.js). TypeScript strategies and JS
// strategies with JSDoc (`// @ts-check`) get them through the package's
// `types`, or a `paths` mapping of '@stratbox/sdk' to this file.

export type Side = 'buy' | 'sell';
export declare const Side: { readonly Buy: 'buy'; readonly Sell: 'sell' };

export type Column = 'ts' | 'open' | 'high' | 'low' | 'close' | 'volume';
export declare const Column: {
  readonly Ts: 'ts';
  readonly Open: 'open';
  readonly High: 'high';
  readonly Low: 'low';
  readonly Close: 'close';
  readonly Volume: 'volume';
  readonly ALL: readonly Column[];
};

export type ParamType = 'int' | 'float' | 'bool';
export declare const ParamType: { readonly Int: 'int'; readonly Float: 'float'; readonly Bool: 'bool' };

export type Market = 'spot' | 'linear-perpetual';
export declare const Market: { readonly Spot: 'spot'; readonly LinearPerpetual: 'linear-perpetual' };

export type FillReason = 'market' | 'limit' | 'stop' | 'stop-loss' | 'take-profit' | 'close-position';
export declare const FillReason: {
  readonly Market: 'market';
  readonly Limit: 'limit';
  readonly Stop: 'stop';
  readonly StopLoss: 'stop-loss';
  readonly TakeProfit: 'take-profit';
  readonly ClosePosition: 'close-position';
};

export type Level = 'debug' | 'info' | 'warn' | 'error';
export declare const Level: { readonly Debug: 'debug'; readonly Info: 'info'; readonly Warn: 'warn'; readonly Error: 'error' };

/** Writes one line to the run's log (bounded by the host); stderr in node. */
export declare function log(level: Level, message: string): void;

// ------------------------------------------------------------------ orders

export type Quantity = { tag: 'units'; val: number } | { tag: 'equity'; val: number };
export declare const Quantity: {
  /** Absolute quantity in base units (fractional allowed). */
  units(qty: number): Quantity;
  /** Fraction of equity times leverage; 1.0 is all in (reverses an opposite position). */
  equity(fraction: number): Quantity;
};

export type OrderKind = { tag: 'market' } | { tag: 'limit'; val: number } | { tag: 'stop'; val: number };
export declare const OrderKind: {
  market(): OrderKind;
  limit(price: number): OrderKind;
  stop(price: number): OrderKind;
};

export declare class Order {
  constructor(side: Side, quantity: Quantity, kind: OrderKind);
  side: Side;
  quantity: Quantity;
  kind: OrderKind;
  /** Stop-loss attached to the position this order opens, or null. */
  stopLoss: number | null;
  /** Take-profit attached to the position this order opens, or null. */
  takeProfit: number | null;
  /** Fills at the next bar's open. */
  static market(side: Side, quantity: Quantity): Order;
  /** Rests until the price trades at `price` or better. */
  static limit(side: Side, quantity: Quantity, price: number): Order;
  /** Rests until the price trades through `price` (fills at the open on a gap). */
  static stop(side: Side, quantity: Quantity, price: number): Order;
  withStopLoss(price: number): this;
  withTakeProfit(price: number): this;
}

export type Action =
  | { tag: 'submit'; val: Order }
  | { tag: 'close-position' }
  | { tag: 'cancel-orders' }
  | { tag: 'set-stop-loss'; val: number | null }
  | { tag: 'set-take-profit'; val: number | null };
export declare const Action: {
  submit(order: Order): Action;
  closePosition(): Action;
  cancelOrders(): Action;
  setStopLoss(price: number | null): Action;
  setTakeProfit(price: number | null): Action;
};

export interface Fill {
  side: Side;
  qty: number;
  price: number;
  reason: FillReason;
}

// ------------------------------------------------------------------ bar & context

/** One bar. The runtime reuses one object per run: copy the fields you keep. */
export declare class Bar {
  constructor(index?: number, ts?: number, open?: number, high?: number, low?: number, close?: number, volume?: number);
  /** Index of the bar in the whole run (0 is the first). */
  index: number;
  /** Bar open time, unix seconds UTC (0 when `ts` is not declared). */
  ts: number;
  /** Always sent. */
  open: number;
  /** NaN when not declared; so are low, close and volume. */
  high: number;
  low: number;
  close: number;
  volume: number;
}

/** The account on this bar, and where orders go. Read its fields; do not assign them. */
export declare class Context {
  /** Signed position: > 0 long, < 0 short, 0 flat. */
  readonly position: number;
  readonly cash: number;
  /** Average entry price of the open position (0 when flat). */
  readonly entryPrice: number;
  readonly stopLoss: number | null;
  readonly takeProfit: number | null;
  /** Resting limit and stop entry orders. */
  readonly openOrders: number;
  readonly commission: number;
  readonly leverage: number;
  /** Fills on this bar (0 on most bars; a reversal makes two). */
  readonly fillCount: number;
  /** The last fill on this bar, or null. */
  readonly lastFill: Fill | null;
  /** 'spot' unless the host runs a perpetual backtest. */
  readonly market: Market;
  /** Liquidation price of the open perpetual position; null when flat or on spot. */
  readonly liquidationPrice: number | null;
  /** The latest funding rate known; null on spot or when none is known. */
  readonly fundingRate: number | null;
  /** Actions placed so far on this bar. */
  readonly pendingActions: readonly Action[];
  isFlat(): boolean;
  isLong(): boolean;
  isShort(): boolean;
  /** cash + position * close. */
  equity(): number;
  submit(order: Order): void;
  /** Market buy with all the equity (reverses a short). */
  buyAll(): void;
  /** Market sell with all the equity (reverses a long into a short). */
  sellAll(): void;
  /** Closes the position at the next bar's open. */
  closePosition(): void;
  /** Cancels every resting entry order. */
  cancelOrders(): void;
  setStopLoss(price: number | null): void;
  setTakeProfit(price: number | null): void;
}

// ------------------------------------------------------------------ params

export type ParamValue = number | boolean;

export interface ParamSpec {
  name: string;
  kind: ParamType;
  default: ParamValue;
  min: number | null;
  max: number | null;
  step: number | null;
  help: string;
}

export interface ParamOptions {
  /** Inclusive bounds (ignored for bools). */
  min?: number;
  max?: number;
  /** Grid step an optimizer uses by default. */
  step?: number;
  help?: string;
}

export declare const ParamSpec: {
  int(name: string, defaultValue: number, opts?: ParamOptions): ParamSpec;
  float(name: string, defaultValue: number, opts?: ParamOptions): ParamSpec;
  bool(name: string, defaultValue: boolean, opts?: Pick<ParamOptions, 'help'>): ParamSpec;
};

/** What `static describe()` returns. */
export interface Description {
  name: string;
  version: string;
  summary: string;
  params?: ParamSpec[];
  /** The bar fields the strategy reads (plus open, always sent); all six when absent. */
  columns?: Column[];
}

export interface NormalizedDescription {
  name: string;
  version: string;
  summary: string;
  params: ParamSpec[];
  columns: Column[];
}

/** Concrete params for one run, checked by the host against the schema. */
export declare class Params {
  constructor(values?: Iterable<[string, { kind: ParamType; value: ParamValue }]>);
  static defaults(description: Description): Params;
  with(name: string, kind: ParamType, value: ParamValue | bigint): Params;
  get(name: string): { kind: ParamType; value: ParamValue } | undefined;
  has(name: string): boolean;
  /** Throws when missing or not an int. */
  int(name: string): number;
  /** An int value is widened. Throws when missing or a bool. */
  float(name: string): number;
  bool(name: string): boolean;
  entries(): IterableIterator<[string, ParamValue]>;
  toObject(): Record<string, ParamValue>;
}

/** Checks `{name: value}` against the schema as the host does; throws naming the param. */
export declare function validateParams(description: Description, values?: Record<string, unknown>): Params;
export declare function normalizeDescription(description: Description): NormalizedDescription;
/** Rust's `Display` of an f64 (`50`, `0.1`, no exponent), for messages. */
export declare function formatF64(value: number): string;

// ------------------------------------------------------------------ strategy

/** What exportStrategy and Harness take: a class with a static describe(). */
export interface StrategyClass<S extends Strategy = Strategy> {
  new (params: Params): S;
  describe(): Description;
}

/** Base class of a strategy. The constructor throws to refuse its params. */
export declare class Strategy {
  constructor(params: Params);
  static describe(): Description;
  /** Called for every bar, oldest first, after the fills of that bar. */
  onBar(bar: Bar, ctx: Context): void;
}

/** The WIT `strategy` interface object; a strategy module exports it as `strategy`. */
export interface StrategyExports {
  describe(): unknown;
  init(params: unknown[]): void;
  pushBars(...args: unknown[]): void;
  run(portfolio: unknown, start: number, end: number): unknown;
  nextAction(): unknown;
  takePlanned(): unknown;
  setMarketState(state: unknown): void;
}

/** `export const strategy = exportStrategy(MyStrategy);` */
export declare function exportStrategy(strategy: StrategyClass): StrategyExports;

// ------------------------------------------------------------------ indicators
// Every `update` returns null while warming up; `value` is the last result.
// A period below 1 is treated as 1.

export declare class Ema {
  constructor(period: number);
  readonly period: number;
  readonly alpha: number;
  readonly value: number | null;
  /** Never null: seeded with the first value. */
  update(x: number): number;
  isReady(): boolean;
}

export declare class Sma {
  constructor(period: number);
  readonly period: number;
  readonly value: number | null;
  update(x: number): number | null;
  isReady(): boolean;
}

export declare class Rsi {
  constructor(period: number);
  readonly period: number;
  readonly value: number | null;
  update(x: number): number | null;
  isReady(): boolean;
}

export declare class Atr {
  constructor(period: number);
  readonly period: number;
  readonly value: number | null;
  update(high: number, low: number, close: number): number | null;
  isReady(): boolean;
}

export interface Bands {
  upper: number;
  middle: number;
  lower: number;
}

export declare class BollingerBands {
  constructor(period: number, k: number);
  readonly period: number;
  readonly k: number;
  readonly value: Bands | null;
  update(x: number): Bands | null;
  isReady(): boolean;
}

export interface MacdValue {
  macd: number;
  signal: number;
  histogram: number;
}

export declare class Macd {
  constructor(fast?: number, slow?: number, signal?: number);
  static defaultPeriods(): [number, number, number];
  readonly periods: [number, number, number];
  readonly value: MacdValue | null;
  /** Never null. */
  update(x: number): MacdValue;
  isReady(): boolean;
}

export declare function crossedAbove(prevFast: number, prevSlow: number, fast: number, slow: number): boolean;
export declare function crossedBelow(prevFast: number, prevSlow: number, fast: number, slow: number): boolean;

// ------------------------------------------------------------------ testing

export interface HarnessPortfolio {
  cash: number;
  position: number;
  entryPrice: number;
  stopLoss: number | null;
  takeProfit: number | null;
  openOrders: number;
  commission: number;
  leverage: number;
  fillCount: number;
  lastFill: Fill | null;
  market: Market;
  liquidationPrice: number | null;
  fundingRate: number | null;
}

/** Native unit testing: feed bars, set the account, check the actions. */
export declare class Harness<S extends Strategy = Strategy> {
  /** Schema defaults with `overrides` applied (types checked, bounds not). Throws what the constructor throws. */
  constructor(strategy: StrategyClass<S>, overrides?: Record<string, ParamValue | bigint>);
  readonly strategy: S;
  readonly params: Params;
  readonly description: NormalizedDescription;
  /** The account the strategy sees from the next bar on. */
  portfolio: HarnessPortfolio;
  nextIndex: number;
  setMarket(market: Market): void;
  setLiquidationPrice(price: number | null): void;
  setFundingRate(rate: number | null): void;
  /**
   * Fills `actions` at `open` (the next bar's open) into `portfolio` with the
   * engine's rules, as the runtime does itself in the sandbox for simple
   * market orders; false (nothing changed) when the engine must fill them.
   */
  fillMarket(actions: readonly Action[], open: number, slippageBps?: number): boolean;
  /** One bar with OHLC all `close`, ts = index, volume 0. */
  feedClose(close: number): Action[];
  feed(bar: Partial<Bar> & { close: number }): Action[];
}

// ------------------------------------------------------------------ portfolio
// Several symbols on one timeline (contract 0.3.0, world `portfolio-plugin`).

/** A symbol: its index in the universe, or its name. */
export type SymbolRef = number | string;

/** One step of the timeline. The runtime reuses it: copy what you keep. */
export declare class Step {
  constructor(index?: number, ts?: number, bars?: (Bar | null)[]);
  /** Index of the step in the whole run (0 is the first). */
  index: number;
  /** The step's time, unix seconds UTC (0 when not sent). */
  ts: number;
  /** One entry per symbol: its bar at this step, or null where it has none. */
  bars: (Bar | null)[];
  bar(symbol: number): Bar | null;
  /** NaN where the symbol has no bar. */
  close(symbol: number): number;
}

/** One symbol's position before the step's decision. */
export interface Position {
  /** Signed quantity: > 0 long, < 0 short, 0 flat. */
  qty: number;
  entryPrice: number;
  stopLoss: number | null;
  takeProfit: number | null;
  /** Resting limit and stop entries of this symbol. */
  openOrders: number;
  liquidationPrice: number | null;
  fundingRate: number | null;
}

export interface SymbolFill extends Fill {
  symbol: number;
}

export interface SymbolAction {
  symbol: number;
  action: Action;
}

/** The account on one step, and where orders go. Read its fields; do not assign them. */
export declare class PortfolioContext {
  /** The universe, in the order the host gave it. */
  readonly symbols: readonly string[];
  /** Spot: the cash every position shares; perpetuals: the wallet. */
  readonly cash: number;
  /** Every symbol's position, in universe order. */
  readonly positions: readonly Position[];
  /** The fills at this step (empty on most steps). */
  readonly fills: readonly SymbolFill[];
  readonly market: Market;
  readonly commission: number;
  readonly leverage: number;
  /** Actions placed so far on this step. */
  readonly pendingActions: readonly SymbolAction[];
  /** The index of a symbol; throws a RangeError outside the universe. */
  symbol(ref: SymbolRef): number;
  /** The host's equity before this call, moved by each position's price change since (latest closes). */
  equity(): number;
  position(symbol: SymbolRef): number;
  positionInfo(symbol: SymbolRef): Position;
  isFlat(symbol: SymbolRef): boolean;
  isLong(symbol: SymbolRef): boolean;
  isShort(symbol: SymbolRef): boolean;
  submit(symbol: SymbolRef, order: Order): void;
  /** Market orders of `qty` base units. */
  buy(symbol: SymbolRef, qty: number): void;
  sell(symbol: SymbolRef, qty: number): void;
  /** Market orders committing `fraction` of equity (an opposite position closed first). */
  buyEquity(symbol: SymbolRef, fraction: number): void;
  sellEquity(symbol: SymbolRef, fraction: number): void;
  /** > 0 long, < 0 short, 0 flat: enters or reverses; a position already on that side is kept. */
  target(symbol: SymbolRef, fraction: number): void;
  buyLimit(symbol: SymbolRef, qty: number, price: number): void;
  sellLimit(symbol: SymbolRef, qty: number, price: number): void;
  buyStop(symbol: SymbolRef, qty: number, price: number): void;
  sellStop(symbol: SymbolRef, qty: number, price: number): void;
  /** Closes the symbol's whole position at its next open. */
  close(symbol: SymbolRef): void;
  /** Closes every open position, in universe order. */
  closeAll(): void;
  cancelOrders(symbol: SymbolRef): void;
  setStopLoss(symbol: SymbolRef, price: number | null): void;
  setTakeProfit(symbol: SymbolRef, price: number | null): void;
}

/** What exportPortfolio and PortfolioHarness take. */
export interface PortfolioStrategyClass<S extends PortfolioStrategy = PortfolioStrategy> {
  new (params: Params, symbols: string[]): S;
  describe(): Description;
}

/** Base class of a portfolio strategy. The constructor throws to refuse its params. */
export declare class PortfolioStrategy {
  constructor(params: Params, symbols: string[]);
  /** The universe: symbol names, in the order the host gave them. */
  symbols: string[];
  static describe(): Description;
  /** Called once per step of the timeline, oldest first, after that step's fills. */
  onStep(step: Step, ctx: PortfolioContext): void;
}

/** The WIT `portfolio` interface object; a module exports it as `portfolio`. */
export interface PortfolioExports {
  describe(): unknown;
  init(params: unknown[], symbols: string[], market: Market): void;
  pushBars(...args: unknown[]): void;
  run(account: unknown, start: number, end: number): unknown;
}

/** `export const portfolio = exportPortfolio(MyPortfolioStrategy);` (built with world portfolio-plugin). */
export declare function exportPortfolio(strategy: PortfolioStrategyClass): PortfolioExports;

/** A harness bar: a Bar-like object, a close, or null for no bar. */
export type HarnessBar = (Partial<Bar> & { close: number; open: number }) | number | null;

/** Runs a portfolio strategy over several symbols' bars with an approximate fill model (see the SDK README). */
export declare class PortfolioHarness<S extends PortfolioStrategy = PortfolioStrategy> {
  constructor(strategy: PortfolioStrategyClass<S>, symbols: string[], overrides?: Record<string, ParamValue | bigint>);
  readonly strategy: S;
  readonly params: Params;
  readonly description: NormalizedDescription;
  readonly symbols: string[];
  cash: number;
  commission: number;
  leverage: number;
  slippageBps: number;
  market: Market;
  /** Every symbol's position now (after the last step's fills). */
  readonly positions: Position[];
  /** Every fill so far, with the step it happened on. */
  readonly fills: (SymbolFill & { step: number })[];
  nextIndex: number;
  /** Cash plus every position marked at its symbol's latest close. */
  equity(): number;
  /** One step: one entry per symbol. Returns the actions taken on it. */
  step(bars: HarnessBar[], ts?: number): SymbolAction[];
  /** Columns of closes, by name or in universe order (null: no bar); each step's actions. */
  run(closes: Record<string, (number | null)[]> | (number | null)[][]): SymbolAction[][];
}
