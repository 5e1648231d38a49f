import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type LocalCa, loadOrCreateCa } from '../../src/ca/local-ca.js';
import { openSqliteRegistry, type Registry } from '../../src/registry/sqlite-registry.js';
import { removeDir, tempDir } from '../http/harness.js';

type RegistryOptions = Parameters<typeof openSqliteRegistry>[0];

/**
 * What a registry test file shares: a temp dir (`pifleet-<dirName>-*`) and a local CA in it, made
 * before the file's suites (`onStarted` receives both) and gone after them. The returned `open`
 * opens a registry on the file's clock, in a fresh SQLite file unless given one (reopening a file
 * is how the suites test persistence and migration).
 */
export function registryForFile(
  dirName: string,
  account: RegistryOptions['account'],
  now: () => number,
  onStarted: (bed: { readonly dir: string; readonly ca: LocalCa }) => void,
): (file?: string) => Registry {
  let dir: string | undefined;
  let files = 0;
  beforeAll(async () => {
    dir = tempDir(dirName);
    const ca = await loadOrCreateCa({ dir: join(dir, 'ca'), now });
    onStarted({ dir, ca });
  });
  afterAll(() => {
    if (dir) removeDir(dir);
  });
  return (file) => {
    if (!dir) throw new Error('the registry dir is made before the suites run');
    return openSqliteRegistry({ file: file ?? join(dir, `registry-${++files}.sqlite`), account, now });
  };
}
