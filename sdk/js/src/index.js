// @stratbox/sdk: write a stratbox trading strategy in JavaScript.
//
//   import { Strategy, Column, ParamSpec, Ema, exportStrategy } from '@stratbox/sdk';
//
//   export class Buy extends Strategy {
//     static describe() {
//       return { name: 'buy', version: '0.1.0', summary: 'buys on the first bar' };
//     }
//     onBar(bar, ctx) { if (ctx.isFlat()) ctx.buyAll(); }
//   }
//   export const strategy = exportStrategy(Buy);
//
// The port of the Rust SDK (sdk/src): same semantics, same indicator float
// operations in the same order (JS numbers are IEEE-754 doubles and are
// never fused), so a strategy written in both gives bit-identical reports.
//
// This file is ONE self-contained ES module with no imports and a single
// `export { ... }` list at its end: `build.mjs` inlines it into the
// strategy's module (componentize-js takes one source file). Keep it so.

// ---------------------------------------------------------------- enums
// String values are the WIT enum cases, as the component bindings use them.

/** Order side. */
const Side = Object.freeze({ Buy: 'buy', Sell: 'sell' });

/** A field of a bar. */
const Column = Object.freeze({
  Ts: 'ts',
  Open: 'open',
  High: 'high',
  Low: 'low',
  Close: 'close',
  Volume: 'volume',
  ALL: Object.freeze(['ts', 'open', 'high', 'low', 'close', 'volume']),
});

const ParamType = Object.freeze({ Int: 'int', Float: 'float', Bool: 'bool' });

const Market = Object.freeze({ Spot: 'spot', LinearPerpetual: 'linear-perpetual' });

const FillReason = Object.freeze({
  Market: 'market',
  Limit: 'limit',
  Stop: 'stop',
  StopLoss: 'stop-loss',
  TakeProfit: 'take-profit',
  ClosePosition: 'close-position',
});

const Level = Object.freeze({ Debug: 'debug', Info: 'info', Warn: 'warn', Error: 'error' });

// ---------------------------------------------------------------- log

let logSink = null;

/**
 * Writes one line to the run's log (the host keeps a bounded number).
 * Inside the sandbox it goes through the `log` import; in node to stderr.
 */
function log(level, message) {
  const text = String(message);
  if (logSink !== null) {
    logSink(level, text);
  } else if (typeof console !== 'undefined') {
    const name = { debug: 'Debug', info: 'Info', warn: 'Warn', error: 'Error' }[level] || String(level);
    console.error(`[${name}] ${text}`);
  }
}

/** @internal Set by the component bundle to the WIT `log` import. */
function __setLogSink(sink) {
  logSink = typeof sink === 'function' ? sink : null;
}

// ---------------------------------------------------------------- orders

/** Order sizes. */
const Quantity = Object.freeze({
  /** Absolute quantity in base units (fractional allowed). */
  units: (qty) => ({ tag: 'units', val: qty }),
  /** Fraction of equity times leverage; 1.0 is all in (reverses an opposite position). */
  equity: (fraction) => ({ tag: 'equity', val: fraction }),
});

const MARKET_KIND = Object.freeze({ tag: 'market' });

const OrderKind = Object.freeze({
  market: () => MARKET_KIND,
  limit: (price) => ({ tag: 'limit', val: price }),
  stop: (price) => ({ tag: 'stop', val: price }),
});

/** An order. Build with `Order.market/limit/stop`, then `withStopLoss`/`withTakeProfit`. */
class Order {
  constructor(side, quantity, kind) {
    this.side = side;
    this.quantity = quantity;
    this.kind = kind;
    /** Protective exits attached to the position this order opens (null: none). */
    this.stopLoss = null;
    this.takeProfit = null;
  }
  /** Fills at the next bar's open. */
  static market(side, quantity) {
    return new Order(side, quantity, MARKET_KIND);
  }
  /** Rests until the price trades at `price` or better. */
  static limit(side, quantity, price) {
    return new Order(side, quantity, { tag: 'limit', val: price });
  }
  /** Rests until the price trades through `price` (fills at the open on a gap). */
  static stop(side, quantity, price) {
    return new Order(side, quantity, { tag: 'stop', val: price });
  }
  /** Attaches a stop-loss to the position this order opens. */
  withStopLoss(price) {
    this.stopLoss = price;
    return this;
  }
  /** Attaches a take-profit to the position this order opens. */
  withTakeProfit(price) {
    this.takeProfit = price;
    return this;
  }
}

const CLOSE_POSITION = Object.freeze({ tag: 'close-position' });
const CANCEL_ORDERS = Object.freeze({ tag: 'cancel-orders' });
const BUY_ALL = Object.freeze({ tag: 'submit', val: Object.freeze(Order.market('buy', Object.freeze(Quantity.equity(1)))) });
const SELL_ALL = Object.freeze({ tag: 'submit', val: Object.freeze(Order.market('sell', Object.freeze(Quantity.equity(1)))) });

/** Actions, as `ctx` records them (the WIT `action` variant). */
const Action = Object.freeze({
  submit: (order) => ({ tag: 'submit', val: order }),
  closePosition: () => CLOSE_POSITION,
  cancelOrders: () => CANCEL_ORDERS,
  setStopLoss: (price) => ({ tag: 'set-stop-loss', val: price == null ? null : price }),
  setTakeProfit: (price) => ({ tag: 'set-take-profit', val: price == null ? null : price }),
});

// ---------------------------------------------------------------- bar & context

/** One bar. The runtime reuses one object: copy fields you keep. */
class Bar {
  constructor(index = 0, ts = 0, open = NaN, high = NaN, low = NaN, close = NaN, volume = NaN) {
    /** Index of the bar in the whole run (0 is the first bar). */
    this.index = index;
    /** Bar open time, unix seconds UTC (0 when not declared). */
    this.ts = ts;
    this.open = open;
    this.high = high;
    this.low = low;
    this.close = close;
    this.volume = volume;
  }
}

/**
 * The strategy's view of its account on one bar, and where it places
 * orders. Fields are read-only by convention; the runtime reuses one.
 */
class Context {
  constructor(bar, actions) {
    this._bar = bar;
    this._actions = actions;
    /** Signed position: > 0 long, < 0 short, 0 flat. */
    this.position = 0;
    this.cash = 0;
    /** Average entry price of the open position (0 when flat). */
    this.entryPrice = 0;
    this.stopLoss = null;
    this.takeProfit = null;
    /** Resting limit and stop entry orders. */
    this.openOrders = 0;
    this.commission = 0;
    this.leverage = 1;
    /** Fills on this bar (0 on most; a reversal makes two). */
    this.fillCount = 0;
    /** The last fill on this bar, or null. */
    this.lastFill = null;
    this.market = 'spot';
    this.liquidationPrice = null;
    this.fundingRate = null;
  }
  isFlat() {
    return this.position === 0;
  }
  isLong() {
    return this.position > 0;
  }
  isShort() {
    return this.position < 0;
  }
  /** Cash plus the position marked at this bar's close (see the Rust SDK's note on perpetuals). */
  equity() {
    return this.cash + this.position * this._bar.close;
  }
  /** Actions placed so far on this bar (do not modify). */
  get pendingActions() {
    return this._actions;
  }
  submit(order) {
    this._actions.push({ tag: 'submit', val: order });
  }
  /** Market buy with all the equity (reverses a short). */
  buyAll() {
    this._actions.push(BUY_ALL);
  }
  /** Market sell with all the equity (reverses a long into a short). */
  sellAll() {
    this._actions.push(SELL_ALL);
  }
  /** Closes the position at the next bar's open. */
  closePosition() {
    this._actions.push(CLOSE_POSITION);
  }
  /** Cancels every resting entry order. */
  cancelOrders() {
    this._actions.push(CANCEL_ORDERS);
  }
  /** Sets (a number) or clears (null) the stop-loss of the current position. */
  setStopLoss(price) {
    this._actions.push(Action.setStopLoss(price));
  }
  /** Sets (a number) or clears (null) the take-profit of the current position. */
  setTakeProfit(price) {
    this._actions.push(Action.setTakeProfit(price));
  }
}

// ---------------------------------------------------------------- params

/** Rust's `Display` of an f64 (no exponent), for messages matching the Rust SDK's. */
function formatF64(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  if (Object.is(v, -0)) return '-0';
  const s = String(v);
  const e = s.indexOf('e');
  if (e < 0) return s;
  const neg = s[0] === '-';
  let mant = s.slice(neg ? 1 : 0, e);
  const exp = Number(s.slice(e + 1));
  const dot = mant.indexOf('.');
  let intLen = dot < 0 ? mant.length : dot;
  const digits = mant.replace('.', '');
  intLen += exp;
  let out;
  if (intLen <= 0) out = '0.' + '0'.repeat(-intLen) + digits;
  else if (intLen >= digits.length) out = digits + '0'.repeat(intLen - digits.length);
  else out = digits.slice(0, intLen) + '.' + digits.slice(intLen);
  return (neg ? '-' : '') + out;
}

