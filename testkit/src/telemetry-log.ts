import { decodeTelemetryBatch, type TelemetryBatch } from '@pifleet/protocol';

/** Every telemetry batch the broker delivered, decoded, with waiting on arrivals. */
export class TelemetryLog {
  readonly batches: TelemetryBatch[] = [];
  readonly invalid: string[] = [];
  readonly #waiters = new Set<() => void>();

  add(payload: Uint8Array): void {
    const r = decodeTelemetryBatch(payload);
    if (r.ok) this.batches.push(r.value);
    else this.invalid.push(new TextDecoder().decode(payload));
    for (const w of [...this.#waiters]) w();
  }

  of(thingName: string): TelemetryBatch[] {
    return this.batches.filter((b) => b.thingName === thingName);
  }

  /** Batches of a thing with duplicates (same bootId and seq) removed. */
  unique(thingName: string): TelemetryBatch[] {
    const seen = new Map<string, TelemetryBatch>();
    for (const b of this.of(thingName)) {
      const key = `${b.bootId}/${b.seq}`;
      if (!seen.has(key)) seen.set(key, b);
    }
    return [...seen.values()];
  }

  readings(thingName: string): number {
    return this.unique(thingName).reduce((n, b) => n + b.readings.length, 0);
  }

  /** Sequence numbers of a thing's batches from one boot, deduplicated and sorted. */
  seqs(thingName: string, bootId: string): number[] {
    const seqs = new Set(
      this.of(thingName)
        .filter((b) => b.bootId === bootId)
        .map((b) => b.seq),
    );
    return [...seqs].sort((a, b) => a - b);
  }

  /** Resolves once `match` holds, re-checked at every arrival; rejects after `ms`. */
  waitFor(match: () => boolean, ms: number, what: string): Promise<void> {
    if (match()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!match()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      this.#waiters.add(check);
    });
  }
}
