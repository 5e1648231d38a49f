import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeTelemetryBatch, type Reading, statusMessageSchema, type TelemetryBatch } from '@pifleet/protocol';
import { afterAll, describe, expect, it } from 'vitest';
import { createAgent } from '../../src/app/agent.js';
import type { AgentConfig } from '../../src/config/schema.js';
import type { DigitalInput, InputEvent, Sensor } from '../../src/drivers/types.js';
import { ShadowError, ShadowRejectedError, ShadowTimeoutError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { type Outbox, openOutbox } from '../../src/outbox/outbox.js';
import type { ShadowService } from '../../src/shadow/port.js';
import { createVirtualClock } from '../../src/testing/virtual-clock.js';
import { agentConfig, countingSensor, MemoryShadow, MemoryTransport, memoryOutput } from './fakes.js';

const config = (extra: Record<string, unknown> = {}): AgentConfig =>
  agentConfig({
    sensors: [
      { id: 'env', driver: 'bme280', intervalMs: 1000 },
      { id: 'light', driver: 'bh1750', intervalMs: 2000 },
    ],
    outputs: [{ id: 'relay', driver: 'digital-output', line: 17 }],
    batch: { maxReadings: 4, maxAgeMs: 5000 },
    publish: { maxInFlight: 2, maxPerSecond: 5 },
    ...extra,
  });

function setup(
  extra: Record<string, unknown> = {},
  opts: { connected?: boolean; shadow?: boolean; inputs?: DigitalInput[]; random?: () => number } = {},
) {
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
    ...(opts.inputs ? { inputs: opts.inputs } : {}),
    ...(opts.random ? { random: opts.random } : {}),
  });
  return { clock, transport, outbox, shadow, env, light, relay, agent };
}

const settle = () => new Promise((r) => setImmediate(r));

/** Settles `work` that needs virtual time to pass (the bounded drain on stop). */
async function drive<T>(clock: { advance(ms: number): Promise<void> }, work: Promise<T>): Promise<T> {
  let done = false;
  const result = work.finally(() => {
    done = true;
  });
  while (!done) await clock.advance(10);
  return result;
}

/** A digital input whose edges the test fires (`edge()`), as the debounced driver would report them. */
function firingInput(id: string) {
  const listeners = new Set<(e: InputEvent) => void>();
  let count = 0;
  const input: DigitalInput & { edge(ts: number): void } = {
    id,
    driver: 'digital-input',
    init: async () => {},
    read: async () => ({ state: false, count }),
    close: async () => {},
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    state: () => false,
    count: () => count,
    edge(ts) {
      count += 1;
      for (const l of listeners) l({ sensor: id, state: true, count, ts });
    },
  };
  return input;
}

/** A trace-level logger that collects the readings the agent says it stored. */
function traceSink(into: Reading[]) {
  return createLogger({
    level: 'trace',
    destination: {
      write(line: string) {
        const l = JSON.parse(line) as { msg: string; sensor: string; ts: number };
        if (l.msg === 'reading') into.push({ sensor: l.sensor, ts: l.ts, metrics: {} } as unknown as Reading);
      },
    },
  });
}

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

describe('createAgent: telemetry.encoding', () => {
  it.each([
    ['v2', 2, 'sensors'],
    ['v1', 1, 'readings'],
  ] as const)(
    'publishes %s batches when configured so, which decode to the same readings',
    async (encoding, v, field) => {
      const { clock, transport, agent } = setup({ telemetry: { encoding } }, { shadow: false });
      await agent.start();
      await clock.advance(4_000);
      await settle();
      const sent = transport.telemetry();
      expect(sent.length).toBeGreaterThan(0);
      for (const s of sent) {
        const raw = JSON.parse(s.payload) as Record<string, unknown>;
        expect([raw.v, Array.isArray(raw[field])]).toEqual([v, true]);
        const d = decodeTelemetryBatch(s.payload);
        expect(d.ok && d.value.readings.length).toBe(4);
      }
      await drive(clock, agent.stop());
    },
  );
});

