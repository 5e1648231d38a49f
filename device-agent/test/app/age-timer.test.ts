import { decodeTelemetryBatch } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../../src/app/agent.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import type { Clock } from '../../src/ports/clock.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { agentConfig, countingSensor, MemoryTransport } from './fakes.js';

/**
 * The open batch's age timer is armed once per batch, not once per reading (the hot path of a Pi
 * sampling 5 sensors at 1 Hz), and still seals the batch when its age runs out.
 */

const settle = () => new Promise((r) => setImmediate(r));

function setup(batch: Record<string, number>) {
  const virtual = createVirtualClock({ start: 1_700_000_000_000 });
  let cleared = 0;
  // The agent's clock, counting cancelled timers: before anything is published, sensors' timers
  // fire and only a re-armed age timer would be cancelled.
  const clock: Clock = {
    ...virtual,
    clearTimeout: (handle) => {
      cleared += 1;
      virtual.clearTimeout(handle);
    },
  };
  const transport = new MemoryTransport();
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
  const agent = createAgent({
    config: agentConfig({
      sensors: [
        { id: 'env', driver: 'bme280', intervalMs: 1000 },
        { id: 'light', driver: 'bh1750', intervalMs: 1000 },
      ],
      batch,
    }),
    transport,
    outbox,
    sensors: [countingSensor('env'), countingSensor('light', 'bh1750')],
    outputs: [],
    clock,
    bootId: 'boot-age-timer',
  });
  const batches = () =>
    transport.telemetry().map((s) => {
      const d = decodeTelemetryBatch(s.payload);
      if (!d.ok) throw new Error(JSON.stringify(d.issues));
      return d.value;
    });
  return { virtual, agent, batches, cleared: () => cleared };
}

describe('createAgent: the batch age timer', () => {
  it('is not cancelled and re-made for every reading of an open batch, and seals it when its age runs out', async () => {
    const { virtual, agent, batches, cleared } = setup({ maxReadings: 500, maxAgeMs: 30_000 });
    await agent.start();
    await virtual.advance(20_000);
    await settle();
    // About 40 readings are in the open batch: none of them moved its deadline.
    expect(batches()).toEqual([]);
    expect(cleared()).toBe(0);
    // The first reading came at 1 s: its batch is due at 31 s.
    await virtual.advance(11_500);
    await settle();
    const [first, ...rest] = batches();
    expect(rest).toEqual([]);
    // Sealed by age: the readings of its 30 s (both sensors), none lost, none twice.
    expect(first?.readings.length).toBeGreaterThanOrEqual(60);
    expect(first?.readings.length).toBeLessThanOrEqual(62);
    const env = first?.readings.filter((r) => r.sensor === 'env').map((r) => r.metrics.value) ?? [];
    expect(env).toEqual(env.map((_, i) => i + 1));
    // The next batch has its own timer and is sealed 30 s after its first reading.
    await virtual.advance(29_000);
    await settle();
    expect(batches()).toHaveLength(1);
    await virtual.advance(2_000);
    await settle();
    expect(batches()).toHaveLength(2);
    await agent.stop();
  });

  it('a batch sealed by size re-arms the timer for the next one, which is still sealed by age', async () => {
    const { virtual, agent, batches } = setup({ maxReadings: 10, maxAgeMs: 60_000 });
    await agent.start();
    await virtual.advance(5_500);
    await settle();
    // 10 readings fill the first batch; the readings after it start the next, sealed 60 s later.
    expect(batches().map((b) => b.readings.length)).toEqual([10]);
    await virtual.advance(3_000);
    await settle();
    expect(batches().map((b) => b.readings.length)).toEqual([10]);
    await agent.stop();
    // Stopping seals the open batch at once.
    expect(batches().length).toBeGreaterThanOrEqual(2);
  });
});
