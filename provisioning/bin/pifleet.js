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
    `pifleet needs Node.js 22.14 or newer (this is v${process.versions.node}): install Node.js 24 LTS, ` +
      'or in a pifleet checkout run it through scripts/with-node - see the README\n',
  );
  process.exit(69);
}

// The `pifleet` command. Runs the built CLI (dist/) when present; in the workspace it runs the
// TypeScript source through tsx, resolving @pifleet/* packages to their sources.
async function run() {
  const { existsSync } = await import('node:fs');
  const { register } = await import('node:module');

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
}
// A rejection is left unhandled on purpose: Node prints it and exits 1, as a top-level await would.
void run();
