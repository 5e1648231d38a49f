import type {
  Dropped,
  JournalEntry,
  Outbox,
  OutboxEntry,
  PutResult,
  SealedBatch,
  UnsealedBatch,
} from '@pifleet/device-agent';
import type { Reading } from '@pifleet/protocol';

/** Telemetry accounting hooks of one outbox (the fleet sums them per device host). */
export interface OutboxCounters {
  /** A batch was sealed and stored: its readings now count as generated. */
  onPut?(readings: number): void;
  /** The broker acknowledged a batch (PUBACK): its readings count as published. */
  onAck?(readings: number, bytes: number): void;
  /** The bound was reached and the oldest batches were dropped. */
  onDrop?(readings: number): void;
}

/**
 * An in-memory implementation of the agent's outbox port for simulated fleets: the same contract
 * as the SQLite outbox (journal of the open batch, oldest first, delete on PUBACK, byte bound with
 * counted drops) without a database per device. A fleet of thousands of agents keeps its batches in
 * plain arrays; durability across a process crash is not what a load test measures.
 */
export function createMemoryOutbox(options: {
  readonly maxBytes: number;
  readonly now: () => number;
  readonly counters?: OutboxCounters;
}): Outbox {
  const entries: OutboxEntry[] = [];
  const counters = options.counters ?? {};
  let nextId = 1;
  let bytes = 0;
  let dropped = 0;
  let droppedReadings = 0;
  let sent = 0;
  /** Open batches' readings by `seq/bootId` (in practice one: the agent's open batch). */
  const journal = new Map<string, { bootId: string; seq: number; readings: Reading[]; bytes: number }>();
  let journalBytes = 0;

  const remove = (index: number): OutboxEntry => {
    const [e] = entries.splice(index, 1) as [OutboxEntry];
    bytes -= e.bytes;
    return e;
  };

  /** Drops the oldest batches, keeping at least `keep`, until batches and journal fit the bound. */
  const shrink = (keep: number): Dropped => {
    let droppedBatches = 0;
    let droppedNow = 0;
    while (bytes + journalBytes > options.maxBytes && entries.length > keep) {
      const victim = remove(0);
      droppedBatches += 1;
      droppedNow += victim.readings;
    }
    if (droppedBatches > 0) {
      dropped += droppedBatches;
      droppedReadings += droppedNow;
      counters.onDrop?.(droppedNow);
    }
    return { droppedBatches, droppedReadings: droppedNow };
  };

  return {
    journal(e: JournalEntry): Dropped {
      const key = `${e.seq}/${e.bootId}`;
      let open = journal.get(key);
      if (!open) {
        open = { bootId: e.bootId, seq: e.seq, readings: [], bytes: 0 };
        journal.set(key, open);
      }
      open.readings.push(e.reading);
      open.bytes += e.bytes;
      journalBytes += e.bytes;
      return shrink(0);
    },
    unsealed(): UnsealedBatch[] {
      return [...journal.values()].map((o) => ({
        bootId: o.bootId,
        seq: o.seq,
        readings: [...o.readings],
        unreadable: 0,
      }));
    },
    put(batch: SealedBatch): PutResult {
      const entry: OutboxEntry = {
        id: nextId++,
        bootId: batch.bootId,
        seq: batch.seq,
        readings: batch.readings,
        bytes: batch.bytes,
        json: batch.json,
        createdAt: options.now(),
      };
      entries.push(entry);
      bytes += entry.bytes;
      const key = `${batch.seq}/${batch.bootId}`;
      const open = journal.get(key);
      if (open) {
        journal.delete(key);
        journalBytes -= open.bytes;
      }
      counters.onPut?.(entry.readings);
      return { id: entry.id, ...shrink(1) };
    },
    next(limit: number, exclude?: ReadonlySet<number>): OutboxEntry[] {
      const out: OutboxEntry[] = [];
      for (const e of entries) {
        if (out.length >= limit) break;
        if (!exclude?.has(e.id)) out.push(e);
      }
      return out;
    },
    ack(id: number): boolean {
      const index = entries.findIndex((e) => e.id === id);
      if (index < 0) return false;
      const e = remove(index);
      sent += 1;
      counters.onAck?.(e.readings, e.bytes);
      return true;
    },
    stats() {
      return { depth: entries.length, bytes: bytes + journalBytes, dropped, droppedReadings, sent };
    },
    close() {
      // Nothing to release: the batches are garbage once the agent lets go of the outbox.
    },
  };
}
