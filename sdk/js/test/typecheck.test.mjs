// Type-checks the example strategies (JS with JSDoc, and the TS one)
// against src/index.d.ts with the toolchain's tsc, when there is one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TOOLCHAIN = process.env.STRATBOX_JS_TOOLCHAIN || join(process.env.HOME || '', '.cache/stratbox-target/toolchains/js');
const TSC = join(TOOLCHAIN, 'node_modules', '.bin', 'tsc');

test('examples type-check against the SDK declarations', { skip: existsSync(TSC) ? false : `no tsc at ${TSC}` }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'stratbox-tsc-'));
  try {
    const config = join(dir, 'tsconfig.json');
    await writeFile(
      config,
      JSON.stringify({
        compilerOptions: {
          allowJs: true,
          checkJs: true,
          noEmit: true,
          strict: true,
          noImplicitAny: false,
          module: 'esnext',
          target: 'es2022',
          moduleResolution: 'bundler',
          skipLibCheck: true,
          types: [],
          paths: { '@stratbox/sdk': [join(ROOT, 'sdk/js/src/index.d.ts')] },
        },
        files: [
          join(ROOT, 'plugins/ema-crossover/js/strategy.js'),
          join(ROOT, 'plugins/rsi-reversion/js/strategy.js'),
          join(ROOT, 'plugins/hostile-js/strategy.js'),
          join(ROOT, 'plugins/pairs-spread/js/strategy.js'),
          join(ROOT, 'plugins/momentum-rotation/js/strategy.js'),
          join(ROOT, 'sdk/js/examples/sma-cross.ts'),
        ],
      }),
    );
    try {
      execFileSync(TSC, ['-p', config], { stdio: 'pipe', timeout: 120_000 });
    } catch (e) {
      assert.fail(`tsc found errors:\n${String(e.stdout || '')}${String(e.stderr || '')}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
