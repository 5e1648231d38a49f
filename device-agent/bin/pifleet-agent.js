#!/usr/bin/env node
// What the agent needs of the machine is checked first, before anything is imported, and in syntax
// every Node with ES modules parses (no static import, no top-level await, no `??`, down to the
// Node 12 of older distributions): an older Node would otherwise stop on a missing export or a
// syntax error with a stack trace instead of saying what to install. 69 is EXIT.unavailable of
// @pifleet/protocol's exit codes, written out because nothing may be imported before the check.
if (process.arch === 'arm') {
  process.stderr.write(
    'pifleet-agent needs a 64-bit system: aws-crt (its MQTT and TLS client) ships no 32-bit ARM build, and this ' +
      'is 32-bit ARM: install the 64-bit Raspberry Pi OS (arm64) - see the README\n',
  );
  process.exit(69);
}
// 22.14: Node-API 10, which better-sqlite3 13 needs (it crashes on 22.13).
var nodeVersion = process.versions.node.split('.').map(Number);
if (nodeVersion[0] < 22 || (nodeVersion[0] === 22 && nodeVersion[1] < 14)) {
  process.stderr.write(
    `pifleet-agent needs Node.js 22.14 or newer (this is v${process.versions.node}): install Node.js 24 LTS, ` +
      'or in a pifleet checkout run it through scripts/with-node - see the README\n',
  );
  process.exit(69);
}

// Runs the built agent (dist/main.js, what a Pi installs: `pnpm deploy` carries dist/ only). In a
// source checkout (src/ present) it runs src/main.ts through tsx with the workspace's
// `@pifleet/source` export condition, even when a dist/ from an earlier build is lying around, so
// a stale build never shadows the source. tsx is resolved from here, not from the working directory.
async function run() {
  const { spawn } = await import('node:child_process');
  const { existsSync } = await import('node:fs');
  const { fileURLToPath, pathToFileURL } = await import('node:url');

  const built = fileURLToPath(new URL('../dist/main.js', import.meta.url));
  const source = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  if (!existsSync(source) && existsSync(built)) {
    const { main } = await import(pathToFileURL(built).href);
    await main();
    return;
  }
  const child = spawn(
    process.execPath,
    ['--conditions=@pifleet/source', '--import', import.meta.resolve('tsx'), source, ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code !== null ? code : signal === 'SIGINT' ? 130 : 1));
}
// A rejection is left unhandled on purpose: Node prints it and exits 1, as a top-level await would.
void run();