function describeValue(kind, value) {
  if (kind === 'int') return `Int(${value})`;
  if (kind === 'float') {
    const s = formatF64(value);
    return `Float(${Number.isInteger(value) && !s.includes('.') ? s + '.0' : s})`;
  }
  return `Bool(${value})`;
}

/** Schema entries. `opts`: { min, max, step, help }. */
const ParamSpec = Object.freeze({
  int: (name, def, opts) => makeSpec(name, 'int', def, opts),
  float: (name, def, opts) => makeSpec(name, 'float', def, opts),
  bool: (name, def, opts) => makeSpec(name, 'bool', def, opts),
});

function makeSpec(name, kind, def, opts = {}) {
  const o = opts || {};
  return {
    name: String(name),
    kind,
    default: def,
    min: o.min == null ? null : o.min,
    max: o.max == null ? null : o.max,
    step: o.step == null ? null : o.step,
    help: o.help == null ? '' : String(o.help),
  };
}

function isIntValue(v) {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}

/** Checks and fills in a description (what `describe()` returned). */
function normalizeDescription(d) {
  if (d === null || typeof d !== 'object') throw new TypeError('describe() must return an object');
  const out = {
    name: String(d.name ?? ''),
    version: String(d.version ?? ''),
    summary: String(d.summary ?? ''),
    params: [],
    columns: d.columns == null ? Column.ALL.slice() : Array.from(d.columns, String),
  };
  for (const c of out.columns) {
    if (!Column.ALL.includes(c)) throw new TypeError(`unknown column \`${c}\``);
  }
  const seen = new Set();
  for (const p of d.params || []) {
    const spec = { ...makeSpec(p.name, p.kind, p.default, p), help: p.help == null ? '' : String(p.help) };
    if (seen.has(spec.name)) throw new TypeError(`param \`${spec.name}\` declared twice`);
    seen.add(spec.name);
    switch (spec.kind) {
      case 'int':
        if (!isIntValue(spec.default)) throw new TypeError(`param \`${spec.name}\`: int default must be an integer`);
        spec.default = Number(spec.default);
        break;
      case 'float':
        if (typeof spec.default !== 'number') throw new TypeError(`param \`${spec.name}\`: float default must be a number`);
        break;
      case 'bool':
        if (typeof spec.default !== 'boolean') throw new TypeError(`param \`${spec.name}\`: bool default must be a boolean`);
        break;
      default:
        throw new TypeError(`param \`${spec.name}\`: kind must be int, float or bool`);
    }
    for (const k of ['min', 'max', 'step']) {
      if (spec[k] !== null && typeof spec[k] !== 'number') throw new TypeError(`param \`${spec.name}\`: ${k} must be a number`);
    }
    out.params.push(spec);
  }
  return out;
}

/** Concrete params for one run, as checked by the host. */
class Params {
  /** `values`: array of [name, {kind, value}] (numbers for ints). */
  constructor(values = []) {
    this._values = new Map();
    for (const [name, v] of values) this._values.set(name, v);
  }
  /** The schema defaults of a description. */
  static defaults(description) {
    const d = normalizeDescription(description);
    return new Params(d.params.map((s) => [s.name, { kind: s.kind, value: s.default }]));
  }
  /** Replaces (or adds) one value (a copy); for tests. */
  with(name, kind, value) {
    const p = new Params([...this._values]);
    p._values.set(name, { kind, value: kind === 'int' ? Number(value) : value });
    return p;
  }
  /** `{kind, value}` or undefined. */
  get(name) {
    return this._values.get(name);
  }
  has(name) {
    return this._values.has(name);
  }
  /** An int param, as a number; throws when missing or not an int. */
  int(name) {
    const v = this._values.get(name);
    if (v !== undefined && v.kind === 'int') return v.value;
    throw new Error(mismatch(name, 'int', v));
  }
  /** A float param; an int value is widened. */
  float(name) {
    const v = this._values.get(name);
    if (v !== undefined && (v.kind === 'float' || v.kind === 'int')) return v.value;
    throw new Error(mismatch(name, 'float', v));
  }
  bool(name) {
    const v = this._values.get(name);
    if (v !== undefined && v.kind === 'bool') return v.value;
    throw new Error(mismatch(name, 'bool', v));
  }
  /** [name, value] pairs, in order. */
  *entries() {
    for (const [name, v] of this._values) yield [name, v.value];
  }
  /** name -> value. */
  toObject() {
    return Object.fromEntries(this.entries());
  }
}

function mismatch(name, wanted, got) {
  if (got === undefined) return `param \`${name}\` is missing`;
  return `param \`${name}\` must be ${wanted}, got ${describeValue(got.kind, got.value)}`;
}

/**
 * Validates `{name: value}` against a description's schema as the host
 * does (unknown names, types, bounds), filling in defaults. Throws an Error
 * naming the param; returns Params.
 */
function validateParams(description, values = {}) {
  const d = normalizeDescription(description);
  for (const name of Object.keys(values)) {
    if (!d.params.some((s) => s.name === name)) {
      const known = d.params.map((s) => s.name).join(', ') || 'no params';
      throw new Error(`unknown param \`${name}\` (known: ${known})`);
    }
  }
  const out = [];
  for (const spec of d.params) {
    if (!Object.prototype.hasOwnProperty.call(values, spec.name)) {
      out.push([spec.name, { kind: spec.kind, value: spec.default }]);
      continue;
    }
    const value = coerceParam(spec, values[spec.name]);
    if (spec.kind !== 'bool') {
      if (spec.min !== null && value < spec.min) {
        throw new Error(`param \`${spec.name}\` = ${formatF64(value)} is out of range: below its minimum ${formatF64(spec.min)}`);
      }
      if (spec.max !== null && value > spec.max) {
        throw new Error(`param \`${spec.name}\` = ${formatF64(value)} is out of range: above its maximum ${formatF64(spec.max)}`);
      }
    }
    out.push([spec.name, { kind: spec.kind, value }]);
  }
  return new Params(out);
}

function coerceParam(spec, raw) {
  const wrong = () => new Error(`param \`${spec.name}\` must be ${spec.kind}, got ${typeof raw === 'string' ? '`' + raw + '`' : String(raw)}`);
  switch (spec.kind) {
    case 'int':
      if (typeof raw === 'bigint') return Number(raw);
      if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw;
      if (typeof raw === 'string' && /^\s*[+-]?\d+\s*$/.test(raw)) return Number(raw.trim());
      throw wrong();
    case 'float':
      if (typeof raw === 'number' && Number.isFinite(raw)) return raw;
      if (typeof raw === 'string' && raw.trim() !== '' && Number.isFinite(Number(raw))) return Number(raw);
      throw wrong();
    default:
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      throw wrong();
  }
}

// ---------------------------------------------------------------- strategy

/**
 * Base class of a strategy (optional: any class with a static `describe()`,
 * a constructor taking Params and an `onBar(bar, ctx)` method will do).
 * The constructor throws to refuse its params (the run ends with the message).
 */
class Strategy {
  // eslint-disable-next-line no-unused-vars
  constructor(params) {}
  static describe() {
    throw new Error('a strategy must define static describe()');
  }
  // eslint-disable-next-line no-unused-vars
  onBar(bar, ctx) {}
}

// ---------------------------------------------------------------- indicators
// Mirrors sdk/src/indicators.rs operation for operation (see its notes on
// bit reproducibility). Each `update` returns null while warming up.

/** Rust's `period.max(1)` on a usize. */
function period1(p) {
  const n = Math.floor(Number(p));
  return n >= 1 ? n : 1;
}

/** Rust's f64::max: a NaN operand is ignored; +0 over -0. */
function fmax(a, b) {
  if (a !== a) return b;
  if (b !== b) return a;
  if (a > b) return a;
  if (b > a) return b;
  return Object.is(a, -0) ? b : a;
}

/** A ring of the last `cap` values, summed oldest to newest. */
class Window {
  constructor(cap) {
    this.buf = [];
    this.cap = cap;
    this.head = 0;
  }
  push(x) {
    const buf = this.buf;
    if (buf.length < this.cap) {
      buf.push(x);
    } else {
      buf[this.head] = x;
      this.head += 1;
      if (this.head === this.cap) this.head = 0;
    }
  }
  isFull() {
    return this.buf.length === this.cap;
  }
  sum() {
    const buf = this.buf;
    const n = buf.length;
    let s = 0.0;
    for (let i = this.head; i < n; i++) s += buf[i];
    for (let i = 0; i < this.head; i++) s += buf[i];
    return s;
  }
}

/** Exponential moving average: seeded with the first value, then alpha*x + (1-alpha)*ema. */
class Ema {
  constructor(period) {
    this.period = period1(period);
    this.alpha = 2.0 / (this.period + 1.0);
    this._beta = 1.0 - this.alpha;
    /** The last value, or null before the first update. */
    this.value = null;
  }
  /** The first value seeds the average; later ones go through `_next`. */
  update(x) {
    // Swapped for the steady-state form on the instance: no null check per
    // bar (about 4 % of an EMA crossover's fuel in the sandbox).
    this.update = this._next;
    return (this.value = x);
  }
  _next(x) {
    return (this.value = this.alpha * x + this._beta * this.value);
  }
  isReady() {
    return this.value !== null;
  }
}

