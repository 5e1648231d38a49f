import { TELEMETRY_VERSION, type TelemetryBatch } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { TelemetryLog } from '../src/telemetry-log.js';

const batch = (thingName: string, bootId: string, seq: number, readings = 2): TelemetryBatch => ({
  v: TELEMETRY_VERSION,
  thingName,
  bootId,
  seq,
  sealedAt: 1_700_000_000_000 + seq * 1_000,
  readings: Array.from({ length: readings }, (_, i) => ({
    sensor: 'env',
    ts: 1_700_000_000_000 + seq * 1_000 + i,
    metrics: { temperature: 20 + i },
  })),
});

const wire = (b: TelemetryBatch) => new TextEncoder().encode(JSON.stringify(b));

describe('TelemetryLog', () => {
  it('keeps decoded batches per thing and what did not decode as text', () => {
    const log = new TelemetryLog();
    log.add(wire(batch('pi-1', 'boot-aaaa', 1)));
    log.add(wire(batch('pi-2', 'boot-bbbb', 1)));
    log.add(new TextEncoder().encode('{"not":"a batch"}'));
    expect(log.of('pi-1').map((b) => b.seq)).toEqual([1]);
    expect(log.batches).toHaveLength(2);
    expect(log.invalid).toEqual(['{"not":"a batch"}']);
  });

  it('counts a batch delivered twice (same boot and seq) once, and sorts the seqs of one boot', () => {
    const log = new TelemetryLog();
    for (const seq of [2, 1, 2, 3]) log.add(wire(batch('pi-1', 'boot-aaaa', seq, 3)));
    log.add(wire(batch('pi-1', 'boot-bbbb', 1, 3)));
    expect(log.of('pi-1')).toHaveLength(5);
    expect(log.unique('pi-1').map((b) => `${b.bootId}/${b.seq}`)).toEqual([
      'boot-aaaa/2',
      'boot-aaaa/1',
      'boot-aaaa/3',
      'boot-bbbb/1',
    ]);
    expect(log.readings('pi-1')).toBe(12);
    expect(log.seqs('pi-1', 'boot-aaaa')).toEqual([1, 2, 3]);
    expect(log.seqs('pi-1', 'boot-cccc')).toEqual([]);
  });

  it('waitFor resolves at the arrival that makes the match hold', async () => {
    const log = new TelemetryLog();
    const waited = log.waitFor(() => log.readings('pi-1') >= 4, 5_000, 'four readings');
    let done = false;
    void waited.then(() => {
      done = true;
    });
    log.add(wire(batch('pi-1', 'boot-aaaa', 1)));
    await Promise.resolve();
    expect(done).toBe(false);
    log.add(wire(batch('pi-1', 'boot-aaaa', 2)));
    await waited;
    expect(log.readings('pi-1')).toBe(4);
  });

  it('waitFor resolves at once when the match already holds, and rejects after its time naming what it waited for', async () => {
    const log = new TelemetryLog();
    await log.waitFor(() => true, 1, 'nothing');
    await expect(log.waitFor(() => log.batches.length > 0, 50, 'a batch')).rejects.toThrow(
      'timed out after 50 ms waiting for a batch',
    );
  });
});
