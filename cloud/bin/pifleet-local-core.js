#!/usr/bin/env node
// Launcher of the local IoT Core. In the workspace (src/ present) it runs the TypeScript source
// in this process through tsx, resolving workspace packages by their `@pifleet/source` export
// condition, so no build is needed; an installed package (dist/ only) runs the build.
import { existsSync } from 'node:fs';
import { register } from 'node:module';

const source = new URL('../src/main.ts', import.meta.url);
if (existsSync(source)) {
  const hook =
    'export async function resolve(specifier, context, next) {' +
    ' return next(specifier, { ...context, conditions: [...new Set([...context.conditions, "@pifleet/source"])] }); }';
  register(`data:text/javascript,${encodeURIComponent(hook)}`, import.meta.url);
  const { register: registerTsx } = await import('tsx/esm/api');
  registerTsx();
  await import(source.href);
} else {
  await import(new URL('../dist/main.js', import.meta.url).href);
}
