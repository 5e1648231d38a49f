import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { IoTClient } from '@aws-sdk/client-iot';
import {
  launchCoreProcess,
  localProfileCredentials,
  type RunningCoreProcess,
  removeDir,
  tempDir,
} from '@pifleet/testkit';
import { afterAll, beforeAll } from 'vitest';
import { runCli } from '../src/cli.js';
import type { Clock } from '../src/ports/clock.js';

/** A clock that only moves when told to; `sleep` resolves when the time is advanced past it. */
export function manualClock(start = 1_700_000_000_000) {
  let now = start;
  const sleepers: { until: number; resolve: () => void }[] = [];
  const slept: number[] = [];
  const clock: Clock & { advance(ms: number): void; slept: number[] } = {
    now: () => now,
    slept,
    sleep(ms) {
      slept.push(ms);
      if (ms <= 0) return Promise.resolve();
      return new Promise<void>((resolve) => sleepers.push({ until: now + ms, resolve }));
    },
    advance(ms) {
      now += ms;
      for (let i = sleepers.length - 1; i >= 0; i--) {
        const s = sleepers[i];
        if (s && s.until <= now) {
          sleepers.splice(i, 1);
          s.resolve();
        }
      }
    },
  };
  return clock;
}

/** A clock whose sleep advances time at once (for retry loops that would otherwise wait). */
export function instantClock(start = 1_700_000_000_000) {
  let now = start;
  const slept: number[] = [];
  const clock: Clock & { slept: number[] } = {
    now: () => now,
    slept,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
  };
  return clock;
}

/** A text sink that keeps what is written. */
export function sink() {
  let text = '';
  return {
    write(chunk: string) {
      text += chunk;
      return true;
    },
    get text() {
      return text;
    },
    lines() {
      return text.split('\n').filter((l) => l !== '');
    },
  };
}

/**
 * The real local IoT Core (`pifleet-local-core`, the cloud package's bin) on ephemeral ports in
 * `dataDir`. It writes its ready line to `DATA_DIR/endpoint.json`, which is how the CLI finds a
 * running core.
 */
export function startLocalCore(dataDir: string) {
  return launchCoreProcess(dataDir, { args: ['--log-level', 'warn'], readyWithinMs: 30_000 });
}

/**
 * The local core a test file's commands run against, and a fresh working directory per test from
 * `cwd()` (bundles land in ./.pifleet/bundles): the core starts before the file's suites
 * (`onStarted` receives it); after them `beforeStop` runs (clients of the core to close), then the
 * core stops and both temp dirs go.
 */
export function localCoreForFile(
  onStarted: (core: RunningCoreProcess) => void,
  beforeStop: () => void = () => undefined,
): { cwd(): string } {
  let core: RunningCoreProcess | undefined;
  let work: string | undefined;
  let n = 0;
  beforeAll(async () => {
    core = await startLocalCore(tempDir('core'));
    work = tempDir('work');
    onStarted(core);
  });
  afterAll(async () => {
    beforeStop();
    await core?.stop();
    if (core) removeDir(core.dataDir);
    if (work) removeDir(work);
  });
  return {
    cwd() {
      if (!work) throw new Error('the working directories are made before the suites run');
      const dir = path.join(work, `t${++n}`);
      fs.mkdirSync(dir);
      return dir;
    },
  };
}

/**
 * `localCoreForFile` with a real `@aws-sdk/client-iot` client on the core's local profile (one
 * attempt, so a refusal shows as it is): `onStarted` receives both; the client is destroyed before
 * the core stops.
 */
export function localCoreWithIotForFile(onStarted: (core: RunningCoreProcess, iot: IoTClient) => void): {
  cwd(): string;
} {
  let iot: IoTClient | undefined;
  return localCoreForFile(
    (core) => {
      const credentials = localProfileCredentials(core.info);
      iot = new IoTClient({ region: core.info.region, endpoint: core.info.http, credentials, maxAttempts: 1 });
      onStarted(core, iot);
    },
    () => iot?.destroy(),
  );
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

/** A port nothing listens on (taken from the system, then released): connections to it are refused. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}
