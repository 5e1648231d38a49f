import { fileURLToPath } from 'node:url';
import type { LocalCoreInfo } from '../app/local-core.js';
import { LOCAL_CORE_ENV } from '../config/local-core.js';
import { type BinExit, type LaunchedBin, launchBin } from './launch-bin.js';

/**
 * The `pifleet-local-core` bin as a child process, for tests that need what only a process has:
 * exit codes, signals, `kill -9`. Every child is tracked so `killAll()` in `afterAll` leaves none.
 * (Here rather than in cloud's test folder so the cross-package suites in test/ use it too.)
 */

export const CORE_BIN = fileURLToPath(new URL('../../bin/pifleet-local-core.js', import.meta.url));

export type CoreExit = BinExit;
export type CoreProcess = LaunchedBin;

export interface RunningCoreProcess extends CoreProcess {
  readonly dataDir: string;
  readonly info: LocalCoreInfo;
}

export { killLaunched as killAll } from './launch-bin.js';

/**
 * Spawns the bin with these arguments; does not wait for anything. Its WebSocket listener takes an
 * ephemeral port unless the arguments name one (a flag beats the variable): suites start cores side
 * by side, and the bin's default port would be contended.
 */
export function spawnCore(
  args: readonly string[],
  options: { readonly stderr?: 'collect' | 'inherit' } = {},
): CoreProcess {
  const env = { ...process.env, [LOCAL_CORE_ENV.wsPort]: '0' };
  return launchBin(CORE_BIN, { args, name: 'pifleet-local-core', env, ...options });
}

/**
 * Starts the bin on `dataDir` and waits (bounded, 20 s unless given) for its ready line. Ports are
 * ephemeral unless given (a restarted core on the ports its devices know). The core also writes
 * the ready line to `DATA_DIR/endpoint.json`, where the `pifleet` CLI's `--local` finds it.
 */
export async function launchCore(
  dataDir: string,
  options: {
    readonly mqttPort?: number;
    readonly httpPort?: number;
    readonly args?: readonly string[];
    readonly readyWithinMs?: number;
    readonly stderr?: 'collect' | 'inherit';
  } = {},
): Promise<RunningCoreProcess> {
  const proc = spawnCore(
    [
      '--data-dir',
      dataDir,
      '--mqtt-port',
      String(options.mqttPort ?? 0),
      '--http-port',
      String(options.httpPort ?? 0),
      ...(options.args ?? []),
    ],
    options.stderr ? { stderr: options.stderr } : {},
  );
  const line = await proc.waitForLine(() => true, options.readyWithinMs ?? 20_000, 'ready line');
  return Object.assign(proc, { dataDir, info: JSON.parse(line) as LocalCoreInfo });
}