describe('createAgent: pauseSampling', () => {
  const readingsOf = (transport: MemoryTransport) =>
    transport.telemetry().flatMap((s) => {
      const d = decodeTelemetryBatch(s.payload);
      if (!d.ok) throw new Error(JSON.stringify(d.issues));
      return d.value.readings;
    });

  it('stops samples and edge readings, seals the open batch at once, and stays connected', async () => {
    const button = firingInput('button');
    const { clock, transport, env, agent } = setup(
      { batch: { maxReadings: 1000, maxAgeMs: 3_600_000 } },
      { shadow: false, inputs: [button] },
    );
    await agent.start();
    await clock.advance(3000);
    button.edge(clock.now());
    await settle();
    // Nothing sealed yet: the batch is far from full and young.
    expect(transport.telemetry()).toHaveLength(0);
    const taken = agent.status().readings;
    expect(taken).toBe(3 + 1 + 1); // env at 1, 2, 3 s; light at 2 s; the button edge
    const envReads = (await env.read()).value as number;

    await agent.pauseSampling();
    await settle();
    // The open batch went out now, not an hour later, with every reading taken before the pause.
    expect(transport.telemetry()).toHaveLength(1);
    expect(readingsOf(transport)).toHaveLength(taken);

    await clock.advance(20_000);
    button.edge(clock.now());
    await settle();
    expect(agent.status().readings).toBe(taken);
    expect(agent.status().sealedBatches).toBe(1);
    // The sensor was not read again (the one read above was the test's own).
    expect((await env.read()).value).toBe(envReads + 1);
    expect(agent.status().connected).toBe(true);
    expect(agent.status().outbox.depth).toBe(0);

    // Idempotent: a second pause seals nothing more; stop still seals, reports offline and closes.
    await agent.pauseSampling();
    await drive(clock, agent.stop('shutdown'));
    expect(transport.telemetry()).toHaveLength(1);
    const status = transport.sent.filter((s) => s.topic === 'pifleet/pi-01/status');
    expect(status.map((s) => JSON.parse(s.payload).state)).toEqual(['online', 'offline']);
  });

  it('keeps publishing the backlog after the pause until the outbox is empty', async () => {
    const { clock, transport, agent } = setup({}, { connected: false, shadow: false });
    await agent.start();
    await clock.advance(60_000);
    await settle();
    await agent.pauseSampling();
    const backlog = agent.status().outbox.depth;
    expect(backlog).toBeGreaterThan(10);
    const taken = agent.status().readings;

    transport.connect();
    for (let i = 0; i < 100 && agent.status().outbox.depth > 0; i++) {
      await clock.advance(250);
      await settle();
    }
    expect(agent.status().outbox.depth).toBe(0);
    // Every reading taken before the pause was published, once, and none after it.
    expect(readingsOf(transport)).toHaveLength(taken);
    expect(agent.status().readings).toBe(taken);
  });

  it('drops a sample whose read was under way at the pause: it is never counted, so never lost', async () => {
    const clock = createVirtualClock({ start: 1_700_000_000_000 });
    const transport = new MemoryTransport();
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    let finish: ((m: { value: number }) => void) | undefined;
    const slow: Sensor = {
      id: 'env',
      driver: 'bme280',
      init: async () => {},
      read: () => new Promise((resolve) => (finish = resolve)),
      close: async () => {},
    };
    const agent = createAgent({
      config: config({ sensors: [{ id: 'env', driver: 'bme280', intervalMs: 1000 }] }),
      transport,
      outbox,
      sensors: [slow],
      outputs: [memoryOutput('relay')],
      clock,
    });
    await agent.start();
    await clock.advance(1000);
    expect(finish).toBeDefined();
    await agent.pauseSampling();
    finish?.({ value: 1 });
    await settle();
    await clock.advance(5000);
    expect(agent.status().readings).toBe(0);
    expect(agent.status().outbox.depth).toBe(0);
    expect(transport.telemetry()).toHaveLength(0);
    await drive(clock, agent.stop());
  });

  it('is a no-op before start and after stop', async () => {
    const { clock, transport, agent } = setup({}, { shadow: false });
    await agent.pauseSampling();
    await agent.start();
    await clock.advance(1500);
    await drive(clock, agent.stop());
    await agent.pauseSampling();
    expect(agent.status().readings).toBe(1);
    expect(transport.telemetry()).toHaveLength(1);
  });
});

