import { decodeTelemetryBatch, statusMessageSchema } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { createAgent } from '../../src/app/agent.js';
import { loadConfig } from '../../src/config/load.js';
import type { AgentConfig } from '../../src/config/schema.js';
import { openOutbox } from '../../src/outbox/outbox.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { countingSensor, MemoryShadow, MemoryTransport, memoryOutput } from './fakes.js';

const config = (extra: Record<string, unknown> = {}): AgentConfig => {
  const r = loadConfig({
    fileText: JSON.stringify({
      thingName: 'pi-01',
      endpoint: 'localhost',
      certFile: 'c',
      keyFile: 'k',
      hardware: 'simulated',
      sensors: [
        { id: 'env', driver: 'bme280', intervalMs: 1000 },
        { id: 'light', driver: 'bh1750', intervalMs: 2000 },
      ],
      outputs: [{ id: 'relay', driver: 'digital-output', line: 17 }],
      batch: { maxReadings: 4, maxAgeMs: 5000 },
      publish: { maxInFlight: 2, maxPerSecond: 5 },
      ...extra,
    }),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.value;
};

function setup(extra: Record<string, unknown> = {}, opts: { connected?: boolean; shadow?: boolean } = {}) {
  const clock = createVirtualClock({ start: 1_700_000_000_000 });
  const transport = new MemoryTransport();
  transport.startConnected = opts.connected ?? true;
  const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
  const shadow = new MemoryShadow();
  const env = countingSensor('env');
  const light = countingSensor('light', 'bh1750');
  const relay = memoryOutput('relay');
  const agent = createAgent({
    config: config(extra),
    transport,
    outbox,
    sensors: [env, light],
    outputs: [relay],
    clock,
    bootId: 'boot-0001-test',
    ...(opts.shadow === false ? {} : { createShadow: () => shadow }),
  });
  return { clock, transport, outbox, shadow, env, light, relay, agent };
}

const settle = () => new Promise((r) => setImmediate(r));

describe('createAgent: telemetry', () => {
  it('samples on the clock, batches, stores and publishes; every reading arrives once, in order', async () => {
    const { clock, transport, agent } = setup({}, { shadow: false });
    await agent.start();
    await clock.advance(10_000);
    await settle();
    const batches = transport.telemetry().map((s) => {
      const d = decodeTelemetryBatch(s.payload);
      if (!d.ok) throw new Error(JSON.stringify(d.issues));
      return d.value;
    });
    expect(batches.length).toBeGreaterThanOrEqual(3);
    expect(batches.map((b) => b.seq)).toEqual(batches.map((_, i) => i + 1));
    for (const b of batches) expect(b).toMatchObject({ thingName: 'pi-01', bootId: 'boot-0001-test' });
    const env = batches.flatMap((b) => b.readings).filter((r) => r.sensor === 'env');
    expect(env.map((r) => r.metrics.value)).toEqual(env.map((_, i) => i + 1));
    expect(agent.status().outbox.depth).toBe(0);
    expect(transport.telemetry().every((s) => s.options.qos === 1)).toBe(true);
  });

  it('keeps batches in the outbox while offline and sends them, bounded in flight, after connecting', async () => {
    const { clock, transport, agent } = setup({}, { connected: false, shadow: false });
    transport.autoAck = false;
    await agent.start();
    await clock.advance(60_000);
    await settle();
    expect(transport.telemetry()).toHaveLength(0);
    const depth = agent.status().outbox.depth;
    expect(depth).toBeGreaterThan(10);
    transport.connect();
    await settle();
    expect(transport.telemetry()).toHaveLength(2);
    // Ack one at a time: never more than maxInFlight (2) outstanding, and the rate limit spaces them.
    for (let i = 0; i < 200 && agent.status().outbox.depth > 0; i++) {
      for (const s of transport.telemetry()) s.ack();
      await clock.advance(250);
      await settle();
    }
    expect(transport.inFlightPeak).toBeLessThanOrEqual(2);
    expect(agent.status().outbox.sent).toBeGreaterThanOrEqual(depth);
    const seqs = transport.telemetry().map((s) => JSON.parse(s.payload).seq as number);
    expect(new Set(seqs).size).toBe(seqs.length);
  });

  it('resends a batch whose publish failed; deletes only on ack', async () => {
    const { clock, transport, agent } = setup({ batch: { maxReadings: 1 } }, { shadow: false });
    transport.autoAck = false;
    await agent.start();
    await clock.advance(1000);
    await settle();
    const first = transport.telemetry()[0];
    if (!first) throw new Error('nothing published');
    first.fail(new Error('connection reset'));
    await settle();
    expect(agent.status().outbox.depth).toBeGreaterThanOrEqual(1);
    await clock.advance(1500);
    await settle();
    const again = transport.telemetry().filter((s) => s.payload === first.payload);
    expect(again.length).toBe(2);
    again[1]?.ack();
    await settle();
    expect(transport.telemetry().some((s) => JSON.parse(s.payload).seq === 1 && s !== first)).toBe(true);
  });

  it('keeps sampling the healthy sensors when one fails, and reports it unhealthy', async () => {
    const { clock, shadow, env, agent } = setup();
    env.setFailing(true);
    await agent.start();
    await clock.advance(3000);
    await agent.syncShadow();
    const rep = shadow.reported as { sensors: Record<string, { healthy: boolean; lastError?: string }> };
    expect(rep.sensors.env).toMatchObject({ healthy: false, lastError: 'I2C_NACK: chip did not answer' });
    expect(rep.sensors.light?.healthy).toBe(true);
    expect(agent.status().readings).toBeGreaterThan(0);
  });

  it('on stop: seals the open batch into the outbox, publishes a retained offline status, closes', async () => {
    const { clock, transport, agent, outbox } = setup({ batch: { maxReadings: 1000, maxAgeMs: 3_600_000 } });
    await agent.start();
    await clock.advance(3000);
    await settle();
    expect(transport.telemetry()).toHaveLength(0);
    const stopping = agent.stop('shutdown');
    await settle();
    await clock.advance(10);
    await stopping;
    const batches = transport.telemetry();
    expect(batches).toHaveLength(1);
    const status = transport.sent
      .filter((s) => s.topic === 'pifleet/pi-01/status')
      .map((s) => ({
        msg: statusMessageSchema.parse(JSON.parse(s.payload)),
        retain: s.options.retain,
      }));
    expect(status.map((s) => [s.msg.state, s.retain])).toEqual([
      ['online', true],
      ['offline', true],
    ]);
    expect(status[1]?.msg.reason).toBe('shutdown');
    expect(() => outbox.stats()).toThrow(/closed/);
  });
});

describe('createAgent: shadow sync', () => {
  it('on connect gets the shadow, applies valid desired keys, rejects bad ones with reasons, reports', async () => {
    const { clock, shadow, relay, agent } = setup();
    shadow.setDesired(
      { sampling: { env: 500, nope: 1000 }, outputs: { relay: true }, logLevel: 'loud', batch: { maxAgeMs: 2000 } },
      true,
    );
    await agent.start();
    await settle();
    await agent.syncShadow();
    expect(relay.history).toEqual([true]);
    const rep = shadow.reported as Record<string, unknown>;
    expect(rep.sampling).toEqual({ env: 500, light: 2000 });
    expect(rep.outputs).toEqual({ relay: true });
    expect(rep.batch).toMatchObject({ maxAgeMs: 2000 });
    expect(Object.keys(rep.rejected as object).sort()).toEqual(['logLevel', 'sampling.nope']);
    expect(rep.agent).toMatchObject({ bootId: 'boot-0001-test', version: '0.1.0' });
    expect(rep.outbox).toMatchObject({ dropped: 0 });
    await clock.advance(2000);
    expect(agent.status().readings).toBeGreaterThanOrEqual(4);
  });

  it('follows deltas, ignores stale versions, and clears a rejection once fixed', async () => {
    const { shadow, relay, agent } = setup();
    await agent.start();
    await settle();
    await agent.syncShadow();
    const updated = shadow.nextUpdate();
    shadow.setDesired({ outputs: { relay: true }, logLevel: 'loud' });
    await updated;
    expect(relay.history).toEqual([true]);
    expect(Object.keys((shadow.reported.rejected as object) ?? {})).toEqual(['logLevel']);
    // An old delta arriving late must not switch the relay back.
    shadow.emitDelta(1, { outputs: { relay: false } });
    await agent.syncShadow();
    expect(relay.history).toEqual([true]);
    const fixed = shadow.nextUpdate();
    shadow.setDesired({ logLevel: 'debug' });
    await fixed;
    expect(shadow.reported.logLevel).toBe('debug');
    expect(shadow.reported.rejected).toBeUndefined();
  });

  it('does not answer the delta its own report causes when nothing changed (no update loop)', async () => {
    const { shadow, agent } = setup();
    shadow.deltaOnEveryUpdate = true;
    await agent.start();
    await settle();
    await agent.syncShadow();
    const before = shadow.updates.length;
    const updated = shadow.nextUpdate();
    // An output this device does not have: rejected, so desired and reported differ for good.
    shadow.setDesired({ outputs: { fan: true } });
    await updated;
    for (let i = 0; i < 20; i++) await settle();
    expect(Object.keys((shadow.reported.rejected as object) ?? {})).toEqual(['outputs.fan']);
    // One report for the rejection; the delta that report causes brings nothing new.
    expect(shadow.updates.length - before).toBe(1);
  });

  it.each([
    ['removed', { outputs: { fan: true } }, 'outputs.fan', { outputs: { fan: null } }],
    // 1000 ms is what env already runs at: desired equals reported, so no delta mentions it.
    ['set to the value already reported', { sampling: { env: 5 } }, 'sampling.env', { sampling: { env: 1000 } }],
  ])('drops a rejection as soon as its desired key is %s, though no delta says so', async (_how, bad, path, fix) => {
    const { transport, shadow, agent } = setup();
    shadow.documentsTo = { transport, topic: '$aws/things/pi-01/shadow/update/documents' };
    await agent.start();
    await settle();
    await agent.syncShadow();
    expect(transport.subscriptions.size).toBe(0);
    const rejected = shadow.nextUpdate();
    shadow.setDesired(bad);
    await rejected;
    expect(Object.keys((shadow.reported.rejected as object) ?? {})).toEqual([path]);
    for (let i = 0; i < 5; i++) await settle();
    // Following the whole documents only while a rejection stands.
    expect([...transport.subscriptions.keys()]).toEqual(['$aws/things/pi-01/shadow/update/documents']);
    const deltas: unknown[] = [];
    const stop = shadow.onDelta((d) => deltas.push(d));
    const cleared = shadow.nextUpdate();
    shadow.setDesired(fix);
    await cleared;
    stop();
    expect(deltas).toEqual([]);
    expect(shadow.reported.rejected).toBeUndefined();
    for (let i = 0; i < 5; i++) await settle();
    expect(transport.subscriptions.size).toBe(0);
    // Its own reports (documents with an unchanged desired state) cause no further reports.
    const updates = shadow.updates.length;
    for (let i = 0; i < 10; i++) await settle();
    expect(shadow.updates.length).toBe(updates);
  });

  it('keeps a rejection when the desired change leaves the rejected key as it was', async () => {
    const { transport, shadow, agent } = setup();
    shadow.documentsTo = { transport, topic: '$aws/things/pi-01/shadow/update/documents' };
    await agent.start();
    await settle();
    await agent.syncShadow();
    const rejected = shadow.nextUpdate();
    shadow.setDesired({ outputs: { fan: true } });
    await rejected;
    for (let i = 0; i < 5; i++) await settle();
    const applied = shadow.nextUpdate();
    shadow.setDesired({ logLevel: 'debug' });
    await applied;
    for (let i = 0; i < 5; i++) await settle();
    expect(shadow.reported.logLevel).toBe('debug');
    expect(Object.keys((shadow.reported.rejected as object) ?? {})).toEqual(['outputs.fan']);
  });

  it('applies a delta missed while offline on the next connect', async () => {
    const { transport, shadow, relay, agent } = setup();
    await agent.start();
    await settle();
    await agent.syncShadow();
    transport.drop();
    shadow.setDesired({ outputs: { relay: true } }, true);
    expect(relay.history).toEqual([]);
    transport.connect();
    await settle();
    await agent.syncShadow();
    expect(relay.history).toEqual([true]);
    expect(shadow.reported.outputs).toEqual({ relay: true });
  });

  it('reports an output that cannot be switched as rejected and runs on', async () => {
    const clock = createVirtualClock();
    const transport = new MemoryTransport();
    const shadow = new MemoryShadow();
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    const agent = createAgent({
      config: config(),
      transport,
      outbox,
      sensors: [countingSensor('env'), countingSensor('light')],
      outputs: [memoryOutput('relay', new Error('EIO'))],
      clock,
      createShadow: () => shadow,
    });
    shadow.setDesired({ outputs: { relay: true } }, true);
    await agent.start();
    await settle();
    await agent.syncShadow();
    expect(shadow.reported.rejected).toEqual({ 'outputs.relay': { value: true, reason: 'could not switch: EIO' } });
    await clock.advance(1000);
    expect(agent.status().readings).toBeGreaterThan(0);
  });
});
