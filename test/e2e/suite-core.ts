import path from 'node:path';
import { portsOf, type RunningCore, removeDir, type StartCoreOptions, startCore, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll } from 'vitest';

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