describe('createAgent: readings survive a crash', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-agent-crash-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const decode = (payload: string): TelemetryBatch => {
    const d = decodeTelemetryBatch(payload);
    if (!d.ok) throw new Error(JSON.stringify(d.issues));
    return d.value;
  };
  const key = (r: Reading) => `${r.sensor}@${r.ts}`;

  /** One run of the agent on an outbox file; `crash()` abandons it mid-batch as a kill would. */
  const run = (file: string, bootId: string, clock = createVirtualClock({ start: 1_700_000_000_000 })) => {
    const transport = new MemoryTransport();
    const { outbox } = openOutbox({ path: file, maxBytes: 1024 ** 2 });
    const sampled: Reading[] = [];
    const agent = createAgent({
      config: config({ batch: { maxReadings: 5, maxAgeMs: 3_600_000 } }),
      transport,
      outbox,
      sensors: [countingSensor('env'), countingSensor('light', 'bh1750')],
      outputs: [memoryOutput('relay')],
      clock,
      bootId,
      logger: traceSink(sampled),
    });
    return { agent, transport, outbox, sampled, clock };
  };

  it('sends the open batch of a killed run under its own boot id and seq after the restart, each reading once', async () => {
    const file = path.join(dir, 'crash.db');
    const first = run(file, 'boot-first-0001');
    first.transport.autoAck = false;
    await first.agent.start();
    await first.clock.advance(8_000);
    await settle();
    // Batches 1 and 2 sealed (5 readings each); the open batch 3 holds the rest. Nothing acked.
    expect(first.sampled.length).toBeGreaterThan(10);
    expect(first.sampled.length % 5).not.toBe(0);
    const abandoned: Outbox = first.outbox; // killed: never stopped, never closed

    const second = run(file, 'boot-second-002', createVirtualClock({ start: 1_700_000_100_000 }));
    await second.agent.start();
    await settle();
    await second.clock.advance(1_000);
    await settle();
    const batches = second.transport.telemetry().map((s) => decode(s.payload));
    const fromFirst = batches.filter((b) => b.bootId === 'boot-first-0001');
    expect(fromFirst.map((b) => b.seq)).toEqual([1, 2, 3]);
    // The journal's batch is sealed in the agent's encoding (v2 by default), like the others.
    const raw = second.transport.telemetry().map((s) => JSON.parse(s.payload) as Record<string, unknown>);
    expect(raw.filter((b) => b.bootId === 'boot-first-0001').map((b) => [b.v, Array.isArray(b.sensors)])).toEqual([
      [2, true],
      [2, true],
      [2, true],
    ]);
    // v2 groups a batch's readings by sensor, so the order across sensors is not kept: compare sets
    // of keys (sorted lists, so a reading sent twice or lost still fails).
    const delivered = fromFirst.flatMap((b) => b.readings.map(key)).sort();
    expect(delivered).toEqual(first.sampled.map(key).sort());
    expect(second.outbox.unsealed().filter((u) => u.bootId === 'boot-first-0001')).toEqual([]);
    await drive(second.clock, second.agent.stop());
    abandoned.close();
  });
});

