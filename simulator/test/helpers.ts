import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runSimCli } from '../src/cli.js';

/** Runs `pifleet-sim` in-process with `argv`: its exit code and what it printed. It never waits for a signal to stop. */
export async function sim(argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runSimCli(argv, {
    stdout: (t) => {
      stdout += t;
    },
    stderr: (t) => {
      stderr += t;
    },
    env: {},
    waitForStop: () => new Promise(() => undefined),
  });
  return { code, stdout, stderr };
}

/** Writes a certificate or key into `dir` readable by its owner only (0600, as the agent requires) and returns its path. */
export function writeCredential(dir: string, name: string, text: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, 0o600);
  return f;
}