/** Simple moving average over `period` values. */
class Sma {
  constructor(period) {
    this._window = new Window(period1(period));
    this.value = null;
  }
  get period() {
    return this._window.cap;
  }
  update(x) {
    const w = this._window;
    w.push(x);
    if (w.isFull()) this.value = w.sum() / w.cap;
    return this.value;
  }
  isReady() {
    return this.value !== null;
  }
}

function rsiFromAverages(avgGain, avgLoss) {
  if (avgLoss === 0.0) return avgGain === 0.0 ? 50.0 : 100.0;
  return 100.0 - 100.0 / (1.0 + avgGain / avgLoss);
}

/** Wilder's RSI over `period` price changes (ready on the period+1-th value). */
class Rsi {
  constructor(period) {
    this.period = period1(period);
    this._prev = null;
    this._changes = 0;
    this._avgGain = 0.0;
    this._avgLoss = 0.0;
    this.value = null;
  }
  update(x) {
    const prev = this._prev;
    this._prev = x;
    if (prev === null) return null;
    const d = x - prev;
    const gain = d > 0.0 ? d : 0.0;
    const loss = d < 0.0 ? -d : 0.0;
    const period = this.period;
    const n = period;
    if (this._changes < period) {
      this._avgGain += gain;
      this._avgLoss += loss;
      this._changes += 1;
      if (this._changes < period) return null;
      this._avgGain /= n;
      this._avgLoss /= n;
    } else {
      const n1 = period - 1;
      this._avgGain = (this._avgGain * n1 + gain) / n;
      this._avgLoss = (this._avgLoss * n1 + loss) / n;
    }
    return (this.value = rsiFromAverages(this._avgGain, this._avgLoss));
  }
  isReady() {
    return this.value !== null;
  }
}

/** Average true range, Wilder smoothing (ready on the period-th bar). */
class Atr {
  constructor(period) {
    this.period = period1(period);
    this._prevClose = null;
    this._bars = 0;
    this._acc = 0.0;
    this.value = null;
  }
  update(high, low, close) {
    const pc = this._prevClose;
    this._prevClose = close;
    const tr = pc === null ? high - low : fmax(fmax(high - low, Math.abs(high - pc)), Math.abs(low - pc));
    const period = this.period;
    const n = period;
    if (this._bars < period) {
      this._acc += tr;
      this._bars += 1;
      if (this._bars < period) return null;
      this._acc /= n;
    } else {
      this._acc = (this._acc * (period - 1) + tr) / n;
    }
    return (this.value = this._acc);
  }
  isReady() {
    return this.value !== null;
  }
}

/** Bollinger bands: SMA +/- k population standard deviations. Values are {upper, middle, lower}. */
class BollingerBands {
  constructor(period, k) {
    this._window = new Window(period1(period));
    this.k = k;
    this.value = null;
  }
  get period() {
    return this._window.cap;
  }
  update(x) {
    const w = this._window;
    w.push(x);
    if (w.isFull()) {
      const n = w.cap;
      const middle = w.sum() / n;
      const buf = w.buf;
      const len = buf.length;
      let v = 0.0;
      for (let i = w.head; i < len; i++) {
        const d = buf[i] - middle;
        v += d * d;
      }
      for (let i = 0; i < w.head; i++) {
        const d = buf[i] - middle;
        v += d * d;
      }
      const std = Math.sqrt(v / n);
      this.value = { upper: middle + this.k * std, middle, lower: middle - this.k * std };
    }
    return this.value;
  }
  isReady() {
    return this.value !== null;
  }
}

/** MACD: fast EMA - slow EMA, its signal EMA and the histogram. Values are {macd, signal, histogram}. */
class Macd {
  constructor(fast = 12, slow = 26, signal = 9) {
    this._fast = new Ema(fast);
    this._slow = new Ema(slow);
    this._signal = new Ema(signal);
    this.value = null;
  }
  static defaultPeriods() {
    return [12, 26, 9];
  }
  get periods() {
    return [this._fast.period, this._slow.period, this._signal.period];
  }
  update(x) {
    const fast = this._fast.update(x);
    const slow = this._slow.update(x);
    const macd = fast - slow;
    const signal = this._signal.update(macd);
    return (this.value = { macd, signal, histogram: macd - signal });
  }
  isReady() {
    return this.value !== null;
  }
}

/** prevFast < prevSlow && fast > slow */
function crossedAbove(prevFast, prevSlow, fast, slow) {
  return prevFast < prevSlow && fast > slow;
}

/** prevFast > prevSlow && fast < slow */
function crossedBelow(prevFast, prevSlow, fast, slow) {
  return prevFast > prevSlow && fast < slow;
}

// ---------------------------------------------------------------- testing

/** A description's schema defaults with `overrides` applied: types checked, bounds not. */
function paramsWithOverrides(description, overrides) {
  let params = Params.defaults(description);
  for (const [name, raw] of Object.entries(overrides || {})) {
    const spec = description.params.find((s) => s.name === name);
    let kind;
    if (spec) {
      kind = spec.kind;
    } else if (typeof raw === 'boolean') {
      kind = 'bool';
    } else {
      kind = isIntValue(raw) ? 'int' : 'float';
    }
    const value = raw;
    const ok = kind === 'bool' ? typeof value === 'boolean' : kind === 'int' ? isIntValue(value) : typeof value === 'number';
    if (!ok) throw new TypeError(`param \`${name}\` must be ${kind}, got ${String(raw)}`);
    params = params.with(name, kind, value);
  }
  return params;
}

/**
 * Native unit testing of a strategy: feed bars one at a time, set the
 * account it should see, check the actions it takes. Fills are the test's
 * job. Mirrors sdk/src/testing.rs.
 */
class Harness {
  /**
   * Builds the strategy from its schema defaults with `overrides`
   * ({name: value}) applied; types are checked, bounds are not (the
   * strategy's own checks are under test). Throws what the constructor throws.
   */
  constructor(StrategyClass, overrides = {}) {
    const description = normalizeDescription(StrategyClass.describe());
    const params = paramsWithOverrides(description, overrides);
    this.description = description;
    this.params = params;
    this.strategy = new StrategyClass(params);
    /** The account the strategy sees from the next bar on. Mutate freely. */
    this.portfolio = {
      cash: 10000.0,
      position: 0.0,
      entryPrice: 0.0,
      stopLoss: null,
      takeProfit: null,
      openOrders: 0,
      commission: 0.0006,
      leverage: 1.0,
      fillCount: 0,
      lastFill: null,
      market: 'spot',
      liquidationPrice: null,
      fundingRate: null,
    };
    this.nextIndex = 0;
  }
  setMarket(market) {
    this.portfolio.market = market;
  }
  setLiquidationPrice(price) {
    this.portfolio.liquidationPrice = price;
  }
  setFundingRate(rate) {
    this.portfolio.fundingRate = rate;
  }
  /**
   * Fills `actions` at `open` (the next bar's open) into `this.portfolio`
   * as the sandboxed runtime does itself for simple market orders, with the
   * engine's rules (all-in sizing, commission, slippage, reversals): the
   * next bar fed sees the fills. Returns false, and changes nothing, when
   * the engine would have to fill them (resting orders, exits, limit or
   * stop orders, a perpetual).
   */
  fillMarket(actions, open, slippageBps = 0.0) {
    const p = this.portfolio;
    if (p.market !== 'spot' || !predictable(p, actions, open)) return false;
    fillMarket(p, actions, open, slippageBps);
    return true;
  }
  /** Feeds one bar (ts is the bar index, OHLC all equal to `close`, volume 0). */
  feedClose(close) {
    const i = this.nextIndex;
    return this.feed(new Bar(i, i, close, close, close, close, 0.0));
  }
  /** Feeds one bar ({index?, ts?, open, high, low, close, volume}) and returns its actions. */
  feed(bar) {
    const b = bar instanceof Bar ? bar : Object.assign(new Bar(this.nextIndex, this.nextIndex), bar);
    this.nextIndex = b.index + 1;
    const actions = [];
    const ctx = new Context(b, actions);
    Object.assign(ctx, this.portfolio);
    this.strategy.onBar(b, ctx);
    this.portfolio.fillCount = 0;
    this.portfolio.lastFill = null;
    return actions;
  }
}

// ---------------------------------------------------------------- fills
// Market fills simulated in the guest, so the runtime can walk past a bar
// where the strategy placed market orders without a round trip to the
// host. Mirrors sdk/src/fills.rs, itself the host broker's expressions
// (host/engine/src/broker.rs) one for one, so the results are bit
// identical (JS numbers are IEEE-754 doubles, never fused); the host checks
// the account reached after every such fill and fails the run on any
// difference. Only the simple case: no resting order, no stop-loss or
// take-profit, market orders without exits and close-position; spot only.
//
// Written for the interpreter that runs it (every call costs about four
// arithmetic steps): few calls, `x < 0 ? -x : x` for abs and the min/max
// written out, each with Rust's f64 semantics wherever a NaN or a signed
// zero could change the outcome (see the comments).
//
// An account `p` is {cash, position, entryPrice, stopLoss, takeProfit,
// openOrders, commission, leverage, fillCount, lastFill}.

