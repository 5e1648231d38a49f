import assert from 'node:assert/strict';
import { type Reading, utf8Length } from '@pifleet/protocol';
import { type SealedBatch, sealBatch } from '../core/batcher.js';
import type { JournalEntry, Outbox } from '../outbox/outbox.js';
import type { TestApi } from './test-api.js';

/** An outbox under test, empty, with the byte bound the suite asks for. */
export interface OutboxFixture {
  readonly outbox: Outbox;
  /**
   * For a durable outbox: the process stops without sealing (the outbox is just let go of, as a
   * kill would) and a new one opens the same store. Absent for an in-memory outbox.
   */
  readonly crash?: () => Outbox;
  close(): void;
}

export type OutboxFixtureFactory = (opts: { maxBytes: number }) => OutboxFixture;

const THING = 'pi-behaviour';

/** A reading whose JSON is at least `size` bytes (padded with metrics `m0`, `m1`, …). */
export function behaviourReading(i: number, size = 60): Reading {
  const metrics: Record<string, number> = { t: i };
  const reading = { sensor: 'env', ts: 1_767_225_600_000 + i * 1000, metrics };
  for (let j = 0; utf8Length(JSON.stringify(reading)) < size; j++) metrics[`m${j}`] = j;
  return reading;
}

/** The journal entry the agent writes for a reading of the open batch `(bootId, seq)`. */
export function journalEntry(bootId: string, seq: number, reading: Reading): JournalEntry {
  const json = JSON.stringify(reading);
  return { bootId, seq, reading, json, bytes: utf8Length(json) };
}

const seal = (bootId: string, seq: number, readings: readonly Reading[]): SealedBatch =>
  sealBatch({ thingName: THING, bootId, seq, readings, now: 1_767_225_700_000 });

/**
 * The behaviour of every `Outbox` adapter (the SQLite outbox, the simulator's in-memory one):
 * `describeOutboxBehaviour({ describe, it, beforeEach, afterEach }, 'sqlite', factory)`.
 * The crash cases are registered only for a `durable` adapter (its fixture must then `crash()`).
 */
