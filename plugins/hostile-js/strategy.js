// A hostile JavaScript strategy, for the sandbox tests: the int param
// `mode` picks the attack its onBar makes (on the first bar unless said).
//
//   0  behaves: buys on bar 1, closes on bar 10, logs once
//   1  endless loop
//   2  memory bomb: grows an array of strings without bound
//   3  unbounded recursion
//   4  throws an exception
//   5  tries to read /etc/passwd every way a JS engine might offer
//      (require, process, Deno, fetch, dynamic import, eval'd import,
//      QuickJS's std/os) and logs what it got; trades if it read anything
//   6  reads the clock (Date.now, performance.now, new Date) on every bar,
//      logs the first values, and trades on the parity of the milliseconds
//
// Build: node sdk/js/build.mjs --wit wit --src plugins/hostile-js --out hostile-js.wasm
//
// What each ends with under `stratbox backtest` (1,000 bars, default
// limits, componentize-js 0.23; `--engine qjs` in brackets where it differs):
//   0  a normal report (1 trade)
//   1  fuel_exhausted (with --fuel 1e12: deadline_exceeded at the deadline)
//   2  fuel_exhausted (with --fuel 1e12: memory_limit at 64 MiB, in 0.4 s)
//   3  the engine's "too much recursion" is logged with 12 frames, then
//      strategy_trap [stack overflow trap]
//   4  the exception is logged with its stack, then strategy_trap
//   5  no file: require/process/Deno/std/os/XMLHttpRequest are absent; the
//      eval'd import() traps (strategy_trap) [returns a promise that never
//      settles; fetch is absent; the run completes with 0 trades]
//   6  Date.now() returns the build's time, frozen in the snapshot (the same
//      on every run of one component); performance.now() traps
//      (strategy_trap) [Date.now() traps]
// Built ahead of time (build.mjs --weval), the same but for:
//   2  memory_limit at 64 MiB within the default fuel (allocating costs less
//      fuel there)
//   3  strategy_trap "stack overflow (unbounded recursion?)", nothing logged:
//      the compiled frames exhaust the wasm stack before the engine's own
//      recursion check throws

import { Strategy, ParamSpec, Level, log, exportStrategy } from '@stratbox/sdk';

function describeError(e) {
  return e && e.message ? `${e.name || 'Error'}: ${e.message}` : String(e);
}

/** Runs `f`, returning 'ok: <value>' or 'threw: <error>'. */
function attempt(f) {
  try {
    const v = f();
    return `ok: ${typeof v === 'string' ? JSON.stringify(v.slice(0, 80)) : String(v)}`;
  } catch (e) {
    return `threw: ${describeError(e)}`;
  }
}

function recurse(n) {
  return recurse(n + 1) + 1;
}

export class Hostile extends Strategy {
  static describe() {
    return {
      name: 'Hostile JS',
      version: '0.1.0',
      summary: 'Attacks the sandbox from JavaScript (mode 1-6), or behaves (mode 0)',
      params: [
        ParamSpec.int('mode', 0, {
          min: 0,
          max: 6,
          step: 1,
          help: '0 behaves, 1 endless loop, 2 memory bomb, 3 recursion, 4 throw, 5 read a file, 6 read the clock',
        }),
      ],
    };
  }

  constructor(params) {
    super(params);
    this.mode = params.int('mode');
    this.bars = 0;
    this.hoard = [];
    this.readSomething = false;
  }

  onBar(bar, ctx) {
    const first = this.bars === 0;
    this.bars += 1;
    switch (this.mode) {
      case 0:
        if (first) log(Level.Info, `hostile-js mode 0: behaving (bar ${bar.index}, close ${bar.close}, ts ${bar.ts})`);
        if (this.bars === 2 && ctx.isFlat()) ctx.buyAll();
        if (this.bars === 11 && ctx.isLong()) ctx.closePosition();
        return;
      case 1:
        // eslint-disable-next-line no-constant-condition
        for (let i = 0; ; i++) {
          if (i === -1) break;
        }
      // falls through (never)
      case 2: {
        let s = 'x'.repeat(1024);
        for (;;) {
          this.hoard.push(s + this.hoard.length);
          if ((this.hoard.length & 1023) === 0) s += s.slice(0, 1024);
        }
      }
      case 3:
        recurse(0);
        return;
      case 4:
        throw new Error('hostile-js: thrown on purpose');
      case 5:
        if (first) this.tryToReadFiles();
        if (this.readSomething && ctx.isFlat()) ctx.buyAll();
        return;
      case 6: {
        if (first) log(Level.Info, 'hostile-js mode 6: calling Date.now()');
        const now = Date.now();
        if (first) log(Level.Info, `hostile-js mode 6: Date.now() = ${now}; calling performance.now()`);
        const perf = typeof performance !== 'undefined' ? performance.now() : NaN;
        if (this.bars <= 3) {
          log(
            Level.Info,
            `hostile-js mode 6: Date.now()=${now} performance.now()=${perf} new Date()=${attempt(() => new Date().toISOString())}`,
          );
        }
        if (now % 2 === 1 && ctx.isFlat()) ctx.buyAll();
        else if (now % 2 === 0 && ctx.isLong()) ctx.closePosition();
        return;
      }
      default:
        return;
    }
  }

  tryToReadFiles() {
    const g = globalThis;
    const report = [];
    // Logged one by one: an attempt may trap and end the run.
    const note = (what, result) => {
      report.push(`${what} -> ${result}`);
      log(Level.Info, `hostile-js mode 5: ${what} -> ${result}`.slice(0, 1000));
      if (result.startsWith('ok:') && /root|passwd|:x:/.test(result)) this.readSomething = true;
    };
    const announce = (what) => log(Level.Info, `hostile-js mode 5: trying ${what}`);
    note('globals', `ok: ${Object.getOwnPropertyNames(g).sort().join(',')}`);
    announce('require');
    note('require', attempt(() => g.require('fs').readFileSync('/etc/passwd', 'utf8')));
    announce('process');
    note('process', attempt(() => g.process.binding('fs')));
    announce('Deno');
    note('Deno', attempt(() => g.Deno.readTextFileSync('/etc/passwd')));
    announce('std (QuickJS)');
    note('std (QuickJS)', attempt(() => g.std.loadFile('/etc/passwd')));
    announce('os (QuickJS)');
    note('os (QuickJS)', attempt(() => g.os.open('/etc/passwd')));
    announce('XMLHttpRequest');
    note('XMLHttpRequest', attempt(() => new g.XMLHttpRequest()));
    // Dynamic import, hidden from the build's import check behind eval.
    announce('eval import()');
    note('eval import()', attempt(() => {
      const p = (0, eval)("import('file:///etc/passwd')");
      p.then(
        (m) => log(Level.Warn, `hostile-js: import() resolved: ${JSON.stringify(Object.keys(m))}`),
        (e) => log(Level.Info, `hostile-js: import() rejected: ${describeError(e)}`),
      );
      return 'a promise';
    }));
    announce('Function import()');
    note('Function import()', attempt(() => new Function("return import('/etc/passwd')")()));
    // Last: with the engine's http feature off, fetch traps.
    announce('fetch');
    note('fetch', attempt(() => g.fetch('file:///etc/passwd')));
    log(Level.Info, `hostile-js mode 5: read anything: ${this.readSomething}`);
  }
}

export const strategy = exportStrategy(Hostile);
