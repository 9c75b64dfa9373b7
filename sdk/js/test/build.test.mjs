// build.mjs's bundling (no component build: that takes ~10 s and the
// toolchain): the SDK inlined, imports rewritten on the same lines, and the
// bundle a working module once the WIT log import is stubbed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { bundle, bundleWithWorld } from '../build.mjs';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EMA = join(ROOT, 'plugins/ema-crossover/js/strategy.js');
// No toolchain: the fallback import scanner (es-module-lexer when it has one).
const NO_TOOLCHAIN = join(tmpdir(), 'stratbox-no-toolchain');

async function withTmp(f) {
  const dir = await mkdtemp(join(tmpdir(), 'stratbox-build-test-'));
  try {
    return await f(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Loads a bundle in node with the WIT log import replaced by `sink`. */
async function load(dir, source) {
  const stubbed = source.replace(
    /^import \{ log as __stratbox_wit_log \} from 'stratbox:strategy\/log@0.3.0'; /,
    'const __stratbox_wit_log = (level, message) => globalThis.__testLogs.push([level, message]); ',
  );
  const path = join(dir, `bundle-${Math.random().toString(36).slice(2)}.mjs`);
  await writeFile(path, stubbed);
  return import(pathToFileURL(path).href);
}

for (const toolchain of [NO_TOOLCHAIN, join(process.env.HOME || '', '.cache/stratbox-target/toolchains/js')]) {
  test(`bundle keeps the author's line numbers and exports (toolchain ${toolchain})`, async () => {
    const original = await readFile(EMA, 'utf8');
    const out = await bundle(EMA, toolchain);
    const lines = out.split('\n');
    const srcLines = original.split('\n');
    const importLine = srcLines.findIndex((l) => l.includes("from '@stratbox/sdk'"));
    assert.match(lines[importLine], /^const \{ Strategy, Column, ParamSpec, Ema, exportStrategy \} = __stratbox_sdk_init\(\);/);
    const onBar = srcLines.findIndex((l) => l.includes('onBar(bar, ctx) {'));
    assert.equal(lines[onBar], srcLines[onBar]);
    assert.ok(lines[0].startsWith("import { log as __stratbox_wit_log } from 'stratbox:strategy/log@0.3.0'; "));
    const strategyPart = out.slice(0, out.indexOf('// ---- @stratbox/sdk (inlined'));
    assert.ok(!strategyPart.includes("from '@stratbox/sdk'"));
  });
}

test('the bundle runs: describe, init, a run that logs through the WIT import', async () => {
  await withTmp(async (dir) => {
    globalThis.__testLogs = [];
    const src = join(dir, 'strategy.js');
    await writeFile(
      src,
      [
        "import { Strategy, log as say, Level } from '@stratbox/sdk';",
        'export class S extends Strategy {',
        "  static describe() { return { name: 's', version: '1', summary: '' }; }",
        "  onBar(bar, ctx) { say(Level.Info, `bar ${bar.index}`); ctx.buyAll(); }",
        '}',
        "import * as sdk from '@stratbox/sdk';",
        'export const strategy = sdk.exportStrategy(S);',
      ].join('\n'),
    );
    const m = await load(dir, await bundle(src, NO_TOOLCHAIN));
    assert.equal(m.strategy.describe().name, 's');
    m.strategy.init([]);
    const f = new Float64Array([1, 2]);
    const e = new Float64Array(0);
    m.strategy.pushBars(7n, 0, 1, 0, new BigInt64Array(0), f, f, f, f, f);
    const step = m.strategy.run({ cash: 1, position: 0, entryPrice: 0, openOrders: 0, fillCount: 0 }, 0, 2);
    // Bar 0's market buy is filled in the guest (at bar 1's open, 2); bar
    // 1's, the window's last, goes to the host.
    assert.equal(step.consumed, 2);
    assert.equal(step.planned, 1);
    assert.equal(step.action.tag, 'submit');
    const plan = m.strategy.takePlanned();
    assert.deepEqual(plan.assumed, [{ bar: 1, cash: 0, position: 0.5, entryPrice: 2 }]);
    assert.deepEqual(plan.actions.map((a) => [a.bar, a.action.tag]), [[0, 'submit']]);
    assert.deepEqual(globalThis.__testLogs, [['info', 'bar 7'], ['info', 'bar 8']]);
    void e;
  });
});

test('the qjs engine lowers ints as numbers and none as null', async () => {
  await withTmp(async (dir) => {
    globalThis.__testLogs = [];
    const m = await load(dir, await bundle(EMA, NO_TOOLCHAIN, 'qjs'));
    const d = m.strategy.describe();
    assert.deepEqual(d.params[0].default, { tag: 'int', val: 12 });
    assert.equal(d.params[2].min, null);
  });
});

test('a strategy may import only the SDK, and must export `strategy`', async () => {
  await withTmp(async (dir) => {
    const a = join(dir, 'a.js');
    await writeFile(a, "import fs from 'node:fs';\nexport const strategy = {};\n");
    await assert.rejects(bundle(a, NO_TOOLCHAIN), /may import only '@stratbox\/sdk'/);
    const b = join(dir, 'b.js');
    await writeFile(b, "import { Strategy } from '@stratbox/sdk';\nexport class X extends Strategy {}\n");
    await assert.rejects(bundle(b, NO_TOOLCHAIN), /export const strategy = exportStrategy.*export const portfolio = exportPortfolio/);
    const c = join(dir, 'c.js');
    await writeFile(c, "import { Nope } from '@stratbox/sdk';\nexport const strategy = {};\n");
    await assert.rejects(bundle(c, NO_TOOLCHAIN), /has no export `Nope`/);
  });
});

test('--weval (or STRATBOX_WEVAL) must name an existing binary: never a download', async () => {
  const { spawnSync } = await import('node:child_process');
  const build = fileURLToPath(new URL('../build.mjs', import.meta.url));
  const args = [build, '--wit', join(ROOT, 'wit'), '--src', EMA, '--out', join(tmpdir(), 'stratbox-never.wasm')];
  const missing = join(tmpdir(), 'stratbox-no-such-weval');
  const viaFlag = spawnSync(process.execPath, [...args, '--weval', missing], { encoding: 'utf8' });
  assert.equal(viaFlag.status, 1);
  assert.match(viaFlag.stderr, /--weval .*stratbox-no-such-weval: no such file/);
  const viaEnv = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, STRATBOX_WEVAL: missing } });
  assert.equal(viaEnv.status, 1);
  assert.match(viaEnv.stderr, /no such file/);
  const qjs = spawnSync(process.execPath, [...args, '--engine', 'qjs', '--weval', missing], { encoding: 'utf8' });
  assert.equal(qjs.status, 2);
  assert.match(qjs.stderr, /--weval applies to --engine spidermonkey only/);
});

