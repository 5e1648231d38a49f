#!/usr/bin/env node
// Launcher of `pifleet-sim`. In the workspace (src/ present) it runs the TypeScript source in this
// process through tsx, resolving workspace packages by their `@pifleet/source` export condition;
// an installed package (dist/ only) runs the build.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

// The AWS SDK's Node 20 end-of-support notice is noise on every run; other warnings still print.
process.removeAllListeners('warning');
process.on('warning', (w) => {
  if (!`${w.name} ${w.message}`.includes('NodeVersionSupportWarning'))
    process.stderr.write(`${w.name}: ${w.message}\n`);
});

const source = new URL('../src/main.ts', import.meta.url);
if (existsSync(source)) {
  const hook =
    'export async function resolve(specifier, context, next) {' +
    ' return next(specifier, { ...context, conditions: [...new Set([...context.conditions, "@pifleet/source"])] }); }';
  register(`data:text/javascript,${encodeURIComponent(hook)}`, import.meta.url);
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  const { main } = await import(source.href);
  await main();
} else {
  const { main } = await import(new URL('../dist/main.js', import.meta.url).href);
  await main();
}
