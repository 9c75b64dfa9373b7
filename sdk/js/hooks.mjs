// Module resolution hooks registered by register.mjs.
const SDK = new URL('./src/index.js', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@stratbox/sdk' || specifier === 'stratbox-sdk') {
    return { url: SDK, format: 'module', shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
