#!/usr/bin/env node
// Runs the built agent (dist/main.js, what a Pi installs: `pnpm deploy` carries dist/ only). In a
// source checkout (src/ present) it runs src/main.ts through tsx with the workspace's
// `@pifleet/source` export condition, even when a dist/ from an earlier build is lying around, so
// a stale build never shadows the source. tsx is resolved from here, not from the working directory.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'main.js');
const source = join(root, 'src', 'main.ts');
if (!existsSync(source) && existsSync(built)) {
  const { main } = await import(pathToFileURL(built).href);
  await main();
} else {
  const child = spawn(
    process.execPath,
    ['--conditions=@pifleet/source', '--import', import.meta.resolve('tsx'), source, ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
}
