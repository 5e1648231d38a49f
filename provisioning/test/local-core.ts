import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOCAL_ENDPOINT_FILE } from '@pifleet/protocol';
import { runCli } from '../src/cli.js';
import { sink } from './helpers.js';

/**
 * Test harness: the real local IoT Core (`pifleet-local-core`, the cloud package's bin) on
 * ephemeral ports in a temp data dir. It writes the core's ready line to `DATA_DIR/endpoint.json`,
 * which is how the CLI finds a running core.
 */

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const LOCAL_CORE_BIN = path.join(REPO, 'cloud/bin/pifleet-local-core.js');
export const PIFLEET_BIN = path.join(REPO, 'provisioning/bin/pifleet.js');

export interface CoreInfo {
  ready: true;
  mqtt: { host: string; port: number };
  http: string;
  caFile: string;
  credentialsFile: string;
  region: string;
}

export interface RunningCore {
  readonly dataDir: string;
  readonly info: CoreInfo;
  stop(): Promise<void>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `pifleet-prov-${prefix}-`));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

export async function startLocalCore(dataDir: string, timeoutMs = 30_000): Promise<RunningCore> {
  const child: ChildProcess = spawn(
    process.execPath,
    [LOCAL_CORE_BIN, '--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0', '--log-level', 'warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const info = await new Promise<CoreInfo>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`local core not ready in ${timeoutMs} ms: ${stderr}`)), timeoutMs);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, nl)) as CoreInfo);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`local core exited with ${code}: ${stderr}`));
    });
  });
  writeFileSync(path.join(dataDir, LOCAL_ENDPOINT_FILE), `${JSON.stringify(info)}\n`);
  return {
    dataDir,
    info,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        // SIGTERM first; the core's own shutdown is bounded at 10 s, so do not wait that long in tests.
        const force = setTimeout(() => child.kill('SIGKILL'), 3_000);
        child.once('exit', () => {
          clearTimeout(force);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}

/** Runs the CLI in-process and captures its output. */
export async function cli(
  argv: string[],
  options: { cwd: string; env?: Record<string, string | undefined>; signal?: AbortSignal; isTTY?: boolean } & {
    onStderr?: (chunk: string) => void;
  },
) {
  const stdout = sink();
  const stderr = sink();
  const code = await runCli(argv, {
    stdout,
    stderr: {
      write: (s: string) => {
        options.onStderr?.(s);
        return stderr.write(s);
      },
    },
    env: options.env ?? {},
    cwd: options.cwd,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.isTTY !== undefined ? { isTTY: options.isTTY } : {}),
    random: () => 0.5,
  });
  return { code, stdout: stdout.text, stderr: stderr.text };
}