/** Whether one action can be filled in the guest: close-position, or a valid market order without exits. */
function plannableAction(a) {
  if (a === BUY_ALL || a === SELL_ALL || a === CLOSE_POSITION) return true;
  if (a === null || typeof a !== 'object') return false;
  if (a.tag === 'close-position') return true;
  if (a.tag !== 'submit') return false;
  const o = a.val;
  if (o === null || typeof o !== 'object') return false;
  if (o.side !== 'buy' && o.side !== 'sell') return false;
  const q = o.quantity;
  if (q === null || typeof q !== 'object' || (q.tag !== 'units' && q.tag !== 'equity')) return false;
  const v = q.val;
  // Finite and > 0 (NaN fails both).
  if (typeof v !== 'number' || !(v > 0.0 && v < Infinity)) return false;
  if (o.kind === null || typeof o.kind !== 'object' || o.kind.tag !== 'market') return false;
  return o.stopLoss == null && o.takeProfit == null;
}

/** Whether `actions` taken with account `p` can be filled in the guest at `nextOpen`. */
function predictable(p, actions, nextOpen) {
  if (!(nextOpen > 0.0 && nextOpen < Infinity)) return false;
  if (p.openOrders !== 0 || p.stopLoss != null || p.takeProfit != null) return false;
  for (let k = 0; k < actions.length; k++) {
    if (!plannableAction(actions[k])) return false;
  }
  return true;
}

/**
 * Fills `actions` (checked by `predictable`) at `open`, the next bar's
 * open, into account `p`, as the host's broker does at the start of that bar.
 */
function fillMarket(p, actions, open, slippageBps) {
  p.fillCount = 0;
  p.lastFill = null;
  for (let k = 0; k < actions.length; k++) fillAction(p, actions[k], open, slippageBps);
}

/** One action of `fillMarket` (broker `execute`, or its close-position). */
function fillAction(p, a, open, slippageBps) {
  if (a.tag === 'close-position') {
    const position = p.position;
    if (position !== 0.0) {
      // The closing side: sell a long (sign -1), buy a short (+1).
      const price = slippageBps === 0.0 ? open : open * (1.0 + (position > 0.0 ? -1.0 : 1.0) * slippageBps / 10000.0);
      closeAt(p, position > 0.0 ? position : -position, price, 'close-position');
    }
    return;
  }
  const o = a.val;
  const side = o.side;
  const sign = side === 'buy' ? 1.0 : -1.0;
  const price = slippageBps === 0.0 ? open : open * (1.0 + sign * slippageBps / 10000.0);
  const quantity = o.quantity;
  let openQty;
  if (quantity.tag === 'equity') {
    if (p.position * sign < 0.0) {
      const held = p.position;
      closeAt(p, held > 0.0 ? held : -held, price, 'market');
    }
    const equity = p.cash + p.position * price;
    openQty = equity * p.leverage * quantity.val / (price * (1.0 + p.commission));
  } else {
    openQty = quantity.val;
    if (p.position * sign < 0.0) {
      const held = p.position > 0.0 ? p.position : -p.position;
      // units.min(held): both finite here.
      const reduce = held < openQty ? held : openQty;
      closeAt(p, reduce, price, 'market');
      openQty -= reduce;
    }
  }
  // headroom(price): ((equity * leverage - used) / (price * (1 + commission))).max(0.0).
  // A room of zero (of either sign) or less opens nothing, like the broker's.
  const position = p.position;
  const used = (position < 0.0 ? -position : position) * price;
  let room = ((p.cash + position * price) * p.leverage - used) / (price * (1.0 + p.commission));
  if (!(room > 0.0)) room = 0.0;
  // wanted.min(room), Rust's: a NaN `wanted` gives `room`.
  if (openQty !== openQty || room < openQty) openQty = room;
  if (openQty > 0.0) openAt(p, side, sign, openQty, price);
}

/** Broker `open`: adds `qty` on `side` at `price`. */
function openAt(p, side, sign, qty, price) {
  const notional = qty * price;
  const fee = notional * p.commission;
  p.cash -= sign * notional + fee;
  const position = p.position;
  if (position === 0.0) {
    p.entryPrice = price;
  } else {
    const held = position < 0.0 ? -position : position;
    p.entryPrice = (p.entryPrice * held + price * qty) / (held + qty);
  }
  p.position = position + sign * qty;
  p.fillCount += 1;
  p.lastFill = { side, qty, price, reason: 'market' };
}

/** Broker `close`: closes `qty` (at most the whole position) at `price`. */
function closeAt(p, qty, price, reason) {
  const position = p.position;
  const held = position < 0.0 ? -position : position;
  // qty.min(held), Rust's (a NaN qty gives held).
  if (qty !== qty || held < qty) qty = held;
  if (qty <= 0.0) return;
  const long = position > 0.0;
  const notional = qty * price;
  const fee = notional * p.commission;
  // -side.sign() * notional - fee, the closing side's sign being -1 for a long.
  p.cash += (long ? 1.0 : -1.0) * notional - fee;
  if (qty === held) {
    p.position = 0.0;
    p.entryPrice = 0.0;
  } else {
    p.position = position - (long ? 1.0 : -1.0) * qty;
  }
  p.fillCount += 1;
  p.lastFill = { side: long ? 'sell' : 'buy', qty, price, reason };
}

// ---------------------------------------------------------------- runtime
// The WIT `strategy` interface, as componentize-js expects it exported.
// Mirrors sdk/src/runtime.rs, guest-side planning included: on spot, a
// bar whose actions `predictable` accepts is filled here (`fillMarket`) and
// the walk goes on; `take-planned` hands the host those actions and the
// account assumed after each, which it replays and checks bit for bit.

const EMPTY_F64 = new Float64Array(0);

function optNumber(v) {
  return v === undefined || v === null ? null : v;
}

// Binding conventions: componentize-js (SpiderMonkey) lowers s64 from
// BigInt and `none` from undefined; componentize-qjs (QuickJS) uses numbers
// and null. The bundle calls `__setEngine` before any export runs.
let witNone = undefined;
let witBigInt = true;

/** @internal */
function __setEngine(engine) {
  witNone = engine === 'qjs' ? null : undefined;
  witBigInt = engine !== 'qjs';
}

function toWitOption(v) {
  return v === null || v === undefined ? witNone : v;
}

function actionToWit(a) {
  switch (a.tag) {
    case 'submit': {
      const o = a.val;
      return {
        tag: 'submit',
        val: {
          side: o.side,
          quantity: { tag: o.quantity.tag, val: o.quantity.val },
          kind: o.kind.tag === 'market' ? { tag: 'market' } : { tag: o.kind.tag, val: o.kind.val },
          stopLoss: toWitOption(o.stopLoss),
          takeProfit: toWitOption(o.takeProfit),
        },
      };
    }
    case 'set-stop-loss':
    case 'set-take-profit':
      return { tag: a.tag, val: toWitOption(a.val) };
    case 'close-position':
    case 'cancel-orders':
      return { tag: a.tag };
    default:
      throw new TypeError(`unknown action ${JSON.stringify(a)}`);
  }
}

function descriptionToWit(d) {
  return {
    name: d.name,
    version: d.version,
    summary: d.summary,
    params: d.params.map((s) => ({
      name: s.name,
      kind: s.kind,
      default:
        s.kind === 'int'
          ? { tag: 'int', val: witBigInt ? BigInt(s.default) : s.default }
          : { tag: s.kind, val: s.default },
      min: toWitOption(s.min),
      max: toWitOption(s.max),
      step: toWitOption(s.step),
      help: s.help,
    })),
    columns: d.columns.slice(),
  };
}

function errorText(e) {
  if (e instanceof Error) return e.message;
  return String(e);
}

class Runtime {
  constructor(StrategyClass) {
    this.StrategyClass = StrategyClass;
    this.strategy = null;
    this.bar = new Bar();
    this.actions = [];
    this.nextAction = 0;
    this.ctx = new Context(this.bar, this.actions);
    this.firstIndex = 0;
    this.len = 0;
    // Columns; undeclared ones are empty and read as NaN (ts as 0).
    this.ts = null;
    this.open = EMPTY_F64;
    this.high = EMPTY_F64;
    this.low = EMPTY_F64;
    this.close = EMPTY_F64;
    this.volume = EMPTY_F64;
    this.hasTs = false;
    this.hasHigh = false;
    this.hasLow = false;
    this.hasVolume = false;
    this.slippageBps = 0.0;
    this.step = { consumed: 0, action: undefined, more: 0, planned: 0 };
    // The fill mirror's account (not ctx, which the strategy could write
    // to), and what it filled during the last `run` (see `fillMarket`).
    this.selfFill = true;
    // This call's portfolio until its first fill in the guest, then null.
    this.unplanned = null;
    this.hasPlan = false;
    this.account = {
      cash: 0.0, position: 0.0, entryPrice: 0.0, stopLoss: null, takeProfit: null,
      openOrders: 0, commission: 0.0, leverage: 1.0, fillCount: 0, lastFill: null,
    };
    this.planned = [];
    this.assumed = [];
    // After __setEngine (the bundle calls it before the strategy's module body).
    this.buyAllWit = actionToWit(BUY_ALL);
    this.sellAllWit = actionToWit(SELL_ALL);
  }

