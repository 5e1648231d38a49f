import { IoTClient, type IoTClientConfig, type IoTServiceException } from '@aws-sdk/client-iot';
import { afterAll, beforeAll, expect } from 'vitest';
import type { LocalCoreInfo } from '../../src/app/local-core.js';
import { type LimitOverrides, resolveLimits } from '../../src/limits/index.js';
import {
  type InProcessCore,
  type InProcessCoreOptions,
  localProfileCredentials,
  removeDir,
  startInProcessCore,
  tempDir,
} from '../../src/testing/in-process-core.js';

/**
 * Test harness: a local IoT Core on ephemeral ports in a temp data dir and real IoT SDK clients
 * (cloud's testing entry, src/testing/in-process-core.ts), plus clients with credentials of a
 * test's choosing (a wrong secret, an unknown key).
 */

export {
  type InProcessCore as RunningCore,
  removeDir,
  startInProcessCore as startCore,
  tempDir,
} from '../../src/testing/in-process-core.js';

/** Reads the generated credentials file (profile pifleet-local) into static credentials. */
export function credentialsFrom(file: string) {
  return localProfileCredentials({ credentialsFile: file })();
}

export function iotClient(
  info: LocalCoreInfo,
  credentials: IoTClientConfig['credentials'] = localProfileCredentials(info),
): IoTClient {
  return new IoTClient({ region: info.region, endpoint: info.http, credentials, maxAttempts: 1 });
}

/** The core of {@link coreForFile}, for a test that restarts it. */
export interface FileCore {
  /**
   * Stops the core and starts it again on the same data dir (`options`: e.g. the ports its clients
   * know); `onStarted` receives the new one, which is stopped after the file like the first.
   */
  restart(options?: InProcessCoreOptions): Promise<InProcessCore>;
}

/**
 * The local core a test file's suites share, in a temp dir (`pifleet-<dirName>-*`): started before
 * them (`onStarted` receives it and its data dir), stopped after them, and the dir goes.
 */
export function coreForFile(dirName: string, onStarted: (run: InProcessCore, dir: string) => void): FileCore {
  let dir: string | undefined;
  let run: InProcessCore | undefined;
  beforeAll(async () => {
    dir = tempDir(dirName);
    run = await startInProcessCore(dir);
    onStarted(run, dir);
  });
  afterAll(async () => {
    await run?.stop();
    if (dir) removeDir(dir);
  });
  return {
    async restart(options) {
      if (!run || !dir) throw new Error('restart() before the core started');
      await run.stop();
      run = undefined;
      run = await startInProcessCore(dir, options);
      onStarted(run, dir);
      return run;
    },
  };
}

export type ErrorClass = new (...args: never[]) => IoTServiceException;

/** An AWS SDK client's service exception (any client package: IoT, the jobs data plane, S3). */
export type ServiceExceptionOf = Error & { readonly $metadata: { readonly httpStatusCode?: number | undefined } };

/** Asserts `send` is refused with an exception of `type` (any SDK client's) and HTTP status; returns it. */
export async function refusedWith<E extends ServiceExceptionOf>(
  send: Promise<unknown>,
  type: new (...args: never[]) => E,
  status: number,
): Promise<E> {
  const err = (await send.then(
    () => new Error('the request succeeded'),
    (e: unknown) => e,
  )) as E;
  expect(err).toBeInstanceOf(type);
  expect(err.$metadata.httpStatusCode).toBe(status);
  return err;
}

/** Asserts `send` is refused with the exception the client maps (class and name) and HTTP status; returns it. */
export async function rejection(
  send: Promise<unknown>,
  type: ErrorClass,
  status: number,
): Promise<IoTServiceException> {
  const err = await refusedWith(send, type, status);
  expect(err.name).toBe(type.name);
  return err;
}

/**
 * Cores a test file starts as it goes, each on limits of its choosing (`aws` with overrides, or
 * `off`) in its own temp dir (`pifleet-<prefix>-<name>-*`); all stop, and their dirs go, after the file.
 */
export function coresWithLimits(
  prefix: string,
): (name: string, mode: 'aws' | 'off', overrides?: LimitOverrides) => Promise<InProcessCore> {
  const cores: Array<{ core: InProcessCore; dir: string }> = [];
  afterAll(async () => {
    for (const { core, dir } of cores.splice(0)) {
      await core.stop();
      removeDir(dir);
    }
  });
  return async (name, mode, overrides = {}) => {
    const dir = tempDir(`${prefix}-${name}`);
    const core = await startInProcessCore(dir, { limits: resolveLimits(mode, overrides) });
    cores.push({ core, dir });
    return core;
  };
}
