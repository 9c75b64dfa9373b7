#!/usr/bin/env node
// Builds a JavaScript (or TypeScript) stratbox strategy into a WebAssembly
// component with componentize-js:
//
//   node sdk/js/build.mjs --wit <wit dir> --src <strategy dir or file> --out <out.wasm>
//                         [--toolchain <dir containing node_modules>] [--keep-bundle <path>]
//                         [--no-pbl] [--engine spidermonkey|qjs] [--weval <weval binary>]
//
// componentize-js takes one source module, so the SDK (src/index.js, a
// single self-contained module) is inlined into the strategy's: every
// `import ... from '@stratbox/sdk'` becomes a destructuring of the inlined
// SDK, on the same lines (stack traces keep the author's line numbers).
// A strategy may import nothing else. The component imports only
// `stratbox:strategy/log@0.3.0`: every WASI feature of the engine is off.
// The world follows from what the module exports: `strategy`
// (exportStrategy) builds world `plugin`, `portfolio` (exportPortfolio)
// world `portfolio-plugin`.
// `--engine qjs` (experimental) builds with componentize-qjs (QuickJS)
// from the same toolchain instead: smaller, faster, same results.
// `--weval <path>` (or env STRATBOX_WEVAL) builds ahead of time with weval
// (componentize-js's `enableAot`): the interpreter partially evaluated
// against the strategy's bytecode.
//
// Exit status: 0 built, 1 the build failed, 2 bad usage.

import { readFile, writeFile, mkdtemp, rm, stat, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join, resolve, dirname, extname, basename } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const HERE = dirname(fileURLToPath(import.meta.url));
const SDK_PATH = join(HERE, 'src', 'index.js');
const SDK_SPECIFIERS = new Set(['@stratbox/sdk', 'stratbox-sdk']);
const LOG_IMPORT = 'stratbox:strategy/log@0.3.0';
// The export a strategy module makes -> the world it is built with.
const WORLDS = { strategy: 'plugin', portfolio: 'portfolio-plugin' };
const ALL_FEATURES = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];
const SOURCE_NAMES = ['strategy.js', 'strategy.mjs', 'strategy.ts', 'strategy.mts'];
// SpiderMonkey's portable baseline interpreter (inline caches, no native
// code), switched on at snapshot time: the engine reads its JIT options
// from the environment when it starts, inside wizer, and the snapshot keeps
// them. Measured on the EMA crossover: 26k fuel per bar against 38k with
// the plain C++ interpreter, same results bit for bit.
const ENGINE_ENV = {
  JIT_OPTION_portableBaselineInterpreter: 'true',
  JIT_OPTION_portableBaselineInterpreterWarmUpThreshold: '0',
};

class BuildError extends Error {}

function usage(message) {
  if (message) process.stderr.write(`build.mjs: ${message}\n`);
  process.stderr.write(
    'usage: node build.mjs --wit <wit dir> --src <strategy dir or file> --out <out.wasm> ' +
      '[--toolchain <dir containing node_modules>] [--keep-bundle <path>] [--no-pbl] ' +
      '[--engine spidermonkey|qjs] [--weval <weval binary>]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { toolchain: join(homedir(), '.cache', 'stratbox-target', 'toolchains', 'js') };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const [key, inline] = arg.startsWith('--') && eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined];
    const value = () => {
      if (inline !== undefined) return inline;
      const v = argv[++i];
      if (v === undefined) usage(`${key} needs a value`);
      return v;
    };
    switch (key) {
      case '--wit': opts.wit = value(); break;
      case '--src': opts.src = value(); break;
      case '--out': opts.out = value(); break;
      case '--toolchain': opts.toolchain = value(); break;
      case '--keep-bundle': opts.keepBundle = value(); break;
      case '--no-pbl': opts.noPbl = true; break;
      case '--engine': opts.engine = value(); break;
      case '--weval': opts.weval = value(); break;
      case '-h': case '--help': usage(); break;
      default: usage(`unknown argument ${arg}`);
    }
  }
  for (const k of ['wit', 'src', 'out']) if (!opts[k]) usage(`--${k} is required`);
  if (opts.weval === undefined && process.env.STRATBOX_WEVAL) opts.weval = process.env.STRATBOX_WEVAL;
  return opts;
}