  describe() {
    return descriptionToWit(normalizeDescription(this.StrategyClass.describe()));
  }

  init(params) {
    const values = [];
    for (const p of params) {
      const v = p.value;
      values.push([p.name, { kind: v.tag, value: v.tag === 'int' ? Number(v.val) : v.val }]);
    }
    try {
      this.strategy = new this.StrategyClass(new Params(values));
    } catch (e) {
      throw errorText(e);
    }
  }

  pushBars(firstIndex, commission, leverage, slippageBps, ts, open, high, low, close, volume) {
    this.firstIndex = Number(firstIndex);
    this.ctx.commission = commission;
    this.ctx.leverage = leverage;
    this.account.commission = commission;
    this.account.leverage = leverage;
    this.slippageBps = slippageBps;
    this.ts = ts;
    this.open = open;
    this.high = high;
    this.low = low;
    this.close = close;
    this.volume = volume;
    this.len = Math.max(ts.length, open.length, high.length, low.length, close.length, volume.length);
    this.hasTs = ts.length !== 0;
    this.hasOpen = open.length !== 0;
    this.hasHigh = high.length !== 0;
    this.hasLow = low.length !== 0;
    this.hasClose = close.length !== 0;
    this.hasVolume = volume.length !== 0;
    // The fast loop loads open and close only; the others stay at their
    // stand-ins (NaN, ts 0), set here once per window.
    this.onlyOpenClose = !(this.hasTs || this.hasHigh || this.hasLow || this.hasVolume);
    const bar = this.bar;
    bar.ts = 0;
    bar.open = NaN;
    bar.high = NaN;
    bar.low = NaN;
    bar.close = NaN;
    bar.volume = NaN;
    if (!this.hasOpen) this.open = nanColumn(this, this.len);
    if (!this.hasClose) this.close = nanColumn(this, this.len);
  }

  setMarketState(state) {
    const ctx = this.ctx;
    ctx.market = state.market;
    // The fill mirror knows spot only: a perpetual's fills (fees, margin,
    // liquidation) are the host's alone, and it refuses a plan there.
    this.selfFill = state.market === 'spot';
    ctx.liquidationPrice = optNumber(state.liquidationPrice);
    ctx.fundingRate = optNumber(state.fundingRate);
  }

  run(portfolio, from, to) {
    const strategy = this.strategy;
    if (strategy === null) throw new Error('`run` called before a successful `init`');
    const ctx = this.ctx;
    const actions = this.actions;
    const step = this.step;
    ctx.cash = portfolio.cash;
    ctx.position = portfolio.position;
    ctx.entryPrice = portfolio.entryPrice;
    ctx.stopLoss = optNumber(portfolio.stopLoss);
    ctx.takeProfit = optNumber(portfolio.takeProfit);
    ctx.openOrders = portfolio.openOrders;
    ctx.fillCount = portfolio.fillCount;
    ctx.lastFill = portfolio.lastFill == null ? null : portfolio.lastFill;
    actions.length = 0;
    this.nextAction = 0;
    if (this.hasPlan) {
      // Not taken by the host: dropped (a plan is the last call's).
      this.planned = [];
      this.assumed = [];
      this.hasPlan = false;
      step.planned = 0;
    }
    const end = Math.min(to, this.len);
    const start = Math.min(from, end);
    step.action = witNone;
    step.more = 0;
    if (start === end) {
      step.consumed = 0;
      return step;
    }
    // The fill mirror starts from this call's account (see planFills).
    this.unplanned = portfolio;
    const bar = this.bar;
    const base = this.firstIndex;
    const open = this.open;
    const close = this.close;
    let i = start;
    // Segments: one ends at a bar with actions. When those are simple
    // market orders (spot, no resting order or exit) they are filled here
    // and the next segment starts at the next bar, which sees the fills;
    // otherwise the call returns.
    try {
      for (;;) {
        if (this.onlyOpenClose) {
          // The segment's first bar sees the fills; the rest do not.
          bar.index = base + i;
          bar.open = open[i];
          bar.close = close[i];
          strategy.onBar(bar, ctx);
          if (actions.length === 0) {
            ctx.fillCount = 0;
            ctx.lastFill = null;
            for (i++; i < end; i++) {
              bar.index = base + i;
              bar.open = open[i];
              bar.close = close[i];
              strategy.onBar(bar, ctx);
              if (actions.length !== 0) break;
            }
          }
        } else {
          const hasTs = this.hasTs;
          const ts = this.ts;
          const high = this.hasHigh ? this.high : nanColumn(this, this.len);
          const low = this.hasLow ? this.low : nanColumn(this, this.len);
          const volume = this.hasVolume ? this.volume : nanColumn(this, this.len);
          for (; i < end; i++) {
            bar.index = base + i;
            if (hasTs) bar.ts = Number(ts[i]);
            bar.open = open[i];
            bar.high = high[i];
            bar.low = low[i];
            bar.close = close[i];
            bar.volume = volume[i];
            strategy.onBar(bar, ctx);
            if (actions.length !== 0) break;
            ctx.fillCount = 0;
            ctx.lastFill = null;
          }
        }
        // Inline, what refuses most often: the window's last bar (its
        // next open is the next window's), a perpetual, and until the
        // call's first fill here, a portfolio with resting orders or exits
        // (fills here add none: later bars need no check).
        if (i + 1 >= end || !this.selfFill) break;
        const p = this.unplanned;
        if (p !== null && (p.openOrders !== 0 || p.stopLoss != null || p.takeProfit != null)) break;
        if (!this.planFills(i, open[i + 1])) break;
        i++;
      }
    } catch (e) {
      // A trap ends the run; say why first (the Rust SDK's panic hook).
      // The stack's first frames only (a runaway recursion has thousands).
      const stack = e instanceof Error && e.stack ? `\n${e.stack.split('\n').slice(0, 12).join('\n')}` : '';
      log('error', `exception in onBar at bar ${base + i}: ${errorText(e)}${stack}`);
      throw e;
    }
    if (i < end) {
      step.consumed = i + 1 - start;
      step.action = actionToWit(actions[0]);
      step.more = actions.length - 1;
      this.nextAction = 1;
    } else {
      step.consumed = end - start;
    }
    return step;
  }

  /**
   * Fills bar `bar`'s actions here when they are simple market orders,
   * recording them and the account after for `take-planned`; the strategy
   * sees that account (and the fills) from the next bar on. False, nothing
   * changed, when the host must fill them. `run` has checked the account
   * (spot, no resting order nor exit).
   */
  planFills(bar, nextOpen) {
    // `predictable` and `fillMarket`, unrolled: this runs once per trade.
    if (!(nextOpen > 0.0 && nextOpen < Infinity)) return false;
    const actions = this.actions;
    const n = actions.length;
    for (let k = 0; k < n; k++) {
      const a = actions[k];
      if (a !== BUY_ALL && a !== SELL_ALL && a !== CLOSE_POSITION && !plannableAction(a)) return false;
    }
    const acct = this.account;
    // Until the call's first fill here, the account is the call's
    // portfolio (which `run` checked has no resting order nor exit).
    const p = this.unplanned;
    if (p !== null) {
      acct.cash = p.cash;
      acct.position = p.position;
      acct.entryPrice = p.entryPrice;
      this.unplanned = null;
    }
    acct.fillCount = 0;
    acct.lastFill = null;
    const planned = this.planned;
    for (let k = 0; k < n; k++) {
      const a = actions[k];
      fillAction(acct, a, nextOpen, this.slippageBps);
      // The constant actions' WIT forms are made once.
      const wit = a === BUY_ALL ? this.buyAllWit : a === SELL_ALL ? this.sellAllWit : a === CLOSE_POSITION ? CLOSE_POSITION : actionToWit(a);
      planned.push({ bar, action: wit });
    }
    this.assumed.push({ bar: bar + 1, cash: acct.cash, position: acct.position, entryPrice: acct.entryPrice });
    this.hasPlan = true;
    this.step.planned = planned.length;
    actions.length = 0;
    const ctx = this.ctx;
    ctx.cash = acct.cash;
    ctx.position = acct.position;
    ctx.entryPrice = acct.entryPrice;
    ctx.fillCount = acct.fillCount;
    ctx.lastFill = acct.lastFill;
    return true;
  }

  nextActionWit() {
    if (this.nextAction >= this.actions.length) return witNone;
    return actionToWit(this.actions[this.nextAction++]);
  }

  takePlanned() {
    if (!this.hasPlan) return { actions: [], assumed: [] };
    const plan = { actions: this.planned, assumed: this.assumed };
    this.planned = [];
    this.assumed = [];
    this.hasPlan = false;
    this.step.planned = 0;
    return plan;
  }
}

function nanColumn(rt, len) {
  let nan = rt._nan;
  if (nan === undefined || nan.length < len) {
    nan = new Float64Array(len).fill(NaN);
    rt._nan = nan;
  }
  return nan;
}

