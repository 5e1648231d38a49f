#!/usr/bin/env node
// Runs the built agent (dist/main.js, what a Pi installs). In a source checkout without a build,
// runs src/main.ts through tsx with the workspace's `@pifleet/source` export condition.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'main.js');
if (existsSync(built)) {
  const { main } = await import(pathToFileURL(built).href);
  await main();
} else {
  const child = spawn(
    process.execPath,
    ['--conditions=@pifleet/source', '--import', 'tsx', join(root, 'src', 'main.ts'), ...process.argv.slice(2)],
    { stdio: 'inherit' },
  );
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === 'SIGINT' ? 130 : 1)));
}
