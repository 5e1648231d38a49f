import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DataDirError, lockDataDir, prepareDataDir } from '../../src/adapters/data-dir.js';
import { DataFileError } from '../../src/adapters/sqlite-open.js';
import { createSqliteTelemetryStore } from '../../src/adapters/sqlite-telemetry-store.js';
import { createLocalIotCore, localCorePaths } from '../../src/app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import { openSqliteRegistry } from '../../src/registry/sqlite-registry.js';
import { openSqliteShadowStore } from '../../src/shadow/sqlite-store.js';
import { removeDir, tempDir } from '../http/harness.js';

/** The data directory in process: its lock, its checks, and database files the core cannot use. */

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) removeDir(dir);
});
function dataDir(prefix: string): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

const coreOn = (dir: string, ports: { mqttPort?: number } = {}) =>
  createLocalIotCore({ config: { ...LOCAL_CORE_DEFAULTS, dataDir: dir, mqttPort: 0, httpPort: 0, ...ports } });

/** Catches what `fn` throws (or rejects with). */
async function thrown(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

describe('the data directory lock', () => {
  it('refuses a second core on the same directory, which then changes nothing; the first keeps running', async () => {
    const dir = dataDir('lock-in-process');
    const first = coreOn(dir);
    const info = await first.start();
    const endpointFile = localCorePaths(dir).endpointFile;
    const endpoint = readFileSync(endpointFile, 'utf8');

    const second = coreOn(dir);
    const err = await thrown(() => second.start());
    expect(err).toBeInstanceOf(DataDirError);
    expect(err).toMatchObject({ code: 'DATA_DIR_LOCKED', data: { dataDir: dir, pid: process.pid } });
    await second.stop();
    expect(readFileSync(endpointFile, 'utf8')).toBe(endpoint);
    expect(first.services.info).toEqual(info);

    await first.stop();
    expect(existsSync(endpointFile)).toBe(false);
    // Released on stop: the same directory starts again in the same process.
    const again = coreOn(dir);
    await again.start();
    await again.stop();
  });

  it('is released when a start fails part way (the MQTT port in use)', async () => {
    const dir = dataDir('lock-failed-start');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const err = await thrown(() => coreOn(dir, { mqttPort: port }).start());
      expect(err).toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    const next = coreOn(dir);
    await next.start();
    await next.stop();
  });

  it('names no pid when the pid file is gone, and still refuses', () => {
    const dir = dataDir('lock-no-pid');
    const lock = lockDataDir(dir, 4242);
    try {
      expect(readFileSync(join(dir, 'core.pid'), 'utf8')).toBe('4242\n');
      writeFileSync(join(dir, 'core.pid'), 'garbage');
      const err = (() => {
        try {
          lockDataDir(dir);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toMatchObject({ code: 'DATA_DIR_LOCKED' });
      expect((err as Error).message).toMatch(/^another local IoT Core is already running on /);
    } finally {
      lock.release();
    }
    lockDataDir(dir).release();
  });

  it('refuses a lock file that is not one, saying it can be removed', () => {
    const dir = dataDir('lock-garbage');
    writeFileSync(join(dir, 'core.lock'), 'not a lock file at all, and long enough to have a header '.repeat(4));
    const err = (() => {
      try {
        lockDataDir(dir);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(DataFileError);
    expect((err as Error).message).toContain('remove it (it holds no data)');
  });
});

describe('prepareDataDir', () => {
  it('creates the directory (and its parents) with mode 0700', () => {
    const dir = join(dataDir('prepare'), 'a', 'b');
    prepareDataDir(dir);
    expect(existsSync(dir)).toBe(true);
  });

  it.each([
    ['the directory', ''],
    ['a parent', 'below'],
  ])('names the file when %s is a file', (_what, below) => {
    const file = join(dataDir('prepare-file'), 'f');
    writeFileSync(file, 'x');
    const target = below ? join(file, below) : file;
    expect(() => prepareDataDir(target)).toThrow(DataDirError);
    expect(() => prepareDataDir(target)).toThrow(`move ${file} away`);
  });
});

describe('database files the core cannot use', () => {
  const garbage = 'not a database, though it sits where one should. '.repeat(20);

  /** A real database whose schema page is overwritten: SQLite reports it malformed. */
  function damaged(file: string): void {
    const db = new Database(file);
    db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
    db.close();
    const bytes = readFileSync(file);
    bytes.fill(0x41, 100, 4096);
    writeFileSync(file, bytes);
  }

  const openers: Array<[string, (file: string) => Promise<unknown>]> = [
    [
      'registry',
      async (file) =>
        openSqliteRegistry({
          file,
          account: { region: 'us-east-1', accountId: '000000000000' },
          now: Date.now,
        }).close(),
    ],
    ['shadow store', async (file) => openSqliteShadowStore({ path: file }).close()],
    [
      'telemetry store',
      async (file) => {
        const store = createSqliteTelemetryStore({ file });
        await store.start();
        await store.stop();
      },
    ],
  ];

  it.each(openers)('the %s names a file that is not a database and the fix', async (holds, open) => {
    const file = join(dataDir('notadb'), 'file.db');
    writeFileSync(file, garbage);
    const err = await thrown(() => open(file));
    expect(err).toBeInstanceOf(DataFileError);
    expect(err).toMatchObject({ code: 'DATA_FILE_CORRUPT', data: { file, sqliteCode: 'SQLITE_NOTADB' } });
    expect((err as Error).message).toContain(`start again with an empty ${holds}`);
  });

  it.each(openers)('the %s names a database with a damaged schema', async (_holds, open) => {
    const file = join(dataDir('malformed'), 'file.db');
    damaged(file);
    expect(await thrown(() => open(file))).toMatchObject({
      code: 'DATA_FILE_CORRUPT',
      data: { file, sqliteCode: 'SQLITE_CORRUPT' },
    });
  });

  it('the registry names a file written with another schema version', async () => {
    const file = join(dataDir('schema'), 'registry.sqlite');
    const account = { region: 'us-east-1', accountId: '000000000000' };
    const now = Date.now;
    openSqliteRegistry({ file, account, now }).close();
    const db = new Database(file);
    db.prepare("UPDATE meta SET value = '999' WHERE key = 'schema_version'").run();
    db.close();
    const err = await thrown(() => openSqliteRegistry({ file, account, now }));
    expect(err).toBeInstanceOf(DataFileError);
    expect(err).toMatchObject({ code: 'DATA_FILE_UNSUPPORTED', data: { file, schemaVersion: '999' } });
  });
});