test('the world follows the export: `strategy` builds plugin, `portfolio` portfolio-plugin', async () => {
  for (const toolchain of [NO_TOOLCHAIN, join(process.env.HOME || '', '.cache/stratbox-target/toolchains/js')]) {
    assert.equal((await bundleWithWorld(EMA, toolchain)).world, 'plugin');
    const pairs = join(ROOT, 'plugins/pairs-spread/js/strategy.js');
    assert.equal((await bundleWithWorld(pairs, toolchain)).world, 'portfolio-plugin');
  }
  await withTmp(async (dir) => {
    const both = join(dir, 'both.js');
    await writeFile(both, "export const strategy = {};\nexport const portfolio = {};\n");
    await assert.rejects(bundle(both, NO_TOOLCHAIN), /exports both `strategy` and `portfolio`/);
  });
});

test('a portfolio bundle runs: init with symbols, a run over two symbols', async () => {
  await withTmp(async (dir) => {
    globalThis.__testLogs = [];
    const src = join(dir, 'strategy.js');
    await writeFile(
      src,
      [
        "import { PortfolioStrategy, exportPortfolio, log, Level } from '@stratbox/sdk';",
        'export class P extends PortfolioStrategy {',
        "  static describe() { return { name: 'p', version: '1', summary: '' }; }",
        '  onStep(step, ctx) {',
        "    log(Level.Info, `step ${step.index} ${this.symbols.join('/')} ${step.bars.map((b) => (b ? b.close : '-')).join(' ')}`);",
        "    if (step.bars[1] !== null) ctx.buyEquity('ETHUSDT', 0.5);",
        '  }',
        '}',
        'export const portfolio = exportPortfolio(P);',
      ].join('\n'),
    );
    const m = await load(dir, await bundle(src, NO_TOOLCHAIN));
    m.portfolio.init([], ['BTCUSDT', 'ETHUSDT'], 'spot');
    const c = (xs) => Float64Array.from(xs);
    const empty = new Float64Array(0);
    const sym = (xs) => ({ open: c(xs), high: empty, low: empty, close: c(xs), volume: empty });
    m.portfolio.pushBars(0n, 0, 1, 0, new BigInt64Array(0), [sym([1, 2]), sym([NaN, 20])]);
    const account = { cash: 1, equity: 1, positions: [], fills: [] };
    const step = m.portfolio.run(account, 0, 2);
    assert.equal(step.consumed, 2);
    assert.deepEqual(step.actions.map((a) => [a.symbol, a.action.tag, a.action.val.quantity.val]), [[1, 'submit', 0.5]]);
    assert.deepEqual(globalThis.__testLogs, [['info', 'step 0 BTCUSDT/ETHUSDT 1 -'], ['info', 'step 1 BTCUSDT/ETHUSDT 2 20']]);
  });
});
