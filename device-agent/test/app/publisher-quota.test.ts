/**
 * The publisher at the fastest settings the agent's config allows, against IoT Core's
 * per-connection quotas (100 publishes and 512 KiB a second): with a deep backlog in the outbox,
 * no one-second window, wherever it starts, holds more than the quota. Virtual clock, the port
 * fakes, the real outbox.
 */
import { describe, expect, it } from 'vitest';
import { createPublisher } from '../../src/app/publisher.js';
import { sealBatch } from '../../src/core/batcher.js';
import { silentLogger } from '../../src/logger.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { agentConfig, MemoryTransport } from './fakes.js';

const TOPIC = 'pifleet/pi-01/telemetry';

/** The highest publish settings the config validation accepts. */
function fastest() {
  return agentConfig({ publish: { maxPerSecond: 50, maxInFlight: 64, maxBytesPerSecond: 384 * 1024 } }).publish;
}

/** Most events in any window [t, t + 1000) that starts at an event. */
function busiestSecond(events: readonly { at: number; weight: number }[]): number {
  let most = 0;
  for (const e of events) {
    let sum = 0;
    for (const o of events) if (o.at >= e.at && o.at < e.at + 1_000) sum += o.weight;
    most = Math.max(most, sum);
  }
  return most;
}

async function run(readingsPerBatch: number, batches: number) {
  const publish = fastest();
  const clock = createVirtualClock({ start: 1_700_000_000_000 });
  const transport = new MemoryTransport();
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 3 });
  for (let seq = 1; seq <= batches; seq++) {
    const readings = Array.from({ length: readingsPerBatch }, (_, i) => ({
      sensor: 'env',
      ts: 1_700_000_000_000 + i,
      metrics: { temperature: 21.123456 + i, humidity: 45.654321, pressure: 1013.25 },
    }));
    outbox.put(sealBatch({ thingName: 'pi-01', bootId: 'b', seq, readings, now: clock.now() }));
  }
  const sentAt: { at: number; bytes: number }[] = [];
  const publishRaw = transport.publish.bind(transport);
  transport.publish = (topic, payload, options) => {
    sentAt.push({ at: clock.now(), bytes: Buffer.byteLength(payload) });
    return publishRaw(topic, payload, options);
  };
  transport.start();
  await Promise.resolve();
  const publisher = createPublisher({
    outbox,
    transport,
    topic: TOPIC,
    clock,
    maxInFlight: publish.maxInFlight,
    maxPerSecond: publish.maxPerSecond,
    maxBytesPerSecond: publish.maxBytesPerSecond,
    ackTimeoutMs: publish.ackTimeoutMs,
    logger: silentLogger(),
  });
  publisher.kick();
  for (let i = 0; i < 2_000 && outbox.stats().depth > 0; i++) await clock.advance(50);
  return { sentAt, depth: outbox.stats().depth };
}

describe('publisher pacing at the fastest configured rates', () => {
  it('small batches: at most 75 publishes in any one-second window (quota 100), every batch sent', async () => {
    const { sentAt, depth } = await run(1, 400);
    expect(depth).toBe(0);
    expect(sentAt).toHaveLength(400);
    const most = busiestSecond(sentAt.map((s) => ({ at: s.at, weight: 1 })));
    expect(most).toBeLessThanOrEqual(75);
    expect(most).toBeGreaterThanOrEqual(50);
  });

  it('full batches: at most 384 KiB + one batch (under 512 KiB) in any one-second window, every batch sent', async () => {
    // ~100 KB a batch: the byte cap, not the publish count, is what paces these.
    const { sentAt, depth } = await run(1_100, 40);
    expect(depth).toBe(0);
    expect(sentAt).toHaveLength(40);
    expect(sentAt[0]?.bytes).toBeGreaterThan(90_000);
    const most = busiestSecond(sentAt.map((s) => ({ at: s.at, weight: s.bytes })));
    expect(most).toBeLessThanOrEqual(384 * 1024 + 120 * 1024);
    expect(most).toBeLessThan(512 * 1024);
  });
});

describe('publisher under a quota lower than its rate', () => {
  it('learns the rate the broker lets through (halved per throttle, raised per accepted publish): a backlog drains near the quota with few throttles', async () => {
    const clock = createVirtualClock({ start: 1_700_000_000_000 });
    const transport = new MemoryTransport();
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 3 });
    for (let seq = 1; seq <= 100; seq++) {
      const readings = [{ sensor: 'env', ts: 1_700_000_000_000 + seq, metrics: { t: seq } }];
      outbox.put(sealBatch({ thingName: 'pi-01', bootId: 'b', seq, readings, now: clock.now() }));
    }
    // The broker: 5 publishes in any second on this connection, PUBACK 0x97 past that (MQTT 5).
    const accepted: number[] = [];
    transport.refuseTelemetry = () => {
      const now = clock.now();
      if (accepted.filter((t) => t > now - 1_000).length >= 5) return 0x97;
      accepted.push(now);
      return undefined;
    };
    transport.start();
    await Promise.resolve();
    const publisher = createPublisher({
      outbox,
      transport,
      topic: TOPIC,
      clock,
      maxInFlight: 8,
      maxPerSecond: 50,
      ackTimeoutMs: 30_000,
      logger: silentLogger(),
      random: () => 0.5,
    });
    publisher.kick();
    const t0 = clock.now();
    for (let i = 0; i < 2_000 && outbox.stats().depth > 0; i++) await clock.advance(50);
    const tookS = (clock.now() - t0) / 1000;
    expect(outbox.stats().depth).toBe(0);
    expect(new Set(accepted).size).toBeGreaterThan(0);
    // 100 batches at 5/s take 20 s at best; the learned rate keeps it well under twice that (measured: 28 s, 12 throttles; without it: 38 s, 57).
    expect(tookS).toBeLessThan(35);
    // Throttled now and then (probing for more), not at every attempt.
    const { throttled } = publisher.throttling();
    expect(throttled).toBeGreaterThan(0);
    expect(throttled).toBeLessThan(30);
  });
});
