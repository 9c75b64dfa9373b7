// Makes `import ... from '@stratbox/sdk'` resolve to this SDK in node, for
// native tests of a strategy (no npm install needed):
//
//   node --import ./sdk/js/register.mjs --test plugins/ema-crossover/js/
//
// or, in a test file, `import '<path>/sdk/js/register.mjs'` and then a
// dynamic `await import('./strategy.js')`.
import { register } from 'node:module';

register(new URL('./hooks.mjs', import.meta.url));
