/**
 * The publisher's PUBLISH→PUBACK latency, on the virtual clock with acknowledgements the test
 * gives by hand: what is measured (an acknowledged publish, from its PUBLISH), what is not (a
 * refused, failed or timed-out one), and the bounded window.
 */
import { MQTT5_REASON } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { brokerRefusal } from '../../src/adapters/transport-kit.js';
import { createPublisher } from '../../src/app/publisher.js';
import { sealBatch } from '../../src/core/batcher.js';
import { silentLogger } from '../../src/logger.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { MemoryTransport } from './fakes.js';

const TOPIC = 'pifleet/pi-01/telemetry';

async function setup(batches: number, options: { latencyWindow?: number; ackTimeoutMs?: number } = {}) {
  const clock = createVirtualClock({ start: 1_700_000_000_000 });
  const transport = new MemoryTransport();
  transport.autoAck = false;
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
  for (let seq = 1; seq <= batches; seq++) {
    const readings = [{ sensor: 'env', ts: clock.now(), metrics: { temperature: 21 } }];
    outbox.put(sealBatch({ thingName: 'pi-01', bootId: 'b', seq, readings, now: clock.now() }));
  }
  transport.start();
  await Promise.resolve();
  const publisher = createPublisher({
    outbox,
    transport,
    topic: TOPIC,
    clock,
    // One at a time, no pacing in the way: each publish waits for the test's ack.
    maxInFlight: 1,
    maxPerSecond: 50,
    ackTimeoutMs: options.ackTimeoutMs ?? 30_000,
    retryDelayMs: 1_000,
    random: () => 0.5,
    logger: silentLogger(),
    ...(options.latencyWindow ? { latencyWindow: options.latencyWindow } : {}),
  });
  const settle = () => new Promise((r) => setImmediate(r));
  let acked = 0;
  /** Waits for the next telemetry publish (the pacing may hold it a few ms), acknowledges it `ms` later. */
  const ackAfter = async (ms: number) => {
    for (let i = 0; i < 1_000 && transport.telemetry().length <= acked; i++) await clock.advance(1);
    const sent = transport.telemetry()[acked];
    if (!sent) throw new Error('no publish to acknowledge');
    acked += 1;
    await clock.advance(ms);
    sent.ack();
    await settle();
  };
  /** Publishes the test answered otherwise (failed): not acknowledged by `ackAfter`. */
  const skip = (n: number) => {
    acked += n;
  };
  return { clock, transport, outbox, publisher, ackAfter, settle, skip };
}

describe('publish latency', () => {
  it('is undefined until a PUBACK arrives, then the time from PUBLISH to PUBACK on the clock', async () => {
    const { publisher, ackAfter, transport } = await setup(3);
    publisher.kick();
    expect(transport.telemetry()).toHaveLength(1);
    expect(publisher.latency()).toBeUndefined();
    await ackAfter(120);
    expect(publisher.latency()).toEqual({ last: 120, p50: 120, p99: 120, samples: 1 });
    await ackAfter(80);
    await ackAfter(400);
    expect(publisher.latency()).toEqual({ last: 400, p50: 120, p99: 400, samples: 3 });
  });

  it('leaves out publishes the broker refused or that failed: they never got a PUBACK', async () => {
    const { publisher, transport, clock, ackAfter, settle, skip } = await setup(1);
    publisher.kick();
    await clock.advance(50);
    transport
      .telemetry()
      .at(-1)
      ?.fail(brokerRefusal('publish', TOPIC, MQTT5_REASON.QUOTA_EXCEEDED));
    await settle();
    expect(publisher.latency()).toBeUndefined();
    // Sent again after the backoff; the latency of that publish counts from its own PUBLISH.
    for (let i = 0; i < 100 && transport.telemetry().length < 2; i++) await clock.advance(100);
    expect(transport.telemetry()).toHaveLength(2);
    skip(1);
    await ackAfter(30);
    expect(publisher.latency()).toMatchObject({ last: 30, samples: 1 });
  });

  it('leaves out a publish that timed out, even when its late PUBACK comes', async () => {
    const { publisher, transport, clock, settle } = await setup(1, { ackTimeoutMs: 1_000 });
    publisher.kick();
    const first = transport.telemetry()[0];
    await clock.advance(1_500);
    first?.ack();
    await settle();
    expect(publisher.latency()).toBeUndefined();
  });

  it('summarises only the last acknowledgements (a bounded window)', async () => {
    const { publisher, ackAfter } = await setup(6, { latencyWindow: 3 });
    publisher.kick();
    for (const ms of [900, 900, 900, 10, 20, 30]) await ackAfter(ms);
    expect(publisher.latency()).toEqual({ last: 30, p50: 20, p99: 30, samples: 3 });
  });
});