/** The strategy's entry file: the file given, or strategy.{js,mjs,ts,mts} in the dir. */
async function locateSource(src) {
  const st = await stat(src).catch(() => null);
  if (!st) throw new BuildError(`${src}: no such file or directory`);
  if (st.isFile()) return resolve(src);
  for (const name of SOURCE_NAMES) {
    const p = join(src, name);
    if (existsSync(p)) return resolve(p);
  }
  // A plugin dir with its JS version under js/ (plugins/<name>/js/strategy.js).
  for (const name of SOURCE_NAMES) {
    const p = join(src, 'js', name);
    if (existsSync(p)) return resolve(p);
  }
  throw new BuildError(`${src}: no ${SOURCE_NAMES.join(', ')} in it (nor in its js/)`);
}

/** A package from the toolchain's node_modules (or, failing that, ours). */
async function loadFromToolchain(toolchain, name) {
  const bases = [join(resolve(toolchain), 'package.json'), join(HERE, 'package.json')];
  for (const base of bases) {
    try {
      const req = createRequire(base);
      const path = req.resolve(name);
      return await import(pathToFileURL(path).href);
    } catch {
      // Packages with only an `import` export condition fail require.resolve:
      // resolve their package.json by hand.
      const dir = join(dirname(base), 'node_modules', name);
      const pkgPath = join(dir, 'package.json');
      if (!existsSync(pkgPath)) continue;
      const pkg = JSON.parse(await readFile(pkgPath, 'utf8'));
      let entry = pkg.exports;
      if (entry && typeof entry === 'object' && '.' in entry) entry = entry['.'];
      if (entry && typeof entry === 'object') entry = entry.import || entry.default || entry.node;
      if (entry && typeof entry === 'object') entry = entry.default;
      entry = typeof entry === 'string' ? entry : pkg.module || pkg.main || 'index.js';
      return await import(pathToFileURL(join(dir, entry)).href);
    }
  }
  return null;
}

/**
 * TypeScript: types stripped with the toolchain's TypeScript JS API
 * (`typescript-compiler-api` or `typescript` <= 6, `transpileModule`), else
 * its `tsc` binary (TypeScript 7 has no JS transpile API) emitting to a
 * temporary dir. Types are not checked here: run tsc for that.
 */
