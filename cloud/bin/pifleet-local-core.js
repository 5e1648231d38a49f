#!/usr/bin/env node
// Node.js 22.14 is the floor. Checked first, before anything is imported, and in syntax every Node
// with ES modules parses (no static import, no top-level await, no `??`, down to the Node 12 of
// older distributions): an older Node would otherwise stop on a missing export or a syntax error
// with a stack trace instead of saying what to install. 69 is EXIT.unavailable of
// @pifleet/protocol's exit codes, written out because nothing may be imported before the check.
// 22.14: Node-API 10, which better-sqlite3 13 needs (it crashes on 22.13).
var nodeVersion = process.versions.node.split('.').map(Number);
if (nodeVersion[0] < 22 || (nodeVersion[0] === 22 && nodeVersion[1] < 14)) {
  process.stderr.write(
    `pifleet-local-core needs Node.js 22.14 or newer (this is v${process.versions.node}): install Node.js 24 LTS, ` +
      'or in a pifleet checkout run it through scripts/with-node - see the README\n',
  );
  process.exit(69);
}

// Launcher of the local IoT Core. In the workspace (src/ present) it runs the TypeScript source
// in this process through tsx, resolving workspace packages by their `@pifleet/source` export
// condition, so no build is needed; an installed package (dist/ only) runs the build.
async function run() {
  const { existsSync } = await import('node:fs');
  const { register } = await import('node:module');

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
}
// A rejection is left unhandled on purpose: Node prints it and exits 1, as a top-level await would.
void run();
