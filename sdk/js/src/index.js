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
    let params = Params.defaults(description);
    for (const [name, raw] of Object.entries(overrides)) {
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
  Quantity,
  Rsi,
  Side,
  Sma,
  Strategy,
  crossedAbove,
  crossedBelow,
  exportStrategy,
  formatF64,
  log,
  normalizeDescription,
  validateParams,
  __setEngine,
  __setLogSink,
};
