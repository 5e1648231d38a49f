import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { LocalCoreInfo } from '../../src/app/local-core.js';

/**
 * The `pifleet-local-core` bin as a child process, for tests that need what only a process has:
 * exit codes, signals, `kill -9`. Every child is tracked so `killAll()` in `afterAll` leaves none.
 * (Here rather than in cloud's test folder so the cross-package suites in test/ use it too.)
 */

export const CORE_BIN = fileURLToPath(new URL('../../bin/pifleet-local-core.js', import.meta.url));

export interface CoreExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface CoreProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<CoreExit>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
}

export interface RunningCoreProcess extends CoreProcess {
  readonly info: LocalCoreInfo;
}

const children = new Set<ChildProcess>();

/** Spawns the bin with these arguments; does not wait for anything. */
export function spawnCore(args: readonly string[]): CoreProcess {
  const child = spawn(process.execPath, [CORE_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<CoreExit>((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return { child, exited, stderr: () => stderr };
}

/**
 * Starts the bin on `dataDir` and waits (bounded) for its ready line. Ports are ephemeral unless
 * given (a restarted core on the ports its devices know).
 */
export async function launchCore(
  dataDir: string,
  options: { readonly mqttPort?: number; readonly httpPort?: number; readonly args?: readonly string[] } = {},
): Promise<RunningCoreProcess> {
  const proc = spawnCore([
    '--data-dir',
    dataDir,
    '--mqtt-port',
    String(options.mqttPort ?? 0),
    '--http-port',
    String(options.httpPort ?? 0),
    ...(options.args ?? []),
  ]);
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ready line within 20 s; stderr:\n${proc.stderr()}`)), 20_000);
    proc.child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const nl = out.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        resolve(out.slice(0, nl));
      }
    });
    void proc.exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ready; stderr:\n${proc.stderr()}`));
    });
  });
  return { ...proc, info: JSON.parse(line) as LocalCoreInfo };
}

/** SIGKILLs every child still running (for `afterAll`). */
export function killAll(): void {
  for (const child of children) child.kill('SIGKILL');
}
