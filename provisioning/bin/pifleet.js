#!/usr/bin/env node
// The `pifleet` command. Runs the built CLI (dist/) when present; in the workspace it runs the
// TypeScript source through tsx, resolving @pifleet/* packages to their sources.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

// The AWS SDK warns (on import and per client) that Node 20 support ends; for an operator command
// that is noise on every run, so only that warning is dropped. Installed before anything loads.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!`${w.name} ${w.message}`.includes('NodeVersionSupportWarning'))
    process.stderr.write(`${w.name}: ${w.message}\n`);
});

const dist = new URL('../dist/main.js', import.meta.url);
let entry = dist;
if (!existsSync(dist)) {
  const hook = `export async function resolve(specifier, context, next) {
    return next(specifier, { ...context, conditions: [...context.conditions, '@pifleet/source'] });
  }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  entry = new URL('../src/main.ts', import.meta.url);
}
const { main } = await import(entry.href);
await main();
