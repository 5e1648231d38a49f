import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import type { SealedBatch } from '../../src/core/batcher.js';
import { type Outbox, openOutbox, type ReadingSync } from '../../src/outbox/outbox.js';
import { behaviourReading, describeOutboxBehaviour, journalEntry } from '../../src/testing/outbox-behaviour.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-outbox-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(dir, `outbox-${++n}.db`);

const batch = (seq: number, size = 1000, readings = 10): SealedBatch => {
  const json = JSON.stringify({ seq, pad: 'p'.repeat(Math.max(0, size - 30)) });
  return { bootId: 'boot-a', seq, sealedAt: seq, readings, json, bytes: Buffer.byteLength(json) };
};

const api = { describe, it, beforeEach, afterEach };

for (const readingSync of ['normal', 'full', 'off'] as const) {
  describeOutboxBehaviour(
    api,
    `SQLite file, readingSync=${readingSync}`,
    ({ maxBytes }) => {
      const file = fresh();
      const handles: Outbox[] = [];
      // A crash: the old connection is abandoned as a killed process would leave it (not closed, so
      // nothing is checkpointed or flushed on the way out) and a new one opens the same file.
      const reopen = () => {
        const { outbox } = openOutbox({ path: file, maxBytes, readingSync });
        handles.push(outbox);
        return outbox;
      };
      return {
        outbox: reopen(),
        crash: reopen,
        close: () => {
          for (const h of handles) h.close();
        },
      };
    },
    { durable: true },
  );
}

describeOutboxBehaviour(
  api,
  'SQLite :memory:',
  ({ maxBytes }) => {
    const { outbox } = openOutbox({ path: ':memory:', maxBytes });
    return { outbox, close: () => outbox.close() };
  },
  { durable: false },
);

const spawnWriter = (file: string, sync: string, what: 'batches' | 'journal' | 'gc') =>
  spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--conditions=@pifleet/source',
      path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer-child.ts'),
      file,
      sync,
      what,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );

/** Lets the child write until it has printed `lines` lines, then SIGKILLs it; returns what it printed. */
async function killAfter(child: ReturnType<typeof spawn>, lines: number): Promise<number[]> {
  let out = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child wrote nothing in 15 s')), 15_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').length > lines) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  child.kill('SIGKILL');
  await exited;
  return out
    .split('\n')
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