/**
 * The WIT `strategy` interface object for a strategy class. A strategy
 * module exports it as `strategy`:
 *
 *   export const strategy = exportStrategy(MyStrategy);
 */
function exportStrategy(StrategyClass) {
  if (typeof StrategyClass !== 'function' || typeof StrategyClass.describe !== 'function') {
    throw new TypeError('exportStrategy takes a strategy class with a static describe()');
  }
  const rt = new Runtime(StrategyClass);
  return {
    describe: () => rt.describe(),
    init: (params) => rt.init(params),
    pushBars: (firstIndex, commission, leverage, slippageBps, ts, open, high, low, close, volume) =>
      rt.pushBars(firstIndex, commission, leverage, slippageBps, ts, open, high, low, close, volume),
    run: (portfolio, start, end) => rt.run(portfolio, start, end),
    nextAction: () => rt.nextActionWit(),
    takePlanned: () => rt.takePlanned(),
    setMarketState: (state) => rt.setMarketState(state),
  };
}

// ---------------------------------------------------------------- portfolio
// Strategies over several symbols on one timeline (contract 0.3.0, the
// `portfolio` interface, world `portfolio-plugin`). The timeline is the
// union of the symbols' bar times; `onStep(step, ctx)` runs once per step
// with one entry per symbol: its bar there, or null where it has none
// (nothing is filled forward). Orders name their symbol (its index in the
// universe, or its name); the host fills every order, and the step after
// one with actions sees the fills. Mirrors sdk/python's stratbox.portfolio.

/**
 * Base class of a portfolio strategy (optional: any class with a static
 * `describe()`, a constructor taking (params, symbols) and an
 * `onStep(step, ctx)` method will do). The base constructor keeps the
 * universe as `this.symbols`. Throw from the constructor to refuse params.
 */
class PortfolioStrategy {
  constructor(params, symbols = []) {
    /** The universe: symbol names, in the order the host gave them. */
    this.symbols = Array.from(symbols, String);
  }
  static describe() {
    throw new Error('a portfolio strategy must define static describe()');
  }
  // eslint-disable-next-line no-unused-vars
  onStep(step, ctx) {}
}

/**
 * One step of the timeline. `bars[i]` is symbol i's bar there, or null.
 * The runtime reuses the step, its array and one Bar per symbol: copy what
 * you keep.
 */
class Step {
  constructor(index = 0, ts = 0, bars = []) {
    /** Index of the step in the whole run (0 is the first). */
    this.index = index;
    /** The step's time, unix seconds UTC (0 when not sent). */
    this.ts = ts;
    this.bars = bars;
  }
  /** Symbol `i`'s bar at this step, or null. */
  bar(i) {
    return this.bars[i];
  }
  /** Symbol `i`'s close at this step; NaN where it has no bar. */
  close(i) {
    const b = this.bars[i];
    return b === null || b === undefined ? NaN : b.close;
  }
}

function newPosition(qty = 0.0) {
  return {
    qty, entryPrice: 0.0, stopLoss: null, takeProfit: null, openOrders: 0,
    liquidationPrice: null, fundingRate: null,
  };
}

const NO_FILLS = Object.freeze([]);

/**
 * The account on one step, and where orders go. Every `symbol` argument is
 * an index into the universe or a symbol's name. The runtime reuses one
 * context: do not keep it past `onStep`.
 */
class PortfolioContext {
  constructor(symbols, actions) {
    /** The universe, in the order the host gave it. */
    this.symbols = Object.freeze(Array.from(symbols, String));
    this._index = new Map(this.symbols.map((s, i) => [s, i]));
    this._actions = actions;
    /** Spot: the cash every position shares; perpetuals: the wallet. */
    this.cash = 0.0;
    this._equity = 0.0;
    /** Every symbol's position record, in universe order (flat ones included). */
    this.positions = this.symbols.map(() => newPosition());
    this._fills = NO_FILLS;
    this._first = true;
    // Each symbol's latest close: at the account's marking (the call's
    // start), and now. NaN while unknown.
    this._ref = this.symbols.map(() => NaN);
    this._last = this.symbols.map(() => NaN);
    this.market = 'spot';
    this.commission = 0.0;
    this.leverage = 1.0;
  }
  /** The index of a symbol given by name or index; throws outside the universe. */
  symbol(ref) {
    if (typeof ref === 'string') {
      const i = this._index.get(ref);
      if (i === undefined) throw new RangeError(`symbol \`${ref}\` is not in the universe ${JSON.stringify(this.symbols)}`);
      return i;
    }
    if (!Number.isInteger(ref) || ref < 0 || ref >= this.symbols.length) {
      throw new RangeError(`symbol index ${ref} is outside the universe of ${this.symbols.length}`);
    }
    return ref;
  }
  /**
   * The host's equity before this call (cash plus every position marked at
   * its symbol's last close), plus each open position's price move since,
   * to its symbol's latest close up to this step (summed in symbol order).
   * Without the `close` column: the host's figure.
   */
  equity() {
    let e = this._equity;
    const positions = this.positions;
    for (let i = 0; i < positions.length; i++) {
      const q = positions[i].qty;
      if (q !== 0.0) {
        const d = this._last[i] - this._ref[i];
        if (d === d) e += q * d;
      }
    }
    return e;
  }
  /** Signed position of a symbol: > 0 long, < 0 short, 0 flat. */
  position(symbol) {
    return this.positions[this.symbol(symbol)].qty;
  }
  /** A symbol's whole position record (entryPrice, stopLoss, openOrders...). */
  positionInfo(symbol) {
    return this.positions[this.symbol(symbol)];
  }
  isFlat(symbol) {
    return this.position(symbol) === 0.0;
  }
  isLong(symbol) {
    return this.position(symbol) > 0.0;
  }
  isShort(symbol) {
    return this.position(symbol) < 0.0;
  }
  /** The fills at this step ({symbol, side, qty, price, reason}; empty on most steps). */
  get fills() {
    return this._first ? this._fills : NO_FILLS;
  }
  /** Actions placed so far on this step ({symbol, action}; do not modify). */
  get pendingActions() {
    return this._actions;
  }
  submit(symbol, order) {
    this._actions.push({ symbol: this.symbol(symbol), action: { tag: 'submit', val: order } });
  }
  /** Market buy of `qty` base units, at the symbol's next open. */
  buy(symbol, qty) {
    this.submit(symbol, Order.market('buy', Quantity.units(qty)));
  }
  /** Market sell of `qty` base units (reduces a long, then shorts). */
  sell(symbol, qty) {
    this.submit(symbol, Order.market('sell', Quantity.units(qty)));
  }
  /** Market buy committing `fraction` of equity (times leverage); a short is closed first. */
  buyEquity(symbol, fraction) {
    this.submit(symbol, Order.market('buy', Quantity.equity(fraction)));
  }
  /** Market sell committing `fraction` of equity (times leverage); a long is closed first. */
  sellEquity(symbol, fraction) {
    this.submit(symbol, Order.market('sell', Quantity.equity(fraction)));
  }
  /**
   * Holds the symbol at `fraction` of equity: > 0 long, < 0 short, 0 flat.
   * From flat or the other side, one market order for |fraction| of equity
   * (the other side closed first); a position already on that side is left
   * as it is; 0 closes the position.
   */
  target(symbol, fraction) {
    const i = this.symbol(symbol);
    const q = this.positions[i].qty;
    if (fraction > 0.0) {
      if (!(q > 0.0)) this.buyEquity(i, fraction);
    } else if (fraction < 0.0) {
      if (!(q < 0.0)) this.sellEquity(i, -fraction);
    } else if (q !== 0.0) {
      this.close(i);
    }
  }
  /** Rests until the symbol trades at `price` or lower. */
  buyLimit(symbol, qty, price) {
    this.submit(symbol, Order.limit('buy', Quantity.units(qty), price));
  }
  /** Rests until the symbol trades at `price` or higher. */
  sellLimit(symbol, qty, price) {
    this.submit(symbol, Order.limit('sell', Quantity.units(qty), price));
  }
  /** Rests until the symbol trades up through `price`. */
  buyStop(symbol, qty, price) {
    this.submit(symbol, Order.stop('buy', Quantity.units(qty), price));
  }
  /** Rests until the symbol trades down through `price`. */
  sellStop(symbol, qty, price) {
    this.submit(symbol, Order.stop('sell', Quantity.units(qty), price));
  }
  /** Closes the symbol's whole position at its next open. */
  close(symbol) {
    this._actions.push({ symbol: this.symbol(symbol), action: CLOSE_POSITION });
  }
  /** Closes every open position, in universe order. */
  closeAll() {
    const positions = this.positions;
    for (let i = 0; i < positions.length; i++) {
      if (positions[i].qty !== 0.0) this._actions.push({ symbol: i, action: CLOSE_POSITION });
    }
  }
  /** Cancels the symbol's resting limit and stop entries. */
  cancelOrders(symbol) {
    this._actions.push({ symbol: this.symbol(symbol), action: CANCEL_ORDERS });
  }
  setStopLoss(symbol, price) {
    this._actions.push({ symbol: this.symbol(symbol), action: Action.setStopLoss(price) });
  }
  setTakeProfit(symbol, price) {
    this._actions.push({ symbol: this.symbol(symbol), action: Action.setTakeProfit(price) });
  }
}