export function describeOutboxBehaviour(
  t: TestApi,
  name: string,
  factory: OutboxFixtureFactory,
  options: { readonly durable: boolean },
): void {
  t.describe(`Outbox behaviour: ${name}`, () => {
    const opened: OutboxFixture[] = [];
    const open = (maxBytes = 64 * 1024 ** 2) => {
      const f = factory({ maxBytes });
      opened.push(f);
      return f;
    };
    t.afterEach(() => {
      for (const f of opened.splice(0)) f.close();
    });

    t.it('a put removes the journaled readings of its own batch, in the same step, and no others', () => {
      const { outbox } = open();
      const first = [0, 1, 2].map((i) => behaviourReading(i));
      for (const r of first) outbox.journal(journalEntry('boot-aaaaaaaa', 1, r));
      // The reading that completes a batch is sealed in it without being journaled.
      const last = behaviourReading(3);
      outbox.journal(journalEntry('boot-aaaaaaaa', 2, behaviourReading(4)));
      assert.deepEqual(
        outbox.unsealed().map((u) => [u.seq, u.readings.length]),
        [
          [1, 3],
          [2, 1],
        ],
      );
      const batch = seal('boot-aaaaaaaa', 1, [...first, last]);
      outbox.put(batch);
      const left = outbox.unsealed();
      assert.deepEqual(left, [{ bootId: 'boot-aaaaaaaa', seq: 2, readings: [behaviourReading(4)], unreadable: 0 }]);
      assert.equal(outbox.next(10)[0]?.json, batch.json);
    });

    t.it('hands back unsealed readings grouped by batch identity, oldest first, in journal order', () => {
      const { outbox } = open();
      outbox.journal(journalEntry('boot-old-aaaa', 7, behaviourReading(1)));
      outbox.journal(journalEntry('boot-old-aaaa', 7, behaviourReading(2)));
      outbox.journal(journalEntry('boot-new-bbbb', 1, behaviourReading(3)));
      outbox.journal(journalEntry('boot-old-aaaa', 7, behaviourReading(4)));
      const groups = outbox.unsealed();
      assert.deepEqual(
        groups.map((g) => [g.bootId, g.seq, g.readings.map((r) => r.metrics.t)]),
        [
          ['boot-old-aaaa', 7, [1, 2, 4]],
          ['boot-new-bbbb', 1, [3]],
        ],
      );
      // Reading the journal changes nothing.
      assert.equal(outbox.unsealed().length, 2);
    });

    t.it('counts journaled readings against the byte bound: a put drops the oldest batches to fit both', () => {
      const { outbox } = open(2_000);
      const stored: SealedBatch[] = [];
      for (let seq = 1; seq <= 3; seq++) {
        const b = seal('boot-bound-aa', seq, [behaviourReading(seq, 400)]);
        stored.push(b);
        assert.equal(outbox.put(b).droppedBatches, 0);
      }
      const batchBytes = stored.reduce((n, b) => n + b.bytes, 0);
      assert.equal(outbox.stats().bytes, batchBytes);
      const open4 = [10, 11].map((i) => journalEntry('boot-bound-aa', 4, behaviourReading(i, 200)));
      const journaled = open4.reduce((n, e) => n + e.bytes, 0);
      assert.ok(batchBytes + journaled <= 2_000, 'precondition: the journal fits');
      for (const e of open4) assert.equal(outbox.journal(e).droppedBatches, 0);
      assert.equal(outbox.stats().bytes, batchBytes + journaled);
      // Sealing batch 4 swaps its journal bytes for its (larger: the envelope) batch bytes.
      const b4 = seal(
        'boot-bound-aa',
        4,
        open4.map((e) => e.reading),
      );
      assert.ok(batchBytes + b4.bytes > 2_000, 'precondition: the sealed batch does not');
      const r = outbox.put(b4);
      const after = outbox.stats();
      assert.ok(after.bytes <= 2_000, `bytes ${after.bytes} over the bound`);
      assert.ok(r.droppedBatches >= 1);
      assert.equal(r.droppedReadings, r.droppedBatches);
      assert.deepEqual(
        outbox.next(10).map((e) => e.seq),
        [1, 2, 3, 4].slice(r.droppedBatches),
      );
      assert.equal(after.dropped, r.droppedBatches);
      assert.equal(
        after.bytes,
        outbox.next(10).reduce((n, e) => n + e.bytes, 0),
      );
    });

    t.it('a journal write that would pass the bound drops the oldest batches first, and says so', () => {
      const { outbox } = open(2_000);
      for (let seq = 1; seq <= 3; seq++) outbox.put(seal('boot-jbound-a', seq, [behaviourReading(seq, 500)]));
      const before = outbox.stats().bytes;
      const results = [20, 21, 22, 23].map((i) =>
        outbox.journal(journalEntry('boot-jbound-a', 4, behaviourReading(i, 200))),
      );
      const after = outbox.stats();
      assert.ok(after.bytes <= 2_000, `bytes ${after.bytes} over the bound`);
      const dropped = results.reduce((n, r) => n + r.droppedBatches, 0);
      assert.ok(dropped >= 1, `nothing dropped though ${before} bytes of batches and 4 readings exceed 2000`);
      assert.equal(
        results.reduce((n, r) => n + r.droppedReadings, 0),
        dropped,
      );
      assert.equal(after.dropped, dropped);
      assert.deepEqual(
        outbox.next(10).map((e) => e.seq),
        [1, 2, 3].slice(dropped),
      );
      // The journaled readings themselves are never dropped.
      assert.equal(outbox.unsealed()[0]?.readings.length, 4);
    });

    if (!options.durable) return;
    const crashable = () => {
      const f = open();
      const crash = f.crash;
      if (!crash) throw new Error(`the ${name} fixture is durable but cannot crash()`);
      return { outbox: f.outbox, crash };
    };

    t.it('survives a crash with the open batch unsealed: the readings come back, once', () => {
      const f = crashable();
      f.outbox.put(seal('boot-crash-aa', 1, [behaviourReading(0)]));
      const open2 = [1, 2, 3].map((i) => behaviourReading(i));
      for (const r of open2) f.outbox.journal(journalEntry('boot-crash-aa', 2, r));
      const reopened = f.crash();
      assert.deepEqual(reopened.unsealed(), [{ bootId: 'boot-crash-aa', seq: 2, readings: open2, unreadable: 0 }]);
      assert.deepEqual(
        reopened.next(10).map((e) => e.seq),
        [1],
      );
      // Recovery seals them under their journaled identity; a second crash finds nothing twice.
      reopened.put(seal('boot-crash-aa', 2, reopened.unsealed()[0]?.readings ?? []));
      const again = f.crash();
      assert.deepEqual(again.unsealed(), []);
      assert.deepEqual(
        again.next(10).map((e) => [e.seq, JSON.parse(e.json).readings.length]),
        [
          [1, 1],
          [2, 3],
        ],
      );
      assert.equal(
        again.stats().bytes,
        again.next(10).reduce((n, e) => n + e.bytes, 0),
      );
    });

    t.it('a crash between a journal write and the seal leaves the reading in exactly one place', () => {
      const f = crashable();
      const readings = [1, 2].map((i) => behaviourReading(i));
      for (const r of readings) f.outbox.journal(journalEntry('boot-between', 1, r));
      // Sealed in memory (the batcher has moved on) but not yet put when the process dies.
      const reopened = f.crash();
      assert.equal(reopened.next(10).length, 0);
      assert.deepEqual(reopened.unsealed()[0]?.readings, readings);
      // Put and crash right after: the batch, and no journal rows.
      reopened.put(seal('boot-between', 1, readings));
      const after = f.crash();
      assert.equal(after.next(10).length, 1);
      assert.deepEqual(after.unsealed(), []);
    });
  });
}
