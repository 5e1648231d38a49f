import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { EXIT } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { localCorePaths } from '../../src/app/local-core.js';
import { type CoreProcess, killAll, launchCore, spawnCore } from '../../src/testing/core-process.js';
import { removeDir, tempDir } from '../http/harness.js';

/**
 * Operating `pifleet-local-core` as a process: one core per data directory (a kernel-released
 * lock, so `kill -9` leaves nothing stale), ports already in use, data directories and database
 * files the core cannot use, `--version`. Exit codes are the point, so these run the real bin.
 */

const dirs: string[] = [];
const servers: net.Server[] = [];

afterAll(async () => {
  killAll();
  for (const dir of dirs) removeDir(dir);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

function dataDir(prefix: string): string {
  const dir = tempDir(prefix);
  dirs.push(dir);
  return dir;
}

/** A port some other process (here, a plain TCP server) already listens on. */
async function occupiedPort(): Promise<number> {
  const server = net.createServer();
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return (server.address() as net.AddressInfo).port;
}

/** Waits for the process to exit and returns its code and the last line it wrote to stderr. */
async function outcome(proc: CoreProcess): Promise<{ code: number | null; lastLine: string; stderr: string }> {
  const { code } = await proc.exited;
  const lines = proc
    .stderr()
    .split('\n')
    .filter((l) => l.trim() !== '');
  return { code, lastLine: lines.at(-1) ?? '', stderr: proc.stderr() };
}

describe('pifleet-local-core operations', () => {
  it('prints its version with --version and exits 0', async () => {
    const proc = spawnCore(['--version']);
    let stdout = '';
    proc.child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect((await proc.exited).code).toBe(EXIT.ok);
    expect(stdout).toBe(`${pkg.version}\n`);
  });

  it('runs one core per data directory: a second exits 75 naming the first, changes nothing, and a kill -9 leaves no stale lock', async () => {
    const dir = dataDir('lock');
    const first = await launchCore(dir);
    const endpointFile = localCorePaths(dir).endpointFile;
    const endpoint = readFileSync(endpointFile, 'utf8');

    const second = await outcome(spawnCore(['--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']));
    expect(second.code).toBe(EXIT.tempFail);
    expect(second.lastLine).toBe(
      `pifleet-local-core: another local IoT Core (pid ${first.child.pid}) is already running on ${dir}: ` +
        `use that one, stop it first (kill ${first.child.pid}), or pass another --data-dir`,
    );
    // The refused core stopped without touching the running one's files.
    expect(readFileSync(endpointFile, 'utf8')).toBe(endpoint);
    expect(readFileSync(join(dir, 'core.pid'), 'utf8')).toBe(`${first.child.pid}\n`);

    first.child.kill('SIGKILL');
    expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The kernel released the killed core's lock: the next core starts at once.
    const third = await launchCore(dir);
    expect(readFileSync(join(dir, 'core.pid'), 'utf8')).toBe(`${third.child.pid}\n`);
    third.child.kill('SIGTERM');
    expect(await third.exited).toEqual({ code: EXIT.ok, signal: null });
    expect(existsSync(endpointFile)).toBe(false);
    expect(existsSync(join(dir, 'core.pid'))).toBe(false);
  });

  it.each([
    ['MQTT', '--mqtt-port', '--http-port'],
    ['HTTP', '--http-port', '--mqtt-port'],
  ])('exits 69 when the %s port is in use, without hanging', async (_which, busyFlag, freeFlag) => {
    const port = await occupiedPort();
    const dir = dataDir('port');
    const result = await outcome(spawnCore(['--data-dir', dir, busyFlag, String(port), freeFlag, '0']));
    expect(result.code).toBe(EXIT.unavailable);
    expect(result.lastLine).toMatch(new RegExp(`^pifleet-local-core: .*EADDRINUSE.*:${port}$`));
    // Everything it had started was stopped again: the process ended by itself, not by the backstop.
    expect(result.stderr).not.toContain('handles still open after a failed start');
    // And it gave the data directory up.
    expect(existsSync(join(dir, 'core.pid'))).toBe(false);
  });

  it('exits 78 naming the path when the data directory is a file', async () => {
    const parent = dataDir('file');
    const file = join(parent, 'not-a-dir');
    writeFileSync(file, 'x');
    for (const [arg, culprit] of [
      [file, file],
      [join(file, 'below'), file],
    ] as const) {
      const result = await outcome(spawnCore(['--data-dir', arg, '--mqtt-port', '0', '--http-port', '0']));
      expect(result.code).toBe(EXIT.config);
      expect(result.lastLine).toContain(`pifleet-local-core: data directory ${arg} `);
      expect(result.lastLine).toContain(`move ${culprit} away`);
    }
  });

  it.each([
    ['registry.sqlite', 'registry'],
    ['shadows.sqlite', 'shadow store'],
    ['telemetry.db', 'telemetry store'],
  ])('exits 78 naming %s and the fix when it is not a database', async (name, holds) => {
    const dir = dataDir('corrupt');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, name);
    writeFileSync(file, 'this is not a SQLite database, whatever its name says. '.repeat(20));
    const result = await outcome(spawnCore(['--data-dir', dir, '--mqtt-port', '0', '--http-port', '0']));
    expect(result.code).toBe(EXIT.config);
    expect(result.lastLine).toContain(`pifleet-local-core: ${file} is not a usable SQLite database`);
    expect(result.lastLine).toContain(`start again with an empty ${holds}`);
    expect(result.stderr).not.toContain('handles still open after a failed start');
    // The file is left for the operator to move or restore.
    expect(readFileSync(file, 'utf8')).toContain('this is not a SQLite database');
  });
});
