/**
 * Child process for the crash test: writes batches to an outbox as fast as it can and prints the
 * seq of every batch once `put` has returned (committed). The parent kills it with SIGKILL.
 */
import { openOutbox } from '../../src/outbox/outbox.js';

const [path, sync] = process.argv.slice(2);
if (!path) process.exit(64);
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
