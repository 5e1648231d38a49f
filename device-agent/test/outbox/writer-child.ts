/**
 * Child process for the crash tests: writes to an outbox as fast as it can and prints a line once
 * each write has returned (committed). The parent kills it with SIGKILL.
 *   batches: puts batches at `synchronous=<sync>`, prints each seq.
 *   journal: journals readings at `readingSync=<sync>` (sealing every 50 at `synchronous=full`),
 *            prints each reading's `ts`.
 *   gc:      uses an outbox, lets go of it, then makes V8 collect it from inside a fast API call
 *            (`process.hrtime.bigint()`, where no JavaScript context is entered) and prints
 *            `collected`. better-sqlite3 12 aborted the process there on Node >= 24.19.
 */
import { sealBatch } from '../../src/core/batcher.js';
import { openOutbox, type ReadingSync } from '../../src/outbox/outbox.js';
import { behaviourReading, journalEntry } from '../../src/testing/outbox-behaviour.js';

const [path, sync, what = 'batches'] = process.argv.slice(2);
if (!path) process.exit(64);
if (what === 'gc') {
  // Every statement of this outbox, and the ones its opening ran, becomes garbage on return.
  const use = () => {
    const { outbox } = openOutbox({ path, maxBytes: 1024 ** 2 });
    outbox.journal(journalEntry('child-boot-gc', 1, behaviourReading(1)));
    outbox.put(
      sealBatch({ thingName: 'child', bootId: 'child-boot-gc', seq: 1, readings: [behaviourReading(1)], now: 1 }),
    );
    outbox.next(1);
    outbox.close();
  };
  use();
  // Enough allocation for young-generation collections, some of them inside the fast call.
  let odd = 0n;
  for (let i = 0; i < 2_000_000; i++) odd += process.hrtime.bigint() & 1n;
  process.stdout.write(`collected ${odd >= 0n}\n`);
} else if (what === 'journal') {
  const { outbox } = openOutbox({ path, maxBytes: 1024 ** 3, readingSync: (sync ?? 'normal') as ReadingSync });
  let i = 0;
  let seq = 1;
  let open: ReturnType<typeof behaviourReading>[] = [];
  const write = () => {
    for (let k = 0; k < 20; k++) {
      i += 1;
      const r = behaviourReading(i);
      outbox.journal(journalEntry('child-boot-1', seq, r));
      open.push(r);
      process.stdout.write(`${r.ts}\n`);
      if (open.length === 50) {
        outbox.put(sealBatch({ thingName: 'child', bootId: 'child-boot-1', seq, readings: open, now: i }));
        seq += 1;
        open = [];
      }
    }
    setImmediate(write);
  };
  write();
} else {
  const { outbox } = openOutbox({ path, maxBytes: 1024 ** 3, synchronous: sync === 'normal' ? 'normal' : 'full' });
  let seq = 0;
  const write = () => {
    for (let i = 0; i < 20; i++) {
      seq += 1;
      const json = JSON.stringify({ seq, readings: 'x'.repeat(300) });
      outbox.put({ bootId: 'child-boot', seq, sealedAt: seq, readings: 3, json, bytes: json.length });
      process.stdout.write(`${seq}\n`);
    }
    setImmediate(write);
  };
  write();
}