const PORTFOLIO_FIELDS = ['open', 'high', 'low', 'close', 'volume'];

/**
 * The WIT `portfolio` interface for a portfolio strategy class. The host
 * fills every order (no plans): `run` walks steps and returns after the
 * first one with actions, with how many it walked (`consumed`).
 */
class PortfolioRuntime {
  constructor(StrategyClass) {
    this.StrategyClass = StrategyClass;
    this.strategy = null;
    this.actions = [];
    this.ctx = new PortfolioContext([], this.actions);
    this.step = new Step();
    this.sbars = [];
    this.firstIndex = 0;
    this.len = 0;
    this.ts = null;
    this.hasTs = false;
    this.cols = [];
    this.fields = [];
  }

  describe() {
    return descriptionToWit(normalizeDescription(this.StrategyClass.describe()));
  }

  init(params, symbols, market) {
    const values = [];
    for (const p of params) {
      const v = p.value;
      values.push([p.name, { kind: v.tag, value: v.tag === 'int' ? Number(v.val) : v.val }]);
    }
    const names = Array.from(symbols, String);
    const ctx = new PortfolioContext(names, this.actions);
    ctx.market = market === 'linear-perpetual' ? 'linear-perpetual' : 'spot';
    this.ctx = ctx;
    this.sbars = names.map(() => new Bar());
    this.step.bars = names.map(() => null);
    try {
      this.strategy = new this.StrategyClass(new Params(values), names.slice());
    } catch (e) {
      throw errorText(e);
    }
  }

  pushBars(firstIndex, commission, leverage, slippageBps, ts, bars) {
    const ctx = this.ctx;
    ctx.commission = commission;
    ctx.leverage = leverage;
    this.firstIndex = Number(firstIndex);
    let len = ts.length;
    const sent = new Set();
    for (const b of bars) {
      for (const f of PORTFOLIO_FIELDS) {
        const c = b[f];
        if (c && c.length) {
          sent.add(f);
          if (c.length > len) len = c.length;
        }
      }
    }
    this.len = len;
    // Open first (the host always sends it): where the first column sent
    // is NaN the symbol has no bar.
    this.fields = PORTFOLIO_FIELDS.filter((f) => sent.has(f));
    const nan = new Float64Array(len).fill(NaN);
    this.cols = this.sbars.map((_, k) => {
      const b = bars[k];
      return this.fields.map((f) => (b && b[f] && b[f].length ? b[f] : nan));
    });
    for (const bar of this.sbars) {
      for (const f of PORTFOLIO_FIELDS) if (!sent.has(f)) bar[f] = NaN;
      bar.ts = 0;
    }
    this.ts = ts;
    this.hasTs = ts.length !== 0;
  }

  run(account, from, to) {
    const strategy = this.strategy;
    if (strategy === null) throw new Error('`run` called before a successful `init`');
    const ctx = this.ctx;
    const n = this.sbars.length;
    ctx.cash = account.cash;
    ctx._equity = account.equity;
    const positions = [];
    for (let k = 0; k < n; k++) {
      const p = account.positions[k];
      positions.push(p === undefined ? newPosition() : {
        qty: p.qty,
        entryPrice: p.entryPrice,
        stopLoss: optNumber(p.stopLoss),
        takeProfit: optNumber(p.takeProfit),
        openOrders: p.openOrders,
        liquidationPrice: optNumber(p.liquidationPrice),
        fundingRate: optNumber(p.fundingRate),
      });
    }
    ctx.positions = positions;
    ctx._fills = account.fills.length === 0 ? NO_FILLS : account.fills.map((f) => ({
      symbol: f.symbol, side: f.side, qty: f.qty, price: f.price, reason: f.reason,
    }));
    // The host marked the account at the closes seen so far.
    const last = ctx._last;
    ctx._ref = last.slice();
    const actions = this.actions;
    actions.length = 0;
    const end = Math.min(to, this.len);
    const start = Math.min(from, end);
    let hit = -1;
    if (start < end) {
      ctx._first = true;
      const step = this.step;
      const cur = step.bars;
      const sbars = this.sbars;
      const cols = this.cols;
      const fields = this.fields;
      const nf = fields.length;
      const closeAt = fields.indexOf('close');
      const ts = this.ts;
      const hasTs = this.hasTs;
      const base = this.firstIndex;
      let i = start;
      try {
        for (; i < end; i++) {
          const index = base + i;
          const t = hasTs ? Number(ts[i]) : 0;
          step.index = index;
          step.ts = t;
          for (let k = 0; k < n; k++) {
            const c = cols[k];
            if (nf !== 0) {
              const x = c[0][i];
              if (x !== x) {
                cur[k] = null;
                continue;
              }
            }
            const b = sbars[k];
            b.index = index;
            b.ts = t;
            for (let j = 0; j < nf; j++) b[fields[j]] = c[j][i];
            if (closeAt >= 0) last[k] = b.close;
            cur[k] = b;
          }
          strategy.onStep(step, ctx);
          if (actions.length !== 0) {
            hit = i;
            break;
          }
          ctx._first = false;
        }
      } catch (e) {
        const stack = e instanceof Error && e.stack ? `\n${e.stack.split('\n').slice(0, 12).join('\n')}` : '';
        log('error', `exception in onStep at step ${base + i}: ${errorText(e)}${stack}`);
        throw e;
      }
    }
    if (hit < 0) return { consumed: end - start, actions: [] };
    return {
      consumed: hit + 1 - start,
      actions: actions.map((a) => ({ symbol: a.symbol, action: actionToWit(a.action) })),
    };
  }
}

/**
 * The WIT `portfolio` interface object for a portfolio strategy class. A
 * strategy module exports it as `portfolio` (build.mjs then builds world
 * `portfolio-plugin`):
 *
 *   export const portfolio = exportPortfolio(MyPortfolioStrategy);
 */
function exportPortfolio(StrategyClass) {
  if (typeof StrategyClass !== 'function' || typeof StrategyClass.describe !== 'function') {
    throw new TypeError('exportPortfolio takes a portfolio strategy class with a static describe()');
  }
  const rt = new PortfolioRuntime(StrategyClass);
  return {
    describe: () => rt.describe(),
    init: (params, symbols, market) => rt.init(params, symbols, market),
    pushBars: (firstIndex, commission, leverage, slippageBps, ts, bars) =>
      rt.pushBars(firstIndex, commission, leverage, slippageBps, ts, bars),
    run: (account, start, end) => rt.run(account, start, end),
  };
}

/**
 * Runs a portfolio strategy natively over several symbols' bars, with a
 * simple fill model, for unit tests. Mirrors sdk/python's PortfolioHarness.
 *
 * The fill model is approximate, not the engine's (the host's broker is the
 * reference; docs/conventions/engine.md, "Several symbols"): the actions of
 * a step take effect from the next step on. Market orders and closes fill
 * at the symbol's next open (when it has no bar there, at its next bar's),
 * symbols in the order of their first such order, slipped by
 * `slippageBps`; an equity fraction is of cash plus
 * every position marked at its latest close, times leverage, over
 * `price * (1 + commission)`, an opposite position closed first, and no
 * order opens beyond that headroom. Limit and stop orders rest until the
 * bar trades through their price (at the open on a gap). Stop-loss before
 * take-profit, checked after each step's fills. Commission on every fill's
 * notional. Shorts credit the cash, as on spot; perpetuals' margin, funding
 * and liquidation are not modelled.
 */
class PortfolioHarness {
  /**
   * `new PortfolioHarness(Pairs, ['BTCUSDT', 'ETHUSDT'], { lookback: 10 })`:
   * the schema defaults with `overrides` applied (types checked, bounds
   * not). The account starts with `cash` 10,000, `commission` 0.0006,
   * `leverage` 1, `slippageBps` 0: set them before the first step.
   */
  constructor(StrategyClass, symbols, overrides = {}) {
    const description = normalizeDescription(StrategyClass.describe());
    this.description = description;
    this.params = paramsWithOverrides(description, overrides);
    this.symbols = Array.from(symbols, String);
    this.strategy = new StrategyClass(this.params, this.symbols.slice());
    this.cash = 10000.0;
    this.commission = 0.0006;
    this.leverage = 1.0;
    this.slippageBps = 0.0;
    this.market = 'spot';
    /** Every symbol's position now (after the last step's fills). */
    this.positions = this.symbols.map(() => newPosition());
    /** Every fill so far: {step, symbol, side, qty, price, reason}. */
    this.fills = [];
    this._marks = this.symbols.map(() => NaN);
    this._pending = [];
    this._resting = [];
    this._actions = [];
    this._ctx = new PortfolioContext(this.symbols, this._actions);
    this.nextIndex = 0;
  }

  /** Cash plus every position marked at its symbol's latest close. */
  equity() {
    let e = this.cash;
    for (let i = 0; i < this.positions.length; i++) {
      const q = this.positions[i].qty;
      if (q !== 0.0) e += q * this._marks[i];
    }
    return e;
  }