describe('createAgent: an outbox that cannot write', () => {
  it('keeps sealed batches in memory while the outbox refuses writes and stores them, in order, once it accepts', async () => {
    const clock = createVirtualClock({ start: 1_700_000_000_000 });
    const transport = new MemoryTransport();
    transport.startConnected = false;
    const { outbox: inner } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    let full = true;
    const diskFull = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    // The same port with writes failing as SQLite fails them when the disk is full.
    const outbox: Outbox = {
      ...inner,
      journal: (e) => {
        if (full) throw diskFull();
        return inner.journal(e);
      },
      put: (b) => {
        if (full) throw diskFull();
        return inner.put(b);
      },
    };
    const agent = createAgent({
      config: config({ batch: { maxReadings: 2, maxAgeMs: 3_600_000 } }),
      transport,
      outbox,
      sensors: [countingSensor('env')],
      outputs: [],
      clock,
    });
    await agent.start();
    await clock.advance(6_000);
    expect(agent.status()).toMatchObject({ readings: 6, sealedBatches: 3 });
    expect(inner.stats().depth).toBe(0);
    full = false;
    await clock.advance(2_000);
    const stored = inner.next(10).map((e) => {
      const d = decodeTelemetryBatch(e.json);
      if (!d.ok) throw new Error(JSON.stringify(d.issues));
      return d.value;
    });
    expect(stored.map((b) => b.seq)).toEqual([1, 2, 3, 4]);
    expect(stored.flatMap((b) => b.readings.map((r) => r.metrics.value))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    inner.close();
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

  it('tries a failed get of the connection again after a backoff until it succeeds, then is healthy', async () => {
    // Full jitter at 0.5: retry 1 after 500 ms, retry 2 after 1 s more.
    const { clock, shadow, relay, agent } = setup({}, { random: () => 0.5 });
    shadow.setDesired({ outputs: { relay: true } }, true);
    // Throttled answer subscriptions: the first gets fail, with no reconnect to try again on.
    shadow.failGets = 2;
    let healthy = false;
    void agent.whenHealthy().then(() => {
      healthy = true;
    });
    await agent.start();
    await settle();
    expect(shadow.gets).toBe(1);
    await clock.advance(400);
    expect(shadow.gets).toBe(1);
    await clock.advance(200);
    expect(shadow.gets).toBe(2);
    expect(relay.history).toEqual([]);
    await clock.advance(1_000);
    await settle();
    expect(shadow.gets).toBe(3);
    expect(relay.history).toEqual([true]);
    await clock.advance(2_000);
    expect(healthy).toBe(true);
    // Synced: no more gets on this connection.
    await clock.advance(120_000);
    expect(shadow.gets).toBe(3);
  });

  it('reads the desired state again when the delta stream is subscribed late (a delta it missed)', async () => {
    const { shadow, relay, agent } = setup();
    await agent.start();
    await settle();
    await agent.syncShadow();
    // Published while the delta subscription was still throttled: never delivered.
    shadow.setDesired({ outputs: { relay: true } }, true);
    await settle();
    expect(relay.history).toEqual([]);
    const gets = shadow.gets;
    shadow.restoreStream();
    await agent.syncShadow();
    expect(shadow.gets).toBeGreaterThan(gets);
    expect(relay.history).toEqual([true]);
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

  it.each([
    {
      failure: 'a rejection',
      error: new ShadowRejectedError('update', { code: 413, message: 'too large', clientToken: 't-1' }),
      log: { msg: 'shadow request rejected', serviceCode: 413, what: 'get' },
    },
    {
      failure: 'a timeout',
      error: new ShadowTimeoutError('update', 5_000),
      log: { msg: 'shadow request timed out', timeoutMs: 5_000, what: 'get' },
    },
    {
      failure: 'a lost answer',
      error: new ShadowError('SHADOW_REQUEST_FAILED', 'shadow request lost with the connection'),
      log: { msg: 'shadow sync step failed', what: 'get' },
    },
  ])('logs $failure of a shadow report as such, and reports again on the next sync', async ({ error, log }) => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger({ level: 'warn', destination: { write: (l: string) => lines.push(JSON.parse(l)) } });
    const clock = createVirtualClock();
    const transport = new MemoryTransport();
    const shadow = new MemoryShadow();
    let failing = true;
    const failingShadow: ShadowService = {
      get: () => shadow.get(),
      updateReported: (reported) => (failing ? Promise.reject(error) : shadow.updateReported(reported)),
      onDelta: (l) => shadow.onDelta(l),
      onStreamRestored: (l) => shadow.onStreamRestored(l),
      close: () => shadow.close(),
    };
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    const agent = createAgent({
      config: config(),
      transport,
      outbox,
      sensors: [countingSensor('env')],
      outputs: [memoryOutput('relay')],
      clock,
      logger,
      createShadow: () => failingShadow,
    });
    await agent.start();
    await settle();
    await agent.syncShadow();
    // One for the sync on connect, one for the sync asked for.
    const shadowWarnings = lines.filter((l) => l.component === 'shadow');
    const warning = expect.objectContaining({ ...log, level: 40, err: expect.objectContaining({ type: error.name }) });
    expect(shadowWarnings).toEqual([warning, warning]);
    failing = false;
    await agent.syncShadow();
    expect(shadow.updates).toHaveLength(1);
  });
});

describe('createAgent: log lines', () => {
  it.each([
    { root: 'bound by pifleet-agent run', bindings: { thingName: config().thingName } },
    { root: 'without bindings (simulated devices)', bindings: {} },
  ])('name the thing exactly once, the root logger $root', async ({ bindings }) => {
    const raw: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (l: string) => raw.push(l) } }).child(bindings);
    const { outbox } = openOutbox({ path: ':memory:', maxBytes: 1024 ** 2 });
    const agent = createAgent({
      config: config(),
      transport: new MemoryTransport(),
      outbox,
      sensors: [countingSensor('env')],
      outputs: [memoryOutput('relay')],
      clock: createVirtualClock(),
      logger,
      createShadow: () => new MemoryShadow(),
    });
    await agent.start();
    await settle();
    await agent.stop();
    const agentLines = raw.filter((l) => l.includes('"component":"agent"'));
    expect(agentLines.length).toBeGreaterThan(0);
    for (const line of agentLines) {
      // JSON.parse would keep the last of two keys; the raw text shows both.
      expect(line.match(/"thingName":/g), line).toHaveLength(1);
      expect(JSON.parse(line).thingName).toBe(config().thingName);
    }
  });
});
