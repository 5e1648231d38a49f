import path from 'node:path';
import { type RunningCore, removeDir, startCore, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll } from 'vitest';

/**
 * The local core a test file's suites share, in a temp dir (`pifleet-<name>-*`) that keeps the
 * core's data under `core/` and whatever the tests write beside it: started before the suites
 * (`onStarted` receives the core and the dir); after them `beforeStop` ends what still talks to the
 * core (devices, processes), then the core stops and the dir goes.
 */
export function coreForFile(
  name: string,
  onStarted: (suite: { readonly core: RunningCore; readonly dir: string }) => void,
  beforeStop: () => unknown = () => undefined,
): void {
  let dir: string | undefined;
  let core: RunningCore | undefined;
  beforeAll(async () => {
    dir = tempDir(name);
    core = await startCore(path.join(dir, 'core'));
    onStarted({ core, dir });
  });
  afterAll(async () => {
    await beforeStop();
    await core?.stop();
    if (dir) removeDir(dir);
  });
}
