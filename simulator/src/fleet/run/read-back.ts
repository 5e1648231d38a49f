import { pickEvenly } from '../metrics.js';
import type { LatencySamples, StoredCount } from '../summary.js';
import type { PhaseTarget } from './phase-target.js';
import { sleep } from './wait.js';

/**
 * Reads back what the target stored, waiting (up to `timeoutS`) until it holds every acknowledged
 * reading: the rules engine stores asynchronously, and AWS's path (IoT rule → Lambda → DynamoDB)
 * takes seconds.
 */
export async function waitForStored(
  target: PhaseTarget,
  opts: { readonly published: number; readonly things: readonly string[]; readonly timeoutS: number },
): Promise<StoredCount> {
  const deadline = Date.now() + opts.timeoutS * 1000;
  if (target.bare) {
    const received = target.bare.received;
    while (received.readings < opts.published && Date.now() < deadline) await sleep(100);
    return {
      readings: received.readings,
      batches: received.messages,
      via: 'bare broker: readings delivered to one in-process subscriber',
    };
  }
  if (target.readBackApi) {
    let rb = await target.readBackApi();
    while (rb.readings < opts.published && Date.now() < deadline) {
      await sleep(2_000);
      rb = await target.readBackApi();
    }
    return {
      readings: rb.readings,
      batches: rb.batches,
      via: 'the telemetry query API (GET /things/{thing}/telemetry, every reading of every thing)',
    };
  }
  if (target.readStore) {
    await target.local?.services.rules.idle();
    let rb = target.readStore([]);
    while ((rb?.readings ?? 0) < opts.published && Date.now() < deadline) {
      await sleep(250);
      rb = target.readStore([]);
    }
    return {
      readings: target.countStored ? await target.countStored(opts.things) : (rb?.readings ?? 0),
      batches: rb?.batches ?? 0,
      via: target.countStored
        ? 'TelemetryStore.countReadings per thing (SQLite telemetry store)'
        : 'SQLite telemetry store file',
    };
  }
  return { readings: 0, batches: 0, via: '' };
}

/**
 * Latency samples from the store's own insert times (or the bare broker's subscriber), for every
 * reading of `latencyThings` things spread over the fleet. The query API gives no insert time, so
 * a phase read back through it has no latency.
 */
export function readLatency(
  target: PhaseTarget,
  opts: { readonly things: readonly string[]; readonly latencyThings: number },
): LatencySamples {
  const { things, latencyThings } = opts;
  const sampledThings = target.bare ? things.length : Math.min(things.length, latencyThings);
  if (target.bare) {
    return {
      sampleToStoredMs: [],
      // A copy: the subscriber keeps appending while the broker runs.
      sealedToStoredMs: Float64Array.from(target.bare.received.sealedToBrokerMs),
      sealedAtMs: Float64Array.from(
        target.bare.received.sealedAtMs.slice(0, target.bare.received.sealedToBrokerMs.length),
      ),
      endpoint: 'sealed → delivered by the bare broker to its subscriber',
      sampledThings,
      storedPerSecond: target.bare.perSecond,
    };
  }
  if (target.readStore) {
    const rb = target.readStore(pickEvenly(things, Math.min(1, latencyThings / things.length)));
    return {
      sampleToStoredMs: rb?.sampleToStoredMs ?? [],
      sealedToStoredMs: rb?.sealedToStoredMs ?? [],
      sealedAtMs: rb?.sealedAtMs ?? [],
      endpoint: 'the telemetry store’s insert time (telemetry_batches.received_at)',
      sampledThings,
      ...(rb ? { storedPerSecond: rb.perSecond } : {}),
    };
  }
  return { sampleToStoredMs: [], sealedToStoredMs: [], endpoint: '', sampledThings };
}