describe('SQLite outbox journal', () => {
  it.each(['normal', 'full', 'off'] as const)(
    'keeps every journaled reading when the process is killed with SIGKILL (readingSync=%s)',
    async (sync) => {
      const file = fresh();
      const written = await killAfter(spawnWriter(file, sync, 'journal'), 700);
      const { outbox, recovery } = openOutbox({ path: file, maxBytes: 1024 ** 3 });
      expect(recovery).toBeUndefined();
      const sealed = outbox
        .next(1_000_000)
        .flatMap((e) => (JSON.parse(e.json) as { readings: { ts: number }[] }).readings.map((r) => r.ts));
      const journaled = outbox.unsealed().flatMap((u) => u.readings.map((r) => r.ts));
      // Each reading in exactly one place: a sealed batch or the journal.
      const all = [...sealed, ...journaled];
      expect(new Set(all).size).toBe(all.length);
      const kept = new Set(all);
      expect(written.filter((ts) => !kept.has(ts))).toEqual([]);
      // At most the reading being written when the kill came is stored without having been printed.
      expect(all.length - written.length).toBeLessThanOrEqual(1);
      expect(journaled.length).toBeLessThanOrEqual(50);
      outbox.close();
    },
  );

  it('a process that let go of an outbox survives the garbage collections that follow', async () => {
    // better-sqlite3 12 on Node >= 24.19: a collected Statement's destructor (node::ObjectWrap's)
    // needs an entered context, and a collection inside a V8 fast API call has none, so the
    // process aborted (SIGABRT, `Assertion failed: (env) != nullptr`) 5 times in 5 here.
    // better-sqlite3 13 (Node-API) does not.
    const child = spawnWriter(fresh(), 'full', 'gc');
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
    expect({ code, signal, out }).toEqual({ code: 0, signal: null, out: 'collected true\n' });
  });

  it('salvages the journal of a damaged file along with the batches', () => {
    const file = fresh();
    const a = openOutbox({ path: file, maxBytes: 100 * 1024 ** 2 });
    const open = [0, 1, 2, 3].map((i) => behaviourReading(i));
    for (const r of open) a.outbox.journal(journalEntry('boot-dmg-aaaa', 9, r));
    for (let i = 1; i <= 400; i++) a.outbox.put(batch(i, 2000, 5));
    a.outbox.close();
    // The journal's pages sit near the start of the file; the batches' tail is cut off.
    truncateSync(file, Math.floor(statSync(file).size * 0.6));
    const { outbox, recovery } = openOutbox({ path: file, maxBytes: 100 * 1024 ** 2, now: () => 7 });
    expect(recovery?.movedTo).toBe(`${file}.corrupt-7`);
    expect(recovery?.incomplete).toBe(true);
    expect(outbox.unsealed()).toEqual([{ bootId: 'boot-dmg-aaaa', seq: 9, readings: open, unreadable: 0 }]);
    outbox.close();
  });

  it('config: outbox.readingSync is normal by default, accepts full and off, refuses anything else', () => {
    const base = { thingName: 'pi-01', endpoint: 'e', certFile: 'c', keyFile: 'k' };
    const parse = (outbox: Record<string, unknown>) => loadConfig({ fileText: JSON.stringify({ ...base, outbox }) });
    const ok = parse({});
    expect(ok.ok && ok.value.outbox.readingSync).toBe('normal');
    for (const v of ['full', 'off'] satisfies ReadingSync[]) {
      const r = parse({ readingSync: v });
      expect(r.ok && r.value.outbox.readingSync).toBe(v);
    }
    const bad = parse({ readingSync: 'sometimes' });
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.issues).toEqual([{ path: 'outbox.readingSync', message: expect.stringMatching(/normal.*full.*off/) }]);
  });
});