  /**
   * Feeds columns of closes ({name: [...]}, or one array per symbol in
   * universe order; null where a symbol has no bar); returns each step's actions.
   */
  run(closes) {
    const columns = Array.isArray(closes) ? closes : this.symbols.map((s) => closes[s] || []);
    if (columns.length !== this.symbols.length) {
      throw new RangeError(`${columns.length} columns for ${this.symbols.length} symbols`);
    }
    const steps = Math.max(0, ...columns.map((c) => c.length));
    const out = [];
    for (let i = 0; i < steps; i++) out.push(this.step(columns.map((c) => (i < c.length ? c[i] : null))));
    return out;
  }

  /**
   * Feeds one step: one entry per symbol, a bar ({open, high, low, close,
   * volume}), a close (OHLC all equal to it, volume 0) or null (no bar).
   * Returns the actions taken on it ({symbol, action}).
   */
  step(bars, ts) {
    if (bars.length !== this.symbols.length) {
      throw new RangeError(`${bars.length} bars for ${this.symbols.length} symbols`);
    }
    const index = this.nextIndex++;
    const t = ts === undefined ? index : ts;
    const stepBars = bars.map((b) => {
      if (b === null || b === undefined) return null;
      if (typeof b === 'number') return new Bar(index, t, b, b, b, b, 0.0);
      return Object.assign(new Bar(), b, { index, ts: t });
    });
    const fills = this._fill(index, stepBars);
    const ctx = this._ctx;
    ctx.cash = this.cash;
    ctx._equity = this.equity();
    ctx.positions = this.positions.map((p) => ({ ...p }));
    ctx._fills = fills;
    ctx._ref = this._marks.slice();
    stepBars.forEach((b, i) => {
      if (b !== null && b.close === b.close) this._marks[i] = b.close;
    });
    ctx._last = this._marks.slice();
    ctx.market = this.market;
    ctx.commission = this.commission;
    ctx.leverage = this.leverage;
    ctx._first = true;
    this._actions.length = 0;
    this.strategy.onStep(new Step(index, t, stepBars), ctx);
    const actions = this._actions.slice();
    for (const a of actions) this._accept(a);
    return actions;
  }

  _accept(a) {
    const p = this.positions[a.symbol];
    const action = a.action;
    switch (action.tag) {
      case 'submit':
        if (action.val.kind.tag === 'market') {
          this._pending.push(a);
        } else {
          this._resting.push(a);
          p.openOrders += 1;
        }
        break;
      case 'close-position':
        this._pending.push(a);
        break;
      case 'cancel-orders':
        this._resting = this._resting.filter((r) => r.symbol !== a.symbol);
        p.openOrders = 0;
        break;
      case 'set-stop-loss':
        p.stopLoss = action.val == null ? null : action.val;
        break;
      case 'set-take-profit':
        p.takeProfit = action.val == null ? null : action.val;
        break;
      default:
        throw new TypeError(`unknown action ${JSON.stringify(action)}`);
    }
  }

  _fill(index, bars) {
    const fills = [];
    const waiting = [];
    // Symbols fill in the order of their first market order or close.
    const first = new Map();
    this._pending.forEach((a, k) => {
      if (!first.has(a.symbol)) first.set(a.symbol, k);
    });
    const pending = this._pending.slice().sort((x, y) => first.get(x.symbol) - first.get(y.symbol));
    for (const a of pending) {
      const bar = bars[a.symbol];
      if (bar === null || bar.open !== bar.open) {
        waiting.push(a);
        continue;
      }
      if (a.action.tag === 'close-position') {
        const q = this.positions[a.symbol].qty;
        if (q !== 0.0) this._close(a.symbol, Math.abs(q), this._slipped(bar.open, q > 0.0 ? 'sell' : 'buy'), 'close-position', fills);
      } else {
        const order = a.action.val;
        this._execute(a.symbol, order, this._slipped(bar.open, order.side), 'market', fills);
      }
    }
    this._pending = waiting;
    const resting = [];
    for (const r of this._resting) {
      const bar = bars[r.symbol];
      const order = r.action.val;
      const at = bar === null ? null : triggerPrice(order, bar);
      if (at === null) {
        resting.push(r);
        continue;
      }
      this.positions[r.symbol].openOrders -= 1;
      this._execute(r.symbol, order, at, order.kind.tag === 'limit' ? 'limit' : 'stop', fills);
    }
    this._resting = resting;
    bars.forEach((bar, i) => {
      const p = this.positions[i];
      if (bar === null || p.qty === 0.0) return;
      const long = p.qty > 0.0;
      const sl = p.stopLoss;
      const tp = p.takeProfit;
      if (sl !== null && (long ? bar.low <= sl : bar.high >= sl)) {
        this._close(i, Math.abs(p.qty), long ? Math.min(bar.open, sl) : Math.max(bar.open, sl), 'stop-loss', fills);
      } else if (tp !== null && (long ? bar.high >= tp : bar.low <= tp)) {
        this._close(i, Math.abs(p.qty), long ? Math.max(bar.open, tp) : Math.min(bar.open, tp), 'take-profit', fills);
      }
    });
    for (const f of fills) this.fills.push({ step: index, ...f });
    return fills;
  }

  _slipped(price, side) {
    return price * (1.0 + (side === 'buy' ? 1.0 : -1.0) * this.slippageBps / 10000.0);
  }

  _equityAt(symbol, price) {
    let e = this.cash;
    for (let i = 0; i < this.positions.length; i++) {
      const q = this.positions[i].qty;
      if (q !== 0.0) e += q * (i === symbol ? price : this._marks[i]);
    }
    return e;
  }

  _execute(symbol, order, price, reason, fills) {
    const p = this.positions[symbol];
    const sign = order.side === 'buy' ? 1.0 : -1.0;
    if (this._marks[symbol] !== this._marks[symbol]) this._marks[symbol] = price;
    const q = order.quantity;
    let wanted;
    if (q.tag === 'equity') {
      if (p.qty * sign < 0.0) this._close(symbol, Math.abs(p.qty), price, reason, fills);
      wanted = this._equityAt(symbol, price) * this.leverage * q.val / (price * (1.0 + this.commission));
    } else {
      wanted = q.val;
      if (p.qty * sign < 0.0) {
        const reduce = Math.min(Math.abs(p.qty), wanted);
        this._close(symbol, reduce, price, reason, fills);
        wanted -= reduce;
      }
    }
    let used = 0.0;
    for (let i = 0; i < this.positions.length; i++) {
      used += Math.abs(this.positions[i].qty) * (i === symbol ? price : this._marks[i]);
    }
    const room = (this._equityAt(symbol, price) * this.leverage - used) / (price * (1.0 + this.commission));
    const qty = Math.min(wanted, Math.max(room, 0.0));
    if (qty > 0.0) {
      const notional = qty * price;
      this.cash -= sign * notional + notional * this.commission;
      const held = Math.abs(p.qty);
      p.entryPrice = p.qty === 0.0 ? price : (p.entryPrice * held + price * qty) / (held + qty);
      p.qty += sign * qty;
      if (order.stopLoss != null) p.stopLoss = order.stopLoss;
      if (order.takeProfit != null) p.takeProfit = order.takeProfit;
      fills.push({ symbol, side: order.side, qty, price, reason });
    }
  }

  _close(symbol, qty, price, reason, fills) {
    const p = this.positions[symbol];
    qty = Math.min(qty, Math.abs(p.qty));
    if (!(qty > 0.0)) return;
    const long = p.qty > 0.0;
    const notional = qty * price;
    this.cash += (long ? notional : -notional) - notional * this.commission;
    if (qty === Math.abs(p.qty)) {
      p.qty = 0.0;
      p.entryPrice = 0.0;
      p.stopLoss = null;
      p.takeProfit = null;
    } else {
      p.qty -= long ? qty : -qty;
    }
    fills.push({ symbol, side: long ? 'sell' : 'buy', qty, price, reason });
  }
}

/** Where a resting order fills on `bar`, or null. */
function triggerPrice(order, bar) {
  const price = order.kind.val;
  const buy = order.side === 'buy';
  if (order.kind.tag === 'limit') {
    if (buy) return bar.open <= price ? bar.open : bar.low <= price ? price : null;
    return bar.open >= price ? bar.open : bar.high >= price ? price : null;
  }
  if (buy) return bar.open >= price ? bar.open : bar.high >= price ? price : null;
  return bar.open <= price ? bar.open : bar.low <= price ? price : null;
}

export {
  Action,
  Atr,
  Bar,
  BollingerBands,
  Column,
  Context,
  Ema,
  FillReason,
  Harness,
  Level,
  Macd,
  Market,
  Order,
  OrderKind,
  ParamSpec,
  ParamType,
  Params,
  PortfolioContext,
  PortfolioHarness,
  PortfolioStrategy,
  Quantity,
  Rsi,
  Side,
  Sma,
  Step,
  Strategy,
  crossedAbove,
  crossedBelow,
  exportPortfolio,
  exportStrategy,
  formatF64,
  log,
  normalizeDescription,
  validateParams,
  __setEngine,
  __setLogSink,
};