async function transpileTs(source, file, toolchain) {
  for (const name of ['typescript-compiler-api', 'typescript']) {
    const ts = await loadFromToolchain(toolchain, name).catch(() => null);
    const api = ts && (typeof ts.transpileModule === 'function' ? ts : ts.default);
    if (!api || typeof api.transpileModule !== 'function') continue;
    const out = api.transpileModule(source, {
      fileName: basename(file),
      reportDiagnostics: true,
      compilerOptions: { module: api.ModuleKind.ESNext, target: api.ScriptTarget.ES2022, removeComments: false },
    });
    const errors = (out.diagnostics || []).filter((d) => d.category === api.DiagnosticCategory.Error);
    if (errors.length) {
      const text = errors.map((d) => api.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n');
      throw new BuildError(`${file}: ${text}`);
    }
    return out.outputText;
  }
  const tsc = join(resolve(toolchain), 'node_modules', '.bin', 'tsc');
  if (existsSync(tsc)) {
    const { execFileSync } = await import('node:child_process');
    const dir = await mkdtemp(join(tmpdir(), 'stratbox-ts-'));
    try {
      const input = join(dir, 'strategy.ts');
      await writeFile(input, source);
      try {
        execFileSync(tsc, [input, '--outDir', join(dir, 'out'), '--module', 'esnext', '--target', 'es2022',
          '--moduleResolution', 'bundler', '--noCheck', '--skipLibCheck', '--noResolve', '--isolatedModules'], { stdio: 'pipe' });
      } catch (e) {
        const out = join(dir, 'out', 'strategy.js');
        if (!existsSync(out)) throw new BuildError(`${file}: tsc failed: ${String(e.stdout || '')}${String(e.stderr || '')}`);
      }
      return await readFile(join(dir, 'out', 'strategy.js'), 'utf8');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  throw new BuildError(
    `${file}: a TypeScript strategy needs TypeScript in ${toolchain}/node_modules ` +
      `(npm install --prefix ${toolchain} typescript), or write strategy.js`,
  );
}

/** The SDK's module body and export names (it ends with one `export { ... };`). */
async function loadSdk() {
  const text = await readFile(SDK_PATH, 'utf8');
  const m = /^export\s*\{([^}]*)\};?\s*$/m.exec(text);
  if (!m) throw new BuildError(`${SDK_PATH}: its final \`export { ... }\` list is missing`);
  const names = m[1].split(',').map((s) => s.trim()).filter(Boolean);
  if (/^\s*(import|export)\b/m.test(text.slice(0, m.index))) {
    throw new BuildError(`${SDK_PATH}: must have no import and a single export list`);
  }
  return { body: text.slice(0, m.index), names };
}

/** The module's static imports: [{ss, se, n, clause}] (es-module-lexer if the toolchain has it). */
async function findImports(source, file, toolchain) {
  const lexer = await loadFromToolchain(toolchain, 'es-module-lexer');
  if (lexer) {
    await lexer.init;
    let imports, exports;
    try {
      [imports, exports] = lexer.parse(source, file);
    } catch (e) {
      throw new BuildError(`${file}: cannot parse: ${e.message}`);
    }
    for (const imp of imports) {
      if (imp.d > -1) {
        throw new BuildError(`${file}: dynamic import() is not supported (componentize-js takes one module)`);
      }
    }
    return {
      imports: imports
        .filter((imp) => imp.d === -1)
        .map((imp) => ({ ss: imp.ss, se: imp.se, n: imp.n, stmt: source.slice(imp.ss, imp.se) })),
      exports: exports.map((e) => e.n),
    };
  }
  // Fallback: top-level import statements by pattern.
  const imports = [];
  const re = /^[ \t]*(import\s*([\s\S]*?)\s*from\s*(['"])([^'"]+)\3|import\s*(['"])([^'"]+)\5)\s*;?/gm;
  let m;
  while ((m = re.exec(source))) {
    imports.push({ ss: m.index + m[0].indexOf('import'), se: m.index + m[0].length, n: m[4] || m[6], stmt: m[0].trim() });
  }
  const exports = [];
  for (const e of source.matchAll(/^\s*export\s+(?:const|let|var|function|class)\s+([A-Za-z_$][\w$]*)/gm)) exports.push(e[1]);
  for (const e of source.matchAll(/^\s*export\s*\{([^}]*)\}/gm)) {
    for (const part of e[1].split(',')) {
      const bits = part.trim().split(/\s+as\s+/);
      if (bits[0]) exports.push((bits[1] || bits[0]).trim());
    }
  }
  return { imports, exports };
}

/** `import A, { b as c } from '@stratbox/sdk'` -> `const { b: c } = __stratbox_sdk_init();` */
function rewriteSdkImport(stmt, file, sdkNames) {
  const m = /^import\s+([\s\S]*?)\s+from\s*['"][^'"]+['"]\s*;?$/.exec(stmt.trim());
  if (!m) {
    // `import '@stratbox/sdk';` (side effects only): nothing to bind.
    if (/^import\s*['"][^'"]+['"]\s*;?$/.test(stmt.trim())) return '__stratbox_sdk_init();';
    throw new BuildError(`${file}: cannot rewrite \`${stmt}\``);
  }
  let clause = m[1].trim();
  if (clause.startsWith('type ')) return ';';
  const parts = [];
  const ns = /^\*\s+as\s+([A-Za-z_$][\w$]*)$/.exec(clause);
  if (ns) return `const ${ns[1]} = __stratbox_sdk_init();`;
  const named = /\{([\s\S]*)\}/.exec(clause);
  const head = clause.replace(/\{[\s\S]*\}/, '').replace(/,\s*$/, '').trim();
  if (head) {
    const nsAfter = /^([A-Za-z_$][\w$]*)\s*,\s*\*\s+as\s+([A-Za-z_$][\w$]*)$/.exec(head);
    if (nsAfter || /^[A-Za-z_$][\w$]*$/.test(head)) {
      throw new BuildError(`${file}: the SDK has no default export; use \`import { ... } from '@stratbox/sdk'\``);
    }
    throw new BuildError(`${file}: cannot rewrite \`${stmt}\``);
  }
  if (named) {
    for (let spec of named[1].split(',')) {
      spec = spec.trim();
      if (!spec || spec.startsWith('type ')) continue;
      const [orig, alias] = spec.split(/\s+as\s+/).map((s) => s.trim());
      if (!sdkNames.includes(orig)) {
        throw new BuildError(`${file}: '@stratbox/sdk' has no export \`${orig}\` (it has: ${sdkNames.filter((n) => !n.startsWith('__')).join(', ')})`);
      }
      parts.push(alias && alias !== orig ? `${orig}: ${alias}` : orig);
    }
  }
  return `const { ${parts.join(', ')} } = __stratbox_sdk_init();`;
}

function isSdkSpecifier(spec, file) {
  if (SDK_SPECIFIERS.has(spec)) return true;
  if (spec.startsWith('.') || spec.startsWith('/') || spec.startsWith('file:')) {
    const p = spec.startsWith('file:') ? fileURLToPath(spec) : resolve(dirname(file), spec);
    return p === SDK_PATH || p === dirname(SDK_PATH) || p === dirname(dirname(SDK_PATH));
  }
  return false;
}

/** The world a module's exports call for: `plugin` or `portfolio-plugin`. */
export function worldOf(exports, file) {
  const found = Object.keys(WORLDS).filter((name) => exports.includes(name));
  if (found.length > 1) {
    throw new BuildError(
      `${file}: the module exports both \`strategy\` and \`portfolio\`; a component is one or the other`,
    );
  }
  if (found.length === 0) {
    throw new BuildError(
      `${file}: the module must export the strategy interface: \`export const strategy = exportStrategy(YourStrategy);\`` +
        ` (or, over several symbols, \`export const portfolio = exportPortfolio(YourPortfolioStrategy);\`)`,
    );
  }
  return WORLDS[found[0]];
}

/** One module: the strategy with its SDK imports rewritten, then the SDK in a function. */
export async function bundle(file, toolchain, engine = 'spidermonkey') {
  return (await bundleWithWorld(file, toolchain, engine)).source;
}

/** `bundle`, and the world the module is built with (from its exports). */
export async function bundleWithWorld(file, toolchain, engine = 'spidermonkey') {
  let source = await readFile(file, 'utf8');
  if (/\.m?ts$/.test(extname(file))) source = await transpileTs(source, file, toolchain);
  const sdk = await loadSdk();
  const { imports, exports } = await findImports(source, file, toolchain);
  const world = worldOf(exports, file);
  let out = '';
  let at = 0;
  let logImported = false;
  for (const imp of imports) {
    let replacement;
    if (imp.n === LOG_IMPORT) {
      logImported = true;
      continue;
    } else if (isSdkSpecifier(imp.n, file)) {
      replacement = rewriteSdkImport(imp.stmt, file, sdk.names);
    } else {
      throw new BuildError(
        `${file}: imports '${imp.n}': a strategy may import only '@stratbox/sdk' (and '${LOG_IMPORT}'); ` +
          'put helpers in the strategy file',
      );
    }
    // Same number of lines as the statement it replaces.
    const lines = imp.stmt.split('\n').length - 1;
    out += source.slice(at, imp.ss) + replacement + '\n'.repeat(lines);
    at = imp.se;
  }
  out += source.slice(at);
  const prelude = logImported ? '' : `import { log as __stratbox_wit_log } from '${LOG_IMPORT}'; `;
  const sink = logImported ? 'undefined' : '__stratbox_wit_log';
  const sdkFn =
    `\n\n// ---- @stratbox/sdk (inlined by build.mjs from ${basename(dirname(dirname(SDK_PATH)))}/src/index.js)\n` +
    `var __stratbox_sdk;\n` +
    `function __stratbox_sdk_init() {\n` +
    `  if (__stratbox_sdk) return __stratbox_sdk;\n` +
    sdk.body +
    `\n  __setLogSink(${sink});\n  __setEngine(${JSON.stringify(engine)});\n` +
    `  return (__stratbox_sdk = { ${sdk.names.join(', ')} });\n}\n`;
  // The strategy's top level calls `__stratbox_sdk_init()` before the
  // lines after it run: a hoisted function and a `var` (no TDZ).
  return { source: prelude + out + sdkFn, world };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const engine = opts.engine || 'spidermonkey';
  if (engine !== 'spidermonkey' && engine !== 'qjs') usage(`--engine must be spidermonkey or qjs, got ${engine}`);
  if (opts.weval !== undefined) {
    if (engine !== 'spidermonkey') usage('--weval applies to --engine spidermonkey only');
    // componentize-js downloads weval when `wevalBin` does not exist: never.
    const st = await stat(opts.weval).catch(() => null);
    if (!st || !st.isFile()) throw new BuildError(`--weval ${opts.weval}: no such file`);
  }
  const started = Date.now();
  const file = await locateSource(opts.src);
  const wit = resolve(opts.wit);
  if (!existsSync(wit)) throw new BuildError(`${opts.wit}: no such WIT file or directory`);
  const pkg = engine === 'qjs' ? 'componentize-qjs' : '@bytecodealliance/componentize-js';
  const cz = await loadFromToolchain(opts.toolchain, pkg);
  const componentize = cz && (cz.componentize || (cz.default && cz.default.componentize));
  if (typeof componentize !== 'function') {
    throw new BuildError(`${pkg} not found in ${opts.toolchain}/node_modules (npm install --prefix ${opts.toolchain} ${pkg})`);
  }
  const { source, world } = await bundleWithWorld(file, opts.toolchain, engine);
  if (opts.keepBundle) await writeFile(opts.keepBundle, source);
  let component;
  if (engine === 'qjs') {
    // Experimental: QuickJS (componentize-qjs), every WASI import stubbed
    // with a trap, the synchronous ABI.
    try {
      const result = await componentize({ witPath: wit, jsSource: source, world, stubWasi: true, sync: true });
      component = result.component;
    } catch (e) {
      throw new BuildError(`componentize-qjs: ${e && e.message ? e.message : e}`);
    }
  } else {
    const work = await mkdtemp(join(tmpdir(), 'stratbox-js-'));
    try {
      const entry = join(work, 'strategy.js');
      await writeFile(entry, source);
      let result;
      try {
        result = await componentize({
          sourcePath: entry,
          witPath: wit,
          worldName: world,
          disableFeatures: ALL_FEATURES,
          env: opts.noPbl ? {} : ENGINE_ENV,
          ...(opts.weval ? { enableAot: true, wevalBin: resolve(opts.weval) } : {}),
        });
      } catch (e) {
        throw new BuildError(`componentize-js: ${e && e.message ? e.message : e}`);
      }
      const imported = [...new Set((result.imports || []).map((i) => (Array.isArray(i) ? String(i[0]) : String(i))))];
      // Both worlds import only the log (the `portfolio` interface defines
      // its own types, so world portfolio-plugin imports nothing of
      // `strategy`).
      const foreign = imported.filter((name) => !name.startsWith('stratbox:strategy/log'));
      if (foreign.length) {
        throw new BuildError(`the component imports ${foreign.join(', ')}; only ${LOG_IMPORT} is allowed`);
      }
      component = result.component;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  await mkdir(dirname(resolve(opts.out)), { recursive: true });
  await writeFile(opts.out, component);
  const kib = (component.length / 1024).toFixed(0);
  process.stderr.write(
    `built ${opts.out} (${kib} KiB, ${engine === 'qjs' ? 'componentize-qjs' : 'componentize-js ' + (cz.version || '?')}` +
      `${opts.weval ? ', weval AOT' : ''}, world ${world}) ` +
      `from ${file} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(`build.mjs: ${e instanceof BuildError ? e.message : e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  });
}