describe('SQLite outbox', () => {
  it('keeps batches across close/reopen with their original bootId and seq, oldest first', () => {
    const file = fresh();
    const a = openOutbox({ path: file, maxBytes: 10 * 1024 ** 2 });
    for (let i = 1; i <= 5; i++) a.outbox.put(batch(i));
    a.outbox.close();
    const b = openOutbox({ path: file, maxBytes: 10 * 1024 ** 2 });
    expect(b.recovery).toBeUndefined();
    const entries = b.outbox.next(10);
    expect(entries.map((e) => [e.bootId, e.seq])).toEqual([1, 2, 3, 4, 5].map((s) => ['boot-a', s]));
    expect(b.outbox.stats()).toMatchObject({ depth: 5, dropped: 0, sent: 0 });
    b.outbox.close();
  });

  it('deletes only what is acknowledged and skips batches in flight', () => {
    const { outbox } = openOutbox({ path: fresh(), maxBytes: 10 * 1024 ** 2 });
    const ids = [1, 2, 3].map((s) => outbox.put(batch(s)).id);
    expect(outbox.next(2, new Set([ids[0] as number])).map((e) => e.seq)).toEqual([2, 3]);
    expect(outbox.ack(ids[1] as number)).toBe(true);
    expect(outbox.ack(ids[1] as number)).toBe(false);
    expect(outbox.next(10).map((e) => e.seq)).toEqual([1, 3]);
    expect(outbox.stats()).toMatchObject({ depth: 2, sent: 1 });
    outbox.close();
    expect(() => outbox.next(1)).toThrow(/closed/);
  });

  it('drops the oldest batches past the byte bound, counts them persistently, never throws', () => {
    const file = fresh();
    const maxBytes = 256 * 1024;
    const a = openOutbox({ path: file, maxBytes });
    let droppedBatches = 0;
    let droppedReadings = 0;
    for (let i = 1; i <= 600; i++) {
      const r = a.outbox.put(batch(i, 1000, 7));
      droppedBatches += r.droppedBatches;
      droppedReadings += r.droppedReadings;
    }
    const s = a.outbox.stats();
    expect(s.bytes).toBeLessThanOrEqual(maxBytes);
    expect(s.depth + droppedBatches).toBe(600);
    expect(s).toMatchObject({ dropped: droppedBatches, droppedReadings });
    expect(droppedReadings).toBe(droppedBatches * 7);
    expect(a.outbox.next(1)[0]?.seq).toBe(droppedBatches + 1);
    a.outbox.close();
    const b = openOutbox({ path: file, maxBytes });
    expect(b.outbox.stats()).toMatchObject({
      dropped: droppedBatches,
      droppedReadings,
      depth: s.depth,
      bytes: s.bytes,
    });
    b.outbox.close();
  });

  it('moves a file that is not a database aside and starts empty', () => {
    const file = fresh();
    writeFileSync(file, 'this is not a database, just some text that happens to be long enough'.repeat(100));
    const { outbox, recovery } = openOutbox({ path: file, maxBytes: 1024 ** 2, now: () => 1234 });
    expect(recovery).toMatchObject({ movedTo: `${file}.corrupt-1234`, salvagedBatches: 0 });
    expect(existsSync(`${file}.corrupt-1234`)).toBe(true);
    outbox.put(batch(1));
    expect(outbox.stats().depth).toBe(1);
    outbox.close();
  });

  it('salvages the readable batches of a truncated file and says what it kept', () => {
    const file = fresh();
    const a = openOutbox({ path: file, maxBytes: 100 * 1024 ** 2 });
    for (let i = 1; i <= 400; i++) a.outbox.put(batch(i, 2000, 5));
    a.outbox.close();
    truncateSync(file, Math.floor(statSync(file).size * 0.6));
    const { outbox, recovery } = openOutbox({ path: file, maxBytes: 100 * 1024 ** 2, now: () => 99 });
    expect(recovery?.movedTo).toBe(`${file}.corrupt-99`);
    expect(recovery?.incomplete).toBe(true);
    const kept = recovery?.salvagedBatches ?? 0;
    expect(kept).toBeGreaterThan(100);
    expect(kept).toBeLessThan(400);
    expect(recovery?.salvagedReadings).toBe(kept * 5);
    const entries = outbox.next(1000);
    expect(entries).toHaveLength(kept);
    for (const e of entries) expect(JSON.parse(e.json).seq).toBe(e.seq);
    outbox.close();
  });

  it.each(['full', 'normal'] as const)(
    'loses no committed batch when the writing process is killed with SIGKILL (synchronous=%s)',
    async (sync) => {
      const file = fresh();
      const child = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=@pifleet/source',
          path.join(path.dirname(fileURLToPath(import.meta.url)), 'writer-child.ts'),
          file,
          sync,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('child wrote nothing in 15 s')), 15_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.split('\n').length > 300) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      child.kill('SIGKILL');
      await exited;
      const acknowledged = out
        .split('\n')
        .filter((l) => /^\d+$/.test(l))
        .map(Number);
      const { outbox, recovery } = openOutbox({ path: file, maxBytes: 1024 ** 3 });
      expect(recovery).toBeUndefined();
      const stored = new Set(outbox.next(1_000_000).map((e) => e.seq));
      const missing = acknowledged.filter((s) => !stored.has(s));
      expect(missing).toEqual([]);
      expect(stored.size).toBeGreaterThanOrEqual(acknowledged.length);
      outbox.close();
      expect(readdirSync(dir).some((f) => f.includes('corrupt') && f.startsWith(path.basename(file)))).toBe(false);
    },
  );
});
