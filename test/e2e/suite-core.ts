import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createLocalIotCore, LOCAL_CORE_DEFAULTS, type LocalIotCore, sdkClients } from '@pifleet/cloud';
import { portsOf, type RunningCore, removeDir, type StartCoreOptions, startCore, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll } from 'vitest';

/**
 * A local core of the suite's own with IoT Core's quotas (`--limits aws`) and `limits` changed as a
 * `--limits-file` changes them, for a suite that must go over a quota; `withCore` is what the
 * testkit's helpers take. `stop()` ends the clients and the core and removes the dir.
 */
export interface LimitedCore {
  readonly core: LocalIotCore;
  readonly info: Awaited<ReturnType<LocalIotCore['start']>>;
  readonly clients: ReturnType<typeof sdkClients>;
  readonly dir: string;
  readonly withCore: {
    readonly iot: LimitedCore['clients']['iot'];
    readonly data: LimitedCore['clients']['data'];
    readonly info: LimitedCore['info'];
    readonly core: LocalIotCore;
  };
  stop(): Promise<void>;
}

export async function startLimitedCore(name: string, limits: Record<string, number | null>): Promise<LimitedCore> {
  const dir = tempDir(name);
  const limitsFile = path.join(dir, 'limits.json');
  writeFileSync(limitsFile, JSON.stringify(limits));
  const core = createLocalIotCore({
    config: {
      ...LOCAL_CORE_DEFAULTS,
      dataDir: path.join(dir, 'core'),
      mqttPort: 0,
      httpPort: 0,
      logLevel: 'error',
      limits: 'aws',
      limitsFile,
    },
  });
  const info = await core.start();
  const clients = sdkClients(info, 2);
  return {
    core,
    info,
    clients,
    dir,
    withCore: { iot: clients.iot, data: clients.data, info, core },
    async stop() {
      clients.iot.destroy();
      clients.data.destroy();
      await core.stop();
      removeDir(dir);
    },
  };
}

/**
 * The local core a test file's suites share, in a temp dir (`pifleet-<name>-*`) that keeps the
 * core's data under `core/` and whatever the tests write beside it: started before the suites
 * (`onStarted` receives the core and the dir); after them `beforeStop` ends what still talks to the
 * core (devices, processes), then the core stops and the dir goes. `options` (a telemetry log) are
 * the core's on every start; `restart` stops it, runs `whileDown`, and starts it again on the same
 * ports and data, where its devices look for it, returning the new instance (the one stopped at the end).
 */
export function coreForFile(
  name: string,
  onStarted: (suite: { readonly core: RunningCore; readonly dir: string }) => void,
  beforeStop: () => unknown = () => undefined,
  options: StartCoreOptions = {},
): { restart(whileDown?: () => Promise<unknown>): Promise<RunningCore> } {
  let dir: string | undefined;
  let core: RunningCore | undefined;
  beforeAll(async () => {
    dir = tempDir(name);
    core = await startCore(path.join(dir, 'core'), options);
    onStarted({ core, dir });
  });
  afterAll(async () => {
    await beforeStop();
    await core?.stop();
    if (dir) removeDir(dir);
  });
  return {
    async restart(whileDown) {
      if (!core || !dir) throw new Error('the core starts before the suites run');
      const ports = portsOf(core);
      await core.stop();
      core = undefined;
      await whileDown?.();
      core = await startCore(path.join(dir, 'core'), { ...options, ...ports });
      return core;
    },
  };
}
